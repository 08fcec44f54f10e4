"""Sentence splitting reads like a person: a corpus of tricky English and Japanese (and a few other) lines."""

import pytest

from studio.errors import InvalidInput
from studio.text import split_sentences, validate_text

CORPUS = [
    # English: abbreviations, titles, initials
    ("Mr. Smith met Dr. Watson at 3 p.m. today.", "English", ["Mr. Smith met Dr. Watson at 3 p.m. today."]),
    ("The U.S. economy grew. The U.K. one did not.", "English", ["The U.S. economy grew.", "The U.K. one did not."]),
    ("J. R. R. Tolkien wrote it. He was born in 1892.", "English",
     ["J. R. R. Tolkien wrote it.", "He was born in 1892."]),
    ("See e.g. the appendix. It has examples, i.e. lists.", "English",
     ["See e.g. the appendix.", "It has examples, i.e. lists."]),
    ("He lives at No. 5 Baker St. in London. Nice place.", "English",
     ["He lives at No. 5 Baker St. in London.", "Nice place."]),
    ("The meeting is at 10 a.m. on Monday. Please come.", "English",
     ["The meeting is at 10 a.m. on Monday.", "Please come."]),
    ("Prof. Kim and Mrs. Lee arrived (late, as usual). Then we began.", "English",
     ["Prof. Kim and Mrs. Lee arrived (late, as usual).", "Then we began."]),
    ("It was 5 vs. 3 in the end. What a game!", "English", ["It was 5 vs. 3 in the end.", "What a game!"]),
    # English: decimals, prices, versions
    ("It costs $3.50 today. The discount is 12.5 percent.", "English",
     ["It costs $3.50 today.", "The discount is 12.5 percent."]),
    ("Version 2.0.1 is out! Update now.", "English", ["Version 2.0.1 is out!", "Update now."]),
    ("Pi is about 3.14159. That is enough digits.", "English", ["Pi is about 3.14159.", "That is enough digits."]),
    # English: ellipses, quotes, brackets, questions
    ("Wait... what did you say? I said nothing.", "English", ["Wait... what did you say?", "I said nothing."]),
    ('"Are you coming?" she asked. "Yes!" he replied.', "English",
     ['"Are you coming?" she asked.', '"Yes!" he replied.']),
    ("Hello there. How are you today? I am fine!", "English", ["Hello there.", "How are you today?", "I am fine!"]),
    ("Hi. Yes. This is a longer sentence here.", "English", ["Hi. Yes.", "This is a longer sentence here."]),
    ("Really?! That is amazing.", "English", ["Really?!", "That is amazing."]),
    ("First line\nSecond line without a full stop", "English", ["First line", "Second line without a full stop"]),
    ("No punctuation at all in this one", "English", ["No punctuation at all in this one"]),
    # Japanese: quotes, brackets, decimals, doubled marks
    ("今日は晴れです。明日は雨が降るでしょう。", "Japanese", ["今日は晴れです。", "明日は雨が降るでしょう。"]),
    ("「本当？」と彼は言った。信じられない。", "Japanese", ["「本当？」と彼は言った。", "信じられない。"]),
    ("彼女は「明日行きます。」と言いました。楽しみです。", "Japanese",
     ["彼女は「明日行きます。」と言いました。", "楽しみです。"]),
    ("円周率は3.14です。覚えましたか？", "Japanese", ["円周率は3.14です。", "覚えましたか？"]),
    ("えっ！？本当ですか。すごいですね。", "Japanese", ["えっ！？本当ですか。", "すごいですね。"]),
    ("価格は1,500円です（税込み。送料別）。ご確認ください。", "Japanese",
     ["価格は1,500円です（税込み。送料別）。", "ご確認ください。"]),
    # a quote that stands alone ends a sentence; a very short one is read with its neighbour
    ("「行こう！」「うん！」二人は走り出した。", "Japanese", ["「行こう！」", "「うん！」二人は走り出した。"]),
    ("会議は午後3時からです。資料を忘れずに！", "Japanese", ["会議は午後3時からです。", "資料を忘れずに！"]),
    ("ありがとう。", "Japanese", ["ありがとう。"]),
    ("これはペンです。それは本です。あれは鉛筆です。", "Japanese",
     ["これはペンです。", "それは本です。", "あれは鉛筆です。"]),
    ("今日は晴れです。明日は雨が降るでしょう。", "Auto", ["今日は晴れです。", "明日は雨が降るでしょう。"]),
    ("『吾輩は猫である。』を読みました。面白かったです。", "ja",
     ["『吾輩は猫である。』を読みました。", "面白かったです。"]),
    # Chinese, German, French
    ("我今天很高兴。你呢？我也很好。", "Chinese", ["我今天很高兴。", "你呢？我也很好。"]),
    ("Guten Tag, Herr Dr. Müller. Wie geht es Ihnen?", "German", ["Guten Tag, Herr Dr. Müller.", "Wie geht es Ihnen?"]),
    ("Bonjour M. Dupont. Comment allez-vous ?", "fr", ["Bonjour M. Dupont.", "Comment allez-vous ?"]),
]


@pytest.mark.parametrize("text, language, expected", CORPUS, ids=[c[0][:30] for c in CORPUS])
def test_sentences_split_like_a_reader_would(text, language, expected):
    assert split_sentences(text, language) == expected


def test_corpus_is_large_enough():
    english = [c for c in CORPUS if c[1] == "English"]
    japanese = [c for c in CORPUS if c[1] in ("Japanese", "ja") or "。" in c[0]]
    assert len(CORPUS) >= 30 and len(english) >= 15 and len(japanese) >= 12


def test_over_long_sentences_break_at_clauses_and_keep_every_word():
    long = ", ".join(["this clause has some words"] * 30) + "."
    parts = split_sentences(long, "English", longest=120)
    assert all(len(p) <= 120 for p in parts) and len(parts) > 3
    assert " ".join(parts).replace(" ", "") == long.replace(" ", "")
    japanese = "、".join(["これは長い文の一部です"] * 40) + "。"
    parts = split_sentences(japanese, "Japanese", longest=100)
    assert all(len(p) <= 100 for p in parts) and "".join(parts) == japanese


def test_text_checks():
    assert validate_text("  Hello  ", 10) == "Hello"
    with pytest.raises(InvalidInput, match="Type the text"):
        validate_text("   ", 10)
    with pytest.raises(InvalidInput, match="limit is 10"):
        validate_text("x" * 11, 10)
    with pytest.raises(InvalidInput, match="no words"):
        validate_text("?!...", 10)


def test_the_script_gives_the_language_away():
    from studio.text import written_in

    assert written_in("今日はいい天気ですね。") == "Japanese"
    assert written_in("안녕하세요") == "Korean"
    assert written_in("你好，世界") == "Chinese"
    assert written_in("Hello, café!") is None
