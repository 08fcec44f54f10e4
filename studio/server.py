"""The door for apps: the `/api/v1/speak` WebSocket and OpenAI-compatible speech routes.

They are added to the FastAPI app Gradio runs on, so they serve on the same
port and share link, with the same library, engine and generation queue (the
engine's lock is granted in arrival order, so apps and the UI take turns).
Adapters only: every request becomes a `SpeakRequest` for the `Studio`, and
`StudioError` messages go back as they are (WebSocket `error` messages, or
OpenAI's error JSON with a proper status code).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
from fastapi import Request, WebSocket
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.websockets import WebSocketDisconnect

from . import openai_compat
from .config import Settings
from .errors import Cancelled, InvalidInput, LibraryBusy, ModelUnavailable, StudioError, VoiceNotFound
from .feeds import Feed
from .languages import normalise_language
from .schemas import ControlMessage, FieldError, SpeakMessage, SpeechBody, StartMessage
from .speech import Encoder, Resampler, pcm_bytes
from .streaming import Pump, Stream
from .studio import Sampling, SpeakRequest, Studio, seconds_of_frames
from .tickets import Tickets

log = logging.getLogger(__name__)

MAX_QUEUED = 8  # utterances waiting per WebSocket connection
MAX_MESSAGE = 64 * 1024  # bytes of one client message or request body
MAX_TICKET_MESSAGE = 256  # bytes of the page's first message on /api/v1/live
USED_TICKET = "This stream ticket is used or expired: click Stream again."
STALL_SECONDS = 20.0  # a client that takes no audio for this long loses its utterance (the engine is freed)
INTERNAL_ERROR = "Something went wrong inside the studio; the details are in the server log."


class AccessDenied(StudioError):
    """A missing or wrong API key."""


def check_access(settings: Settings, authorization: str | None) -> None:
    """With --api-key, every speech request needs `Authorization: Bearer KEY`; with --auth and no key, none may pass."""
    if settings.api_key:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), settings.api_key.encode()):
            raise AccessDenied("A valid API key is required: send the header 'Authorization: Bearer <key>'.")
    elif settings.auth:
        raise AccessDenied("This studio uses --auth, so its speech routes need an API key: start it with --api-key.")


def sampling_from(fields) -> Sampling:
    """Sampling settings from a checked message, validated like the UI's (lengths in 80 ms units)."""
    values = fields.sampling_values()
    values["max_seconds"] = seconds_of_frames(values.pop("max_frames", None))
    sampling = Sampling(**values)
    sampling.validate()
    return sampling


class Admission:
    """Speech requests speaking or waiting at once, over every route: past the bound, more are refused."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.held = 0
        self._lock = threading.Lock()

    def enter(self) -> bool:
        with self._lock:
            if self.held >= self.capacity:
                return False
            self.held += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.held = max(0, self.held - 1)

    def busy_message(self) -> str:
        return (f"The studio is busy: {self.capacity} speech requests are already speaking or waiting "
                "(--concurrency plus --queue-size). Try again in a moment.")


class ChunkPump(Pump):
    """The core's pump for async code: generation, and joining its worker, never happen on the event loop."""

    def __init__(self, make_stream: Callable[[], Stream], stall_seconds: float = STALL_SECONDS,
                 on_end: Callable[[], None] | None = None):
        super().__init__(make_stream, stall_seconds, on_end)

    async def next(self) -> np.ndarray | None:
        """The next chunk's samples; None at the end. Raises what generation raised."""
        while True:
            try:
                chunk = await asyncio.to_thread(self.get, 0.5)
            except queue.Empty:
                if self.finished():
                    raise Cancelled("Generation was stopped.") from None
                continue
            return None if chunk is None else chunk.samples


# -- the WebSocket ------------------------------------------------------------------------------

@dataclass
class SessionOptions:
    voice: str | None
    mode: str | None
    language: str
    sampling: Sampling
    rate: int
    encoding: str
    binary: bool
    engine: str | None = None  # None: the default engine


@dataclass
class Utterance:
    number: int
    text: str
    pump: ChunkPump | None = None  # while it is being spoken


class SpeakSession:
    """One WebSocket connection: start, then speak messages handled in order; cancel, stop, or close."""

    def __init__(self, studio: Studio, socket, admission: Admission | None = None,
                 prepared: SpeakRequest | None = None):
        self.studio = studio
        self.socket = socket
        self.admission = admission or Admission(studio.settings.speech_capacity)
        self.prepared = prepared  # a page's ticketed request: its voice, reference, engine and sampling
        self.options: SessionOptions | None = None
        self.pending: asyncio.Queue[Utterance] = asyncio.Queue()
        self.current: Utterance | None = None
        self.numbers = 0
        self._send_lock = asyncio.Lock()
        self._worker: asyncio.Task | None = None

    async def run(self) -> None:
        self._worker = asyncio.create_task(self._speak_in_order())
        try:
            while True:
                message = await self._next_message()
                if message is None:
                    await self._close_idle()
                    break
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None:
                    await self.error("Send JSON text messages; binary messages are not understood.")
                    continue
                if not await self.handle(text):
                    break
        except WebSocketDisconnect:
            pass
        finally:
            self.drop_everything()
            self._worker.cancel()

    async def _next_message(self) -> dict | None:
        """The client's next message, or None once it has been quiet too long (the clock stops while speaking)."""
        receiving = asyncio.ensure_future(self.socket.receive())
        quiet_since = time.monotonic()
        try:
            while True:
                done, _ = await asyncio.wait({receiving}, timeout=0.5)
                if done:
                    return receiving.result()
                patience = self._patience()
                if patience is None:
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since > patience:
                    return None
        finally:
            if not receiving.done():
                receiving.cancel()

    def _patience(self) -> float | None:
        """How long to wait for the client's next message: its start, or anything while nothing is spoken."""
        settings = self.studio.settings
        if self.options is None:
            return settings.header_timeout
        if self.current is not None or not self.pending.empty():
            return None
        return settings.idle_timeout

    async def _close_idle(self) -> None:
        settings = self.studio.settings
        why = (f'no start message within {settings.header_timeout:g} s' if self.options is None
               else f"nothing to say for {settings.idle_timeout:g} s")
        try:
            await self.error(f"Closing this session: {why}. Connect again when there is something to say.")
            await self.socket.close(code=1008)
        except Exception:  # noqa: BLE001 - the client may be gone already
            pass

    async def handle(self, text: str) -> bool:
        """Act on one client message; False ends the session."""
        if len(text) > MAX_MESSAGE:
            return await self.error(f"Messages can be at most {MAX_MESSAGE} bytes.")
        try:
            message = json.loads(text)
        except (ValueError, RecursionError):
            return await self.error("That message is not valid JSON.")
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            return await self.error('Every message is a JSON object with a "type": start, speak, cancel or stop.')
        kind = message["type"]
        try:
            if kind == "start":
                await self.start(StartMessage.parse(message))
            elif kind == "speak":
                await self.speak(SpeakMessage.parse(message))
            elif kind == "cancel":
                ControlMessage.parse(message)
                await self.send({"type": "cancelled", "utterances": self.drop_everything()})
            elif kind == "stop":
                ControlMessage.parse(message)
                self.drop_everything()
                await self.socket.close(code=1000)
                return False
            else:
                await self.error(f"Unknown message type {kind[:40]!r}; use start, speak, cancel or stop.")
        except StudioError as error:
            await self.error(str(error))
        return True

    async def start(self, message: StartMessage) -> None:
        if self.options is not None:
            raise InvalidInput("This session has already started; open a new connection for other settings.")
        if self.prepared is not None:  # the ticket chose everything but the audio format
            self.options = SessionOptions(None, None, self.prepared.language, self.prepared.sampling,
                                          message.sample_rate, message.encoding, message.binary,
                                          self.prepared.engine)
            await self.send({"type": "ready", "session_id": str(uuid.uuid4())})
            return
        voice = message.voice
        library = self.studio.library
        if voice and voice.strip():
            voice = (await asyncio.to_thread(library.get, voice)).name
        else:
            voice = (await asyncio.to_thread(self.studio.default_voice)).name
        engine = message.engine
        names = self.studio.engine_names()
        if engine is not None and engine not in names:
            raise FieldError(f"engine must be one of: {', '.join(names)}.", "engine")
        mode = message.mode
        if mode is not None:
            self.studio.engine_for(engine).mode_for(mode)  # the core's rule, as every door applies it
        self.options = SessionOptions(
            voice=voice or None,
            mode=mode,
            engine=engine,
            language=normalise_language(message.language or "English"),
            sampling=sampling_from(message),
            rate=message.sample_rate,
            encoding=message.encoding,
            binary=message.binary,
        )
        await self.send({"type": "ready", "session_id": str(uuid.uuid4())})

    async def begin_prepared(self) -> None:
        """A page's ticket chose everything: start at the engine's own rate, as f32, and say its text at once."""
        rate = self.studio.engine_for(self.prepared.engine).capabilities.sample_rate
        await self.start(StartMessage.parse({"type": "start", "sample_rate": rate, "encoding": "f32"}))
        await self.speak(SpeakMessage.parse({"type": "speak", "text": self.prepared.text}))

    async def speak(self, message: SpeakMessage) -> None:
        if self.options is None:
            raise InvalidInput('Send {"type": "start"} before speak messages.')
        text = message.text
        limit = self.studio.settings.max_text_chars
        if len(text) > limit:
            raise InvalidInput(f"The text is {len(text)} characters; the limit is {limit}.")
        waiting = self.pending.qsize() + (self.current is not None)
        if waiting >= MAX_QUEUED:
            raise InvalidInput(f"{waiting} utterances are already waiting; the limit is {MAX_QUEUED}. "
                               "Wait for a complete message, or cancel.")
        self.numbers += 1
        await self.pending.put(Utterance(self.numbers, text))

    def drop_everything(self) -> list[int]:
        """Cancel the utterance in progress (it ends within a frame) and drop the queued ones."""
        dropped = []
        if self.current is not None:
            if self.current.pump is not None:
                self.current.pump.cancel()
            dropped.append(self.current.number)
            self.current = None
        while not self.pending.empty():
            dropped.append(self.pending.get_nowait().number)
        return dropped

    async def _speak_in_order(self) -> None:
        while True:
            utterance = await self.pending.get()
            self.current = utterance
            try:
                await self._speak(utterance)
            except StudioError as error:
                await self.error(str(error), utterance.number)
            except Exception:  # noqa: BLE001 - a bug: logged, the session goes on
                log.exception("speech session failed")
                await self.error(INTERNAL_ERROR, utterance.number)
            finally:
                self.current = None

    async def _speak(self, utterance: Utterance) -> None:
        options = self.options
        request = SpeakRequest(utterance.text, options.language, voice=options.voice, sampling=options.sampling,
                               voice_mode=options.mode, engine=options.engine)
        if self.prepared is not None:
            request = replace(self.prepared, text=utterance.text)
        if not self.admission.enter():
            raise InvalidInput(self.admission.busy_message())
        pump = utterance.pump = ChunkPump(lambda: self.studio.stream(request), self.studio.settings.stall_seconds,
                                          on_end=self.admission.leave)
        resampler = Resampler(self.studio.engine_for(options.engine).capabilities.sample_rate, options.rate)
        total, index = 0, 0
        try:
            while True:
                samples = await pump.next()
                if pump.cancelled:
                    return  # dropped by cancel or stop: nothing more of it is sent
                last = samples is None
                samples = resampler.push(_EMPTY if last else samples, last=last)
                total += len(samples)
                await self._send_audio(utterance.number, index, samples, last)
                index += 1
                if last:
                    break
        except Cancelled:
            if pump.cancelled:
                return  # cancel, stop or a closed socket: the client was told, or is gone
            raise
        take = pump.stream.take
        record = getattr(pump.stream, "record", None)
        await self.send({"type": "complete", "utterance": utterance.number, "samples": total,
                         "duration": round(total / options.rate, 3), "seed": take.seed, "flags": take.flags,
                         "time_to_first_audio": round(take.time_to_first_audio, 4),
                         "total_time": round(take.total_time, 4), "take": record.id if record else None})

    async def _send_audio(self, number: int, index: int, samples, last: bool) -> None:
        data = pcm_bytes(samples, self.options.encoding)
        if self.options.binary:
            if data:
                async with self._send_lock:
                    await self.socket.send_bytes(data)
            return
        await self.send({"type": "audio_chunk", "utterance": number, "index": index,
                         "data": base64.b64encode(data).decode("ascii"), "is_final": last})

    async def send(self, message: dict) -> None:
        async with self._send_lock:
            await self.socket.send_text(json.dumps(message, ensure_ascii=False))

    async def error(self, message: str, utterance: int | None = None) -> bool:
        reply = {"type": "error", "message": message}
        if utterance is not None:
            reply["utterance"] = utterance
        await self.send(reply)
        return True


_EMPTY = np.zeros(0, np.float32)


# -- the page's own socket ----------------------------------------------------------------------

async def page_ticket(socket, seconds: float) -> str | None:
    """The ticket in a page socket's first message (`{"type": "ticket", "ticket": ...}`), or None."""
    try:
        message = await asyncio.wait_for(socket.receive(), seconds)
    except asyncio.TimeoutError:
        return None
    text = message.get("text")
    if not isinstance(text, str) or len(text) > MAX_TICKET_MESSAGE:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("type") != "ticket" or not isinstance(data.get("ticket"), str):
        return None
    return data["ticket"]


def feed_message(message: dict) -> str:
    """A feed's message as the page reads it: audio as base64 f32, like /api/v1/speak's audio_chunk."""
    if message["type"] == "audio":
        message = {"type": "audio_chunk", "rate": message["rate"],
                   "data": base64.b64encode(pcm_bytes(message["samples"], "f32")).decode("ascii")}
    return json.dumps(message, ensure_ascii=False)


async def until_stopped(socket) -> None:
    """Returns once the page sends stop or closes the socket; anything else it sends is ignored."""
    try:
        while True:
            message = await socket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text") or ""
            try:
                data = json.loads(text) if len(text) <= MAX_MESSAGE else None
            except (ValueError, RecursionError):
                continue
            if isinstance(data, dict) and data.get("type") == "stop":
                return
    except (WebSocketDisconnect, RuntimeError):
        return


async def relay(feed: Feed, socket) -> None:
    """Send a run's live audio as it comes; a stop or a closed socket hangs up (the run itself goes on)."""
    feed.listen()
    stopped = asyncio.ensure_future(until_stopped(socket))
    try:
        while not stopped.done():
            try:
                message = await asyncio.to_thread(feed.get, 0.25)
            except queue.Empty:
                continue
            await socket.send_text(feed_message(message))
            if message["type"] in ("complete", "error"):
                await socket.close(code=1000)
                return
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        feed.hang_up()
        stopped.cancel()


# -- OpenAI-compatible routes ---------------------------------------------------------------------

def openai_error(status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}},
                        status_code=status)


def studio_error(error: StudioError) -> JSONResponse:
    """A core error as OpenAI's error JSON: the client's fault (4xx) or the server's state (409, 503)."""
    if isinstance(error, VoiceNotFound):
        return openai_error(404, str(error), param="voice", code="voice_not_found")
    if isinstance(error, ModelUnavailable):
        return openai_error(503, str(error), "server_error", code="model_unavailable")
    if isinstance(error, LibraryBusy):
        return openai_error(409, str(error), "server_error", code="library_busy")
    return openai_error(400, str(error))


def speech_request(body: dict, engine_names: tuple[str, ...]) -> tuple[SpeakRequest, str]:
    """An OpenAI `/v1/audio/speech` body as a core request, and the response format."""
    checked = SpeechBody.parse(body, quote=True)
    voice = checked.voice
    if voice and voice.strip().lower() == "default":
        voice = None
    if checked.speed != 1.0:
        raise FieldError("This model speaks at its own pace: only 'speed' 1.0 is supported.", "speed")
    engine = checked.model if checked.model in engine_names else None  # else the default engine
    request = SpeakRequest(checked.input, checked.language or "Auto", voice=voice, sampling=sampling_from(checked),
                           engine=engine)
    return request, checked.response_format or "mp3"


def add_routes(app, studio: Studio, tickets: Tickets | None = None) -> None:
    """Add the WebSocket and the OpenAI-compatible routes to Gradio's FastAPI app.

    `tickets` admits the studio's own page (its live player) without the API key.
    """
    settings = studio.settings
    admission = Admission(settings.speech_capacity)  # shared by the WebSocket and the HTTP route

    def denied(request: Request) -> JSONResponse | None:
        try:
            check_access(settings, request.headers.get("authorization"))
        except AccessDenied as error:
            return openai_error(401, str(error), "authentication_error")
        return None

    @app.websocket("/api/v1/speak")
    async def speak(socket: WebSocket):
        ticket = socket.query_params.get("ticket")
        prepared = tickets.take(ticket) if ticket and tickets is not None else None
        try:
            if ticket and prepared is None:
                raise AccessDenied(USED_TICKET)
            if prepared is None:
                check_access(settings, socket.headers.get("authorization"))
        except AccessDenied as error:
            await socket.close(code=1008, reason=str(error)[:120])
            return
        await socket.accept()
        await SpeakSession(studio, socket, admission, prepared).run()

    @app.websocket("/api/v1/live")
    async def live(socket: WebSocket):
        """The studio's own page: its live player opens this socket before it knows what it will play, so the
        handshake is off the click's path. Nothing is done until the first message brings a single-use ticket
        from the UI (which the login guards); the ticket decides everything: a line to speak, or a run to hear."""
        await socket.accept()
        ticket = await page_ticket(socket, settings.header_timeout)
        entry = tickets.take(ticket) if ticket and tickets is not None else None
        if isinstance(entry, SpeakRequest):
            session = SpeakSession(studio, socket, admission, entry)
            try:
                await session.begin_prepared()
            except StudioError as error:
                await session.error(str(error))
            await session.run()
        elif isinstance(entry, Feed):
            await relay(entry, socket)
        else:
            try:
                await socket.close(code=1008, reason=USED_TICKET if ticket else "No stream ticket was sent.")
            except (WebSocketDisconnect, RuntimeError):
                pass  # the page closed it first

    @app.get("/v1/models")
    async def models(request: Request):
        if (refusal := denied(request)) is not None:
            return refusal
        return openai_compat.models(studio)  # issue 21: with each engine's capabilities

    @app.get("/v1/audio/voices")
    async def voices(request: Request):
        if (refusal := denied(request)) is not None:
            return refusal
        listed = await asyncio.to_thread(studio.list_voices)
        return {"object": "list", "data": [dict(v, id=v["name"], object="voice") for v in listed],
                "voices": [v["name"] for v in listed]}  # issue 21: vLLM-Omni's shape of the list

    @app.post("/v1/audio/voices")  # issue 21: vLLM-Omni's voice upload, with a consent record
    async def upload_voice(request: Request):
        if (refusal := denied(request)) is not None:
            return refusal
        return await openai_compat.upload_voice(request, studio)

    @app.post("/v1/audio/speech")
    async def speech(request: Request):
        if (refusal := denied(request)) is not None:
            return refusal
        # the body limit follows --max-reference-seconds; vLLM-Omni's fields (studio/openai_compat.py)
        body = await openai_compat.read_json(request, openai_compat.speech_body_limit(settings))
        if isinstance(body, JSONResponse):
            return body
        try:
            request_, response_format = speech_request(body, studio.engine_names())
        except FieldError as error:
            return openai_error(400, str(error), param=error.field)
        except StudioError as error:
            return studio_error(error)
        if not admission.enter():
            return openai_error(429, admission.busy_message(), "rate_limit_error", code="busy")
        try:
            stream = await asyncio.to_thread(openai_compat.open_stream, studio, request_, body)
        except BaseException as error:
            admission.leave()
            if isinstance(error, StudioError):
                return studio_error(error)
            if not isinstance(error, Exception):
                raise
            log.exception("speech request failed")  # a bug: logged, answered as a server error
            return openai_error(500, INTERNAL_ERROR, "server_error")
        rate = stream.rate
        encoder = Encoder(response_format, rate)
        pump = ChunkPump(lambda: stream, settings.stall_seconds, on_end=admission.leave)
        try:  # a failure before any audio (a remote server that is down) keeps its status code
            first = await pump.next()
        except StudioError as error:
            pump.cancel()
            return studio_error(error)

        async def body_bytes():
            """Bytes as they are generated; a disconnect cancels this generator and so generation."""
            try:
                samples = first
                while samples is not None:
                    data = encoder.push(samples)
                    if data:
                        yield data
                    samples = await pump.next()
                yield encoder.finish()
            except Cancelled:
                return
            finally:
                pump.cancel()

        return StreamingResponse(body_bytes(), media_type=encoder.media_type,
                                 headers={"X-Sample-Rate": str(rate), "Cache-Control": "no-store"})
