"""What an engine offers a listener's browser: its graph variants, a voice's prompt tensors, a sentence's tokens.

The page (`studio/browser/`) runs an engine's loop with ONNX Runtime Web; each engine that can
run there has a `BrowserEngine` adapter in its own folder (`chatterbox/browser.py`,
`marvis/browser.py`), since only the engine knows its graphs, tokenizer and prompt tensors.

ResembleAI publishes each Chatterbox-Turbo graph as `onnx/<graph><suffix>.onnx` with its
weights beside it in `<graph><suffix>.onnx_data` (plain float32, `_fp16`, `_q4`, `_q4f16`).
A variant is offered only when all of an engine's graphs exist in it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Settings
from ..errors import InvalidInput
from .base import Engine
from .runtime import model_fingerprint

SUFFIXES = {"fp32": "", "fp16": "_fp16", "q8": "_quantized", "q4": "_q4", "q4f16": "_q4f16"}
WASM_LIMIT = 4 * 1024 ** 3  # WebAssembly's 32-bit address space: the weights must fit below it


@dataclass(frozen=True)
class GraphFile:
    name: str  # a file name inside the folder's onnx/ directory
    size: int


@dataclass(frozen=True)
class Graph:
    name: str  # e.g. language_model
    model: GraphFile
    data: tuple[GraphFile, ...] = ()  # external weights, in the names the .onnx file refers to


@dataclass(frozen=True)
class Variant:
    name: str  # fp32, fp16, q8, q4, q4f16
    graphs: tuple[Graph, ...] = field(default_factory=tuple)

    @property
    def size(self) -> int:
        return sum(g.model.size + sum(d.size for d in g.data) for g in self.graphs)

    @property
    def files(self) -> list[GraphFile]:
        return [f for g in self.graphs for f in (g.model, *g.data)]

    def describe(self) -> dict:
        return {"name": self.name, "bytes": self.size, "fits_wasm": self.size < WASM_LIMIT,
                "graphs": {g.name: {"model": g.model.name, "data": [d.name for d in g.data]} for g in self.graphs},
                "files": {f.name: f.size for f in self.files}}


def find_variants(folder: Path, graphs: tuple[str, ...]) -> list[Variant]:
    """The complete variants in `folder/onnx`, in SUFFIXES order."""
    onnx = folder / "onnx"
    found = []
    for name, suffix in SUFFIXES.items():
        parts = []
        for graph in graphs:
            model = onnx / f"{graph}{suffix}.onnx"
            if not model.is_file():
                break
            data = sorted(p for p in onnx.glob(f"{graph}{suffix}.onnx_data*") if p.is_file())
            parts.append(Graph(graph, GraphFile(model.name, model.stat().st_size),
                               tuple(GraphFile(p.name, p.stat().st_size) for p in data)))
        else:
            found.append(Variant(name, tuple(parts)))
    return found


def served_file(folder: Path, variants: list[Variant], name: str) -> Path | None:
    """The path of `name` if it belongs to an offered variant (nothing else in the folder is served)."""
    if any(f.name == name for v in variants for f in v.files):
        return folder / "onnx" / name
    return None


@dataclass
class BrowserModel:
    """The graphs an engine's page loop runs, where they are, and what identifies them."""

    engine: Engine
    folder: Path
    graphs: tuple[str, ...]
    fingerprint: str  # of the served files: graph URLs carry it, so a changed model is never read from a cache
    layout: dict = field(default_factory=dict)

    @property
    def variants(self) -> list[Variant]:
        return find_variants(self.folder, self.graphs)

    def served_file(self, name: str) -> Path | None:
        return served_file(self.folder, self.variants, name)


class BrowserEngine:
    """What the page needs of one server engine: its graphs, a voice's prompt tensors, a sentence's token ids."""

    name = ""
    graphs: tuple[str, ...] = ()

    def model(self, engine: Engine, settings: Settings) -> BrowserModel:
        raise NotImplementedError

    def prompt(self, engine: Engine, voice_prompt) -> dict:
        """The tensors of a voice's prompt the page starts from."""
        raise NotImplementedError

    def sentence(self, engine: Engine, sentence: str) -> dict:
        """What the page's loop starts a sentence from: {"ids": [...]} and optionally {"embeds": tensor}."""
        raise NotImplementedError


# engine name -> "module:class" of its browser adapter
ADAPTERS = {
    "chatterbox-turbo": "studio.engines.chatterbox.browser:ChatterboxInBrowser",
    "marvis": "studio.engines.marvis.browser:MarvisInBrowser",
}
_adapters: dict[str, BrowserEngine] = {}


def browser_names() -> tuple[str, ...]:
    return tuple(ADAPTERS)


def browser_adapter(name: str) -> BrowserEngine:
    """The browser adapter of engine `name`, created once (it may keep caches)."""
    if name not in ADAPTERS:
        raise InvalidInput(f"No engine {str(name)[:40]!r} runs in the browser; choose one of: {', '.join(ADAPTERS)}.")
    if name not in _adapters:
        module, _, cls = ADAPTERS[name].partition(":")
        _adapters[name] = getattr(importlib.import_module(module), cls)()
    return _adapters[name]


_fingerprints: dict = {}


def files_fingerprint(folder: Path) -> str:
    """The folder's content fingerprint, recomputed only when a file's size or time changes."""
    stamp = tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()))
    if _fingerprints.get(folder, (None,))[0] != stamp:
        _fingerprints[folder] = (stamp, model_fingerprint(folder))
    return _fingerprints[folder][1]
