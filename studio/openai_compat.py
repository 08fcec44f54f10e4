"""vLLM-Omni's speech API on the studio's own routes, so apps written for vLLM-Omni (and the remote
engine of another studio) work against a studio.

vLLM-Omni extends OpenAI's `POST /v1/audio/speech` for Qwen3-TTS Base with `task_type`,
`ref_audio` (here: a base64 data URL), `ref_text`, `x_vector_only_mode`, `max_new_tokens`
and `stream`, and takes voice uploads at `POST /v1/audio/voices` (multipart: `audio_sample`,
`consent`, `name`), as its docs/serving/speech_api.md describes. This module reads those
fields into the core's `SpeakRequest` and `NewVoice`; the routes in `server.py` call it.

A reference sent as a data URL makes a speech body far larger than a text request, so the
body limit follows `--max-reference-seconds`; a body whose declared length is over it is
refused before it is read.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import time
from dataclasses import replace
from pathlib import Path

from .config import FRAME_RATE, SAMPLE_RATE, Settings
from .errors import InvalidInput, StudioError
from .streaming import Stream
from .studio import NewVoice, SpeakRequest, Studio

TEXT_BODY = 64 * 1024  # what a request without a reference needs (text, sampling, names)
MAX_CONSENT = 200
DATA_URL = re.compile(r"data:(?P<mime>[\w.+/-]*)(?:;[\w=.+-]+)*;base64,", re.ASCII)
SUFFIXES = {"audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav", "audio/flac": ".flac",
            "audio/mpeg": ".mp3", "audio/mp3": ".mp3", "audio/ogg": ".ogg", "audio/webm": ".webm",
            "audio/mp4": ".m4a", "audio/aac": ".aac", "audio/opus": ".opus"}
MAX_NEW_TOKENS = 4096  # frames: the longest sentence any engine speaks (Sampling.validate checks it too)


# -- the speech body ------------------------------------------------------------------------------

def speech_body_limit(settings: Settings) -> int:
    """Bytes a speech body may have: a reference of --max-reference-seconds as base64 of 24 kHz 16-bit WAV,
    its transcript and the text (4 bytes a character at most in UTF-8, 6 as JSON escapes), and the rest."""
    wav = 44 + int(settings.max_reference_seconds * SAMPLE_RATE * 2)
    characters = settings.max_text_chars + settings.max_ref_text_chars
    return TEXT_BODY + 4 * math.ceil(wav / 3) + 6 * characters


async def read_json(request, limit: int):
    """The body as a JSON object, or an OpenAI error response: too large (by its declared length, before
    reading, or as it arrives), or not a JSON object."""
    import json

    from .server import openai_error

    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return openai_error(413, too_large(limit))
    raw = bytearray()
    async for part in request.stream():
        raw += part
        if len(raw) > limit:
            return openai_error(413, too_large(limit))
    try:
        body = json.loads(bytes(raw))
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict):
        return openai_error(400, "The request body must be a JSON object.")
    return body


def too_large(limit: int) -> str:
    return (f"The request body can be at most {limit} bytes: a reference clip (ref_audio) up to "
            "--max-reference-seconds as 24 kHz mono 16-bit WAV or a compressed file, and the text.")


def open_stream(studio: Studio, request: SpeakRequest, body: dict) -> Stream:
    """The speech pipeline for an OpenAI request with vLLM-Omni's fields; a sent reference is read, then dropped."""
    request, reference = with_extensions(request, body, studio)
    try:
        return studio.stream(request)
    finally:
        if reference is not None:
            reference.unlink(missing_ok=True)


def with_extensions(request: SpeakRequest, body: dict, studio: Studio) -> tuple[SpeakRequest, Path | None]:
    """`request` with vLLM-Omni's fields applied, and the temporary file of a sent reference clip."""
    task = body.get("task_type")
    if task is not None and (not isinstance(task, str) or task.strip().lower() != "base"):
        raise InvalidInput("task_type must be Base: this studio clones voices from reference audio "
                           "(CustomVoice and VoiceDesign models are not served here).")
    instructions = body.get("instructions")
    if instructions not in (None, ""):
        raise InvalidInput("instructions (style prompts) need a CustomVoice or VoiceDesign model; a cloned voice "
                           "takes its style from the reference clip.")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidInput("stream must be true or false (speech is always sent as it is made).")
    xvector = body.get("x_vector_only_mode")
    if xvector is not None and not isinstance(xvector, bool):
        raise InvalidInput("x_vector_only_mode must be true or false.")
    ref_text = body.get("ref_text")
    if ref_text is not None and not isinstance(ref_text, str):
        raise InvalidInput("ref_text must be the transcript of the reference clip.")
    changes = {}
    tokens = body.get("max_new_tokens")
    if tokens is not None:
        if isinstance(tokens, bool) or not isinstance(tokens, int) or not 1 <= tokens <= MAX_NEW_TOKENS:
            raise InvalidInput(f"max_new_tokens must be a whole number from 1 to {MAX_NEW_TOKENS} "
                               f"(codec frames, {FRAME_RATE:g} a second).")
        changes["sampling"] = replace(request.sampling, max_seconds=tokens / FRAME_RATE)
    ref_audio = body.get("ref_audio")
    if ref_audio is None:
        if xvector:
            changes["voice_mode"] = "xvector"
        return replace(request, **changes), None
    if request.voice:
        raise InvalidInput("Send either a library voice or ref_audio, not both.")
    path = reference_file(ref_audio, studio)
    changes.update(reference=str(path), ref_text=ref_text, mode="xvector" if xvector else "icl")
    return replace(request, **changes), path


def reference_file(ref_audio, studio: Studio) -> Path:
    """A data URL's audio in a temporary file, within the upload limit. The studio fetches no URLs."""
    if not isinstance(ref_audio, str):
        raise InvalidInput("ref_audio must be a data URL (data:audio/wav;base64,...).")
    match = DATA_URL.match(ref_audio)
    if match is None:
        raise InvalidInput("ref_audio must be a base64 data URL (data:audio/wav;base64,...): this studio fetches "
                           "no http:// or file:// addresses.")
    payload = ref_audio[match.end():]
    if len(payload) * 3 / 4 > studio.settings.max_upload_bytes:
        raise InvalidInput("ref_audio is larger than the upload limit.")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("ref_audio is not valid base64.") from None
    if not data:
        raise InvalidInput("ref_audio is empty.")
    path = studio.files.path("ref-audio", SUFFIXES.get(match["mime"].lower(), ".audio"))
    path.write_bytes(data)
    return path


# -- the model list -------------------------------------------------------------------------------

def capabilities_card(capabilities) -> dict:
    """What an engine can do, for a client such as another studio's remote engine."""
    return {"languages": list(capabilities.languages), "modes": list(capabilities.modes),
            "sample_rate": capabilities.sample_rate, "step_seconds": capabilities.step_seconds,
            "tags": capabilities.tags, "seeds": capabilities.seeds}


def models(studio: Studio) -> dict:
    """GET /v1/models: the default engine's model first, then the other engines, each with its capabilities
    and `voice_upload` (voices sent to POST /v1/audio/voices are kept in the library and usable by name)."""
    default = studio.engine
    cards = [{"id": studio.settings.model if default.name == "qwen" else default.model_name, "object": "model",
              "owned_by": "voice-studio", "engine": default.name, "voice_upload": True,
              "capabilities": capabilities_card(default.capabilities)}]
    for name in studio.engine_names():
        if name != default.name:
            cards.append({"id": name, "object": "model", "owned_by": "voice-studio", "engine": name,
                          "voice_upload": True,
                          "capabilities": capabilities_card(studio.engine_for(name).capabilities)})
    return {"object": "list", "data": cards}


# -- voice upload ---------------------------------------------------------------------------------

async def upload_voice(request, studio: Studio):
    """POST /v1/audio/voices (multipart: audio_sample, consent, name; ref_text and language optional):
    a new library voice, with the consent record kept in its notes."""
    import asyncio

    from fastapi.responses import JSONResponse

    from .server import INTERNAL_ERROR, openai_error, studio_error

    limit = int(studio.settings.max_upload_bytes) + TEXT_BODY
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        return openai_error(411, "Send the upload with its Content-Length.")
    if int(declared) > limit:
        return openai_error(413, f"The upload can be at most {studio.settings.max_upload_mb:g} MB (--max-upload-mb).")
    try:
        form = await request.form(max_files=1, max_fields=8)
    except Exception:  # noqa: BLE001 - starlette raises its own errors for a malformed form
        return openai_error(400, "Send the voice as multipart/form-data with audio_sample, consent and name.")
    try:
        try:
            new, size, mime = await voice_from_form(form, studio)
        finally:
            await form.close()
        try:
            voice = await asyncio.to_thread(studio.save_voice, new)
        finally:
            Path(new.reference).unlink(missing_ok=True)
    except StudioError as error:
        return studio_error(error)
    except Exception:  # noqa: BLE001 - a bug: logged, answered as a server error
        import logging

        logging.getLogger(__name__).exception("voice upload failed")
        return openai_error(500, INTERNAL_ERROR, "server_error")
    return JSONResponse({"success": True, "voice": {
        "name": voice.name, "consent": consent_of(form), "created_at": int(time.time()), "mime_type": mime,
        "file_size": size, "mode": voice.mode, "language": voice.language}})


def consent_of(form) -> str:
    return str(form.get("consent") or "").strip()


async def voice_from_form(form, studio: Studio) -> tuple[NewVoice, int, str]:
    """The upload's fields checked, its audio in a temporary file: (voice to save, bytes, media type)."""
    sample = form.get("audio_sample")
    if sample is None or isinstance(sample, str):
        raise InvalidInput("audio_sample must be the voice's audio file.")
    consent = consent_of(form)
    if not consent:
        raise InvalidInput("consent is required: the id of the speaker's consent record for cloning this voice.")
    if len(consent) > MAX_CONSENT:
        raise InvalidInput(f"consent can have at most {MAX_CONSENT} characters.")
    name = form.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("name is required: the new voice's name.")
    ref_text = form.get("ref_text") or ""
    language = form.get("language") or "Auto"
    if not isinstance(ref_text, str) or not isinstance(language, str):
        raise InvalidInput("ref_text and language must be text.")
    data = await sample.read(int(studio.settings.max_upload_bytes) + 1)
    if len(data) > studio.settings.max_upload_bytes:
        raise InvalidInput(f"The upload can be at most {studio.settings.max_upload_mb:g} MB (--max-upload-mb).")
    suffix = Path(sample.filename or "").suffix.lower()
    path = studio.files.path("voice-upload", suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ".audio")
    path.write_bytes(data)
    notes = f"Consent record: {consent} (uploaded through /v1/audio/voices)."
    new = NewVoice(name.strip(), path, ref_text.strip(), language, "icl" if ref_text.strip() else "xvector",
                   notes=notes, tags=["uploaded"])
    return new, len(data), sample.content_type or "application/octet-stream"
