"""A run's live audio on its way to the page that started it.

Compare generates inside its own UI event (where it also scores and shows each column);
the page's live player listens over the studio's page WebSocket. A `Feed` hands the
audio over between the two: the run puts messages in (a part begins, its audio, the part
ends, the run ends), the socket takes them out. The run never waits for the listener:
a feed nobody opens in time, or whose listener falls far behind, closes itself and drops
what it held, so the comparison goes on without live audio rather than holding memory.
"""

from __future__ import annotations

import queue
import threading
import time

import numpy as np

LISTEN_SECONDS = 30.0  # a feed nobody opened within this long is closed
MAX_SECONDS = 120.0  # seconds of audio a feed holds for a slow listener before it gives up
BEHIND = "The live audio fell too far behind and was dropped; the results still come."
UNHEARD = "Nobody was listening to the live audio, so it was dropped; the results still come."


class Feed:
    """One run's live audio: messages from the thread that makes them to the socket that sends them."""

    def __init__(self, listen_seconds: float = LISTEN_SECONDS, max_seconds: float = MAX_SECONDS):
        self.listen_seconds = listen_seconds
        self.max_seconds = max_seconds
        self.created = time.monotonic()
        self.listening = False
        self.closed = False
        self.reason: str | None = None  # why it closed early, for the listener
        self._messages: queue.Queue = queue.Queue()
        self._held = 0.0  # seconds of audio put in and not yet taken
        self._lock = threading.Lock()

    # -- the run's side ------------------------------------------------------------------------
    def part(self, label: str, how: dict) -> None:
        """A new take begins: what the player shows, and how to play it (rate, expected length, chunk plan)."""
        self._put(dict(how, type="part", label=label))

    def audio(self, samples: np.ndarray, rate: int) -> None:
        if len(samples):
            self._put({"type": "audio", "samples": np.asarray(samples, np.float32), "rate": rate},
                      len(samples) / rate)

    def part_end(self, **figures) -> None:
        """The take's audio is all there (scoring comes next): the player plays out what it holds."""
        self._put(dict(figures, type="part_end"))

    def finish(self, **figures) -> None:
        """The run is over (done, failed or stopped); later puts are ignored."""
        self._put(dict(figures, type="complete"))
        with self._lock:
            self.closed = True

    def _put(self, message: dict, seconds: float = 0.0) -> None:
        with self._lock:
            if self.closed:
                return
            if not self.listening and time.monotonic() - self.created > self.listen_seconds:
                return self._drop(UNHEARD)
            if self._held + seconds > self.max_seconds:
                return self._drop(BEHIND)
            self._held += seconds
            self._messages.put(message)

    def _drop(self, reason: str) -> None:
        """Close early and free what was held (called with the lock held)."""
        self.closed, self.reason, self._held = True, reason, 0.0
        while not self._messages.empty():
            self._messages.get_nowait()
        self._messages.put({"type": "error", "message": reason})

    # -- the listener's side -------------------------------------------------------------------
    def listen(self) -> None:
        with self._lock:
            self.listening = True

    def get(self, timeout: float | None = None) -> dict:
        """The next message; raises queue.Empty after `timeout`. After "complete" or "error" nothing follows."""
        message = self._messages.get(timeout=timeout)
        if message["type"] == "audio":
            with self._lock:
                self._held = max(0.0, self._held - len(message["samples"]) / message["rate"])
        return message

    def hang_up(self) -> None:
        """The listener has gone: the run goes on, its live audio is no longer kept."""
        with self._lock:
            if not self.closed:
                self._drop("The listener closed the live audio.")
