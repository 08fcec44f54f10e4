"""The speech pipeline: every way the studio speaks is this pipeline, streamed or collected.

A checked request is split into sentences; each sentence is one `Engine.speak` job
for all takes at once (in rounds of the engine's `takes_at_once`), and sentences meet
with short fades. Budgets are seconds of audio, whatever the engine's step: a
sentence gets what its length suggests (or the request's `max_seconds`), a request
gets `--max-request-seconds` of audio and `--max-generation-seconds` of wall time.
One-shot synthesis, several takes, Compare, retries and every route collect or
forward this same iterator, so they give the same audio for the same seed.

Pieces are asked for in the consumer's thread, so a consumer that stops (Stop, a
disconnect) has stopped generation within one engine step. `Pump` runs a stream in
one worker thread for doors that serve from an event loop or a thread pool.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from .engines import Engine, Sampling, SpeakJob, VoicePrompt, sentence_budget
from .errors import Cancelled
from .text import split_sentences

log = logging.getLogger(__name__)

FADE_SAMPLES = 240  # 10 ms fades where two sentences meet
SENTENCE_SEED_STEP = 0x9E3779B1  # sentence n of a take draws from seed + n * step, so each sentence stands alone


@dataclass(frozen=True)
class Speech:
    """A request checked by the core: the engine's language, a built prompt, validated text and sampling."""

    text: str
    language: str
    prompt: VoicePrompt
    sampling: Sampling = field(default_factory=Sampling)


@dataclass(frozen=True)
class Budget:
    """What one request may spend: seconds of audio (all sentences) and seconds of wall time."""

    audio_seconds: float
    wall_seconds: float


@dataclass
class Chunk:
    samples: np.ndarray  # float32 mono at the engine's sample rate
    index: int  # per take
    sentence: int
    elapsed: float  # seconds since the request started
    take: int = 0


@dataclass
class Take:
    samples: np.ndarray
    rate: int
    seed: int
    time_to_first_audio: float
    total_time: float
    sentences: int
    flags: list[str] = field(default_factory=list)
    stopped: bool = False  # ended by Stop or a disconnect

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate

    @property
    def real_time_factor(self) -> float:
        return self.total_time / max(self.duration, 1e-9)

    def summary(self) -> str:
        if self.stopped:
            return f"Stopped after {self.total_time:.1f} s ({self.duration:.2f} s of audio); seed {self.seed}."
        text = (f"{self.duration:.2f} s of audio; first audio after {self.time_to_first_audio:.2f} s; "
                f"total {self.total_time:.2f} s (real-time factor {self.real_time_factor:.2f}); seed {self.seed}.")
        return " ".join([text] + self.flags)


def sentence_seed(seed: int, sentence: int) -> int:
    return (seed + sentence * SENTENCE_SEED_STEP) % 2**32


class _Voice:
    """One take's audio as it is assembled: fades where sentences meet, its budget and flags."""

    def __init__(self, number: int, seed: int):
        self.number = number
        self.seed = seed
        self.pieces: list[np.ndarray] = []
        self.held = np.zeros(0, np.float32)  # the tail kept back for a fade-out
        self.seconds = 0.0
        self.first_audio: float | None = None
        self.flags: list[str] = []
        self.index = 0
        self.started = False  # whether the current sentence has sent audio

    def shape(self, samples: np.ndarray, fade_in: bool, fade_out: bool) -> np.ndarray:
        if fade_in and not self.started and len(samples):
            samples = _fade(samples, rising=True)
        self.started = self.started or bool(len(samples))
        if fade_out:
            samples = np.concatenate([self.held, samples])
            self.held, samples = samples[-FADE_SAMPLES:], samples[:-FADE_SAMPLES]
        return samples

    def end_sentence(self) -> np.ndarray:
        tail, self.held, self.started = _fade(self.held, rising=False), np.zeros(0, np.float32), False
        return tail


class Stream:
    """Iterate to get `Chunk`s as they are made (None as a heartbeat); `takes` holds every take afterwards.

    Closing the iterator or calling `cancel()` ends generation within one engine step.
    """

    def __init__(self, engine: Engine, speech: Speech, budget: Budget, takes: int = 1, heartbeat: bool = False):
        self.engine = engine
        self.speech = speech
        self.budget = budget
        self.count = takes
        # With heartbeat, iteration also yields None after each engine step that completes no chunk, so a
        # consumer that is closed between items (Gradio on Stop or disconnect) stops within one step.
        self.heartbeat = heartbeat
        self.sentences = split_sentences(speech.text, speech.language)
        self.takes: list[Take] = []
        self._stop = threading.Event()

    @property
    def take(self) -> Take | None:
        return self.takes[0] if self.takes else None

    @property
    def rate(self) -> int:
        return self.engine.capabilities.sample_rate

    def cancel(self) -> None:
        self._stop.set()

    def __iter__(self) -> Iterator[Chunk | None]:
        started = time.perf_counter()
        deadline = time.monotonic() + self.budget.wall_seconds
        first = self.speech.sampling.seed
        first = first if first is not None else random.randrange(2**32)  # reported back with the take
        voices = [_Voice(k, (first + k) % 2**32) for k in range(self.count)]
        stopped = False
        try:
            for number, sentence in enumerate(self.sentences):
                left = self.budget.audio_seconds - max(v.seconds for v in voices)
                if left <= 1e-6 or time.monotonic() >= deadline:
                    for voice in voices:
                        voice.flags.append(self._budget_flag(number))
                    break
                seconds = min(self.speech.sampling.max_seconds or sentence_budget(sentence), left)
                last = number == len(self.sentences) - 1
                for batch in self._rounds():
                    job = SpeakJob(sentence, self.speech.language, self.speech.prompt, self.speech.sampling,
                                   tuple(sentence_seed(voices[k].seed, number) for k in batch), seconds)
                    yield from self._speak(job, [voices[k] for k in batch], number, last, started, deadline)
        except Cancelled:
            stopped = True
            raise
        except GeneratorExit:
            stopped = True
            raise
        finally:
            total = time.perf_counter() - started
            self.takes = [self._take(voice, total, stopped) for voice in voices]

    def _rounds(self) -> list[list[int]]:
        size = max(1, self.engine.capabilities.takes_at_once)
        return [list(range(start, min(start + size, self.count))) for start in range(0, self.count, size)]

    def _speak(self, job: SpeakJob, voices: list[_Voice], sentence: int, last: bool, started: float,
               deadline: float) -> Iterator[Chunk | None]:
        pieces = self.engine.speak(job)
        try:
            for piece in pieces:
                if self._stop.is_set():
                    raise Cancelled("Generation was stopped.")
                voice = voices[piece.take]
                if piece.cut:
                    voice.flags.append(f"Sentence {sentence + 1} hit the length limit and may be cut off.")
                samples = voice.shape(piece.samples, fade_in=sentence > 0, fade_out=not last)
                if len(samples):
                    yield self._chunk(voice, samples, sentence, started)
                elif self.heartbeat:
                    yield None
                if time.monotonic() >= deadline:
                    for each in voices:
                        each.flags.append(self._wall_flag(sentence))
                    break
        finally:
            pieces.close()
        if self._stop.is_set():
            raise Cancelled("Generation was stopped.")
        for voice in voices:
            tail = voice.end_sentence()
            if len(tail):
                yield self._chunk(voice, tail, sentence, started)

    def _chunk(self, voice: _Voice, samples: np.ndarray, sentence: int, started: float) -> Chunk:
        elapsed = time.perf_counter() - started
        if voice.first_audio is None:
            voice.first_audio = elapsed
        voice.pieces.append(samples)
        voice.seconds += len(samples) / self.rate
        chunk = Chunk(samples, voice.index, sentence, elapsed, voice.number)
        voice.index += 1
        return chunk

    def _take(self, voice: _Voice, total: float, stopped: bool) -> Take:
        samples = np.concatenate(voice.pieces) if voice.pieces else np.zeros(0, np.float32)
        flags = list(dict.fromkeys(voice.flags))  # each flag once
        return Take(samples, self.rate, voice.seed, voice.first_audio or total, total, len(self.sentences), flags,
                    stopped)

    def _budget_flag(self, sentence: int) -> str:
        return (f"The request reached its budget ({self.budget.audio_seconds:.0f} s of audio or "
                f"{self.budget.wall_seconds:.0f} s of generation) at sentence {sentence + 1} of "
                f"{len(self.sentences)}; the rest was not spoken. Split the text into several requests.")

    def _wall_flag(self, sentence: int) -> str:
        return (f"The take reached the generation time budget ({self.budget.wall_seconds:.0f} s) in sentence "
                f"{sentence + 1} and was cut off.")

    def collect(self, should_stop: Callable[[], bool] | None = None) -> list[Take]:
        """Every take, whole: the stream, collected. `should_stop` is asked after every engine step."""
        self.heartbeat = True
        for _ in self:
            if should_stop is not None and should_stop():
                self.cancel()
        return self.takes


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


_ENDED = object()


class Together:
    """Several streams generated at once where their engine batches, and read one after another.

    Iterating yields (index, chunk) for stream 0 as it is made, then stream 1's (what was made
    meanwhile at once, then live), and so on; (index, None) marks the end of a stream, whose
    `takes` are then complete. Streams on an engine that speaks one request at a time start only
    when their turn comes, so the first is never kept waiting behind the others. Closing the
    iterator cancels every stream.
    """

    def __init__(self, streams: list[Stream]):
        self.streams = streams
        self._queues = [queue.Queue() for _ in streams]
        self._threads = [threading.Thread(target=self._run, args=(s, q), daemon=True, name="studio-together")
                         for s, q in zip(streams, self._queues)]

    def __iter__(self) -> Iterator[tuple[int, Chunk | None]]:
        for stream, thread in zip(self.streams, self._threads):
            if stream.engine.batching:
                thread.start()
        try:
            for index, (thread, chunks) in enumerate(zip(self._threads, self._queues)):
                if not thread.is_alive() and thread.ident is None:
                    thread.start()
                while (item := chunks.get()) is not _ENDED:
                    if isinstance(item, BaseException):
                        raise item
                    yield index, item
                yield index, None
        finally:
            for stream in self.streams:
                stream.cancel()
            for thread in self._threads:
                if thread.ident is not None:
                    thread.join()

    @staticmethod
    def _run(stream: Stream, chunks: queue.Queue) -> None:
        try:
            for chunk in stream:
                chunks.put(chunk)
            chunks.put(_ENDED)
        except BaseException as error:  # noqa: BLE001 - the reader raises it when it gets there
            chunks.put(error)


class Pump:
    """Runs a stream in one worker thread and hands its chunks over a bounded queue.

    Doors that serve from an event loop or a thread pool use it, so generation always runs
    in one thread (moving between pool threads makes PyTorch start a new set of CPU
    threads each time, which on a small machine costs more than the generation itself).
    `cancel` ends generation within a step. The stall clock starts as soon as a chunk waits
    and the reader does not take it: a reader that takes nothing for `stall_seconds` loses
    the stream, so a client that stops reading frees the engine after that long, however
    much is buffered. `on_end` runs in the worker when it is done, whatever happened.
    """

    def __init__(self, make_stream: Callable[[], Stream], stall_seconds: float = 20.0,
                 on_end: Callable[[], None] | None = None, size: int = 64):
        self.stream: Stream | None = None
        self.stall_seconds = stall_seconds
        self._make_stream = make_stream
        self._on_end = on_end
        self._chunks: queue.Queue = queue.Queue(maxsize=size)
        self._cancelled = threading.Event()
        self._clock = threading.Lock()
        self._waiting_since: float | None = None  # when the oldest chunk nobody took began to wait
        self._thread = threading.Thread(target=self._run, daemon=True, name="studio-stream")
        self._thread.start()

    def cancel(self) -> None:
        self._cancelled.set()
        if self.stream is not None:
            self.stream.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def finished(self) -> bool:
        return not self._thread.is_alive() and self._chunks.empty()

    def get(self, timeout: float | None = None) -> Chunk | None:
        """The next chunk; None at the end. Raises what generation raised; queue.Empty after `timeout`."""
        item = self._chunks.get(timeout=timeout)
        with self._clock:
            self._waiting_since = None if self._chunks.empty() else time.monotonic()
        if isinstance(item, BaseException):
            raise item
        return item

    def _offer(self, item) -> None:
        """Queue one item; raises queue.Full once the reader has taken nothing for stall_seconds."""
        while True:
            with self._clock:
                now = time.monotonic()
                if self._waiting_since is not None and now - self._waiting_since > self.stall_seconds:
                    raise queue.Full
                try:
                    self._chunks.put_nowait(item)
                    if self._waiting_since is None:
                        self._waiting_since = now
                    return
                except queue.Full:
                    pass
            if self._cancelled.wait(0.1):
                return

    def _run(self) -> None:
        try:
            self.stream = self._make_stream()
            if self._cancelled.is_set():
                self.stream.cancel()
            for chunk in self.stream:
                if chunk is not None:
                    self._offer(chunk)
            self._offer(None)
        except queue.Full:
            self.cancel()
            log.warning("a speech client took no audio for %g s; its generation was stopped", self.stall_seconds)
        except BaseException as error:  # handed to the reader, if it is still there
            try:
                self._chunks.put_nowait(error)
            except queue.Full:
                pass
        finally:
            if self._on_end is not None:
                self._on_end()
