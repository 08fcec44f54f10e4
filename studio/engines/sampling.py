"""Choosing a token from logits, as Hugging Face's `generate()` does, with a random generator per take.

Shared by every engine's own loop: each row of a batch is one take and draws only from
its own `torch.Generator`, so a take's seed alone decides it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Picking:
    """How one code is chosen from logits: greedy at temperature 0, else sampled as Hugging Face does."""

    temperature: float = 0.9
    top_k: int = 50
    top_p: float = 1.0
    repetition_penalty: float = 1.0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def pick(logits: torch.Tensor, how: Picking, generators: list, history: torch.Tensor | None = None,
         banned: torch.Tensor | None = None) -> torch.Tensor:
    """One code per row of float32 `logits` [batch, vocab]; each row draws from its own generator.

    The order is transformers' own: repetition penalty, banned tokens, then
    temperature, top-k and top-p.
    """
    if history is not None and history.shape[1] and how.repetition_penalty != 1.0:
        seen = logits.gather(1, history)
        seen = torch.where(seen < 0, seen * how.repetition_penalty, seen / how.repetition_penalty)
        logits = logits.scatter(1, history, seen)
    if banned is not None:
        logits = logits.masked_fill(banned, float("-inf"))
    if how.greedy:
        return logits.argmax(dim=-1)
    if how.temperature != 1.0:
        logits = logits / how.temperature
    if how.top_k:
        kth = torch.topk(logits, min(how.top_k, logits.shape[-1])).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if how.top_p < 1.0:
        ordered, order = torch.sort(logits, descending=False)
        cumulative = ordered.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative <= 1 - how.top_p
        drop[:, -1:] = False
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    probs = logits.softmax(dim=-1)
    return torch.cat([torch.multinomial(probs[row:row + 1], 1, generator=generators[row])[:, 0]
                      for row in range(probs.shape[0])])
