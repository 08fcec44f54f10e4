"""Scores on real speech: kokoro Japanese fixtures of three speakers, and English from Debian's espeak-ng."""

import shutil
import subprocess

import numpy as np
import pytest

from studio import audio
from studio.quality import Scorer, error_rate, normalise_text, picture, plots, tick_label, ticks
from studio.vad import speech_segments

ENGLISH = "Good morning. Today we will talk about the weather in the city."


@pytest.fixture(scope="module")
def scorer(transcriber):
    return Scorer(transcriber)


@pytest.fixture(scope="module")
def english(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.skip("English test speech needs Debian's espeak-ng (apt-get install espeak-ng)")
    path = tmp_path_factory.mktemp("espeak") / "english.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), ENGLISH], check=True)
    return audio.load(path)


def halves(entry):
    """The two sentences of a fixture: one speaker saying two different things."""
    clip = audio.load(entry["path"])
    first, second = speech_segments(clip.samples, clip.rate)[:2]
    cut = (first.end + second.start) / 2
    return audio.trim(clip, 0, cut), audio.trim(clip, cut, clip.duration)


def test_same_speaker_ranks_above_different_speakers(scorer, ja_clips):
    for index, entry in enumerate(ja_clips):
        reference, take = halves(entry)
        same = scorer.similarity(take, reference)
        others = [scorer.similarity(audio.load(other["path"]), reference)
                  for j, other in enumerate(ja_clips) if j != index]
        assert same > max(others), (entry["voice"], same, others)


def test_error_rate_is_low_for_the_right_text_and_high_for_a_wrong_one(scorer, english, ja_clips):
    right = scorer.score(english, ENGLISH, "English")
    wrong = scorer.score(english, "Completely different words are written in this other sentence.", "English")
    assert right.error_kind == "WER" and right.error_rate <= 0.1, right.transcript
    assert wrong.error_rate >= 0.8
    japanese = audio.load(ja_clips[0]["path"])
    right = scorer.score(japanese, ja_clips[0]["text"], "Japanese")
    wrong = scorer.score(japanese, ja_clips[2]["text"], "Japanese")
    assert right.error_kind == "CER" and right.error_rate <= 0.2 and wrong.error_rate >= 0.6


def test_clean_speech_raises_no_flag(scorer, english, ja_clips):
    assert scorer.score(english, ENGLISH, "en").flags == []
    clip = audio.load(ja_clips[1]["path"])
    scores = scorer.score(clip, ja_clips[1]["text"], "ja", reference=clip)
    assert scores.flags == [] and scores.similarity > 0.99 and not scores.failed


def test_every_flag_fires_on_audio_made_to_trigger_it(scorer, english, ja_clips):
    rate = english.rate
    silent = audio.Clip(np.zeros(rate * 3, np.float32), rate)
    assert scorer.score(silent, ENGLISH, "English").flags[0].startswith("silent")
    loud = audio.Clip(np.clip(english.samples * 20, -1, 1).astype(np.float32), rate)
    assert any(f.startswith("clipped") for f in scorer.score(loud, ENGLISH, "English").flags)
    rambling = audio.Clip(np.concatenate([english.samples] * 2), rate)  # 9 s for one short word
    assert any(f.startswith("runaway") for f in scorer.score(rambling, "Good morning.", "English").flags)
    assert any(f.startswith("cut off") for f in scorer.score(english, ENGLISH, "English", cut_off=True).flags)
    gap = np.zeros(int(rate * 2.0), np.float32)
    paused = audio.Clip(np.concatenate([english.samples[: len(english.samples) // 2], gap,
                                        english.samples[len(english.samples) // 2:]]), rate)
    assert any(f.startswith("long pauses") for f in scorer.score(paused, ENGLISH, "English").flags)
    japanese = audio.load(ja_clips[0]["path"])
    wrong = scorer.score(japanese, ja_clips[0]["text"], "English")
    assert any(f.startswith("wrong language (Japanese") for f in wrong.flags) and wrong.failed


def test_numbers_and_punctuation_are_normalised_either_way():
    assert error_rate("I have 3 cats, 2 dogs.", "i have three cats two dogs", "English")[0] == 0.0
    assert error_rate("会議は3時です。", "会議は三時です", "Japanese") == (0.0, "CER")
    assert normalise_text("Hello, World!", "English") == "hello world"


def test_combined_score_prefers_similar_clear_unflagged_takes():
    from studio.quality import Scores

    good = Scores(5.0, 10.0, similarity=0.8, error_rate=0.1)
    unclear = Scores(5.0, 10.0, similarity=0.8, error_rate=0.6)
    runaway = Scores(5.0, 10.0, similarity=0.9, error_rate=0.0, flags=["runaway (20 s)"])
    assert good.combined > unclear.combined and good.combined > runaway.combined
    assert unclear.failed and runaway.failed and not good.failed


def test_time_ticks_fall_on_round_values_where_they_belong():
    assert ticks(2.0, 601) == [(round(0.2 * k, 1), 60 * k) for k in range(11)]  # 0.2 s apart, 60 px apart
    long = ticks(95.0, 584)  # a long clip: a larger round step, labels never crowd
    assert [value for value, _ in long] == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]
    assert min(b - a for (_, a), (_, b) in zip(long, long[1:])) >= 56 and long[-1][1] <= 583
    assert [tick_label(v) for v, _ in ticks(1.0, 600)][:3] == ["0", "0.1", "0.2"]
    assert ticks(0.0, 600) == [(0.0, 0)]  # an empty take still gets its origin


def test_picture_axes_say_where_the_sound_is():
    """A 4 kHz tone at half scale from 1 s to 2 s: bright right of the 1 s tick, on the 4 kHz tick's row,
    and half way up the waveform's amplitude axis."""
    rate, width, height = 24000, 640, 280
    t = np.arange(2 * rate) / rate
    tone = (0.5 * np.sin(2 * np.pi * 4000 * t) * (t >= 1)).astype(np.float32)
    pixels = np.asarray(picture(audio.Clip(tone, rate), width, height)).astype(int)
    box = plots(width, height)
    time_ticks = dict(ticks(2.0, box.width))
    assert sorted(time_ticks) == [round(0.2 * k, 1) for k in range(11)]
    for offset in time_ticks.values():  # each tick mark is drawn where the helper puts it, below the plot
        assert tuple(pixels[box.spec_bottom + 3, box.left + offset]) == (60, 60, 60)
    power = pixels[box.spec_top:box.spec_bottom + 1, box.left:box.left + box.width, 0]  # red: power
    one_second = time_ticks[1.0]
    assert power[:, :one_second - 6].max() < 60 and power[:, one_second + 6:].max() > 200
    four_khz = box.spec_height - 1 - dict(ticks(12.0, box.spec_height, min_gap=22))[4.0]
    assert abs(int(np.argmax(power[:, one_second + 20:].mean(axis=1))) - four_khz) <= 2
    assert tuple(pixels[box.spec_top + four_khz, box.left - 3]) == (60, 60, 60)  # and its tick mark is there

    def label_start(row):  # the leftmost ink of the tick label beside `row`
        band = pixels[row - 4:row + 5, :box.left - 6].min(axis=2)
        return int(np.nonzero((band < 128).any(axis=0))[0].min())

    assert label_start(box.spec_top) < label_start(box.spec_bottom)  # "12" kHz at the top, "0" at the bottom
    wave = pixels[box.wave_top:box.wave_top + box.wave_height, box.left:box.left + box.width]
    drawn = np.nonzero((wave[..., 2] == 160).any(axis=1))[0]  # rows the waveform reaches
    assert abs(drawn.min() - box.wave_height / 4) <= 2  # +0.5 is a quarter of the way down from +1
    assert pixels[:box.wave_top + box.wave_height, :box.left].min() < 100  # the amplitude labels


def test_a_missing_scorer_dependency_is_named():
    from studio.errors import ModelUnavailable
    from studio.quality import optional

    with pytest.raises(ModelUnavailable, match="Speaker similarity needs resemblyzer, installed by `pip install"):
        optional("resemblyzer_is_not_installed_here", "resemblyzer", "speaker similarity",
                 "pip install --no-deps -r requirements-nodeps.txt")
    assert optional("json", "json", "anything", "nothing").dumps({}) == "{}"
