"""Engines by name. Each engine's package is imported only when that engine is first asked for."""

from __future__ import annotations

import importlib

from ..config import Settings
from ..errors import InvalidInput
from .base import Engine

# name -> "module:class"
ENGINES = {
    "qwen": "studio.engines.qwen:QwenEngine",
    "chatterbox-turbo": "studio.engines.chatterbox:ChatterboxEngine",
    "marvis": "studio.engines.marvis:MarvisEngine",
    "remote": "studio.engines.remote:RemoteEngine",
}


def register(name: str, target: str) -> None:
    """Make an engine available by name ("package.module:Class"), e.g. from a plug-in, before a Studio starts."""
    module, sep, cls = target.partition(":")
    if not name or not sep or not module or not cls:
        raise ValueError(f"an engine is registered as 'package.module:Class', not {target!r}")
    ENGINES[name] = target


def engine_names() -> tuple[str, ...]:
    return tuple(ENGINES)


def create_engine(settings: Settings, name: str = "qwen") -> Engine:
    """The engine called `name`, not yet loaded (its model package is imported on first use)."""
    if not isinstance(name, str) or name not in ENGINES:
        raise InvalidInput(f"Unknown engine {str(name)[:40]!r}. Choose one of: {', '.join(ENGINES)}.")
    module, _, cls = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module), cls)(settings)
