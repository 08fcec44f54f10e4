"""Whisper transcription of reference clips, with word timestamps for trimming.

ICL cloning collapses when `ref_text` does not match the audio word for word,
so the transcript keeps its words' times: a trim cuts the text at the same
words (`Transcript.slice`), and `suggest_span` picks a 3-15 s stretch that
starts and ends at word, ideally sentence, boundaries.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import audio
from .errors import InvalidInput, ModelUnavailable
from .languages import AUTO, CODES, code_for, name_for_code, normalise_language

log = logging.getLogger(__name__)

WHISPER_RATE = 16000
SENTENCE_ENDS = tuple("。．.!?！？…")
MAX_WORDS = 5000  # a transcript sent back by a client: far more than 60 s of speech has
MAX_TEXT = 20000


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    text: str
    probability: float = 1.0


@dataclass
class Transcript:
    text: str
    language: str  # Qwen3-TTS language name when it has one, else Whisper's code
    language_code: str
    probability: float
    words: list[Word] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Transcript":
        if not isinstance(data, dict):
            raise InvalidInput("A transcript must be a JSON object with text and words.")
        raw_words = data.get("words") or []
        if not isinstance(raw_words, list) or len(raw_words) > MAX_WORDS:
            raise InvalidInput(f"A transcript can have at most {MAX_WORDS} words.")
        try:
            words = [Word(float(w["start"]), float(w["end"]), str(w["text"])[:200], float(w.get("probability", 1)))
                     for w in raw_words]
            transcript = cls(str(data.get("text") or join_words(words))[:MAX_TEXT],
                             str(data.get("language") or "Auto")[:40], str(data.get("language_code") or "")[:8],
                             float(data.get("probability") or 0), words)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise InvalidInput("The transcript's words need start, end and text.") from error
        if not all(np.isfinite([w.start, w.end]).all() and 0 <= w.start <= w.end for w in words) or any(
                b.start < a.start for a, b in zip(words, words[1:])):
            raise InvalidInput("The transcript's word times must be ordered, finite and not negative.")
        return transcript

    def slice(self, start: float, end: float) -> "Transcript":
        """The words inside [start, end) with times relative to `start`: the text follows the trim."""
        kept = [Word(max(0.0, w.start - start), max(0.0, w.end - start), w.text, w.probability)
                for w in self.words if start <= (w.start + w.end) / 2 < end]
        return Transcript(join_words(kept), self.language, self.language_code, self.probability, kept)

    def cut_words(self, start: float, end: float) -> list[Word]:
        """Words that a trim at [start, end) would cut in two."""
        return [w for w in self.words if (w.start < start < w.end - 0.02) or (w.start + 0.02 < end < w.end)]


@dataclass(frozen=True)
class Span:
    start: float
    end: float
    text: str
    note: str = ""

    @property
    def duration(self) -> float:
        return self.end - self.start


def join_words(words: list[Word]) -> str:
    return "".join(w.text for w in words).strip()


def _sentence_ends(words: list[Word], pause: float = 0.35) -> list[bool]:
    """After which words a sentence ends: punctuation, a clear pause, or the last word.

    Whisper often drops Japanese punctuation, so pauses count as well.
    """
    ends = []
    for i, word in enumerate(words):
        last = i + 1 == len(words)
        gap = 0.0 if last else words[i + 1].start - word.end
        ends.append(last or word.text.strip().endswith(SENTENCE_ENDS) or gap >= pause)
    return ends


def suggest_span(transcript: Transcript, duration: float, shortest: float = 3.0, longest: float = 15.0) -> Span:
    """A stretch of 3-15 s starting and ending at word boundaries, preferring whole sentences.

    Score of words i..j: 2 if it starts a sentence, 2 if it ends one, plus its length up to
    10 s (/10). For each last word j, the best first word is the earliest one in the window of
    lengths [shortest, longest], or the earliest sentence start in it; the window only moves
    forward, so the search is linear in the number of words.
    """
    words = transcript.words
    if not words:
        raise InvalidInput("Transcribe the clip first: the suggestion needs word timestamps.")

    def bounds(i: int, j: int) -> tuple[float, float]:
        before = words[i - 1].end if i > 0 else 0.0
        after = words[j + 1].start if j + 1 < len(words) else duration
        start = max(before + (words[i].start - before) / 2, words[i].start - 0.15, 0.0)
        end = min(after - (after - words[j].end) / 2, words[j].end + 0.2, duration)
        return start, end

    ends = _sentence_ends(words)
    starts = [i == 0 or ends[i - 1] for i in range(len(words))]
    next_start = [len(words)] * (len(words) + 1)  # first sentence start at or after i
    for i in range(len(words) - 1, -1, -1):
        next_start[i] = i if starts[i] else next_start[i + 1]

    def score(i: int, j: int) -> float:
        start, end = bounds(i, j)
        return 2.0 * starts[i] + 2.0 * ends[j] + min(end - start, 10.0) / 10.0

    best, best_key = None, None
    low = 0
    for j in range(len(words)):
        while low <= j and bounds(low, j)[1] - bounds(low, j)[0] > longest:
            low += 1
        if low > j:
            continue
        for i in {low, next_start[low]}:
            if i > j:
                continue
            start, end = bounds(i, j)
            if not shortest <= end - start <= longest:
                continue
            key = (score(i, j), -i, -j)
            if best_key is None or key > best_key:
                best, best_key = (i, j, start, end), key
    if best is None:
        start, end = bounds(0, len(words) - 1)
        return Span(start, end, join_words(words), note=f"The speech is only {end - start:.1f} s long; "
                                                            "3-15 s works best.")
    i, j, start, end = best
    return Span(start, end, join_words(words[i:j + 1]))


def default_whisper_model(device: str) -> str:
    return "large-v3-turbo" if device == "cuda" else "small"


class Transcriber:
    """faster-whisper, loaded on first use and shared; one transcription at a time."""

    def __init__(self, model: str = "auto", device: str = "auto"):
        self.requested = model
        self.device = device
        self._model = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self, progress=None):
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is None:
                self._model = self._load(progress)
        return self._model

    def _load(self, progress):
        from faster_whisper import WhisperModel

        device = self.device
        if device in ("auto", "mps"):
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        name = default_whisper_model(device) if self.requested == "auto" else self.requested
        local = Path(name).expanduser()
        if local.exists() and not (local / "model.bin").is_file():
            raise ModelUnavailable(f"{local} has no model.bin: it is not a faster-whisper model folder.")
        if progress:
            progress(f"Loading Whisper model {name} ...")
        try:
            model = WhisperModel(str(local) if local.exists() else name, device=device,
                                 compute_type="float16" if device == "cuda" else "int8")
        except Exception as error:  # noqa: BLE001 - any load failure gets the same advice
            raise ModelUnavailable(
                f"Could not load the Whisper model {name!r}: {str(error).splitlines()[0] if str(error) else error!r}. "
                "If this machine is offline, download a faster-whisper model elsewhere and start with "
                "--whisper-model /path/to/folder."
            ) from error
        log.info("loaded Whisper %s on %s", name, device)
        return model

    def transcribe(self, clip: audio.Clip, language: str | None = "Auto", progress=None) -> Transcript:
        """Transcribe with word timestamps; `language` is a Qwen name, a Whisper code, or Auto."""
        code = language_code(language)
        model = self.load(progress)
        samples = audio.resample(clip, WHISPER_RATE).samples
        if not len(samples) or audio.is_silent(clip):
            raise InvalidInput("The clip is silent: there is nothing to transcribe.")
        with self._lock:
            segments, info = model.transcribe(np.ascontiguousarray(samples, dtype=np.float32), language=code,
                                              word_timestamps=True, beam_size=5, vad_filter=False,
                                              condition_on_previous_text=False)
            words = [Word(round(float(w.start), 3), round(float(w.end), 3), w.word, round(float(w.probability), 3))
                     for segment in segments for w in (segment.words or [])]
        detected = info.language
        name = name_for_code(detected) or detected
        return Transcript(join_words(words), name, detected, round(float(info.language_probability), 3), words)

    def detect_language(self, clip: audio.Clip, progress=None) -> tuple[str, float]:
        """The spoken language (Qwen name when it has one, else Whisper's code) and its probability."""
        model = self.load(progress)
        samples = audio.resample(clip, WHISPER_RATE).samples
        if not len(samples) or audio.is_silent(clip):
            raise InvalidInput("The clip is silent: there is no language to detect.")
        with self._lock:
            code, probability, _ = model.detect_language(np.ascontiguousarray(samples, dtype=np.float32))
        return name_for_code(code) or code, float(probability)


def language_code(language: str | None) -> str | None:
    """Whisper's code for a language name or ISO code in any case; None for Auto."""
    try:
        return code_for(normalise_language(language))
    except InvalidInput:
        pass
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    value = (language or AUTO).strip().lower()
    if value in _LANGUAGE_CODES:
        return value
    raise InvalidInput(f"Whisper does not know the language {value[:40]!r}. Use Auto or one of: "
                       f"{', '.join(CODES)}.")
