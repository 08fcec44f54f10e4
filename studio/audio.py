"""Reading, converting and writing audio clips.

Everything downstream works on a `Clip`: float32 mono samples in [-1, 1] at a
known rate. Decoding goes through soundfile (wav, flac, ogg, mp3) and falls back
to ffmpeg for containers libsndfile cannot read (m4a, webm from browsers).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import AudioError

MODEL_RATE = 24000
SILENCE_PEAK = 1e-4


@dataclass(frozen=True)
class Clip:
    samples: np.ndarray  # float32, mono, shape (n,)
    rate: int
    source: str = ""

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate

    def checksum(self) -> str:
        digest = hashlib.sha256(np.ascontiguousarray(self.samples, dtype=np.float32).tobytes())
        digest.update(str(self.rate).encode())
        return digest.hexdigest()


def load(path: str | os.PathLike, max_bytes: float | None = None, max_seconds: float | None = None) -> Clip:
    """Decode an audio file into a mono float32 clip at its own rate."""
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
    _check_length_before_decoding(path, max_seconds)
    try:
        samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        samples, rate = _decode_with_ffmpeg(path)
    return from_array(samples, rate, source=name, max_seconds=max_seconds)


def load_bytes(data: bytes, source: str, max_seconds: float | None = None) -> Clip:
    """Decode in-memory WAV/FLAC/OGG bytes (files inside a voice archive, for instance)."""
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        raise AudioError(f"{source} could not be decoded as audio.") from error
    return from_array(samples, rate, source=source, max_seconds=max_seconds)


def from_array(samples, rate: int, source: str = "", max_seconds: float | None = None) -> Clip:
    """Make a clip from raw samples: any integer or float dtype, (n,) or (n, channels)."""
    data = np.asarray(samples)
    if data.size == 0:
        raise AudioError(f"{source or 'The audio'} contains no samples.")
    if not rate or rate < 1000:
        raise AudioError(f"{source or 'The audio'} has an unusable sample rate ({rate} Hz).")
    data = _to_float(data)
    if data.ndim == 2:
        # Gradio hands (n, channels); soundfile too. A (channels, n) array has few rows.
        if data.shape[0] < data.shape[1] and data.shape[0] <= 8:
            data = data.T
        data = data.mean(axis=1)
    elif data.ndim != 1:
        raise AudioError(f"{source or 'The audio'} has an unexpected shape {data.shape}.")
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{source or 'The audio'} contains invalid (NaN or infinite) samples.")
    clip = Clip(np.ascontiguousarray(data, dtype=np.float32), int(rate), source)
    if max_seconds is not None and clip.duration > max_seconds:
        raise AudioError(f"{source or 'The audio'} is {clip.duration:.0f} s long; the limit is "
                         f"{max_seconds:.0f} s. Trim it to the part you want to clone.")
    return clip


def resample(clip: Clip, rate: int = MODEL_RATE) -> Clip:
    if clip.rate == rate:
        return clip
    import soxr

    samples = soxr.resample(clip.samples, clip.rate, rate, quality="HQ").astype(np.float32)
    return Clip(samples, rate, clip.source)


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
    """Write 16-bit PCM WAV atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(to_wav_bytes(samples, rate))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _to_float(data: np.ndarray) -> np.ndarray:
    if np.issubdtype(data.dtype, np.floating):
        return data.astype(np.float32)
    if data.dtype == np.uint8:
        return (data.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(data.dtype, np.integer):
        return data.astype(np.float32) / float(np.iinfo(data.dtype).max + 1)
    raise AudioError(f"Unsupported sample format {data.dtype}.")


def _check_length_before_decoding(path: Path, max_seconds: float | None) -> None:
    if max_seconds is None:
        return
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        return
    if info.samplerate and info.frames / info.samplerate > max_seconds:
        raise AudioError(f"{path.name!r} is {info.frames / info.samplerate:.0f} s long; the limit is "
                         f"{max_seconds:.0f} s. Trim it to the part you want to clone.")


def _decode_with_ffmpeg(path: Path) -> tuple[np.ndarray, int]:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AudioError(f"{path.name!r} is not a WAV, FLAC, OGG or MP3 file the studio can read. "
                         "Install ffmpeg to open other formats (m4a, webm).")
    result = subprocess.run(
        [ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "1", "-ar", str(MODEL_RATE), "-"],
        capture_output=True,
        timeout=120,
    )
    if result.returncode != 0 or not result.stdout:
        raise AudioError(f"{path.name!r} could not be decoded as audio. Is it a sound file?")
    return np.frombuffer(result.stdout, dtype=np.float32).reshape(-1, 1), MODEL_RATE
