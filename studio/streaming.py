"""True streaming synthesis: audio chunks while the engine is still generating.

The engine makes frames through `Engine.generate_frames`, an iterator: each frame
is made when the stream asks for it, in the consumer's thread, and each completed
chunk is decoded there with the engine's incremental decoder. No worker runs
beside the consumer, so a consumer that stops (Stop, a disconnect) has stopped
generation too, within one frame. Long text is generated sentence by sentence with the same prompt, and
sentences meet with short fades. One request has a budget (frames of audio and
wall time), so no request can hold the engine for hours.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from .engine import Engine, SynthesisRequest, frame_budget
from .errors import Cancelled
from .text import split_sentences

FADE_SAMPLES = 240  # 10 ms fades where two sentences meet


@dataclass(frozen=True)
class ChunkPlan:
    """Frames per chunk: a small first chunk for fast start, then growing to `largest`."""

    first: int = 1
    growth: float = 2.0
    largest: int = 12

    def sizes(self) -> Iterator[int]:
        size = max(1, self.first)
        while True:
            yield size
            size = min(max(self.largest, 1), max(size + 1, int(size * self.growth)))


@dataclass
class Chunk:
    samples: np.ndarray  # float32 mono at 24 kHz
    index: int
    sentence: int
    frames: int
    elapsed: float  # seconds since the request started


@dataclass
class Take:
    samples: np.ndarray
    rate: int
    seed: int
    frames: int
    time_to_first_audio: float
    total_time: float
    sentences: int
    flags: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate

    @property
    def real_time_factor(self) -> float:
        return self.total_time / max(self.duration, 1e-9)

    def summary(self) -> str:
        text = (f"{self.duration:.2f} s of audio; first audio after {self.time_to_first_audio:.2f} s; "
                f"total {self.total_time:.2f} s (real-time factor {self.real_time_factor:.2f}); seed {self.seed}.")
        return " ".join([text] + self.flags)


class Stream:
    """Iterate to get `Chunk`s as they are generated; `take` holds the whole take afterwards.

    Closing the iterator (a Stop button, a disconnected client) or calling
    `cancel()` ends generation within one frame and frees the engine.
    """

    def __init__(self, engine: Engine, request: SynthesisRequest, plan: ChunkPlan | None = None,
                 heartbeat: bool = False):
        self.engine = engine
        # With heartbeat, iteration also yields None after every frame that completes no chunk, so a
        # consumer that is closed between items (Gradio on Stop or disconnect) stops within one frame.
        self.heartbeat = heartbeat
        self.request = engine.check_request(request)
        self.plan = plan or ChunkPlan()
        self.sentences = split_sentences(self.request.text, self.request.language)
        self.take: Take | None = None
        self._stop = threading.Event()
        settings = engine.settings
        self._frames_left = settings.max_request_frames
        self._deadline = 0.0
        self._wall_limit = settings.max_generation_seconds

    def cancel(self) -> None:
        self._stop.set()

    def __iter__(self) -> Iterator[Chunk | None]:
        started = time.perf_counter()
        pieces: list[np.ndarray] = []
        flags: list[str] = []
        first_audio = None
        frames = 0
        index = 0
        lock = self.engine.generation_lock
        lock.acquire()
        try:
            self._deadline = time.monotonic() + self._wall_limit
            seed = self.engine.choose_seed(self.request.sampling)
            generator = self.engine.generators([seed])[0]  # shared by the sentences, in order
            for number, sentence in enumerate(self.sentences):
                last = number == len(self.sentences) - 1
                if self._frames_left <= 0 or time.monotonic() >= self._deadline:
                    flags.append(self._budget_flag(number))
                    break
                for piece in self._sentence(sentence, generator, fade_in=number > 0, fade_out=not last):
                    if piece is None:
                        yield None
                        continue
                    samples, count, hit = piece
                    frames += count
                    if hit:
                        flags.append(f"Sentence {number + 1} hit the length limit and may be cut off.")
                    if not len(samples):  # frames a decoder holds for context, or an empty closing piece
                        if self.heartbeat:
                            yield None
                        continue
                    if first_audio is None:
                        first_audio = time.perf_counter() - started
                    pieces.append(samples)
                    yield Chunk(samples, index, number, count, time.perf_counter() - started)
                    index += 1
        finally:
            lock.release()  # nothing runs beside this thread: generation has stopped
        total = time.perf_counter() - started
        samples = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        self.take = Take(samples, self.engine.capabilities.sample_rate, seed, frames, first_audio or total, total,
                         len(self.sentences), flags)

    def _budget_flag(self, sentence: int) -> str:
        return (f"The request reached its budget ({self.engine.settings.max_request_seconds:.0f} s of audio or "
                f"{self._wall_limit:.0f} s of generation) at sentence {sentence + 1} of {len(self.sentences)}; "
                "the rest was not spoken. Split the text into several requests.")

    def _sentence(self, text: str, generator, fade_in: bool, fade_out: bool):
        """Yield (samples, frames, limit_hit) for one sentence, or None per frame as a heartbeat.

        The engine makes a frame each time this asks for one, in this thread, so nothing
        runs beside the consumer: when it stops asking (Stop, a disconnect), generation
        has stopped. Each completed chunk is decoded here, between frames.
        """
        import torch

        engine = self.engine
        limit = min(self.request.sampling.max_frames or frame_budget(text), self._frames_left)
        decoder = engine.decoder(self.request.prompt)
        sizes = self.plan.sizes()
        want = next(sizes)
        pending: list = []
        produced = 0
        started = False  # whether this sentence has sent audio (its first audio fades in)
        held = np.zeros(0, np.float32)  # the tail kept back for a fade-out

        def deliver(samples: np.ndarray, count: int):
            nonlocal started, held
            if fade_in and not started and len(samples):
                samples = _fade(samples, rising=True)
            started = started or bool(len(samples))
            if fade_out:
                samples = np.concatenate([held, samples])
                held, samples = samples[-FADE_SAMPLES:], samples[:-FADE_SAMPLES]
            return samples, count, False

        def chunk():
            nonlocal produced
            with torch.inference_mode():
                samples = decoder.push(torch.stack(pending))
            count = len(pending)
            pending.clear()
            produced += count
            return deliver(samples, count)

        frames = engine.generate_frames(self.request, text, limit, generator)
        try:
            for codes in frames:
                if self._stop.is_set():
                    raise Cancelled("Generation was stopped.")
                if time.monotonic() >= self._deadline:
                    break
                pending.append(codes)
                if len(pending) >= want:
                    yield chunk()
                    want = next(sizes)
                elif self.heartbeat:
                    yield None
            if self._stop.is_set():
                raise Cancelled("Generation was stopped.")
            if pending:
                yield chunk()
            with torch.inference_mode():
                tail = decoder.finish()  # audio a decoder held back for context, if any
            if len(tail):
                yield deliver(tail, 0)
        finally:
            frames.close()
        self._frames_left -= produced
        hit = produced >= limit
        if fade_out and len(held):
            yield _fade(held, rising=False), 0, hit
        elif hit:
            yield np.zeros(0, np.float32), 0, True


def _fade(samples: np.ndarray, rising: bool) -> np.ndarray:
    n = min(FADE_SAMPLES, len(samples))
    if n == 0:
        return samples
    ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
    samples = samples.copy()
    if rising:
        samples[:n] *= ramp
    else:
        samples[-n:] *= ramp[::-1]
    return samples


def stream(engine: Engine, request: SynthesisRequest, plan: ChunkPlan | None = None,
           heartbeat: bool = False) -> Stream:
    return Stream(engine, request, plan, heartbeat)
