"""Reading, converting and writing audio clips.

Everything downstream works on a `Clip`: float32 mono samples in [-1, 1] at a
known rate. Every file and every byte string is decoded by PyAV (FFmpeg's
libraries, shipped in the wheel: no system ffmpeg), and only after its
container has been checked: audio container formats only, local data only (no
playlists or URLs), sample rate and channel count within bounds, and a declared
length within the limit. Decoding then streams frame by frame, mixing down as
it goes, and stops at a hard cap, so a file that lies about its length cannot
grow the server past the limit either.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from .config import SAMPLE_RATE
from .errors import AudioError
from .files import write_atomic

SILENCE_PEAK = 1e-4
MIN_RATE, MAX_RATE = 8000, 192000
MAX_CHANNELS = 8
HARD_CAP_SECONDS = 3600.0  # when a caller names no limit
# FFmpeg demuxers for audio files; playlists (hls, concat) and everything else are never opened.
AUDIO_FORMATS = "wav,w64,flac,ogg,mp3,mov,mp4,m4a,3gp,matroska,webm,aac,aiff"
OPEN_OPTIONS = {"format_whitelist": AUDIO_FORMATS, "protocol_whitelist": "file"}


@dataclass(frozen=True)
class Clip:
    samples: np.ndarray  # float32, mono, shape (n,)
    rate: int
    source: str = ""
    channels: int = 1  # of the file it came from, before downmixing

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate

    def checksum(self) -> str:
        digest = hashlib.sha256(np.ascontiguousarray(self.samples, dtype=np.float32).tobytes())
        digest.update(str(self.rate).encode())
        return digest.hexdigest()


def load(path: str | os.PathLike, max_bytes: float | None = None, max_seconds: float | None = None,
         span: tuple[float, float | None] | None = None) -> Clip:
    """Decode an audio file into a mono float32 clip at its own rate, within the limits.

    With `span` (start, end or None for the end) only that part is kept, and `max_seconds` applies to it:
    a long recording can be cut to a usable reference before it is refused.
    """
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise AudioError(f"Audio file {name!r} was not found.")
    size = path.stat().st_size
    if size == 0:
        raise AudioError(f"{name!r} is empty.")
    if max_bytes is not None and size > max_bytes:
        raise AudioError(f"{name!r} is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB. "
                         "Trim it or upload a shorter clip.")
    with path.open("rb") as handle:
        return _decode(handle, name, max_seconds, span)


def load_bytes(data: bytes, source: str, max_seconds: float | None = None) -> Clip:
    """Decode audio held in memory (files inside a voice archive, for instance), within the limits."""
    if not data:
        raise AudioError(f"{source} is empty.")
    return _decode(io.BytesIO(data), source, max_seconds)


def _decode(handle, source: str, max_seconds: float | None, span: tuple[float, float | None] | None = None) -> Clip:
    import av

    name = repr(source)
    limit = HARD_CAP_SECONDS if max_seconds is None else max_seconds
    start, end = _checked_span(span)
    try:
        container = av.open(handle, mode="r", options=OPEN_OPTIONS, metadata_errors="ignore")
    except (av.FFmpegError, ValueError, OSError) as error:
        raise AudioError(f"{name} could not be decoded as audio. Is it a sound file (wav, flac, ogg, mp3, m4a, "
                         "webm, opus, aac)?") from error
    with container:
        if not container.streams.audio:
            raise AudioError(f"{name} has no audio in it.")
        stream = container.streams.audio[0]
        rate = int(stream.codec_context.sample_rate or 0)
        channels = int(stream.codec_context.channels or 0)
        check_format(rate, channels, name)
        declared = _declared_seconds(container, stream)
        if declared is not None and declared > HARD_CAP_SECONDS + 0.5:
            raise too_long(name, declared, HARD_CAP_SECONDS)
        if declared is not None and (min(declared, end) if end else declared) - start > limit + 0.5:
            raise too_long(name, (min(declared, end) if end else declared) - start, limit)
        cap = int((limit + 0.5) * rate)
        skip, stop = int(start * rate), (int(end * rate) if end else None)
        pieces, total, position = [], 0, 0
        try:
            for frame in container.decode(stream):
                if frame.sample_rate != rate:
                    raise AudioError(f"{name} changes its sample rate midway; convert it to a plain WAV first.")
                block = frame.to_ndarray()
                mono = _mix_down(block, len(frame.layout.channels), frame.format.is_planar)
                begin, position = position, position + len(mono)
                if position > (HARD_CAP_SECONDS + 0.5) * rate:
                    raise too_long(name, position / rate, HARD_CAP_SECONDS)
                if stop is not None and begin >= stop:
                    break  # past the span: nothing more is decoded
                mono = mono[max(0, skip - begin):None if stop is None else stop - begin]
                total += len(mono)
                if total > cap:
                    raise too_long(name, total / rate, limit)
                if len(mono):
                    pieces.append(mono)
        except av.FFmpegError as error:
            if not pieces:
                raise AudioError(f"{name} could not be decoded as audio. Is it a sound file?") from error
            # A truncated tail: keep what decoded cleanly, as players do.
    if not pieces and (start or end):
        raise AudioError(f"Nothing of {name} lies between {start:g} s and {f'{end:g} s' if end else 'its end'}; "
                         f"it is {position / rate:.2f} s long.")
    if not pieces:
        raise AudioError(f"{name} contains no samples.")
    samples = np.concatenate(pieces)
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{name} contains invalid (NaN or infinite) samples.")
    return Clip(np.ascontiguousarray(samples, dtype=np.float32), rate, source, channels)


def _checked_span(span) -> tuple[float, float | None]:
    start, end = span or (0.0, None)
    start = float(start or 0.0)
    end = float(end) if end else None
    if start < 0 or (end is not None and end <= start):
        raise AudioError("The end must come after the start (both in seconds, start 0 or more).")
    return start, end


def _declared_seconds(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1e6
    return None


def _mix_down(block: np.ndarray, channels: int, planar: bool) -> np.ndarray:
    """One frame's samples as mono float32, whatever FFmpeg's sample format."""
    data = _to_float(block)
    if planar:
        return data.mean(axis=0) if channels > 1 else data.reshape(-1)
    return data.reshape(-1, max(1, channels)).mean(axis=1)


def check_format(rate: int, channels: int, name: str = "The audio") -> None:
    """Refuse sample rates and channel counts no microphone makes, before any decoding."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(f"{name} has a sample rate of {rate} Hz; the studio takes {MIN_RATE // 1000}-"
                         f"{MAX_RATE // 1000} kHz.")
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(f"{name} has {channels} channels; the studio takes 1 to {MAX_CHANNELS}.")


def too_long(name: str, seconds: float, limit: float) -> AudioError:
    return AudioError(f"{name} is {seconds:.0f} s long; the limit is {limit:.0f} s. "
                      "Trim it to the part you want to clone.")


def from_array(samples, rate: int, source: str = "", max_seconds: float | None = None) -> Clip:
    """Make a clip from raw samples: any integer or float dtype, (n,) or (n, channels), within the limits."""
    name = source or "The audio"
    data = np.asarray(samples)
    if data.size == 0:
        raise AudioError(f"{name} contains no samples.")
    if data.ndim not in (1, 2):
        raise AudioError(f"{name} has an unexpected shape {data.shape}.")
    rows, columns = (data.shape[0], 1) if data.ndim == 1 else data.shape
    # Gradio hands (n, channels); soundfile too. A (channels, n) array has few rows.
    transposed = data.ndim == 2 and rows < columns and rows <= MAX_CHANNELS
    channels = 1 if data.ndim == 1 else (rows if transposed else columns)
    check_format(int(rate or 0), channels, name)
    limit = HARD_CAP_SECONDS if max_seconds is None else max_seconds
    length = columns if transposed else rows
    if length / rate > limit:
        raise too_long(name, length / rate, limit)
    data = _to_float(data)
    if data.ndim == 2:
        data = data.mean(axis=0 if transposed else 1)
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{name} contains invalid (NaN or infinite) samples.")
    return Clip(np.ascontiguousarray(data, dtype=np.float32), int(rate), source, channels)


def resample(clip: Clip, rate: int = SAMPLE_RATE) -> Clip:
    if clip.rate == rate:
        return clip
    import soxr

    samples = soxr.resample(clip.samples, clip.rate, rate, quality="HQ").astype(np.float32)
    return Clip(samples, rate, clip.source, clip.channels)


def is_silent(clip: Clip) -> bool:
    return float(np.max(np.abs(clip.samples))) < SILENCE_PEAK


def require_speech_level(clip: Clip, min_seconds: float = 1.0) -> None:
    """Refuse clips that cannot possibly hold a voice to clone."""
    name = clip.source or "The reference audio"
    if clip.duration < min_seconds:
        raise AudioError(f"{name} is only {clip.duration:.2f} s long; use at least 3 s of clear speech.")
    if is_silent(clip):
        raise AudioError(f"{name} is silent. Record or upload a clip in which the voice can be heard.")


def to_wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(samples, dtype=np.float32), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def write_wav(samples: np.ndarray, rate: int, path: str | os.PathLike) -> Path:
    """Write 16-bit PCM WAV atomically."""
    return write_atomic(path, to_wav_bytes(samples, rate))


def _to_float(data: np.ndarray) -> np.ndarray:
    if np.issubdtype(data.dtype, np.floating):
        return data.astype(np.float32, copy=False)
    if data.dtype == np.uint8:
        return (data.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(data.dtype, np.integer):
        return data.astype(np.float32) / float(np.iinfo(data.dtype).max + 1)
    raise AudioError(f"Unsupported sample format {data.dtype}.")


# -- trimming, cleaning and quality ---------------------------------------------------------------

def trim(clip: Clip, start: float | None = None, end: float | None = None) -> Clip:
    """Keep [start, end) seconds; None means the clip's own start or end."""
    start = 0.0 if start is None else max(0.0, float(start))
    end = clip.duration if end is None or end <= 0 else min(float(end), clip.duration)
    if end - start < 0.1:
        raise AudioError(f"The trim keeps {max(0.0, end - start):.2f} s; choose an end at least 0.1 s after "
                         f"the start (the clip is {clip.duration:.2f} s long).")
    samples = clip.samples[int(round(start * clip.rate)):int(round(end * clip.rate))]
    return Clip(np.ascontiguousarray(samples), clip.rate, clip.source, clip.channels)


@dataclass(frozen=True)
class CleanOptions:
    """Each cleaning step can be switched off; the defaults suit most phone and laptop recordings."""

    mono: bool = True
    resample: bool = True  # to 24 kHz, the model's rate
    remove_dc: bool = True  # 20 Hz high-pass: DC offset and rumble
    trim_silence: bool = True  # leading and trailing non-speech, found by voice activity
    normalize: bool = True
    target_lufs: float = -20.0
    tail_ms: int = 150  # short silence after the last word
    denoise: bool = False  # spectral gating with a profile from the clip's non-speech parts
    hum: str = "off"  # "off", "auto", "50" or "60" Hz notch with harmonics


@dataclass(frozen=True)
class Issue:
    level: str  # "error" blocks using the clip; "warning" and "info" advise
    message: str


@dataclass
class QualityReport:
    duration: float
    speech_ratio: float
    snr_db: float
    clipped_ratio: float
    peak_dbfs: float
    loudness_lufs: float | None
    sample_rate: int
    channels: int
    issues: list[Issue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(issue.level == "error" for issue in self.issues)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["ok"] = self.ok
        return data

    def advice(self) -> str:
        lines = [f"{self.duration:.1f} s, speech {self.speech_ratio:.0%}, SNR about {self.snr_db:.0f} dB, "
                 f"peak {self.peak_dbfs:.1f} dBFS"
                 + (f", loudness {self.loudness_lufs:.1f} LUFS" if self.loudness_lufs is not None else "")
                 + f", {self.sample_rate} Hz, {self.channels} channel{'s' if self.channels != 1 else ''}."]
        icons = {"error": "Error", "warning": "Warning", "info": "Note"}
        lines += [f"- **{icons[i.level]}:** {i.message}" for i in self.issues]
        if not self.issues:
            lines.append("- Good reference: clear speech of a useful length.")
        return "\n".join(lines)


@dataclass
class CleanReport:
    steps: list[str]
    before: QualityReport
    after: QualityReport

    def to_dict(self) -> dict:
        return {"steps": self.steps, "before": self.before.to_dict(), "after": self.after.to_dict()}


def assess(clip: Clip, segments=None) -> QualityReport:
    """Measure a reference clip and advise in plain words (errors block, warnings don't)."""
    from .vad import speech_segments

    x = clip.samples
    segments = speech_segments(x, clip.rate) if segments is None else segments
    speech = sum(s.duration for s in segments)
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    clipped = float(np.mean(np.abs(x) >= 0.999)) if len(x) else 0.0
    report = QualityReport(
        duration=clip.duration,
        speech_ratio=min(1.0, speech / clip.duration) if clip.duration else 0.0,
        snr_db=estimate_snr(x, clip.rate, segments),
        clipped_ratio=clipped,
        peak_dbfs=20 * np.log10(max(peak, 1e-9)),
        loudness_lufs=_loudness(x, clip.rate),
        sample_rate=clip.rate,
        channels=clip.channels,
    )
    report.issues = _advice(report, speech, clip, segments)
    return report


def _advice(r: QualityReport, speech: float, clip: Clip, segments) -> list[Issue]:
    issues = []
    if r.peak_dbfs < -80 or speech < 0.3:
        issues.append(Issue("error", "No speech was found. Upload a clip in which the voice can be heard."))
        return issues
    if speech < 2.0:
        issues.append(Issue("error", f"Only {speech:.1f} s of speech; cloning needs at least 3 s (ideally 5-10 s)."))
    elif speech < 3.0:
        issues.append(Issue("warning", f"Only {speech:.1f} s of speech; 5-10 s gives a more faithful clone."))
    if r.duration > 15.0:
        issues.append(Issue("warning", f"{r.duration:.0f} s is long for a reference; trim it to 3-15 s "
                                       "(Transcribe, then use the suggested span)."))
    if r.clipped_ratio > 0.01:
        issues.append(Issue("error", f"{r.clipped_ratio:.1%} of the samples are clipped; the distortion would "
                                     "be cloned. Record again with a lower input level."))
    elif r.clipped_ratio > 0.0005:
        issues.append(Issue("warning", "Some samples are clipped; record with a lower input level if you can."))
    if r.snr_db < 5:
        issues.append(Issue("error", f"Very noisy (SNR about {r.snr_db:.0f} dB): the noise would be cloned. "
                                     "Record in a quieter place."))
    elif r.snr_db < 20:
        issues.append(Issue("warning", f"Noisy (SNR about {r.snr_db:.0f} dB). Try Denoise, and listen to "
                                       "before and after."))
    if r.speech_ratio < 0.5 and r.duration >= 3:
        issues.append(Issue("warning", f"Speech fills only {r.speech_ratio:.0%} of the clip: music, long pauses "
                                       "or other sounds suspected. Trim to the speech."))
    if r.sample_rate < 16000:
        issues.append(Issue("warning", f"Low sample rate ({r.sample_rate} Hz): the clone will sound muffled, "
                                       "like a phone line. Use a 24 kHz or better recording if you have one."))
    if r.channels > 2:
        issues.append(Issue("info", f"Mixed down from {r.channels} channels to mono."))
    if _several_speakers(clip, segments):
        issues.append(Issue("warning", "The pitch changes a lot between parts: several speakers suspected. "
                                       "Keep one speaker only."))
    return issues


def estimate_snr(x: np.ndarray, rate: int, segments) -> float:
    """Speech-to-noise ratio in dB: noise from non-speech frames, or the quietest frames in speech."""
    from .vad import speech_mask

    hop = max(1, rate // 50)  # 20 ms frames
    n = len(x) // hop
    if n < 5:
        return 0.0
    power = np.mean(x[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1)
    in_speech = speech_mask(segments, n * hop, rate)[: n * hop].reshape(n, hop).mean(axis=1) > 0.5
    if not in_speech.any():
        return 0.0
    speech_power = power[in_speech].mean()
    quiet = power[~in_speech]
    if len(quiet) * hop >= 0.3 * rate:
        noise_power = np.median(quiet)
    else:
        noise_power = np.percentile(power[in_speech], 10)
    noise_power = max(noise_power, 1e-12)
    signal_power = max(speech_power - noise_power, 1e-12)
    return float(np.clip(10 * np.log10(signal_power / noise_power), -10.0, 80.0))


def _loudness(x: np.ndarray, rate: int) -> float | None:
    import pyloudnorm

    if len(x) < int(0.5 * rate):
        return None
    value = pyloudnorm.Meter(rate).integrated_loudness(x.astype(np.float64))
    return float(value) if np.isfinite(value) else None


def _several_speakers(clip: Clip, segments) -> bool:
    """Median pitch of the longer speech segments differing by over 7 semitones suggests two voices."""
    import librosa

    medians = []
    for segment in segments:
        if segment.duration < 1.0:
            continue
        part = clip.samples[int(segment.start * clip.rate):int(segment.end * clip.rate)]
        part = resample(Clip(part, clip.rate), 16000).samples
        f0 = librosa.yin(part, fmin=60, fmax=500, sr=16000, frame_length=1024)
        voiced = f0[(f0 > 65) & (f0 < 480)]
        if len(voiced) > 20:
            medians.append(float(np.median(voiced)))
    if len(medians) < 2:
        return False
    return 12 * np.log2(max(medians) / min(medians)) > 7


def clean(clip: Clip, options: CleanOptions = CleanOptions()) -> tuple[Clip, CleanReport]:
    """Apply the switched-on steps in a fixed order and report what each did."""
    from .vad import speech_segments

    before = assess(clip)
    steps: list[str] = []
    x, rate = clip.samples.astype(np.float32), clip.rate
    if options.resample and rate != SAMPLE_RATE:
        x = resample(Clip(x, rate), SAMPLE_RATE).samples
        steps.append(f"Resampled {rate} Hz to {SAMPLE_RATE} Hz.")
        rate = SAMPLE_RATE
    if options.mono and clip.channels > 1:
        steps.append(f"Mixed {clip.channels} channels down to mono.")
    if options.remove_dc:
        x = _highpass(x, rate)
        steps.append("Removed DC offset and rumble below 20 Hz.")
    if options.hum != "off":
        x, note = _remove_hum(x, rate, options.hum)
        steps.append(note)
    if options.denoise:
        x, note = _denoise(x, rate)
        steps.append(note)
    segments = speech_segments(x, rate)
    if options.trim_silence and segments:
        start = max(0.0, segments[0].start - 0.08)
        end = min(len(x) / rate, segments[-1].end + 0.12)
        if start > 0.05 or end < len(x) / rate - 0.05:
            steps.append(f"Trimmed silence: kept {start:.2f}-{end:.2f} s of {len(x) / rate:.2f} s.")
        x = x[int(start * rate):int(end * rate)]
        segments = [type(s)(s.start - start, s.end - start) for s in segments]
    if options.normalize:
        x, note = _normalize(x, rate, options.target_lufs)
        steps.append(note)
    if options.tail_ms > 0 and options.trim_silence:
        x = np.concatenate([x, np.zeros(int(rate * options.tail_ms / 1000), np.float32)])
        steps.append(f"Added {options.tail_ms} ms of silence at the end.")
    cleaned = Clip(np.ascontiguousarray(x, dtype=np.float32), rate, clip.source, 1 if options.mono else clip.channels)
    return cleaned, CleanReport(steps, before, assess(cleaned))


def _highpass(x: np.ndarray, rate: int) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    if len(x) < 64:
        return x - x.mean()
    sos = butter(2, 20, btype="highpass", fs=rate, output="sos")
    return sosfiltfilt(sos, x).astype(np.float32)


def detect_hum(x: np.ndarray, rate: int) -> int | None:
    """50 or 60 when that mains frequency and its harmonics stand well above the spectrum around them."""
    from scipy.signal import welch

    freqs, psd = welch(x, fs=rate, nperseg=min(len(x), rate * 2))
    scores = {}
    for base in (50, 60):
        ratios = []
        for harmonic in range(1, 5):
            f = base * harmonic
            peak = psd[np.abs(freqs - f) <= 1.0].max(initial=0)
            around = psd[(np.abs(freqs - f) > 3) & (np.abs(freqs - f) < 12)]
            ratios.append(10 * np.log10(peak / max(np.median(around), 1e-20)) if len(around) else 0)
        scores[base] = max(ratios)
    best = max(scores, key=scores.get)
    return best if scores[best] > 12 else None


def _remove_hum(x: np.ndarray, rate: int, setting: str) -> tuple[np.ndarray, str]:
    """Subtract the mains hum as steady sinusoids at the base frequency and its harmonics.

    Notch filters at 50-400 Hz also carve into male voices (measured: up to 10 dB of
    speech lost with 8 notches); hum is stationary and speech is not, so a least-squares
    fit of each harmonic over the clip captures the hum and leaves the voice.
    """
    base = detect_hum(x, rate) if setting == "auto" else int(setting)
    if base is None:
        return x, "No mains hum found; hum filter skipped."
    y = x.astype(np.float64)
    t = np.arange(len(y)) / rate
    for harmonic in range(1, 9):
        frequency = _refine_frequency(y, t, base * harmonic)
        phasor = np.exp(-2j * np.pi * frequency * t)
        coefficient = 2 * np.dot(y, phasor) / len(y)
        y -= np.real(coefficient * np.conj(phasor))
    return y.astype(np.float32), f"Removed {base} Hz mains hum and its harmonics."


def _refine_frequency(y: np.ndarray, t: np.ndarray, nominal: float) -> float:
    """Mains frequency drifts by a fraction of a hertz: pick the strongest line near nominal."""
    candidates = nominal + np.linspace(-0.3, 0.3, 31) * nominal / 50
    step = max(1, len(y) // 48000)  # a decimated signal is plenty to locate a steady line
    ys, ts = y[::step], t[::step]
    power = [abs(np.dot(ys, np.exp(-2j * np.pi * f * ts))) for f in candidates]
    return float(candidates[int(np.argmax(power))])


def _noise_profile(x: np.ndarray, rate: int) -> np.ndarray | None:
    """Noise-only audio from the clip's non-speech parts (None when they are too short to trust).

    Quiet frames inside speech are not used: they hold speech energy, and a profile
    made from them makes the denoiser eat the voice (measured: SNR fell on dense clips).
    """
    from .vad import speech_mask, speech_segments

    mask = speech_mask(speech_segments(x, rate), len(x), rate)
    noise = x[~mask]
    return noise if len(noise) >= 0.3 * rate else None


def _denoise(x: np.ndarray, rate: int) -> tuple[np.ndarray, str]:
    """Spectral gating from a measured noise profile, kept only if it really lowers the noise."""
    import noisereduce
    from .vad import speech_segments

    segments = speech_segments(x, rate)
    snr_before = estimate_snr(x, rate, segments)
    # Measured on real speech: above about 20 dB SNR, spectral gating removes more speech than noise.
    if snr_before >= 20:
        return x, f"Denoise skipped: the clip is already clean enough (SNR about {snr_before:.0f} dB)."
    profile = _noise_profile(x, rate)
    if profile is None:
        return x, ("Denoise skipped: less than 0.3 s without speech to learn the noise from. Record a second "
                   "of room tone before speaking.")
    # Half-strength gating: on the fixtures it improved true SNR in every case (10-18 dB input).
    y = noisereduce.reduce_noise(y=x, sr=rate, y_noise=profile, stationary=True, prop_decrease=0.5,
                                 n_fft=512, n_std_thresh_stationary=1.0).astype(np.float32)
    snr_after = estimate_snr(y, rate, speech_segments(y, rate))
    if snr_after < snr_before + 1.0:
        return x, f"Denoise skipped: it would not have helped (SNR {snr_before:.0f} dB -> {snr_after:.0f} dB)."
    return y, f"Denoised: SNR about {snr_before:.0f} dB -> {snr_after:.0f} dB."


def _normalize(x: np.ndarray, rate: int, target_lufs: float) -> tuple[np.ndarray, str]:
    loudness = _loudness(x, rate)
    if loudness is None:
        return x, "Loudness not normalised: too short or silent."
    gain = 10 ** ((target_lufs - loudness) / 20)
    peak = float(np.max(np.abs(x))) * gain
    ceiling = 10 ** (-1 / 20)
    if peak > ceiling:
        gain *= ceiling / peak
    y = (x * gain).astype(np.float32)
    return y, f"Loudness {loudness:.1f} LUFS -> {_loudness(y, rate) or target_lufs:.1f} LUFS (peak at most -1 dBFS)."
