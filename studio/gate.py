"""The ASGI gate in front of Gradio's app and the speech routes: bodies, logins and closed routes.

It wraps the whole app where uvicorn calls it (see `connections.install`), so it
sees every HTTP request before Gradio or FastAPI read anything:

- a body larger than its route allows is refused by `Content-Length` unread, and a
  chunked one is cut off at the limit (413 either way, and the connection closes);
- a client that disconnects while sending its body is one log line;
- under `--auth`, a client whose logins keep failing must wait longer and longer
  between tries (429), and Gradio's routes that answer without a login
  (`/monitoring/...`, `/gradio_api/cancel`, `/gradio_api/heartbeat/...`) need one.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger(__name__)

FORM_BODY = 4 * 1024 * 1024  # any other request but uploads: Gradio's JSON and forms are small
UPLOAD_OVERHEAD = 1024 * 1024  # multipart headers around an upload
LOGIN_PATHS = ("/login", "/login/")
FREE_FAILURES = 5  # failed logins before a client has to wait
LONGEST_WAIT = 300.0  # seconds, the wait doubles per failure up to this
FORGET_AFTER = 3600.0  # a client's failures are forgotten after this long without one
PROTECTED = ("/monitoring", "/gradio_api/cancel", "/gradio_api/heartbeat")


class BodyTooLarge(Exception):
    """Raised inside the gate only: the client sent more than its route allows."""


@dataclass
class Failures:
    count: int = 0
    last: float = 0.0


@dataclass
class LoginThrottle:
    """Failed logins per client address; after FREE_FAILURES each try waits twice as long as the last."""

    free: int = FREE_FAILURES
    longest: float = LONGEST_WAIT
    _clients: dict[str, Failures] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self, address: str, now: float | None = None) -> float:
        """Seconds this client must still wait before its next try (0: it may try now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            failures = self._clients.get(address)
            if failures is None or failures.count < self.free:
                return 0.0
            delay = min(self.longest, 2.0 ** (failures.count - self.free))
            return max(0.0, failures.last + delay - now)

    def failed(self, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            failures = self._clients.setdefault(address, Failures())
            failures.count += 1
            failures.last = now
            if failures.count == self.free:
                log.warning("%d failed logins from %s; its next tries are slowed down", failures.count, address)
            if len(self._clients) > 10000:
                self._clients = {a: f for a, f in self._clients.items() if now - f.last < FORGET_AFTER}

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._clients.pop(address, None)


def body_limit(path: str, max_upload_bytes: float, speech_bytes: int) -> int:
    """Bytes a request to `path` may send: a speech body (its reference clip as a data URL included), an upload,
    or anything else."""
    if path.startswith("/v1/audio/speech"):
        return speech_bytes
    if path.rstrip("/").endswith("/upload") or path.rstrip("/") == "/v1/audio/voices":
        return int(max_upload_bytes) + UPLOAD_OVERHEAD
    return FORM_BODY


class Gate:
    """ASGI middleware; `logged_in(scope)` says whether a request carries a Gradio login (None: no --auth)."""

    def __init__(self, app, max_upload_bytes: float, speech_bytes: int,
                 logged_in: Callable[[dict], bool] | None = None, throttle: LoginThrottle | None = None):
        self.app = app
        self.max_upload_bytes = max_upload_bytes
        self.speech_bytes = speech_bytes
        self.logged_in = logged_in
        self.throttle = throttle

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        address = (scope.get("client") or ("local", 0))[0]
        if self.logged_in is not None and path.startswith(PROTECTED) and not self.logged_in(scope):
            return await respond(send, 401, "Not authenticated: log in first.")
        login = self.throttle is not None and scope.get("method") == "POST" and path in LOGIN_PATHS
        if login and (wait := self.throttle.wait(address)) > 0:
            return await respond(send, 429, f"Too many failed logins from this address; try again in "
                                            f"{wait:.0f} s.", {"retry-after": str(int(wait) + 1)})
        limit = body_limit(path, self.max_upload_bytes, self.speech_bytes)
        length = header(scope, b"content-length")
        if length is not None:
            if not length.isdigit():
                return await respond(send, 400, "Content-Length must be a number of bytes.")
            if int(length) > limit:
                return await respond(send, 413, f"The request body can be at most {limit} bytes.")
        await self._pass(scope, receive, send, path, address, limit, login)

    async def _pass(self, scope, receive, send, path, address, limit, login):
        state = {"received": 0, "complete": False, "gone": False, "too_large": False, "started": False,
                 "status": None}

        async def counted_receive():
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    state["too_large"] = True
                    return {"type": "http.disconnect"}  # the app stops reading; the gate answers 413
                state["complete"] = not message.get("more_body", False)
            elif message["type"] == "http.disconnect" and not state["complete"]:
                state["gone"] = True
            return message

        async def watched_send(message):
            if state["too_large"]:
                return  # the gate answers instead
            if message["type"] == "http.response.start":
                state["started"] = True
                state["status"] = message["status"]
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except Exception:
            if not (state["gone"] or state["too_large"]):
                raise
        finally:
            if state["gone"] and not state["too_large"]:
                log.info("a client at %s disconnected while sending %s %s (%d bytes arrived)", address,
                         scope.get("method"), path, state["received"])
        if state["too_large"] and not state["started"]:
            await respond(send, 413, f"The request body can be at most {limit} bytes.")
        if login and state["status"] is not None:
            if state["status"] < 300:
                self.throttle.succeeded(address)
            elif state["status"] in (400, 401, 403):
                self.throttle.failed(address)


def header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


async def respond(send, status: int, message: str, headers: dict | None = None) -> None:
    """A small JSON answer (OpenAI's error shape, which also carries Gradio's `detail`); the connection closes."""
    body = json.dumps({"detail": message, "error": {"message": message, "type": "invalid_request_error"}}).encode()
    extra = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *extra]})
    await send({"type": "http.response.body", "body": body})


def gradio_login(app) -> Callable[[dict], bool]:
    """Whether a request carries one of Gradio's login cookies (the tokens Gradio's /login handed out)."""
    from http.cookies import SimpleCookie

    def logged_in(scope) -> bool:
        raw = header(scope, b"cookie")
        if not raw:
            return False
        cookies = SimpleCookie()
        try:
            cookies.load(raw)
        except Exception:  # noqa: BLE001 - a malformed cookie header is no login
            return False
        names = (f"access-token-{app.cookie_id}", f"access-token-unsecure-{app.cookie_id}")
        return any(name in cookies and cookies[name].value in app.tokens for name in names)

    return logged_in
