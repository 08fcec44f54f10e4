"""Chatterbox-Turbo in the listener's browser: ResembleAI's graphs from the engine's own folder.

The speech encoder stays on the server (a voice's prompt tensors are made there once); the
page runs `embed_tokens`, `language_model` and `conditional_decoder`.
"""

from __future__ import annotations

from ...config import Settings
from ..browser import BrowserEngine, BrowserModel
from .engine import ChatterboxEngine


class ChatterboxInBrowser(BrowserEngine):
    name = "chatterbox-turbo"
    graphs = ("embed_tokens", "language_model", "conditional_decoder")

    def model(self, engine: ChatterboxEngine, settings: Settings) -> BrowserModel:
        engine.load()
        return BrowserModel(engine, engine._folder(), self.graphs, engine.fingerprint)

    def prompt(self, engine: ChatterboxEngine, voice_prompt) -> dict:
        return engine.prompt_to_tensors(voice_prompt)

    def sentence(self, engine: ChatterboxEngine, sentence: str) -> dict:
        return {"ids": engine.tokenizer.encode(sentence).ids}
