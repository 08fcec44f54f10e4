"""Decoding a stream in fixed windows, for vocoders that are not causal (or not built to stream).

Each window of `window` steps is decoded with up to `context` steps before it, whose
samples are dropped. Windows are fixed by step index, not by how steps arrive, so
pushing the same steps in any pieces gives the same samples: the stream equals the
one-shot output by construction.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


class WindowDecoder:
    """`push(steps) -> samples` for every completed window; `finish()` decodes the rest."""

    def __init__(self, decode: Callable[[np.ndarray, bool], np.ndarray], window: int, context: int):
        self.decode = decode  # (steps [n, ...], closing) -> samples for those n steps (and any closing audio)
        self.window = window
        self.context = context
        self.steps: list[np.ndarray] = []
        self.done = 0  # steps whose samples were handed out

    def push(self, steps) -> np.ndarray:
        self.steps.extend(np.asarray(steps))
        pieces = []
        while len(self.steps) - self.done >= self.window:
            pieces.append(self._window(self.done, self.done + self.window, closing=False))
            self.done += self.window
        return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)

    def finish(self) -> np.ndarray:
        """The last partial window, with whatever closing audio the decoder adds."""
        closing = getattr(self.decode, "closing_steps", 0)
        if not self.steps or (self.done == len(self.steps) and not closing):
            return np.zeros(0, np.float32)
        tail = self._window(self.done, len(self.steps), closing=True)
        self.done = len(self.steps)
        return tail

    def _window(self, start: int, end: int, closing: bool) -> np.ndarray:
        first = max(0, start - self.context)
        samples = self.decode(np.stack(self.steps[first:end]), closing)
        per_step = self._samples_per_step(samples, end - first, closing)
        return np.asarray(samples[round((start - first) * per_step):], dtype=np.float32)

    def _samples_per_step(self, samples: np.ndarray, steps: int, closing: bool) -> float:
        extra = getattr(self.decode, "closing_steps", 0) if closing else 0
        return len(samples) / (steps + extra)
