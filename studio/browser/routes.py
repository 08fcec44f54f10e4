"""The door for in-browser engines: the page, its scripts, ONNX Runtime Web, graphs, voices and token ids.

Every page, script and runtime file is served with the cross-origin isolation headers
(COOP/COEP) that let ONNX Runtime Web run threads. The data routes (graphs, voices,
tokens) follow the speech routes' access rules: with --api-key they need the key
(the page asks for it once), with --auth and no key they are refused.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from pathlib import Path

import numpy as np
from fastapi import Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

from ..errors import InvalidInput, ModelUnavailable, StudioError, VoiceNotFound
from ..server import AccessDenied, check_access
from ..studio import Studio, seconds_of_frames

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
RUNTIME = Path(__file__).resolve().parents[2] / "node_modules" / "onnxruntime-web" / "dist"
ISOLATION = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
             "Cross-Origin-Resource-Policy": "same-origin"}
MEDIA = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".wasm": "application/wasm"}
MAX_BODY = 64 * 1024
INTERNAL_ERROR = "Something went wrong inside the studio; the details are in the server log."


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=ISOLATION)


def tensor_json(tensor) -> dict:
    """A tensor as JSON for the page: dtype, shape and its little-endian bytes in base64."""
    array = np.ascontiguousarray(tensor.detach().cpu().numpy())
    dtype = {np.dtype(np.float32): "float32", np.dtype(np.int64): "int64"}[array.dtype]
    return {"dtype": dtype, "shape": list(array.shape),
            "data": base64.b64encode(array.astype(array.dtype.newbyteorder("<")).tobytes()).decode("ascii")}


def engine_manifest(studio: Studio, name: str) -> dict:
    """What the page needs to pick and fetch a variant of engine `name`."""
    model = studio.browser_model(name)
    variants = model.variants
    if not variants:
        raise ModelUnavailable(f"{model.folder} has no complete set of {', '.join(model.graphs)} graphs for the "
                               "browser.")
    return {"engine": name, "label": model.engine.label, "fingerprint": model.fingerprint,
            "sample_rate": model.engine.capabilities.sample_rate, "layout": model.layout,
            "variants": [v.describe() for v in variants]}


def graph_path(studio: Studio, name: str, fingerprint: str, file: str) -> Path:
    model = studio.browser_model(name)
    if fingerprint != model.fingerprint:
        raise VoiceNotFound("The model changed since this page loaded; reload the page.")
    path = model.served_file(file)
    if path is None:
        raise VoiceNotFound(f"No graph file {file[:80]!r} is offered for {model.engine.label}.")
    return path


def voice_names(studio: Studio) -> dict:
    default = studio.library.default()
    return {"voices": [voice["name"] for voice in studio.list_voices()], "default": default and default.name}


def voice_prompt(studio: Studio, name: str, voice: str) -> dict:
    """A library voice's prompt tensors for engine `name` (made on the server, stored in the library)."""
    engine = studio.engine_for(name)
    engine.load()
    prompt = studio.prompt_for(voice, engine=engine)
    tensors = studio.browser_adapter(name).prompt(engine, prompt)
    return {"voice": voice, "engine": name, "fingerprint": prompt.fingerprint,
            "tensors": {key: tensor_json(value) for key, value in tensors.items()}}


def text_tokens(studio: Studio, name: str, body: dict) -> dict:
    """The text as the server engine would speak it: its sentences, each one's tokens and step limit, in the
    engine's own steps (the core checks the text, the language and the lengths, as for every door)."""
    max_frames = body.get("max_frames")
    if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int)):
        raise InvalidInput("max_frames must be a whole number.")
    text = body.get("text") if isinstance(body.get("text"), str) else None
    plan = studio.sentence_plan(name, text, body.get("language") or "English", seconds_of_frames(max_frames))
    adapter, engine = studio.browser_adapter(name), studio.engine_for(name)
    sentences = []
    for sentence, steps in plan.sentences:
        made = adapter.sentence(engine, sentence)
        if "embeds" in made:
            made["embeds"] = tensor_json(made["embeds"])
        sentences.append(dict(made, text=sentence, limit=steps))
    return {"language": plan.language, "budget": plan.budget_steps, "sentences": sentences}


async def answer(work, *args) -> JSONResponse:
    """Run `work` off the event loop; StudioErrors become JSON messages with the right status."""
    try:
        return JSONResponse(await asyncio.to_thread(work, *args), headers=ISOLATION)
    except VoiceNotFound as failure:
        return error(404, str(failure))
    except ModelUnavailable as failure:
        return error(503, str(failure))
    except StudioError as failure:
        return error(400, str(failure))
    except Exception:  # noqa: BLE001 - a bug: logged, answered as a server error
        log.exception("browser engine request failed")
        return error(500, INTERNAL_ERROR)


def static_file(folder: Path, name: str, missing: str) -> Response:
    """A file directly inside `folder` (no sub-paths), with the isolation headers."""
    path = folder / name
    if "/" in name or "\\" in name or name.startswith(".") or not path.is_file():
        return error(404, missing)
    return FileResponse(path, media_type=MEDIA.get(path.suffix, "application/octet-stream"),
                        headers=dict(ISOLATION, **{"Cache-Control": "no-cache"}))


def add_routes(app, studio: Studio) -> None:
    """Add the browser engines' page and data routes to Gradio's FastAPI app."""
    settings = studio.settings

    def denied(request: Request) -> JSONResponse | None:
        try:
            check_access(settings, request.headers.get("authorization"))
        except AccessDenied as failure:
            return error(401, str(failure))
        return None

    def known(engine: str) -> JSONResponse | None:
        names = studio.browser_names()
        if engine not in names:
            return error(404, f"No engine {engine[:40]!r} runs in the browser; choose one of: {', '.join(names)}.")
        return None

    @app.get("/browser")
    async def page_without_slash():
        return RedirectResponse("/browser/")

    @app.get("/browser/")
    async def page():
        return static_file(STATIC, "browser.html", "The page is missing from this installation.")

    @app.get("/browser/static/{name}")
    async def script(name: str):
        return static_file(STATIC, name, "No such file.")

    @app.get("/browser/ort/{name}")
    async def runtime(name: str):
        if not name.endswith((".mjs", ".wasm")):
            return error(404, "No such file.")
        return static_file(RUNTIME, name, "ONNX Runtime Web is not installed: run `npm ci` in the studio's folder.")

    @app.get("/browser/api/voices")
    async def voices(request: Request):
        if (refusal := denied(request)) is not None:
            return refusal
        return await answer(voice_names, studio)

    @app.get("/browser/api/{engine}/manifest")
    async def manifest(engine: str, request: Request):
        if (refusal := denied(request) or known(engine)) is not None:
            return refusal
        return await answer(engine_manifest, studio, engine)

    @app.get("/browser/api/{engine}/graphs/{fingerprint}/{file}")
    async def graph(engine: str, fingerprint: str, file: str, request: Request):
        if (refusal := denied(request) or known(engine)) is not None:
            return refusal
        try:
            path = await asyncio.to_thread(graph_path, studio, engine, fingerprint, file)
        except VoiceNotFound as failure:
            return error(404, str(failure))
        except StudioError as failure:
            return error(503, str(failure))
        return FileResponse(path, media_type="application/octet-stream", headers=ISOLATION)

    @app.get("/browser/api/{engine}/voices/{voice}")
    async def voice(engine: str, voice: str, request: Request):
        if (refusal := denied(request) or known(engine)) is not None:
            return refusal
        return await answer(voice_prompt, studio, engine, voice)

    @app.post("/browser/api/{engine}/text")
    async def text(engine: str, request: Request):
        if (refusal := denied(request) or known(engine)) is not None:
            return refusal
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return error(413, f"The request body can be at most {MAX_BODY} bytes.")
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError
        except (ValueError, RecursionError):
            return error(400, "The request body must be a JSON object.")
        return await answer(text_tokens, studio, engine, body)
