"""Bounds on connections, enforced where they are accepted, before any login or key is checked.

Gradio starts uvicorn itself and offers no settings for it, so once it runs the
studio swaps the protocol classes on uvicorn's `Config` (it builds one protocol
object per new connection from them) for subclasses that

- refuse a connection at once (a short 503) when its address already holds
  `max_client_connections` or the studio holds `max_connections`, logging one line
  per burst of refusals instead of one per connection;
- close a connection that has not sent a request's headers within `header_timeout`,
  or its body within `body_timeout` plus a second per `MIN_BODY_RATE` bytes (a body
  trickling a byte at a time, or half-sent headers, cannot hold a connection).

The total bound is kept under the process's open-file limit, so accepting never runs
out of file descriptors (which made asyncio log a traceback for every attempt).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import threading
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

MIN_BODY_RATE = 500  # bytes per second a request body must average after its first body_timeout seconds
FILES_RESERVED = 128  # open files kept for the library, models, logs and the share tunnel
QUIET_SECONDS = 10.0  # a burst of refusals ends after this long without one
TICK_SECONDS = 1.0  # how often a connection that is sending a request is checked
REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
           b"connection: close\r\ncontent-length: 52\r\n\r\n"
           b"Too many open connections; close some and try again.")


def connection_budget(wanted: int, raise_limit: bool = True) -> int:
    """The total bound that fits the open-file limit; the soft limit is raised towards the hard one if needed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = wanted + FILES_RESERVED
    if raise_limit and soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return wanted
    fitted = max(8, soft - FILES_RESERVED)
    log.warning("the open-file limit is %d, so at most %d connections are held at once (asked for %d)",
                soft, fitted, wanted)
    return fitted


@dataclass
class Counts:
    """What the guard has done, for the soak benchmark and the log."""

    open: int = 0
    refused: int = 0
    timed_out: int = 0


class ConnectionGuard:
    """Counts open connections per address and in total; decides who may connect."""

    def __init__(self, max_total: int, max_per_client: int, header_timeout: float, body_timeout: float):
        self.max_total = max_total
        self.max_per_client = max_per_client
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.counts = Counts()
        self._by_address: dict[str, int] = {}
        self._last_refusal: dict[str, float] = {}
        self._lock = threading.Lock()  # the event loop is one thread; the lock keeps readers from other ones safe

    def admit(self, address: str) -> bool:
        with self._lock:
            held = self._by_address.get(address, 0)
            if self.counts.open >= self.max_total:
                self._refused(address, "total", f"{self.counts.open} connections are open, the limit is "
                                                f"{self.max_total}")
                return False
            if held >= self.max_per_client:
                self._refused(address, address, f"{held} connections from {address} are open, the limit per "
                                                f"address is {self.max_per_client}")
                return False
            self._by_address[address] = held + 1
            self.counts.open += 1
            return True

    def release(self, address: str) -> None:
        with self._lock:
            held = self._by_address.get(address, 0) - 1
            if held > 0:
                self._by_address[address] = held
            else:
                self._by_address.pop(address, None)
            self.counts.open = max(0, self.counts.open - 1)

    def held_by(self, address: str) -> int:
        with self._lock:
            return self._by_address.get(address, 0)

    def _refused(self, address: str, burst: str, why: str) -> None:
        """Count a refusal; log only the first of a burst."""
        self.counts.refused += 1
        if self._burst_starts(burst):
            log.warning("refusing new connections (%s); further refusals in this burst are counted, not logged",
                        why)

    def timed_out(self, address: str, what: str) -> None:
        """Count a connection closed for being too slow; log only the first of a burst from its address."""
        with self._lock:
            self.counts.timed_out += 1
            if self._burst_starts(f"slow {address}"):
                log.info("closing a connection from %s: %s (more like it in this burst are counted, not logged)",
                         address, what)

    def _burst_starts(self, burst: str) -> bool:
        """Whether this event starts a burst (none of its kind for QUIET_SECONDS)."""
        now = time.monotonic()
        last = self._last_refusal.get(burst)
        self._last_refusal[burst] = now
        if len(self._last_refusal) > 10000:  # forget bursts long over, so the table stays small
            self._last_refusal = {k: t for k, t in self._last_refusal.items() if now - t <= QUIET_SECONDS}
        return last is None or now - last > QUIET_SECONDS


def guarded_http(protocol_class: type, guard: ConnectionGuard) -> type:
    """A subclass of uvicorn's h11 protocol that the guard admits and watches."""

    class Guarded(protocol_class):
        _address: str | None = None
        _phase_started = 0.0
        _body_bytes = 0
        _timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:
            peer = transport.get_extra_info("peername")
            address = str(peer[0]) if isinstance(peer, (tuple, list)) and peer else "local"
            if not guard.admit(address):
                transport.write(REFUSAL)
                transport.close()
                return
            self._address = address
            super().connection_made(transport)
            self._new_phase()

        def data_received(self, data: bytes) -> None:
            if self._address is None:
                return  # refused: closing
            self._body_bytes += len(data)
            super().data_received(data)

        def connection_lost(self, exc) -> None:
            if self._address is None:
                return
            guard.release(self._address)
            self._address = None
            self._stop_watching()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._new_phase()  # a kept-alive connection gets a new header timeout for its next request

        def handle_websocket_upgrade(self, event) -> None:
            self._stop_watching()
            super().handle_websocket_upgrade(event)
            upgraded = self.transport.get_protocol()
            if upgraded is not self:
                upgraded._guard_address = self._address  # the WebSocket releases the slot when it closes
                self._address = None

        # -- the watch: headers and bodies must arrive in time ---------------------------
        def _new_phase(self) -> None:
            self._phase_started = time.monotonic()
            self._body_bytes = 0
            if self._timer is None:
                self._timer = self.loop.call_later(TICK_SECONDS, self._check)

        def _stop_watching(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _check(self) -> None:
            self._timer = None
            if self._address is None or self.transport is None or self.transport.is_closing():
                return
            overdue = self._overdue()
            if overdue:
                guard.timed_out(self._address, overdue)
                self.transport.close()
                return
            self._timer = self.loop.call_later(TICK_SECONDS, self._check)

        def _overdue(self) -> str | None:
            """Why the client is too slow sending its request, or None (also while the studio answers)."""
            import h11

            conn = self.conn
            elapsed = time.monotonic() - self._phase_started
            if conn.their_state is h11.IDLE:
                if elapsed > guard.header_timeout:
                    return f"no complete request headers within {guard.header_timeout:g} s"
                return None
            if self.cycle is not None and self.cycle.response_started:
                self._phase_started = time.monotonic()  # answering: the client is not the one to wait for
                return None
            if conn.their_state is h11.SEND_BODY:
                if self.flow.read_paused:  # the studio is not reading: not the client's fault
                    self._phase_started = time.monotonic() - guard.body_timeout / 2
                    return None
                allowed = guard.body_timeout + self._body_bytes / MIN_BODY_RATE
                if elapsed > allowed:
                    return f"the request body arrived slower than {MIN_BODY_RATE} bytes/s"
            return None

    Guarded.__name__ = f"Guarded{protocol_class.__name__}"
    return Guarded


def guarded_websocket(protocol_class: type, guard: ConnectionGuard) -> type:
    """A subclass of uvicorn's WebSocket protocol that gives the connection's slot back when it closes."""

    class Guarded(protocol_class):
        _guard_address: str | None = None

        def connection_lost(self, exc) -> None:
            if self._guard_address is not None:
                guard.release(self._guard_address)
                self._guard_address = None
            super().connection_lost(exc)

    Guarded.__name__ = f"Guarded{protocol_class.__name__}"
    return Guarded


WS_MAX_MESSAGE = 1024 * 1024  # bytes of one WebSocket message; larger ones close the socket (1009)


def install(server, guard: ConnectionGuard, wrap_app=None) -> None:
    """Guard every connection a running uvicorn server accepts from now on (Gradio's, after launch).

    uvicorn builds each connection's protocol from `config.http_protocol_class`, which takes
    `config.ws_protocol_class` and `config.loaded_app` from the config when it is made. The
    guarded protocol is always h11's, whose connection state tells headers from bodies.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    config = server.config
    if not config.loaded:
        config.load()
    config.http_protocol_class = guarded_http(H11Protocol, guard)
    config.ws_max_size = min(config.ws_max_size, WS_MAX_MESSAGE)
    if config.ws_protocol_class is not None:
        config.ws_protocol_class = guarded_websocket(config.ws_protocol_class, guard)
    if wrap_app is not None:
        config.loaded_app = wrap_app(config.loaded_app)


class AcceptErrors(logging.Filter):
    """At most one 'out of system resource' line a minute from asyncio's accept loop, without the traceback."""

    def __init__(self, every: float = 60.0):
        super().__init__()
        self.every = every
        self._last = -every

    def filter(self, record: logging.LogRecord) -> bool:
        if "out of system resource" not in str(record.msg):
            return True
        now = time.monotonic()
        if now - self._last < self.every:
            return False
        self._last = now
        record.exc_info, record.exc_text = None, None
        return True


def quiet_accept_errors() -> None:
    logger = logging.getLogger("asyncio")
    if not any(isinstance(f, AcceptErrors) for f in logger.filters):
        logger.addFilter(AcceptErrors())
