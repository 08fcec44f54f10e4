"""Where a local engine runs: device, dtype and attention chosen automatically, and checkpoint fingerprints."""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from ..errors import ModelUnavailable


@dataclass(frozen=True)
class Runtime:
    device: str  # torch device string, e.g. "cuda:0"
    dtype: str
    attn: str
    reason: str = ""  # why auto chose this dtype
    weights: str = ""  # the weight format of the frame loop, and why (Qwen3-TTS' --quantize)

    def describe(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        weights = f", {self.weights}" if self.weights else ""
        return f"{self.device}, {self.dtype}{why}, {self.attn} attention{weights}"


def cpu_runs_bf16() -> tuple[bool, str]:
    """Whether this CPU has native bfloat16 units, from its feature flags (never from a timing)."""
    import torch

    if torch.cpu._is_amx_tile_supported():
        return True, "auto: this CPU has AMX"
    if torch.cpu._is_avx512_bf16_supported():
        return True, "auto: this CPU has AVX-512 BF16"
    return False, "auto: this CPU has no native bfloat16"


def choose_runtime(settings: Settings) -> Runtime:
    """Resolve auto settings: CUDA > MPS > CPU; bf16 on CUDA and on CPUs with native bf16; flash-attn if usable."""
    import torch

    device = settings.device
    if device == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelUnavailable("--device cuda was asked for, but no CUDA GPU is available to PyTorch.")
    dtype, reason = settings.dtype, ""
    if dtype == "auto":
        if device == "cuda":
            dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
            reason = "auto: CUDA"
        elif device == "cpu":
            native, reason = cpu_runs_bf16()
            dtype = "bfloat16" if native else "float32"
        else:
            dtype, reason = "float32", "auto: safe on MPS"
    flash_ok = device == "cuda" and importlib.util.find_spec("flash_attn") is not None
    attn = settings.attn
    if attn == "auto":
        attn = "flash_attention_2" if flash_ok else "sdpa"
    elif attn == "flash_attention_2" and not flash_ok:
        raise ModelUnavailable("flash_attention_2 needs a CUDA GPU and the flash-attn package; use --attn sdpa.")
    return Runtime(device="cuda:0" if device == "cuda" else device, dtype=dtype, attn=attn, reason=reason)


def checkpoint_fingerprint(source: str, config) -> str:
    """A loaded checkpoint's fingerprint: its folder's content (a local folder, or the Hub cache it was
    loaded from), else its name."""
    folder = source if Path(source).is_dir() else getattr(config, "_name_or_path", None)
    if folder and Path(folder).is_dir():
        return model_fingerprint(folder)
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def model_fingerprint(directory: str | Path) -> str:
    """Identify a checkpoint by its config and samples of its weight files (cheap, content-based)."""
    directory = Path(directory)
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if path.name == "config.json":
            digest.update(path.read_bytes())
        elif path.suffix in (".safetensors", ".onnx"):
            size = path.stat().st_size
            digest.update(f"{path.relative_to(directory)}:{size}".encode())
            with path.open("rb") as handle:
                digest.update(handle.read(1 << 20))
                handle.seek(max(0, size - (1 << 20)))
                digest.update(handle.read(1 << 20))
    return digest.hexdigest()[:16]
