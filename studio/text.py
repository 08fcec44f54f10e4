"""Text to speak: checked once, then split into sentences the way a person reads them.

Each sentence is generated on its own, so a wrong split is audible ("Mr." spoken
as a sentence). Space-separated languages go through `sentencex`, a maintained
segmenter that knows abbreviations, initials, decimals and quotes. Japanese and
Chinese end sentences at 。！？, but a closing quote or bracket stays with its
sentence, and a quote followed by と/って continues the sentence; sentencex splits
those wrongly, so they get the small rule set here.
"""

from __future__ import annotations

import re

from .errors import InvalidInput
from .languages import AUTO, CJK, code_for, normalise_language

SHORTEST = 8  # characters; a shorter sentence is read together with its neighbour
LONGEST = 300  # characters; a longer sentence is broken at clauses
CJK_ENDS = "。！？!?"
CLOSERS = "」』）)】〉》\"'”’"
# A quotation followed by a particle is part of a longer sentence: 「本当？」と彼は言った。『猫』を読んだ。
QUOTE_CONTINUES = ("と", "って", "を", "が", "は", "も", "の", "に", "で", "から", "まで")
CJK_CHAR = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def validate_text(text: str | None, max_chars: int) -> str:
    cleaned = (text or "").strip()
    if not cleaned:
        raise InvalidInput("Type the text you want the voice to say.")
    if len(cleaned) > max_chars:
        raise InvalidInput(f"The text is {len(cleaned)} characters; the limit is {max_chars}. "
                           "Split it into several requests.")
    if not any(ch.isalnum() for ch in cleaned):
        raise InvalidInput("The text has no words to speak.")
    return cleaned


def written_in(text: str) -> str | None:
    """The language a text's own script gives away (kana: Japanese, hangul: Korean, only Han: Chinese), or None."""
    kana = re.search(r"[\u3040-\u30ff\u31f0-\u31ff]", text)
    if kana:
        return "Japanese"
    if re.search(r"[\uac00-\ud7af\u1100-\u11ff]", text):
        return "Korean"
    if re.search(r"[\u4e00-\u9fff\u3400-\u4dbf]", text):
        return "Chinese"
    return None


def check_script(text: str, spoken: tuple[str, ...], engine: str) -> None:
    """Refuse before generation a text written in a script the engine cannot speak (Japanese to an English engine)."""
    written = written_in(text)
    if written and written not in spoken:
        raise InvalidInput(f"The text is written in {written}, and {engine} speaks {', '.join(spoken)} only. "
                           f"Choose an engine that speaks {written} (Qwen3-TTS does), or write the text in "
                           f"{spoken[0]}.")


def split_sentences(text: str, language: str | None = AUTO, longest: int = LONGEST) -> list[str]:
    """Sentences of `text` in reading order; scraps are merged and over-long ones broken at clauses."""
    name = normalise_language(language)
    pieces: list[str] = []
    for paragraph in re.split(r"\n\s*\n|\n", text):
        paragraph = re.sub(r"\s+", " ", paragraph).strip()
        if not paragraph:
            continue
        if name in CJK or (name == AUTO and CJK_CHAR.search(paragraph)):
            pieces.extend(_split_cjk(paragraph))
        else:
            pieces.extend(_split_spaced(paragraph, code_for(name) or "en"))
    result: list[str] = []
    for sentence in _merge_scraps(pieces):
        result.extend(_break_long(sentence, longest))
    return result or [text.strip()]


def _split_spaced(paragraph: str, code: str) -> list[str]:
    from sentencex import segment

    return [s.strip() for s in segment(code, paragraph) if s.strip()]


def _split_cjk(paragraph: str) -> list[str]:
    sentences, start, i = [], 0, 0
    while i < len(paragraph):
        if paragraph[i] in CJK_ENDS:
            end = i + 1
            while end < len(paragraph) and paragraph[end] in CJK_ENDS:
                end += 1  # ！？ and ?!! end together
            while end < len(paragraph) and paragraph[end] in CLOSERS:
                end += 1
            rest = paragraph[end:].lstrip()
            closed_quote = end > i + 1 and paragraph[end - 1] in CLOSERS
            if rest and closed_quote and rest.startswith(QUOTE_CONTINUES):
                i = end
                continue
            if _inside_brackets(paragraph[start:end]):
                i = end
                continue
            sentences.append(paragraph[start:end].strip())
            start = i = end
            continue
        i += 1
    if paragraph[start:].strip():
        sentences.append(paragraph[start:].strip())
    return sentences


def _inside_brackets(piece: str) -> bool:
    """An end mark inside an open 「 or （ does not end the sentence."""
    depth = 0
    for ch in piece:
        if ch in "「『（(【":
            depth += 1
        elif ch in "」』）)】" and depth:
            depth -= 1
    return depth > 0


def _weight(piece: str) -> int:
    """Length in Latin-letter terms: a CJK character carries about as much speech as two letters."""
    return len(piece) + len(CJK_CHAR.findall(piece))


def _merge_scraps(pieces: list[str]) -> list[str]:
    """A very short piece ("Hi.", "！") is read with its neighbour, never alone."""
    merged: list[str] = []
    for piece in pieces:
        wordless = not any(ch.isalnum() for ch in piece)
        if merged and (wordless or _weight(merged[-1]) < SHORTEST):
            merged[-1] = _join(merged[-1], piece)
        else:
            merged.append(piece)
    if len(merged) > 1 and _weight(merged[-1]) < SHORTEST:
        last = merged.pop()
        merged[-1] = _join(merged[-1], last)
    return merged


def _join(left: str, right: str) -> str:
    spaced = not (CJK_CHAR.search(left[-1:]) or CJK_CHAR.search(right[:1]) or right[:1] in CJK_ENDS + CLOSERS)
    return f"{left} {right}" if spaced else left + right


def _break_long(sentence: str, longest: int) -> list[str]:
    """Break at clause marks (、，,;:), then at spaces, so no piece is longer than `longest`."""
    if len(sentence) <= longest:
        return [sentence]
    parts, current = [], ""
    for clause in re.split(r"(?<=[,;:、，；])\s*", sentence):
        if current and len(current) + len(clause) > longest:
            parts.append(current.strip())
            current = ""
        if current and clause[:1].isalnum() and not CJK_CHAR.match(clause[:1]):
            current += " "  # Latin clauses were separated by a space; CJK ones were not
        current += clause
        while len(current) > longest:
            cut = current.rfind(" ", 0, longest)
            cut = cut if cut > 0 else longest
            parts.append(current[:cut].strip())
            current = current[cut:].strip()
    if current.strip():
        parts.append(current.strip())
    return parts
