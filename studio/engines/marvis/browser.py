"""Marvis in the listener's browser: graphs written by `python -m studio.export marvis` (`export.py` here).

The page's prefill is the reference turn (its text and the reference's Mimi codes, embedded
on the server once per voice) followed by the sentence's own text tokens, embedded here too
(a table lookup that spares the page a 128k-token table).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from pathlib import Path

from ...config import Settings
from ...errors import ModelUnavailable
from ..browser import BrowserEngine, BrowserModel, files_fingerprint
from .engine import REFERENCE_AUDIO, MarvisEngine

MAX_LAYOUT = 64 * 1024  # bytes of an export's config.json
PREFIX_CACHE = 16  # voices whose embedded reference turn is kept


class MarvisInBrowser(BrowserEngine):
    name = "marvis"
    graphs = ("embed_audio", "backbone", "depth_decoder", "mimi_decoder")

    def __init__(self):
        self._prefixes: OrderedDict[tuple, object] = OrderedDict()  # a voice's embedded reference turn
        self._lock = threading.Lock()

    def model(self, engine: MarvisEngine, settings: Settings) -> BrowserModel:
        folder = Path(settings.marvis_onnx).expanduser() if settings.marvis_onnx else None
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
        engine.load()
        if not isinstance(layout, dict) or layout.get("source_fingerprint") != engine.fingerprint:
            raise ModelUnavailable(f"The graphs in {folder} were exported from another Marvis checkpoint than "
                                   f"{engine.model_name}: export it again with `python -m studio.export marvis`.")
        if not (layout.get("check") or {}).get("passed"):
            raise ModelUnavailable(f"The graphs in {folder} did not pass the export's checks against PyTorch.")
        return BrowserModel(engine, folder, self.graphs, files_fingerprint(folder), layout)

    def prompt(self, engine: MarvisEngine, voice_prompt) -> dict:
        """The reference turn embedded (Mimi's encoder runs on the server), once per voice and model."""
        from .export import prefix_embeds

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

    def sentence(self, engine: MarvisEngine, sentence: str) -> dict:
        import torch

        from .export import text_ids

        ids = text_ids(engine, sentence)
        with torch.no_grad():
            embeds = engine.csm.embed_text_tokens(torch.tensor([ids], device=engine.csm.device)).float()
        return {"ids": ids, "embeds": embeds}
