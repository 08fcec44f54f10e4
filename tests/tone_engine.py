"""An engine that makes audio without frames or codes: a fourth engine, added without touching the core.

It speaks tones: each word of the text becomes a short seeded tone, around the pitch of
the reference clip. It exists to show (and test) that the protocol is audio-level: the
studio, the pipeline, the library and every door use it exactly as the model engines,
and its cloning mode ("timbre") is none of the model engines' modes.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Iterator

import numpy as np

from studio import audio
from studio.engines import Capabilities, Engine, Piece, SpeakJob, VoicePrompt
from studio.engines.runtime import Runtime
from studio.errors import InvalidInput

RATE = 16000
STEP = 0.1  # seconds of audio per piece


class ToneEngine(Engine):
    name = "tone"
    label = "Tone"
    capabilities = Capabilities(languages=("English",), modes=("timbre",), sample_rate=RATE, step_seconds=STEP,
                                takes_at_once=2, seeds=True)

    def __init__(self, settings):
        super().__init__(settings)
        self.speaking = threading.Event()  # set while a speak() iterator is running

    @property
    def model_name(self) -> str:
        return "tones"

    @property
    def busy(self) -> bool:
        return self.speaking.is_set()

    def _load(self):
        return object(), Runtime("cpu", "float32", "none"), hashlib.sha256(b"tone-engine-1").hexdigest()[:16]

    def _encode_prompt(self, clip: audio.Clip, ref_text: str, mode: str) -> VoicePrompt:
        import torch

        pitch = 110.0 + 10 * float(np.abs(clip.samples).mean() * 100 % 20)
        return VoicePrompt(mode, ref_text, self.fingerprint, {"pitch": torch.tensor([pitch])})

    def prompt_to_tensors(self, prompt: VoicePrompt) -> dict:
        return {"pitch": prompt.tensors["pitch"].clone()}

    def prompt_from_tensors(self, tensors: dict, mode: str, ref_text: str, fingerprint: str) -> VoicePrompt:
        import torch

        pitch = tensors.get("pitch")
        if not torch.is_tensor(pitch) or pitch.shape != (1,) or not 50 <= float(pitch) <= 1000:
            raise InvalidInput("The voice prompt is not a tone prompt.")
        return VoicePrompt(mode, ref_text, fingerprint, {"pitch": pitch.float()})

    def speak(self, job: SpeakJob) -> Iterator[Piece]:
        words = job.text.split()
        pieces = min(len(words) * 2, int(job.max_seconds / STEP + 1e-6))
        base = float(job.prompt.tensors["pitch"])
        randoms = [np.random.default_rng(seed) for seed in job.seeds]
        self.speaking.set()
        try:
            for step in range(max(1, pieces)):
                for take, rng in enumerate(randoms):
                    pitch = base * (1 + 0.2 * rng.random())
                    time = np.arange(int(RATE * STEP)) / RATE + step * STEP
                    yield Piece(take, (0.3 * np.sin(2 * np.pi * pitch * time)).astype(np.float32))
            for take in range(job.takes):
                yield Piece(take, np.zeros(0, np.float32), cut=pieces < len(words) * 2)
        finally:
            self.speaking.clear()
