"""Stream tickets: how a logged-in page streams over its WebSocket without ever seeing the API key.

The page asks for a stream through the UI (which Gradio's login already guards); the UI checks
the request and files it here under a random ticket (a Stream's request, or a Compare run's
feed). The page sends the ticket as the first message of its socket, `/api/v1/live` (apps may
also open `/api/v1/speak?ticket=...`): the ticket admits that one connection, once, within a
short time, and carries the request (voice, reference clip, engine, sampling) so no file path
or key ever reaches the browser.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from typing import Generic, TypeVar

TTL_SECONDS = 60.0
MAX_OPEN = 64  # unused tickets kept; the oldest is dropped beyond that

T = TypeVar("T")


class Tickets(Generic[T]):
    """Single-use, short-lived tickets, each standing for one prepared request."""

    def __init__(self, ttl: float = TTL_SECONDS, limit: int = MAX_OPEN):
        self.ttl = ttl
        self.limit = limit
        self._open: OrderedDict[str, tuple[float, T]] = OrderedDict()
        self._lock = threading.Lock()

    def issue(self, request: T) -> str:
        ticket = secrets.token_urlsafe(24)
        with self._lock:
            self._open[ticket] = (time.monotonic() + self.ttl, request)
            while len(self._open) > self.limit:
                self._open.popitem(last=False)
        return ticket

    def take(self, ticket: str | None) -> T | None:
        """The request a ticket stands for, once; None for an unknown, used or expired ticket."""
        if not isinstance(ticket, str) or len(ticket) > 64:
            return None
        with self._lock:
            expires, request = self._open.pop(ticket, (0.0, None))
        return request if time.monotonic() < expires else None
