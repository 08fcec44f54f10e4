"""The door for in-browser engines: the page, its scripts, ONNX Runtime Web, graphs, voices and token ids.

Every page, script and runtime file is served with the cross-origin isolation headers
(COOP/COEP) that let ONNX Runtime Web run threads. The data routes (graphs, voices,
tokens) follow the speech routes' access rules: with --api-key they need the key
(the page asks for it once), with --auth and no key they are refused.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from fastapi import Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

from ..engine import Engine, Sampling, frame_budget, model_fingerprint
from ..errors import InvalidInput, ModelUnavailable, StudioError
from ..library import VoiceNotFound
from ..server import AccessDenied, check_access
from ..studio import Studio
from ..text import split_sentences, validate_text
from .variants import find_variants, served_file

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
RUNTIME = Path(__file__).resolve().parents[2] / "node_modules" / "onnxruntime-web" / "dist"
ISOLATION = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
             "Cross-Origin-Resource-Policy": "same-origin"}
MEDIA = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".wasm": "application/wasm"}
MAX_BODY = 64 * 1024
MAX_LAYOUT = 64 * 1024
PREFIX_CACHE = 16  # Marvis voices whose embedded reference turn is kept  # bytes of an export's config.json
INTERNAL_ERROR = "Something went wrong inside the studio; the details are in the server log."


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=ISOLATION)


def tensor_json(tensor) -> dict:
    """A tensor as JSON for the page: dtype, shape and its little-endian bytes in base64."""
    array = np.ascontiguousarray(tensor.detach().cpu().numpy())
    dtype = {np.dtype(np.float32): "float32", np.dtype(np.int64): "int64"}[array.dtype]
    return {"dtype": dtype, "shape": list(array.shape),
            "data": base64.b64encode(array.astype(array.dtype.newbyteorder("<")).tobytes()).decode("ascii")}


@dataclass
class BrowserModel:
    """The graphs an engine's page loop runs, where they are, and what identifies them."""

    engine: Engine
    folder: Path
    graphs: tuple[str, ...]
    fingerprint: str  # of the served files: graph URLs carry it, so a changed model is never read from a cache
    layout: dict = field(default_factory=dict)

    @property
    def variants(self) -> list:
        return find_variants(self.folder, self.graphs)


class BrowserEngine:
    """What the page needs of one server engine: its graphs, a voice's prompt tensors, a sentence's token ids."""

    name = ""
    graphs: tuple[str, ...] = ()

    def model(self, studio: Studio) -> BrowserModel:
        raise NotImplementedError

    def prompt(self, engine: Engine, voice_prompt) -> dict:
        raise NotImplementedError

    def sentence(self, engine: Engine, sentence: str) -> dict:
        """What the page's loop starts a sentence from (its token ids, or their embeddings)."""
        raise NotImplementedError


class ChatterboxInBrowser(BrowserEngine):
    """ResembleAI's graphs from the server engine's own folder; the speech encoder stays on the server."""

    name = "chatterbox-turbo"
    graphs = ("embed_tokens", "language_model", "conditional_decoder")

    def model(self, studio: Studio) -> BrowserModel:
        engine = studio.engine_for(self.name)
        engine.load()
        return BrowserModel(engine, engine._folder(), self.graphs, engine.fingerprint)

    def prompt(self, engine: Engine, voice_prompt) -> dict:
        return engine.prompt_to_tensors(voice_prompt)

    def sentence(self, engine: Engine, sentence: str) -> dict:
        return {"ids": engine.tokenizer.encode(sentence).ids}


class MarvisInBrowser(BrowserEngine):
    """Graphs written by `python -m studio.export marvis` from the server engine's checkpoint.

    The page's prefill is the reference turn (its text and the reference's Mimi codes, embedded
    on the server once per voice) followed by the sentence's own text tokens.
    """

    name = "marvis"
    graphs = ("embed_audio", "backbone", "depth_decoder", "mimi_decoder")

    def model(self, studio: Studio) -> BrowserModel:
        folder = Path(studio.settings.marvis_onnx).expanduser() if studio.settings.marvis_onnx else None
        if folder is None:
            raise ModelUnavailable("Marvis runs in the browser once its graphs are exported: run `python -m "
                                   "studio.export marvis --out DIR`, then start the studio with --marvis-onnx DIR.")
        layout_file = folder / "config.json"
        if not layout_file.is_file() or layout_file.stat().st_size > MAX_LAYOUT:
            raise ModelUnavailable(f"{folder} is not a folder written by `python -m studio.export marvis`.")
        try:
            layout = json.loads(layout_file.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as failure:
            raise ModelUnavailable(f"{layout_file} is damaged: export Marvis again.") from failure
        engine = studio.engine_for(self.name)
        engine.load()
        if not isinstance(layout, dict) or layout.get("source_fingerprint") != engine.fingerprint:
            raise ModelUnavailable(f"The graphs in {folder} were exported from another Marvis checkpoint than "
                                   f"{engine.model_name}: export it again with `python -m studio.export marvis`.")
        if not (layout.get("check") or {}).get("passed"):
            raise ModelUnavailable(f"The graphs in {folder} did not pass the export's checks against PyTorch.")
        return BrowserModel(engine, folder, self.graphs, files_fingerprint(folder), layout)

    def __init__(self):
        self._prefixes: OrderedDict[tuple, object] = OrderedDict()  # a voice's embedded reference turn
        self._lock = threading.Lock()

    def prompt(self, engine: Engine, voice_prompt) -> dict:
        """The reference turn embedded (Mimi's encoder runs on the server), once per voice and model."""
        from ..export import prefix_embeds
        from ..marvis import REFERENCE_AUDIO

        reference = voice_prompt.tensors[REFERENCE_AUDIO].numpy()
        key = (voice_prompt.fingerprint, voice_prompt.ref_text, hashlib.sha256(reference.tobytes()).hexdigest())
        with self._lock:
            if key in self._prefixes:
                self._prefixes.move_to_end(key)
                return {"prefix_embeds": self._prefixes[key]}
        with engine.generation_lock:
            prefix = prefix_embeds(engine, voice_prompt)
        with self._lock:
            self._prefixes[key] = prefix
            while len(self._prefixes) > PREFIX_CACHE:
                self._prefixes.popitem(last=False)
        return {"prefix_embeds": prefix}

    def sentence(self, engine: Engine, sentence: str) -> dict:
        """The sentence's turn embedded here: a table lookup, which spares the page a 128k-token table."""
        import torch

        from ..export import text_ids

        ids = text_ids(engine, sentence)
        with torch.no_grad():
            embeds = engine.csm.embed_text_tokens(torch.tensor([ids], device=engine.csm.device)).float()
        return {"ids": ids, "embeds": tensor_json(embeds)}


BROWSER_ENGINES = {engine.name: engine for engine in (ChatterboxInBrowser(), MarvisInBrowser())}
_fingerprints: dict = {}


def files_fingerprint(folder: Path) -> str:
    """The folder's content fingerprint, recomputed only when a file's size or time changes."""
    stamp = tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()))
    if _fingerprints.get(folder, (None,))[0] != stamp:
        _fingerprints[folder] = (stamp, model_fingerprint(folder))
    return _fingerprints[folder][1]


def engine_manifest(studio: Studio, name: str) -> dict:
    """What the page needs to pick and fetch a variant of engine `name`."""
    model = BROWSER_ENGINES[name].model(studio)
    variants = model.variants
    if not variants:
        raise ModelUnavailable(f"{model.folder} has no complete set of {', '.join(model.graphs)} graphs for the "
                               "browser.")
    return {"engine": name, "label": model.engine.label, "fingerprint": model.fingerprint,
            "sample_rate": model.engine.capabilities.sample_rate, "layout": model.layout,
            "variants": [v.describe() for v in variants]}


def graph_path(studio: Studio, name: str, fingerprint: str, file: str) -> Path:
    model = BROWSER_ENGINES[name].model(studio)
    if fingerprint != model.fingerprint:
        raise VoiceNotFound("The model changed since this page loaded; reload the page.")
    path = served_file(model.folder, model.variants, file)
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
    tensors = BROWSER_ENGINES[name].prompt(engine, prompt)
    return {"voice": voice, "engine": name, "fingerprint": prompt.fingerprint,
            "tensors": {key: tensor_json(value) for key, value in tensors.items()}}


def text_tokens(studio: Studio, name: str, body: dict) -> dict:
    """The text as the server engine would speak it: its sentences, each one's token ids and frame limit."""
    engine = studio.engine_for(name)
    text = validate_text(body.get("text") if isinstance(body.get("text"), str) else None,
                         studio.settings.max_text_chars)
    language = engine.language_for(body.get("language") or "English")
    max_frames = body.get("max_frames")
    if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int)):
        raise InvalidInput("max_frames must be a whole number.")
    Sampling(max_frames=max_frames).validate()
    engine.load()
    sentences = split_sentences(text, language)
    return {"language": language, "budget": studio.settings.max_request_frames, "sentences": [
        dict(BROWSER_ENGINES[name].sentence(engine, sentence), text=sentence,
             limit=min(max_frames or frame_budget(sentence), studio.settings.max_request_frames))
        for sentence in sentences]}


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
        if engine not in BROWSER_ENGINES:
            return error(404, f"No engine {engine[:40]!r} runs in the browser; choose one of: "
                              f"{', '.join(BROWSER_ENGINES)}.")
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
