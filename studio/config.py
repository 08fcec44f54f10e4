"""Every setting of the studio, parsed once from flags and environment variables.

Each flag `--some-flag` has an environment variable `STUDIO_SOME_FLAG`; a flag
given on the command line wins over the environment, which wins over the default.
The resulting `Settings` is passed down explicitly: no module reads globals.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Mapping, Sequence

from .errors import InvalidInput

DEFAULT_MODEL = "Qwen/Qwen3-TTS-12Hz-0.6B-Base"
DEVICES = ("auto", "cuda", "cpu", "mps")
DTYPES = ("auto", "bfloat16", "float16", "float32")
ATTENTIONS = ("auto", "flash_attention_2", "sdpa", "eager")


@dataclass(frozen=True)
class Settings:
    model: str = DEFAULT_MODEL
    device: str = "auto"
    dtype: str = "auto"
    attn: str = "auto"
    voices_dir: Path = Path("voices")
    whisper_model: str = "auto"
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    auth: tuple[str, str] | None = None
    max_upload_mb: float = 50.0
    max_reference_seconds: float = 60.0
    max_text_chars: int = 2000
    concurrency: int = 1
    preload: bool = False
    extra: dict = field(default_factory=dict, compare=False)

    @classmethod
    def from_args(cls, argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        args = _parser(env).parse_args(argv)
        return cls(
            model=args.model,
            device=args.device,
            dtype=args.dtype,
            attn=args.attn,
            voices_dir=Path(args.voices_dir),
            whisper_model=args.whisper_model,
            host=args.host,
            port=args.port,
            share=args.share,
            auth=_parse_auth(args.auth),
            max_upload_mb=args.max_upload_mb,
            concurrency=args.concurrency,
            preload=args.preload,
        )

    def replace(self, **changes) -> "Settings":
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)


def _env_name(flag: str) -> str:
    return "STUDIO_" + flag.lstrip("-").replace("-", "_").upper()


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="app.py",
        description="Voice Studio: clone a voice with Qwen3-TTS. Every flag can also be set as STUDIO_<FLAG>.",
    )
    defaults = Settings()

    def add(flag: str, default, **kwargs):
        value = env.get(_env_name(flag))
        if value is not None:
            if kwargs.get("action") == "store_true":
                default = _truthy(value)
            else:
                default = kwargs.get("type", str)(value)
        p.add_argument(flag, default=default, **kwargs)

    add("--model", defaults.model, help="Hub id or local directory of a Qwen3-TTS Base checkpoint")
    add("--device", defaults.device, choices=DEVICES, help="auto picks cuda, then mps, then cpu")
    add("--dtype", defaults.dtype, choices=DTYPES, help="auto: bfloat16 on CUDA, float32 elsewhere")
    add("--attn", defaults.attn, choices=ATTENTIONS, help="auto: flash_attention_2 when importable on CUDA")
    add("--voices-dir", str(defaults.voices_dir), help="voice library folder")
    add("--whisper-model", defaults.whisper_model, help="faster-whisper model name or local directory")
    add("--host", defaults.host)
    add("--port", defaults.port, type=int)
    add("--share", defaults.share, action="store_true", help="create a temporary public Gradio link")
    add("--auth", None, help="USER:PASS required to open the studio")
    add("--max-upload-mb", defaults.max_upload_mb, type=float)
    add("--concurrency", defaults.concurrency, type=int, help="generations running at once")
    add("--preload", defaults.preload, action="store_true", help="load models at start instead of first use")
    return p


def _parse_auth(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise InvalidInput("--auth must look like USER:PASS")
    return user, password
