"""Which ONNX graph variants of a model folder a browser can run, and the files each needs.

ResembleAI publishes each Chatterbox-Turbo graph as `onnx/<graph><suffix>.onnx` with its
weights beside it in `<graph><suffix>.onnx_data` (plain float32, `_fp16`, `_q4`, `_q4f16`).
A variant is offered only when all of an engine's graphs exist in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

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
