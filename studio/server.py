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
import uuid
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
from fastapi import Request, WebSocket
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.websockets import WebSocketDisconnect

from .config import ENGINES, Settings
from .engine import Sampling
from .errors import Cancelled, InvalidInput, StudioError
from .library import VoiceNotFound
from .languages import normalise_language
from .speech import FORMATS, Encoder, Resampler, check_encoding, check_rate, pcm_bytes
from .streaming import Stream
from .studio import SpeakRequest, Studio
from .tickets import Tickets

log = logging.getLogger(__name__)

MAX_QUEUED = 8  # utterances waiting per WebSocket connection
MAX_MESSAGE = 64 * 1024  # bytes of one client message or request body
STALL_SECONDS = 20.0  # a client that reads nothing for this long loses its utterance (the engine is freed)
SAMPLING_KEYS = ("temperature", "top_p", "top_k", "repetition_penalty", "seed", "max_frames")
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


def sampling_from(options: dict) -> Sampling:
    """Sampling settings from a JSON object, checked like the UI's."""
    values = {}
    for key in SAMPLING_KEYS:
        value = options.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidInput(f"{key} must be a number.")
        values[key] = int(value) if key in ("top_k", "seed", "max_frames") else float(value)
    if values.get("seed", 0) < 0:
        values["seed"] = None
    sampling = Sampling(**values)
    sampling.validate()
    return sampling


class ChunkPump:
    """Runs a stream in its own thread and hands its chunks to async code.

    Generation, and joining its worker, never happen on the event loop. `cancel`
    ends generation within a frame; a reader that takes nothing for STALL_SECONDS
    loses the stream, so a client that never reads cannot hold the engine.
    """

    def __init__(self, make_stream: Callable[[], Stream]):
        self.stream: Stream | None = None
        self._make_stream = make_stream
        self._chunks: queue.Queue = queue.Queue(maxsize=64)
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="studio-speak")
        self._thread.start()

    def cancel(self) -> None:
        self._cancelled.set()
        if self.stream is not None:
            self.stream.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    async def next(self) -> np.ndarray | None:
        """The next chunk's samples; None at the end. Raises what generation raised."""
        while True:
            try:
                item = await asyncio.to_thread(self._chunks.get, True, 0.5)
            except queue.Empty:
                if not self._thread.is_alive() and self._chunks.empty():
                    raise Cancelled("Generation was stopped.") from None
                continue
            if isinstance(item, BaseException):
                raise item
            return item

    def _run(self) -> None:
        try:
            self.stream = self._make_stream()
            if self._cancelled.is_set():
                self.stream.cancel()
            for chunk in self.stream:
                self._chunks.put(chunk.samples, timeout=STALL_SECONDS)
            self._chunks.put(None, timeout=STALL_SECONDS)
        except queue.Full:
            self.cancel()
            log.warning("a speech client stopped reading; its generation was stopped")
        except BaseException as error:  # handed to the reader, if it is still there
            try:
                self._chunks.put_nowait(error)
            except queue.Full:
                pass


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

    def __init__(self, studio: Studio, socket, prepared: SpeakRequest | None = None):
        self.studio = studio
        self.socket = socket
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
                message = await self.socket.receive()
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
                await self.start(message)
            elif kind == "speak":
                await self.speak(message)
            elif kind == "cancel":
                await self.send({"type": "cancelled", "utterances": self.drop_everything()})
            elif kind == "stop":
                self.drop_everything()
                await self.socket.close(code=1000)
                return False
            else:
                await self.error(f"Unknown message type {kind[:40]!r}; use start, speak, cancel or stop.")
        except StudioError as error:
            await self.error(str(error))
        return True

    async def start(self, message: dict) -> None:
        if self.options is not None:
            raise InvalidInput("This session has already started; open a new connection for other settings.")
        if self.prepared is not None:  # the ticket chose everything but the audio format
            self.options = SessionOptions(None, None, self.prepared.language, self.prepared.sampling,
                                          check_rate(message.get("sample_rate", 24000)),
                                          check_encoding(message.get("encoding", "pcm16")),
                                          message.get("binary") is True, self.prepared.engine)
            await self.send({"type": "ready", "session_id": str(uuid.uuid4())})
            return
        voice = message.get("voice")
        if voice is not None and not isinstance(voice, str):
            raise InvalidInput("voice must be the name of a library voice.")
        library = self.studio.library
        if voice and voice.strip():
            voice = (await asyncio.to_thread(library.get, voice)).name
        elif await asyncio.to_thread(library.default) is None:
            raise VoiceNotFound("The library has no default voice; name one with \"voice\".")
        engine = message.get("engine") or None
        if engine is not None and engine not in ENGINES:
            raise InvalidInput(f"engine must be one of: {', '.join(ENGINES)}.")
        modes = self.studio.engine_for(engine).capabilities.modes
        mode = message.get("mode")
        if mode is not None and mode not in modes:
            raise InvalidInput(f"mode must be one of: {', '.join(modes)}.")
        if mode and not voice:
            voice = (await asyncio.to_thread(library.default)).name
        binary = message.get("binary", False)
        if not isinstance(binary, bool):
            raise InvalidInput("binary must be true or false.")
        self.options = SessionOptions(
            voice=voice or None,
            mode=mode,
            engine=engine,
            language=normalise_language(message.get("language") or "English"),
            sampling=sampling_from(message),
            rate=check_rate(message.get("sample_rate", 24000)),
            encoding=check_encoding(message.get("encoding", "pcm16")),
            binary=binary,
        )
        await self.send({"type": "ready", "session_id": str(uuid.uuid4())})

    async def speak(self, message: dict) -> None:
        if self.options is None:
            raise InvalidInput('Send {"type": "start"} before speak messages.')
        text = message.get("text")
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput('A speak message needs "text" to say.')
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
        pump = utterance.pump = ChunkPump(lambda: self.studio.stream(request))
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


# -- OpenAI-compatible routes ---------------------------------------------------------------------

def openai_error(status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}},
                        status_code=status)


def speech_request(body: dict) -> tuple[SpeakRequest, str]:
    """An OpenAI `/v1/audio/speech` body as a core request, and the response format."""
    text = body.get("input")
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("'input' must be the text to speak.")
    voice = body.get("voice")
    if voice is not None and not isinstance(voice, str):
        raise InvalidInput("'voice' must be the name of a library voice.")
    if voice and voice.strip().lower() == "default":
        voice = None
    response_format = body.get("response_format") or "mp3"
    if response_format not in FORMATS:
        raise InvalidInput(f"'response_format' must be one of: {', '.join(FORMATS)}.")
    speed = body.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not 0.25 <= speed <= 4.0:
        raise InvalidInput("'speed' must be a number from 0.25 to 4.0.")
    if speed != 1.0:
        raise InvalidInput("This model speaks at its own pace: only 'speed' 1.0 is supported.")
    language = body.get("language") or "Auto"
    model = body.get("model")
    engine = model if isinstance(model, str) and model in ENGINES else None  # else the default engine
    return SpeakRequest(text, language, voice=voice, sampling=sampling_from(body), engine=engine), response_format


def add_routes(app, studio: Studio, tickets: Tickets | None = None) -> None:
    """Add the WebSocket and the OpenAI-compatible routes to Gradio's FastAPI app.

    `tickets` admits the studio's own page (its live player) without the API key.
    """
    settings = studio.settings

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
                raise AccessDenied("This stream ticket is used or expired: click Stream again.")
            if prepared is None:
                check_access(settings, socket.headers.get("authorization"))
        except AccessDenied as error:
            await socket.close(code=1008, reason=str(error)[:120])
            return
        await socket.accept()
        await SpeakSession(studio, socket, prepared).run()

    @app.get("/v1/models")
    async def models(request: Request):
        if (refusal := denied(request)) is not None:
            return refusal
        default = {"id": settings.model, "object": "model", "owned_by": "voice-studio", "engine": studio.engine.name}
        others = [{"id": name, "object": "model", "owned_by": "voice-studio", "engine": name}
                  for name in ENGINES if name != studio.engine.name]
        return {"object": "list", "data": [default, *others]}

    @app.get("/v1/audio/voices")
    async def voices(request: Request):
        if (refusal := denied(request)) is not None:
            return refusal
        listed = await asyncio.to_thread(studio.list_voices)
        return {"object": "list", "data": [dict(v, id=v["name"], object="voice") for v in listed]}

    @app.post("/v1/audio/speech")
    async def speech(request: Request):
        if (refusal := denied(request)) is not None:
            return refusal
        raw = await request.body()
        if len(raw) > MAX_MESSAGE:
            return openai_error(413, f"The request body can be at most {MAX_MESSAGE} bytes.")
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError
        except (ValueError, RecursionError):
            return openai_error(400, "The request body must be a JSON object.")
        try:
            request_, response_format = speech_request(body)
            stream = await asyncio.to_thread(studio.stream, request_)
        except VoiceNotFound as error:
            return openai_error(404, str(error), param="voice", code="voice_not_found")
        except StudioError as error:
            return openai_error(400, str(error))
        except Exception:  # noqa: BLE001 - a bug: logged, answered as a server error
            log.exception("speech request failed")
            return openai_error(500, INTERNAL_ERROR, "server_error")
        rate = stream.engine.capabilities.sample_rate
        encoder = Encoder(response_format, rate)
        pump = ChunkPump(lambda: stream)

        async def body_bytes():
            """Bytes as they are generated; a disconnect cancels this generator and so generation."""
            try:
                while (samples := await pump.next()) is not None:
                    data = encoder.push(samples)
                    if data:
                        yield data
                yield encoder.finish()
            except Cancelled:
                return
            finally:
                pump.cancel()

        return StreamingResponse(body_bytes(), media_type=encoder.media_type,
                                 headers={"X-Sample-Rate": str(rate), "Cache-Control": "no-store"})
