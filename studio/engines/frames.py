"""Shared machinery of the local codec language models (Qwen3-TTS, Chatterbox-Turbo, Marvis).

Such an engine makes one step of codes at a time for a batch of takes and turns
them into audio with an incremental decoder, each take's pending steps decoded by a
chunk plan (one step first, for a fast start). Two ways to run that loop:

- one request at a time (`FrameEngine.speak`): the sentence holds the generation lock
  (granted in arrival order) and each step is made in the consumer's own thread, so a
  consumer that stops asking has stopped generation;
- continuous batching (`Batcher`, for engines with `batching = True`): every request
  joins one running batch at the next step and leaves it when done, in one worker
  thread; closing a request's iterator takes it out within a step.
"""

from __future__ import annotations

import logging
import math
import queue
import sys
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ..errors import InvalidInput
from .base import Engine, Piece, SpeakJob, VoicePrompt

SILENCE = np.zeros(0, np.float32)
log = logging.getLogger(__name__)


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


# Python hands its lock between threads every 5 ms by default. The frame loop and the vocoder both alternate
# short Python stretches with long native calls that release it, so each wait for the lock cost up to 5 ms:
# with the vocoder on its own thread a 4-bit CPU stream (cpu_realtime.py, 12 s) took 119.6 ms a frame at 5 ms
# and 75.4 ms at 0.2 ms.
SWITCH_SECONDS = 5e-5


def decode_thread() -> ThreadPoolExecutor:
    """One worker for decoding beside the frame loop (and a short switch interval, without which it stalls)."""
    if sys.getswitchinterval() > SWITCH_SECONDS:
        sys.setswitchinterval(SWITCH_SECONDS)
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")


class Decoding:
    """Where chunks are decoded: in the consumer's thread, or on a thread of their own while the next steps
    are made (`ahead`). Audio comes out in the order the chunks went in, and each take's decoder sees its
    chunks in order (one worker), so the samples are the same either way."""

    def __init__(self, ahead: bool):
        self.worker = decode_thread() if ahead else None
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
    # With the vocoder on its own thread small chunks cost the frame loop nothing, and on a CPU that is barely
    # faster than playback they are what keeps a player fed: a chunk of n steps reaches the listener n - 1
    # steps after its first sample was made. The first chunk is as large as the rest, so a player that starts
    # with it holds what the next one needs (a smaller first one made the next ones due too early).
    ahead_largest = 2
    batching = False  # True: requests share one running batch (implement `new_batch` and `member`)
    decode_ahead = False  # decode audio on a thread of its own while the next steps are made (--decode-thread)

    def __init__(self, settings):
        super().__init__(settings)
        self.generation_lock = FairLock()
        self._batcher: Batcher | None = None
        self._batcher_lock = threading.Lock()
        self.decode_ahead = settings.decode_thread

    def chunk_plan(self) -> ChunkPlan:
        """Steps per decoded chunk: `plan`, or `ahead_largest` steps each with --decode-thread."""
        if not self.decode_ahead:
            return self.plan
        largest = min(self.plan.largest, self.ahead_largest)
        return ChunkPlan(largest, self.plan.growth, largest)

    @property
    def busy(self) -> bool:
        if self._batcher is not None and any(self._batcher.counts()):
            return True
        return self.generation_lock.locked()

    @property
    def batcher(self) -> "Batcher":
        """The running batch's worker, made on first use."""
        with self._batcher_lock:
            if self._batcher is None:
                self._batcher = Batcher(self, self.batch_rows())
            return self._batcher

    def batch_rows(self) -> int:
        """--max-batch, or by device: a GPU has room for many more rows than a CPU has time for."""
        if self.settings.max_batch:
            return self.settings.max_batch
        return 8 if self.runtime.device == "cpu" else 32

    def load_note(self) -> str:
        """How many requests the batch is generating and how many wait, for the status line."""
        if self._batcher is None:
            return ""
        speaking, waiting = self._batcher.counts()
        if not speaking and not waiting:
            return ""
        return f" Generating {speaking} request{'s' * (speaking != 1)} in one batch; {waiting} waiting."

    def new_batch(self):
        """An empty batch: `join(member)`, `step() -> [(member, codes | None, alive)]`, `leave(member)`."""
        raise NotImplementedError

    def member(self, job: SpeakJob, limit: int, generators: list, owner):
        """A request as a member of the batch (`member.done`, `member.owner` are read back)."""
        raise NotImplementedError

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
        if self.batching:
            return self.batcher.speak(job, limit)
        return self._speak_alone(job, limit)

    def _speak_alone(self, job: SpeakJob, limit: int) -> Iterator[Piece]:
        with self.generation_lock:
            takes = [_Take(self.decoder(job.prompt), self.chunk_plan()) for _ in job.seeds]
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


_END = object()
LEAVE_WAIT_SECONDS = 30.0  # a closed request waits this long at most for the batch to let it go


class _Request:
    """One sentence's takes in the batch: its member, its takes' decoders, and the pieces for its reader."""

    def __init__(self, job: SpeakJob, limit: int):
        self.job = job
        self.limit = limit
        self.pieces: queue.Queue = queue.Queue()
        self.left = threading.Event()  # the reader went away: leave at the next step
        self.gone = threading.Event()  # out of the batch and the line
        self.member = None
        self.takes: list[_Take] = []

    def put(self, piece: Piece) -> None:
        self.pieces.put(piece)


class Batcher:
    """One running batch for an engine, stepped by one worker thread.

    A request waits (in arrival order) until its takes fit in `rows`, joins at the next
    step (its prefill runs then, alone) and leaves when its takes are done, when its
    reader closes its iterator, or when it fails. Each step's codes are decoded per take
    into that request's own queue (on a decode thread with --decode-thread); the worker never waits for a reader, so a slow one
    delays nobody (the doors bound how long a reader may take nothing). The generation
    lock is held for each step, so prompt encoding and one-at-a-time users of the model
    get their turn between steps.
    """

    def __init__(self, engine: FrameEngine, rows: int):
        self.engine = engine
        self.rows = max(1, rows)
        self._changed = threading.Condition()
        self._waiting: deque[_Request] = deque()
        self._speaking: list[_Request] = []
        self._thread: threading.Thread | None = None
        self._decoding: ThreadPoolExecutor | None = None  # --decode-thread: made on first use

    def counts(self) -> tuple[int, int]:
        """(requests in the batch, requests waiting to join)."""
        with self._changed:
            return len(self._speaking), len(self._waiting)

    def speak(self, job: SpeakJob, limit: int) -> Iterator[Piece]:
        request = _Request(job, limit)
        with self._changed:
            self._waiting.append(request)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True, name=f"{self.engine.name}-batch")
                self._thread.start()
            self._changed.notify()
        try:
            while True:
                item = request.pieces.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            request.left.set()
            with self._changed:
                self._changed.notify()
            request.gone.wait(LEAVE_WAIT_SECONDS)  # closing returns once the batch has let go (a step at most)

    # -- the worker ----------------------------------------------------------------------------
    def _run(self) -> None:
        batch = None
        while True:
            joining, leaving = self._next_changes()
            with self.engine.generation_lock:
                try:
                    if batch is None:
                        batch = self.engine.new_batch()
                    for request in leaving:
                        if request.member is not None:
                            batch.leave(request.member)
                        request.gone.set()
                    for request in joining:
                        self._join(batch, request)
                    results = batch.step() if batch.members else []
                    for member, codes, alive in results:
                        self._deliver(member.owner, codes, alive)
                except Exception as error:  # noqa: BLE001 - every request in the batch hears it
                    log.exception("the batch failed")
                    self._fail_all(error)
                    batch = None

    def _next_changes(self) -> tuple[list[_Request], list[_Request]]:
        """Wait for work; then who joins now (in arrival order, while rows last) and who left."""
        with self._changed:
            while True:
                for request in [r for r in self._waiting if r.left.is_set()]:
                    self._waiting.remove(request)
                    request.gone.set()
                leaving = [r for r in self._speaking if r.left.is_set()]
                for request in leaving:
                    self._speaking.remove(request)
                if self._speaking or self._waiting or leaving:
                    break
                self._changed.wait()
            joining = []
            used = sum(len(r.job.seeds) for r in self._speaking)
            while self._waiting:
                takes = len(self._waiting[0].job.seeds)
                if used and used + takes > self.rows:
                    break  # the first in line waits for rows; nobody overtakes it
                request = self._waiting.popleft()
                joining.append(request)
                self._speaking.append(request)
                used += takes
            return joining, leaving

    def _join(self, batch, request: _Request) -> None:
        engine, job = self.engine, request.job
        try:
            request.takes = [_Take(engine.decoder(job.prompt), engine.chunk_plan()) for _ in job.seeds]
            request.member = engine.member(job, request.limit, engine.generators(list(job.seeds)), request)
            batch.join(request.member)
        except Exception as error:  # noqa: BLE001 - this request's own failure (its prompt, its text)
            self._finish(request, error)

    def _deliver(self, request: _Request, codes, alive) -> None:
        """Decode this step's codes for each take of `request` into its queue (here, or on the decode thread)."""
        chunks = []  # (take, how to decode, steps, cut)
        for number, take in enumerate(request.takes):
            if not take.open:
                continue
            if codes is None or not bool(alive[number]):
                chunks.append((number, take.finish, take.close(), False))
                continue
            chunk = take.add(codes[number])
            if chunk is not None:
                chunks.append((number, take.decode, chunk, False))
        done = request.member.done
        if done:
            for number, take in enumerate(request.takes):
                if take.open:
                    chunks.append((number, take.finish, take.close(), take.steps >= request.limit))

        def decode() -> None:
            try:
                for number, work, chunk, cut in chunks:
                    request.put(Piece(number, work(chunk), cut=cut))
            except Exception as error:  # noqa: BLE001 - this request's own failure
                self._finish(request, error)
                return
            if done:
                self._finish(request, _END)
            elif not chunks and request.pieces.empty():
                request.put(Piece(0, SILENCE))  # a step was made: the reader may stop here

        if not self.engine.decode_ahead:
            decode()
            return
        if self._decoding is None:  # --decode-thread: audio is decoded while the next step is made
            self._decoding = decode_thread()
        self._decoding.submit(decode)  # one thread: every request's chunks stay in order

    def _finish(self, request: _Request, last) -> None:
        request.put(last)
        with self._changed:
            if request in self._speaking:
                self._speaking.remove(request)
        request.gone.set()

    def _fail_all(self, error: Exception) -> None:
        with self._changed:
            failed = list(self._speaking)
        for request in failed:
            self._finish(request, error)
