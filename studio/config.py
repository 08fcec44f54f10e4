"""Every setting of the studio, parsed once from flags and environment variables, and its constants.

Each flag `--some-flag` has an environment variable `STUDIO_SOME_FLAG`; a flag
given on the command line wins over the environment, which wins over the default.
Environment values are checked exactly like flags: a bad value prints a clear
error and exits with status 2. The resulting `Settings` is passed down
explicitly: no module reads globals.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Mapping, Sequence

# The model's audio: 24 kHz samples, 12.5 codec frames per second.
SAMPLE_RATE = 24000
FRAME_RATE = 12.5
SAMPLES_PER_FRAME = int(SAMPLE_RATE / FRAME_RATE)  # 1920

DEFAULT_MODEL = "Qwen/Qwen3-TTS-12Hz-0.6B-Base"
DEFAULT_CHATTERBOX = "ResembleAI/chatterbox-turbo-ONNX"
DEFAULT_MARVIS = "Marvis-AI/marvis-tts-250m-v0.1-transformers"
DEVICES = ("auto", "cuda", "cpu", "mps")
DTYPES = ("auto", "bfloat16", "float16", "float32")
ATTENTIONS = ("auto", "flash_attention_2", "sdpa", "eager")
QUANTIZE = ("none", "int8", "int4", "auto")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
REMOTE_UPLOAD = ("auto", "never")


@dataclass(frozen=True)
class Settings:
    model: str = DEFAULT_MODEL
    engine: str = "qwen"  # the default engine; others load when a voice or column asks for them
    chatterbox_model: str = DEFAULT_CHATTERBOX
    marvis_model: str = DEFAULT_MARVIS
    marvis_onnx: str = ""  # folder written by `python -m studio.export marvis`: Marvis in the browser page
    device: str = "auto"
    dtype: str = "auto"
    attn: str = "auto"
    quantize: str = "auto"  # CPU: int8 / int4 grouped weights on ONNX Runtime, none, or auto (checked; none on a GPU)
    decode_thread: bool = False  # local engines: decode audio on a thread of its own while the next frames are made
    voices_dir: Path = Path("voices")
    whisper_model: str = "auto"
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    auth: tuple[str, str] | None = None
    max_upload_mb: float = 50.0
    max_reference_seconds: float = 60.0
    max_text_chars: int = 2000
    max_ref_text_chars: int = 1000
    max_request_seconds: float = 600.0  # audio per request, all sentences together
    max_generation_seconds: float = 900.0  # wall time one request may hold the engine
    concurrency: int = 8  # requests generated at once (a batching engine runs them in one batch)
    max_batch: int = 0  # rows (takes of every request) in a batching engine's batch; 0: chosen by device
    queue_size: int = 32
    preload: bool = False
    api_key: str | None = None  # Bearer key for the speech routes
    allow_anonymous: bool = False  # reachable by others without --auth, on purpose
    # What any client may hold, before any login or key is checked (studio/connections.py).
    max_connections: int = 512  # open connections in total (lowered to fit the open-file limit)
    max_client_connections: int = 64  # open connections from one address
    header_timeout: float = 10.0  # to send a request's headers, or a WebSocket's start message
    body_timeout: float = 20.0  # to send a request body, plus a second per 500 bytes
    idle_timeout: float = 300.0  # a started WebSocket session with nothing to say
    stall_seconds: float = 20.0  # a speech client that takes no audio for this long loses its request
    remote_url: str | None = None  # the remote engine's server: vLLM-Omni or another studio
    remote_key: str | None = None  # its Bearer key
    remote_timeout: float = 60.0  # seconds to wait for the server's next bytes
    remote_upload: str = "auto"  # auto: upload each voice once where the server offers it; never: send it each time

    @classmethod
    def from_args(cls, argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None,
                  engines: Sequence[str] = ()) -> "Settings":
        """Parse flags and STUDIO_* variables; invalid values exit with status 2 and a message.

        `engines`, the registered engine names, are the choices of --engine (the registry
        lives with the engines, above this module).
        """
        env = os.environ if env is None else env
        parser = _parser(tuple(engines) or None)
        args = parser.parse_args(argv, namespace=_environment(parser, env))
        values = vars(args)
        values["voices_dir"] = Path(values["voices_dir"])
        try:
            values["auth"] = _parse_auth(values["auth"])
            values["api_key"] = _read_secret(values["api_key"], "--api-key")
            values["remote_key"] = _read_secret(values["remote_key"], "--remote-key")
            values["remote_url"] = _parse_url(values["remote_url"])
        except ValueError as error:
            parser.error(str(error))
        return cls(**values)

    def replace(self, **changes) -> "Settings":
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)

    @property
    def max_upload_bytes(self) -> float:
        return self.max_upload_mb * 1e6

    @property
    def speech_capacity(self) -> int:
        """Speech requests admitted at once, speaking or waiting: the same bound as the UI's queue."""
        return self.concurrency + self.queue_size

    @property
    def public(self) -> bool:
        """Reachable by others: a share link or a non-loopback address."""
        return self.share or self.host not in LOOPBACK_HOSTS


def env_name(flag: str) -> str:
    return "STUDIO_" + flag.lstrip("-").replace("-", "_").upper()


def _boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected 1/true/yes/on or 0/false/no/off, got {value!r}")


def _bounded(kind, low, high):
    def parse(value: str):
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__ == 'int' and 'whole ' or ''}number, "
                                             f"got {value!r}") from None
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}, got {value}")
        return number

    parse.__name__ = kind.__name__
    return parse


def _parser(engines: tuple[str, ...] | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="app.py",
        description="Voice Studio: clone a voice with Qwen3-TTS. Every flag can also be set as STUDIO_<FLAG>.",
    )
    d = Settings()
    p.add_argument("--model", default=d.model, help="Hub id or local directory of a Qwen3-TTS Base checkpoint")
    p.add_argument("--engine", default=d.engine, choices=engines,
                   help="the default engine (others can still be chosen per take in Preview and per column "
                        "in Compare)")
    p.add_argument("--chatterbox-model", default=d.chatterbox_model,
                   help="Hub id or local folder of the Chatterbox-Turbo ONNX export (onnx/*.onnx, tokenizer.json)")
    p.add_argument("--marvis-model", default=d.marvis_model,
                   help="Hub id or local folder of a Marvis TTS (CSM) transformers checkpoint")
    p.add_argument("--marvis-onnx", default=d.marvis_onnx,
                   help="folder written by `python -m studio.export marvis --out DIR`: lets the /browser/ page run "
                        "Marvis in the listener's browser")
    p.add_argument("--device", default=d.device, choices=DEVICES, help="auto picks cuda, then mps, then cpu")
    p.add_argument("--dtype", default=d.dtype, choices=DTYPES,
                   help="auto: bfloat16 on CUDA (float16 without bf16 support); on CPU bfloat16 where the CPU "
                        "runs it natively (AMX or AVX-512 BF16), else float32; float32 on MPS")
    p.add_argument("--attn", default=d.attn, choices=ATTENTIONS,
                   help="auto: flash_attention_2 when importable on CUDA, else sdpa")
    p.add_argument("--quantize", default=d.quantize, choices=QUANTIZE,
                   help="CPU only. int8 / int4: the talker and code predictor as ONNX Runtime graphs with 8- or "
                        "4-bit weights in groups of 128 and int8 arithmetic (about 2.9x / 3.7x faster per frame "
                        "than none on a two-core CPU, vocoder included); none: full precision, op by op in PyTorch; auto (default): on a "
                        "CPU, the fastest format whose top choices agree with float32's at 90%% of steps in every "
                        "code group on a calibration line (measured once per model, kept in the voices folder), "
                        "else none; on a GPU, none")
    p.add_argument("--decode-thread", default=d.decode_thread, action="store_true",
                   help="decode audio on a thread of its own while the next frames are made, in chunks of two "
                        "frames (same samples): with --quantize int4 this is what streams faster than "
                        "playback on a two-core CPU")
    p.add_argument("--voices-dir", default=str(d.voices_dir), help="voice library folder")
    p.add_argument("--whisper-model", default=d.whisper_model,
                   help="faster-whisper model name or local directory (auto: large-v3-turbo on CUDA, small on CPU)")
    p.add_argument("--host", default=d.host, help="address to listen on (127.0.0.1: this machine only)")
    p.add_argument("--port", default=d.port, type=_bounded(int, 1, 65535))
    p.add_argument("--share", default=d.share, action="store_true", help="create a temporary public Gradio link")
    p.add_argument("--auth", default=None, help="USER:PASS required to open the studio")
    p.add_argument("--max-upload-mb", default=d.max_upload_mb, type=_bounded(float, 0.1, 2000),
                   help="largest upload or voice file, in MB")
    p.add_argument("--max-reference-seconds", default=d.max_reference_seconds, type=_bounded(float, 3, 600),
                   help="longest reference clip accepted")
    p.add_argument("--max-text-chars", default=d.max_text_chars, type=_bounded(int, 1, 100000),
                   help="longest text to speak in one request")
    p.add_argument("--max-ref-text-chars", default=d.max_ref_text_chars, type=_bounded(int, 1, 20000),
                   help="longest reference transcript (ref_text)")
    p.add_argument("--max-request-seconds", default=d.max_request_seconds, type=_bounded(float, 1, 36000),
                   help="most audio one request may generate, all sentences together")
    p.add_argument("--max-generation-seconds", default=d.max_generation_seconds, type=_bounded(float, 1, 36000),
                   help="longest wall time one request may hold the model")
    p.add_argument("--concurrency", default=d.concurrency, type=_bounded(int, 1, 64),
                   help="requests generated at once; Qwen3-TTS runs them in one batch (up to --max-batch rows), "
                        "other engines one after another")
    p.add_argument("--max-batch", default=d.max_batch, type=_bounded(int, 0, 256),
                   help="most rows (takes of all requests together) in Qwen3-TTS's running batch; more wait for "
                        "a row to free up (0: 8 on a CPU, 32 on a GPU)")
    p.add_argument("--queue-size", default=d.queue_size, type=_bounded(int, 1, 10000),
                   help="requests that may wait in the queue (the UI's, and the speech routes'); more are refused "
                        "with a message (HTTP 429 on /v1/audio/speech)")
    p.add_argument("--preload", default=d.preload, action="store_true",
                   help="load models at start instead of first use")
    p.add_argument("--api-key", default=None,
                   help="KEY or @FILE: Bearer key for /api/v1/speak and /v1/audio/* (required with --auth)")
    p.add_argument("--max-connections", default=d.max_connections, type=_bounded(int, 8, 100000),
                   help="open connections in total; more are refused at once (lowered to fit the open-file limit)")
    p.add_argument("--max-client-connections", default=d.max_client_connections, type=_bounded(int, 1, 100000),
                   help="open connections from one address (under --share every visitor comes through the "
                        "tunnel, from one address)")
    p.add_argument("--header-timeout", default=d.header_timeout, type=_bounded(float, 1, 600),
                   help="seconds a client has to send a request's headers (or a WebSocket its start message)")
    p.add_argument("--body-timeout", default=d.body_timeout, type=_bounded(float, 1, 3600),
                   help="seconds a client has to send a request body, plus one per 500 bytes of it")
    p.add_argument("--idle-timeout", default=d.idle_timeout, type=_bounded(float, 1, 86400),
                   help="seconds a started /api/v1/speak session may sit with nothing to say before it is closed")
    p.add_argument("--stall-seconds", default=d.stall_seconds, type=_bounded(float, 1, 3600),
                   help="a speech client that takes no audio for this long loses its request (the engine is freed)")
    p.add_argument("--allow-anonymous", default=d.allow_anonymous, action="store_true",
                   help="start with --share or a non-loopback --host without --auth (anyone with the link can "
                        "use, change and export every voice)")
    p.add_argument("--remote-url", default=None,
                   help="address of the server the remote engine speaks through: a vLLM-Omni server with a "
                        "Qwen3-TTS Base model, or another studio (e.g. http://gpu-box:8091)")
    p.add_argument("--remote-key", default=None, help="KEY or @FILE: Bearer key of the --remote-url server")
    p.add_argument("--remote-timeout", default=d.remote_timeout, type=_bounded(float, 1, 3600),
                   help="seconds the remote engine waits for the server to connect or send its next audio")
    p.add_argument("--remote-upload", default=d.remote_upload, choices=REMOTE_UPLOAD,
                   help="auto: upload each voice's reference once where the server says it keeps voices (another "
                        "studio); never: send it with every request as ref_audio (what vLLM-Omni always gets)")
    return p


def _environment(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> argparse.Namespace:
    """Defaults from STUDIO_* variables, converted and checked like the flags themselves."""
    namespace = argparse.Namespace()
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        flag = action.option_strings[0]
        raw = env.get(env_name(flag))
        if raw is None:
            continue
        try:
            if isinstance(action, argparse._StoreTrueAction):
                value = _boolean(raw)
            else:
                value = action.type(raw) if action.type else raw
                if action.choices is not None and value not in action.choices:
                    raise argparse.ArgumentTypeError(
                        f"invalid choice {raw!r} (choose from {', '.join(map(str, action.choices))})")
        except argparse.ArgumentTypeError as error:
            parser.error(f"{env_name(flag)}: {error}")
        setattr(namespace, action.dest, value)
    return namespace


def _read_secret(value: str | None, flag: str) -> str | None:
    """A value, or the contents of @FILE (so secrets stay out of `ps`)."""
    if not value:
        return None
    if value.startswith("@"):
        try:
            value = Path(value[1:]).expanduser().read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ValueError(f"{flag}: cannot read the credentials file {value[1:]!r} ({error.strerror})") from None
        if not value:
            raise ValueError(f"{flag}: the credentials file is empty")
    return value


def _parse_url(value: str | None) -> str | None:
    """An http(s) address without a trailing slash (the remote engine adds /v1/...)."""
    if not value:
        return None
    from urllib.parse import urlsplit

    value = value.strip().rstrip("/").removesuffix("/v1")  # also OpenAI clients' base URL form
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"--remote-url must be an http:// or https:// address, not {value[:80]!r}")
    return value


def _parse_auth(value: str | None) -> tuple[str, str] | None:
    """USER:PASS, or @FILE holding USER:PASS (so the password stays out of `ps`)."""
    value = _read_secret(value, "--auth")
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ValueError("--auth must look like USER:PASS (or @FILE with USER:PASS inside)")
    return user, password
