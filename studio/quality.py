"""Measured quality of any take: speaker similarity, intelligibility, and flags for what went wrong.

- Speaker similarity: the cosine between the take and its reference with an independent speaker
  encoder (resemblyzer's, weights in its wheel), so the studio does not grade itself with its own model.
- Intelligibility: Whisper (the studio's transcriber) transcribes the take in the target language;
  word error rate against the text for space-separated languages, character error rate for Japanese,
  Chinese and Korean, after normalising case, punctuation and numbers (written out either way).
- Flags: silent, clipped, runaway (far longer than the text needs), cut off (hit the frame limit),
  long pauses inside, wrong language detected.
- `combined` ranks takes: similarity - error rate - 0.5 per serious flag - 0.2 per minor flag.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import asdict, dataclass, field

import numpy as np

from . import audio
from .errors import ModelUnavailable
from .languages import AUTO, CJK, code_for, normalise_language
from .transcribe import Transcriber

ENCODER_RATE = 16000
SERIOUS = ("silent", "runaway", "cut off", "wrong language")
MINOR = ("clipped", "long pauses")
# Characters per second of natural speech, to judge a runaway take (generous: slow speakers pass).
CHARS_PER_SECOND = {"cjk": 6.0, "other": 12.0}
LONG_PAUSE_SECONDS = 1.2
RETRY_ERROR_RATE = 0.5  # a take whose error rate is above this is retried like a flagged one


@dataclass
class Scores:
    duration: float
    speaking_rate: float  # characters per second of the text
    similarity: float | None = None  # cosine to the reference, -1..1
    transcript: str | None = None
    detected_language: str | None = None
    language_probability: float | None = None
    error_rate: float | None = None
    error_kind: str = "WER"  # or CER for Japanese, Chinese, Korean
    time_to_first_audio: float | None = None
    real_time_factor: float | None = None
    flags: list[str] = field(default_factory=list)

    @property
    def combined(self) -> float:
        """The ranking score: higher is better. Explained in the module docstring and the README."""
        value = (self.similarity or 0.0) - min(self.error_rate if self.error_rate is not None else 0.0, 1.0)
        for flag in self.flags:
            value -= 0.5 if flag.startswith(SERIOUS) else 0.2
        return round(value, 4)

    @property
    def failed(self) -> bool:
        """Worth a retry: a serious flag, or mostly unintelligible."""
        return any(f.startswith(SERIOUS) for f in self.flags) or (self.error_rate or 0.0) > RETRY_ERROR_RATE

    def to_dict(self) -> dict:
        data = asdict(self)
        data["combined"] = self.combined
        return data


def optional(module: str, package: str, purpose: str, install: str):
    """An optional scorer dependency, or a message that names it and how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ModelUnavailable(f"{purpose[0].upper()}{purpose[1:]} needs {package}, installed by `{install}`."
                               ) from error


def normalise_text(text: str, language: str) -> str:
    """Lower case, numbers written out, no punctuation; CJK without spaces."""
    num2words = optional("num2words", "num2words", "scoring the error rate",
                         "pip install -r requirements.txt").num2words
    code = code_for(language) or "en"

    def spell(match: re.Match) -> str:
        try:
            return f" {num2words(float(match.group()) if '.' in match.group() else int(match.group()), lang=code)} "
        except (NotImplementedError, OverflowError, ValueError):
            return match.group()

    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"\d+(?:\.\d+)?", spell, text.replace(",", ""))
    text = "".join(" " if unicodedata.category(ch).startswith(("P", "S")) else ch for ch in text)
    text = text.replace("-", " ")
    if language in CJK or language == "Korean":
        return re.sub(r"\s+", "", text)
    return re.sub(r"\s+", " ", text).strip()


def error_rate(reference: str, hypothesis: str, language: str) -> tuple[float, str]:
    """WER for space-separated languages, CER for Japanese, Chinese and Korean."""
    jiwer = optional("jiwer", "jiwer", "scoring the error rate", "pip install -r requirements.txt")
    truth, heard = normalise_text(reference, language), normalise_text(hypothesis, language)
    if not truth:
        return (0.0 if not heard else 1.0), "WER"
    if language in CJK or language == "Korean":
        return float(jiwer.cer(truth, heard or " ")), "CER"
    return float(jiwer.wer(truth, heard or " ")), "WER"


def expected_seconds(text: str, language: str) -> float:
    cjk = language in CJK or (language == AUTO and re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", text))
    return len(text.strip()) / CHARS_PER_SECOND["cjk" if cjk else "other"]


def signal_flags(clip: audio.Clip, text: str, language: str) -> list[str]:
    """What the samples alone tell: silence, clipping, runaway length, long pauses."""
    from .vad import speech_segments

    x = clip.samples
    flags = []
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak < 1e-3 or float(np.sqrt(np.mean(x ** 2))) < 1e-4:
        return ["silent or near silent"]
    clipped = float(np.mean(np.abs(x) >= 0.999))
    if clipped > 0.001:
        flags.append(f"clipped ({clipped:.1%} of samples)")
    expected = expected_seconds(text, language)
    if clip.duration > max(2.5 * expected, expected + 4.0):
        flags.append(f"runaway ({clip.duration:.1f} s for about {expected:.1f} s of text)")
    segments = speech_segments(x, clip.rate)
    gaps = [b.start - a.end for a, b in zip(segments, segments[1:])]
    if gaps and max(gaps) > LONG_PAUSE_SECONDS:
        flags.append(f"long pauses (up to {max(gaps):.1f} s)")
    return flags


class Scorer:
    """Scores takes; the speaker encoder loads on first use and is shared (one scoring at a time)."""

    def __init__(self, transcriber: Transcriber, device: str = "cpu"):
        self.transcriber = transcriber
        self.device = "cuda" if device == "cuda" else "cpu"
        self._encoder = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._encoder is not None and self.transcriber.loaded

    def _load_encoder(self, progress=None):
        if self._encoder is None:
            with self._lock:
                if self._encoder is None:
                    if progress:
                        progress("Loading the speaker encoder (resemblyzer) ...")
                    resemblyzer = optional("resemblyzer", "resemblyzer", "speaker similarity",
                                           "pip install --no-deps -r requirements-nodeps.txt")
                    self._encoder = resemblyzer.VoiceEncoder(self.device, verbose=False)
        return self._encoder

    def embedding(self, clip: audio.Clip, progress=None) -> np.ndarray:
        encoder = self._load_encoder(progress)
        samples = audio.resample(clip, ENCODER_RATE).samples
        with self._lock:
            return encoder.embed_utterance(np.ascontiguousarray(samples, dtype=np.float32))

    def similarity(self, take: audio.Clip, reference: audio.Clip, progress=None) -> float:
        a, b = self.embedding(take, progress), self.embedding(reference, progress)
        return float(np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-9))

    def score(self, take: audio.Clip, text: str, language: str = AUTO, reference: audio.Clip | None = None,
              cut_off: bool = False, time_to_first_audio: float | None = None, total_time: float | None = None,
              progress=None) -> Scores:
        """Every measure of one take; `reference` enables similarity, `cut_off` says it hit its frame limit."""
        language = normalise_language(language)
        length = max(take.duration, 1e-6)
        scores = Scores(duration=round(take.duration, 3), speaking_rate=round(len(text.strip()) / length, 2),
                        time_to_first_audio=time_to_first_audio,
                        real_time_factor=None if total_time is None else round(total_time / length, 3))
        scores.flags = signal_flags(take, text, language)
        if cut_off:
            scores.flags.append("cut off (hit the length limit)")
        if scores.flags and scores.flags[0].startswith("silent"):
            scores.error_rate, scores.error_kind = 1.0, "CER" if language in CJK else "WER"
            return scores
        detected, probability = self.transcriber.detect_language(take, progress)
        scores.detected_language, scores.language_probability = detected, round(probability, 3)
        if language != AUTO and detected != language and probability > 0.5:
            scores.flags.append(f"wrong language ({detected} detected)")
        heard = self.transcriber.transcribe(take, language if language != AUTO else detected, progress)
        scores.transcript = heard.text
        rate, kind = error_rate(text, heard.text, language if language != AUTO else detected)
        scores.error_rate, scores.error_kind = round(rate, 4), kind
        if reference is not None:
            scores.similarity = round(self.similarity(take, reference, progress), 4)
        return scores


NICE_STEPS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300)
WAVE_SHARE = 0.3  # of the plots' height: the waveform; the spectrogram below it


@dataclass(frozen=True)
class Plots:
    """Where a picture's two plots lie, in pixels: room is left around them for the axes."""

    left: int
    width: int
    wave_top: int
    wave_height: int
    spec_top: int
    spec_height: int

    @property
    def spec_bottom(self) -> int:
        return self.spec_top + self.spec_height - 1


def plots(width: int, height: int) -> Plots:
    left, right, top, bottom, gap = 46, 14, 8, 30, 12
    plot_w, plot_h = max(2, width - left - right), max(6, height - top - bottom - gap)
    wave_h = max(2, int(plot_h * WAVE_SHARE))
    return Plots(left, plot_w, top, wave_h, top + wave_h + gap, plot_h - wave_h)


def ticks(length: float, pixels: int, min_gap: int = 56) -> list[tuple[float, int]]:
    """Tick values from 0 to `length` (a round step, at least `min_gap` pixels apart) and their pixel
    offsets along an axis `pixels` long, so labels never crowd however long the clip."""
    if length <= 0 or pixels <= 1:
        return [(0.0, 0)]
    most = max(1, pixels // min_gap)
    step = next((s for s in NICE_STEPS if length / s <= most), length)
    count = int(length / step + 1e-9)
    return [(round(k * step, 6), position(k * step, length, pixels)) for k in range(count + 1)]


def position(value: float, length: float, pixels: int) -> int:
    """The pixel offset of `value` on an axis from 0 to `length` drawn `pixels` long."""
    return round(value / length * (pixels - 1))


def tick_label(value: float) -> str:
    """0, 0.5, 1, 1.25 ...: no trailing zeros."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes: its fixed bitmap font
        return ImageFont.load_default()


def picture(clip: audio.Clip, width: int = 640, height: int = 280):
    """Waveform over spectrogram with their axes (time in s below, frequency in kHz, amplitude -1..1), as a
    PIL image: no plotting library needed."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    box = plots(width, height)
    x = clip.samples if len(clip.samples) else np.zeros(1, np.float32)
    _draw_wave(draw, x, box)
    image.paste(_spectrogram(x, clip.rate, box.width, box.spec_height), (box.left, box.spec_top))
    font, ink, frame = _font(12), (60, 60, 60), (150, 150, 150)
    for value, offset in ticks(clip.duration, box.width):  # time along the bottom
        at = box.left + offset
        draw.line([(at, box.spec_bottom + 1), (at, box.spec_bottom + 5)], fill=ink)
        draw.text((at, box.spec_bottom + 7), tick_label(value), fill=ink, font=font, anchor="mt")
    draw.text((box.left + box.width, height - 1), "time (s)", fill=ink, font=font, anchor="rd")
    for value, offset in ticks(clip.rate / 2000, box.spec_height, min_gap=22):  # frequency up the spectrogram
        at = box.spec_bottom - offset
        draw.line([(box.left - 5, at), (box.left - 1, at)], fill=ink)
        draw.text((box.left - 7, at), tick_label(value), fill=ink, font=font, anchor="rm")
    draw.text((2, box.spec_top + box.spec_height // 2), "kHz", fill=ink, font=font, anchor="lm")
    wave_bottom = box.wave_top + box.wave_height - 1
    for value, at in ((1, box.wave_top), (0, box.wave_top + box.wave_height // 2), (-1, wave_bottom)):
        draw.line([(box.left - 5, at), (box.left - 1, at)], fill=ink)  # amplitude, full scale
        draw.text((box.left - 7, at), str(value), fill=ink, font=font, anchor="rm")
    draw.rectangle([box.left - 1, box.wave_top - 1, box.left + box.width, wave_bottom + 1], outline=frame)
    draw.rectangle([box.left - 1, box.spec_top - 1, box.left + box.width, box.spec_bottom + 1], outline=frame)
    return image


def _draw_wave(draw, x: np.ndarray, box: Plots) -> None:
    """The waveform's envelope, one vertical line per pixel column, full scale = the plot's height."""
    left, top, width, height = box.left, box.wave_top, box.width, box.wave_height
    middle = top + height / 2
    draw.line([(left, middle), (left + width - 1, middle)], fill=(210, 210, 210))
    for i, column in enumerate(np.array_split(x, width)):
        if len(column):
            high, low = float(np.clip(column.max(), -1, 1)), float(np.clip(column.min(), -1, 1))
            draw.line([(left + i, middle - high * height / 2), (left + i, middle - low * height / 2)],
                      fill=(40, 90, 160))


def _spectrogram(x: np.ndarray, rate: int, width: int, height: int):
    """80 dB of power, low frequencies at the bottom, 0 Hz to half the sample rate."""
    from PIL import Image
    from scipy.signal import stft

    _, _, spectrum = stft(x, fs=rate, nperseg=512, noverlap=384)
    power = 20 * np.log10(np.abs(spectrum) + 1e-6)
    power = np.clip((power - (power.max() - 80)) / 80, 0, 1)[::-1]
    rows = (power * 255).astype(np.uint8)
    heat = np.stack([rows, (rows * 0.6).astype(np.uint8), (255 - rows) // 3], axis=-1)
    return Image.fromarray(heat, "RGB").resize((width, height))
