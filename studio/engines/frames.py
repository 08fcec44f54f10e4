"""Shared machinery of the local codec language models (Qwen3-TTS, Chatterbox-Turbo, Marvis).

Such an engine makes one step of codes at a time for a batch of takes and turns
them into audio with an incremental decoder. `FrameEngine.speak` runs that loop
for one sentence: it holds the generation lock (granted in arrival order), asks
the engine for each step in the consumer's own thread, and decodes each take's
pending steps by a chunk plan (one step first, for a fast start). Nothing runs
beside the consumer, so a consumer that stops asking has stopped generation.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ..errors import InvalidInput
from .base import Engine, Piece, SpeakJob, VoicePrompt

SILENCE = np.zeros(0, np.float32)


class FairLock:
    """A lock granted in arrival order: the UI, scripts and apps share the engine without starving each other.

    CPython's own locks make no ordering promise, so a busy door could win the engine
    again and again; here a releasing owner hands the lock straight to the oldest waiter.
    """

    def __init__(self):
        self._guard = threading.Lock()
        self._waiters: deque[threading.Event] = deque()
        self._owned = False

    def acquire(self) -> bool:
        with self._guard:
            if not self._owned and not self._waiters:
                self._owned = True
                return True
            turn = threading.Event()
            self._waiters.append(turn)
        turn.wait()  # ownership is handed over by release()
        return True

    def release(self) -> None:
        with self._guard:
            if self._waiters:
                self._waiters.popleft().set()
            else:
                self._owned = False

    def locked(self) -> bool:
        return self._owned

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


@dataclass(frozen=True)
class ChunkPlan:
    """Steps per decoded chunk: a small first chunk for a fast start, then growing to `largest`."""

    first: int = 1
    growth: float = 2.0
    largest: int = 12

    def sizes(self) -> Iterator[int]:
        size = max(1, self.first)
        while True:
            yield size
            size = min(max(self.largest, 1), max(size + 1, int(size * self.growth)))


class _Take:
    """One take's pending steps and its incremental decoder."""

    def __init__(self, decoder, plan: ChunkPlan):
        self.decoder = decoder
        self.sizes = plan.sizes()
        self.want = next(self.sizes)
        self.pending: list = []
        self.steps = 0
        self.open = True

    def add(self, codes) -> np.ndarray | None:
        """Audio when a chunk is complete, else None."""
        self.pending.append(codes)
        self.steps += 1
        if len(self.pending) < self.want:
            return None
        self.want = next(self.sizes)
        return self.flush()

    def flush(self) -> np.ndarray:
        import torch

        if not self.pending:
            return SILENCE
        with torch.inference_mode():
            samples = self.decoder.push(torch.stack(self.pending))
        self.pending.clear()
        return samples

    def close(self) -> np.ndarray:
        """The rest: pending steps and whatever the decoder held back."""
        import torch

        self.open = False
        samples = self.flush()
        with torch.inference_mode():
            tail = self.decoder.finish()
        return np.concatenate([samples, tail]) if len(tail) else samples


class FrameEngine(Engine):
    """A local engine that generates codes step by step and decodes them incrementally.

    Subclasses implement `generate_takes(job, limit, generators)`, an iterator of
    (codes [takes, ...], alive [takes]) per step, and `decoder(prompt)`, an object with
    `push(codes) -> samples` and `finish() -> samples`.
    """

    plan = ChunkPlan()

    def __init__(self, settings):
        super().__init__(settings)
        self.generation_lock = FairLock()

    @property
    def busy(self) -> bool:
        return self.generation_lock.locked()

    def steps_for(self, seconds: float) -> int:
        """The most steps that fit in `seconds` of audio (at least one)."""
        return max(1, math.floor(seconds / self.capabilities.step_seconds + 1e-6))

    def generators(self, seeds: list[int]) -> list:
        """One random generator per take; a take draws only from its own, so its seed alone decides it."""
        import torch

        return [torch.Generator().manual_seed(seed) for seed in seeds]

    def generate_takes(self, job: SpeakJob, limit: int, generators: list) -> Iterator:
        """Codes of `job.text` for len(generators) takes at once, as they are made: (codes, alive) per step.

        A take that has ended stays ended. The caller holds generation_lock; closing the
        iterator (or simply not asking for the next step) ends generation between steps.
        """
        raise NotImplementedError

    def decoder(self, prompt: VoicePrompt):
        raise NotImplementedError

    def speak(self, job: SpeakJob) -> Iterator[Piece]:
        if job.prompt.fingerprint != self.fingerprint:
            raise InvalidInput("This voice prompt was made by a different model; rebuild it from its reference.")
        limit = self.steps_for(job.max_seconds)
        with self.generation_lock:
            takes = [_Take(self.decoder(job.prompt), self.plan) for _ in job.seeds]
            steps = self.generate_takes(job, limit, self.generators(list(job.seeds)))
            try:
                for codes, alive in steps:
                    heard = False
                    for number, take in enumerate(takes):
                        if not take.open:
                            continue
                        if not bool(alive[number]):
                            yield Piece(number, take.close())
                            heard = True
                            continue
                        samples = take.add(codes[number])
                        if samples is not None:
                            yield Piece(number, samples)
                            heard = True
                    if not heard:
                        yield Piece(0, SILENCE)  # a step was made: the consumer may stop here
            finally:
                steps.close()
            for number, take in enumerate(takes):
                if take.open:
                    yield Piece(number, take.close(), cut=take.steps >= limit)
