"""Speech as bytes for apps: resampling and encoding a stream of chunks as it is generated.

A `Stream` yields float32 chunks at the engine's rate. Apps want them at their
own rate (soxr, with state kept across chunks so no seam is audible) and in
their own encoding: raw PCM (16-bit or float32, little-endian), a WAV whose
header says "length unknown" so it can be played while it grows, or MP3, Opus
and FLAC encoded by PyAV chunk by chunk (no system ffmpeg).
"""

from __future__ import annotations

import struct

import numpy as np

from .errors import InvalidInput

ENCODINGS = ("pcm16", "f32")
MIN_RATE, MAX_RATE = 8000, 48000
# response_format -> (media type, PyAV container, PyAV codec); pcm and wav are written by hand.
FORMATS = {
    "pcm": ("audio/pcm", None, None),
    "wav": ("audio/wav", None, None),
    "mp3": ("audio/mpeg", "mp3", "libmp3lame"),
    "opus": ("audio/ogg", "ogg", "libopus"),
    "flac": ("audio/flac", "flac", "flac"),
}


def check_rate(rate) -> int:
    if isinstance(rate, bool) or not isinstance(rate, int) or not MIN_RATE <= rate <= MAX_RATE:
        raise InvalidInput(f"sample_rate must be a whole number from {MIN_RATE} to {MAX_RATE}.")
    return rate


def check_encoding(encoding) -> str:
    if encoding not in ENCODINGS:
        raise InvalidInput(f"encoding must be one of: {', '.join(ENCODINGS)}.")
    return encoding


def pcm_bytes(samples: np.ndarray, encoding: str) -> bytes:
    samples = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    if encoding == "f32":
        return samples.astype("<f4").tobytes()
    return (samples * 32767.0).round().astype("<i2").tobytes()


class Resampler:
    """Streaming resampler: chunk by chunk gives the same samples as resampling the whole take."""

    def __init__(self, source_rate: int, target_rate: int):
        self.same = source_rate == target_rate
        if not self.same:
            import soxr

            self._stream = soxr.ResampleStream(source_rate, target_rate, 1, dtype="float32", quality="HQ")

    def push(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        if self.same:
            return samples
        return self._stream.resample_chunk(samples, last=last)


def wav_header(rate: int, bits: int = 16) -> bytes:
    """A PCM WAV header with unknown length (0xFFFFFFFF), the usual form for a WAV streamed as it grows."""
    unknown = 0xFFFFFFFF
    block = bits // 8
    return (b"RIFF" + struct.pack("<I", unknown) + b"WAVEfmt " +
            struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * block, block, bits) +
            b"data" + struct.pack("<I", unknown))


class _Sink:
    """A write-only, non-seekable file for PyAV: muxers then write their output as they go."""

    def __init__(self):
        self.parts: list[bytes] = []

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


class Encoder:
    """Encode float32 chunks into one of FORMATS, returning the bytes ready to send after each chunk."""

    def __init__(self, response_format: str, rate: int):
        if response_format not in FORMATS:
            raise InvalidInput(f"response_format must be one of: {', '.join(FORMATS)}.")
        self.format = response_format
        self.rate = rate
        self.media_type, container, codec = FORMATS[response_format]
        self._started = False
        self._output = None
        if container is not None:
            import av

            self._sink = _Sink()
            options = {"page_duration": "20000"} if container == "ogg" else {}  # flush Ogg pages every 20 ms
            self._output = av.open(self._sink, "w", format=container, options=options)
            self._stream = self._output.add_stream(codec, rate=rate)
            self._stream.layout = "mono"

    def push(self, samples: np.ndarray) -> bytes:
        if self._output is None:
            head = b""
            if self.format == "wav" and not self._started:
                head = wav_header(self.rate)
            self._started = True
            return head + pcm_bytes(samples, "pcm16")
        return self._encode(samples)

    def finish(self) -> bytes:
        if self._output is None:
            return b"" if self._started or self.format == "pcm" else wav_header(self.rate)
        for packet in self._stream.encode(None):
            self._output.mux(packet)
        self._output.close()
        return self._sink.take()

    def _encode(self, samples: np.ndarray) -> bytes:
        import av

        if not len(samples):
            return b""
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, dtype=np.float32)[None, :], format="flt",
                                           layout="mono")
        frame.sample_rate = self.rate
        for packet in self._stream.encode(frame):
            self._output.mux(packet)
        return self._sink.take()
