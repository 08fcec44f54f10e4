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

    def add(self, codes) -> list | None:
        """The steps of a complete chunk, to decode, else None."""
        self.pending.append(codes)
        self.steps += 1
        if len(self.pending) < self.want:
            return None
        self.want = next(self.sizes)
        return self.chunk()

    def chunk(self) -> list:
        chunk, self.pending = self.pending, []
        return chunk

    def decode(self, chunk: list) -> np.ndarray:
        import torch

        if not chunk:
            return SILENCE
        with torch.inference_mode():
            return self.decoder.push(torch.stack(chunk))

    def close(self) -> list:
        """The last steps (decode them with `finish`)."""
        self.open = False
        return self.chunk()

    def finish(self, chunk: list) -> np.ndarray:
        """The last chunk's audio and whatever the decoder held back."""
        import torch

        samples = self.decode(chunk)
        with torch.inference_mode():
            tail = self.decoder.finish()
        return np.concatenate([samples, tail]) if len(tail) else samples


class Decoding:
    """Where chunks are decoded: in the consumer's thread, or on a thread of their own while the next steps
    are made (`ahead`). Audio comes out in the order the chunks went in, and each take's decoder sees its
    chunks in order (one worker), so the samples are the same either way."""

    def __init__(self, ahead: bool):
        from concurrent.futures import ThreadPoolExecutor

        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode") if ahead else None
        self.queue: deque = deque()  # (take, future or samples, cut)

    def put(self, number: int, work, chunk: list, cut: bool = False) -> None:
        if self.worker is None:
            self.queue.append((number, work(chunk), cut))
        else:
            self.queue.append((number, self.worker.submit(work, chunk), cut))

    def ready(self, wait: bool = False) -> Iterator[Piece]:
        """Decoded chunks in order: those done (all of them when `wait`)."""
        while self.queue:
            number, result, cut = self.queue[0]
            if not isinstance(result, np.ndarray):
                if not (wait or result.done()):
                    return
                result = result.result()
            self.queue.popleft()
            yield Piece(number, result, cut=cut)

    def close(self) -> None:
        if self.worker is not None:
            self.worker.shutdown(wait=True, cancel_futures=True)


class FrameEngine(Engine):
    """A local engine that generates codes step by step and decodes them incrementally.

    Subclasses implement `generate_takes(job, limit, generators)`, an iterator of
    (codes [takes, ...], alive [takes]) per step, and `decoder(prompt)`, an object with
    `push(codes) -> samples` and `finish() -> samples`.
    """

    plan = ChunkPlan()
    decode_ahead = False  # decode audio on a thread of its own while the next steps are made (--decode-thread)

    def __init__(self, settings):
        super().__init__(settings)
        self.generation_lock = FairLock()
        self.decode_ahead = settings.decode_thread

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
            decoding = Decoding(self.decode_ahead)
            steps = self.generate_takes(job, limit, self.generators(list(job.seeds)))
            try:
                for codes, alive in steps:
                    for number, take in enumerate(takes):
                        if not take.open:
                            continue
                        if not bool(alive[number]):
                            decoding.put(number, take.finish, take.close())
                            continue
                        chunk = take.add(codes[number])
                        if chunk is not None:
                            decoding.put(number, take.decode, chunk)
                    heard = False
                    for piece in decoding.ready():
                        heard = True
                        yield piece
                    if not heard:
                        yield Piece(0, SILENCE)  # a step was made: the consumer may stop here
                for number, take in enumerate(takes):
                    if take.open:
                        decoding.put(number, take.finish, take.close(), cut=take.steps >= limit)
                yield from decoding.ready(wait=True)
            finally:
                steps.close()
                decoding.close()
