"""Where the speech is: voice activity from faster-whisper's Silero VAD.

Silence trimming, speech ratio, SNR estimates and the denoiser's noise profile
all need to tell speech from everything else; a fixed dB threshold cannot do
that on noisy clips, a trained VAD can.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VAD_RATE = 16000


@dataclass(frozen=True)
class Segment:
    start: float  # seconds
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def speech_segments(samples: np.ndarray, rate: int, threshold: float = 0.5) -> list[Segment]:
    """Speech regions in seconds, merged across pauses shorter than 0.3 s."""
    import soxr
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if len(samples) < rate // 10:
        return []
    audio16k = samples if rate == VAD_RATE else soxr.resample(samples, rate, VAD_RATE)
    options = VadOptions(threshold=threshold, min_speech_duration_ms=120, min_silence_duration_ms=300,
                         speech_pad_ms=30)
    stamps = get_speech_timestamps(np.ascontiguousarray(audio16k, dtype=np.float32), options)
    return [Segment(s["start"] / VAD_RATE, s["end"] / VAD_RATE) for s in stamps]


def speech_mask(segments: list[Segment], length: int, rate: int) -> np.ndarray:
    """Boolean per sample: True inside speech."""
    mask = np.zeros(length, dtype=bool)
    for segment in segments:
        mask[int(segment.start * rate):int(np.ceil(segment.end * rate))] = True
    return mask
