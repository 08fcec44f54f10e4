"""`--quantize auto`: a faster weight format only where it was checked against full precision on these weights.

On a CPU, each fast format (4-bit, then int8) is fed the codes that float32 picks
greedily on a short calibration line (teacher forcing), and its top choice is
compared with float32's at every step of every code group. The first format whose
agreement reaches `THRESHOLD` in every group is used; otherwise none is. The
figures are kept per model fingerprint (and library versions) in the voices folder,
so the check runs once per checkpoint, and the status line says what was picked,
what was measured and why. On a GPU, auto means none: the fast formats are CPU kernels.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from . import nbits
from .talker import Talker

log = logging.getLogger(__name__)

CANDIDATES = ("int4", "int8")  # fastest first
THRESHOLD = 0.9  # teacher-forced top-1 agreement with float32, in every code group
FRAMES = 16  # calibration frames: 16 steps per code group
LINE = "The quick brown fox jumps over the lazy dog, and then it rests in the warm sun."
CACHE = ".calibration.json"
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class Choice:
    """The weight format in use and why (shown in the status line)."""

    quantize: str
    reason: str = ""

    def describe(self) -> str:
        if self.quantize == "none" and not self.reason:
            return ""  # asked for by name: nothing to explain
        name = "full-precision weights" if self.quantize == "none" else f"{self.quantize} weights"
        return f"{name} ({self.reason})" if self.reason else name


def choose(model, runtime, fingerprint: str, folder: Path, threads: int = 1) -> tuple[Choice, Talker]:
    """Resolve `auto` for a loaded `Qwen3TTSModel`: (choice, the frame loop built with it)."""
    if runtime.device != "cpu":
        return Choice("none", "auto: fast weight formats are CPU kernels"), Talker(model.model, "none")
    key = (f"{fingerprint}|{runtime.dtype}|torch {torch.__version__}|{_onnxruntime_version()}|{FRAMES}"
           f"|groups of {nbits.GROUP}")
    measured = _read(folder).get(key)
    talkers: dict[str, Talker] = {}
    if measured is None:
        measured = measure(model, talkers, threads)
        _write(folder, key, measured)
    for quantize in CANDIDATES:
        agreement = measured.get(quantize)
        if agreement is not None and min(agreement) >= THRESHOLD:
            reason = (f"auto: fed float32's codes on a calibration line, its top choice agreed with float32's at "
                      f"{100 * min(agreement):.0f}% of steps or more in every code group (mean "
                      f"{100 * float(np.mean(agreement)):.0f}%, threshold {100 * THRESHOLD:.0f}%)")
            return Choice(quantize, reason), talkers.get(quantize) or Talker(model.model, quantize, threads)
    figures = ", ".join(f"{q} {100 * min(a):.0f}%" for q, a in measured.items() if a is not None)
    reason = (f"auto: no fast format agreed with float32 at {100 * THRESHOLD:.0f}% of steps in every code group "
              f"on a calibration line (worst group: {figures or 'none measured'})")
    return Choice("none", reason), Talker(model.model, "none")


def measure(model, talkers: dict | None = None, threads: int = 1) -> dict[str, list[float] | None]:
    """Teacher-forced top-1 agreement with float32 per code group, for each candidate format."""
    prefill = calibration_prefill(model)
    reference = Talker(float32_copy(model.model), "none")
    full = _as(prefill, torch.float32)
    seen: list = []
    greedy = _greedy()
    with torch.inference_mode():
        codes = torch.stack([step[0] for step, _ in reference.frames(
            full, greedy, greedy, [torch.Generator()], FRAMES, on_logits=lambda g, x: seen.append((g, x)))])
    del reference
    results: dict[str, list[float] | None] = {}
    for quantize in CANDIDATES:
        mine: list = []
        try:
            talker = Talker(model.model, quantize, threads)
            with torch.inference_mode():
                for _ in talker.frames(prefill, greedy, greedy, [torch.Generator()], FRAMES, forced=codes,
                                       on_logits=lambda g, x: mine.append((g, x))):
                    pass
        except Exception as error:  # noqa: BLE001 - no onnxruntime, an old one, odd shapes: this format is out
            log.warning("calibration: %s unavailable: %s", quantize, error)
            results[quantize] = None
            continue
        results[quantize] = agreement(mine, seen[:len(mine)], talker.groups)
        if talkers is not None:
            talkers[quantize] = talker
    log.info("calibration: %s", results)
    return results


def agreement(mine: list, exact: list, groups: int) -> list[float]:
    """Share of steps, per code group, where the two top choices are the same code."""
    same = np.zeros(groups)
    steps = np.zeros(groups)
    for (group, a), (other, b) in zip(mine, exact):
        assert group == other
        same[group] += float((a.argmax(-1) == b.argmax(-1)).float().mean())
        steps[group] += 1
    return [float(x) for x in same / np.maximum(steps, 1)]


def calibration_prefill(model):
    """The talker's prompt for the calibration line, in a voice made from a fixed synthetic clip (x-vector)."""
    from ...config import SAMPLE_RATE
    from ..base import Sampling, SpeakJob, VoicePrompt
    from .engine import SPEAKER_EMBEDDING, build_prefill

    item = model.create_voice_clone_prompt(ref_audio=(synthetic_voice(SAMPLE_RATE), SAMPLE_RATE),
                                           x_vector_only_mode=True)[0]
    prompt = VoicePrompt(mode="xvector", ref_text="", fingerprint="",
                         tensors={SPEAKER_EMBEDDING: item.ref_spk_embedding.detach()})
    job = SpeakJob(LINE, "English", prompt, Sampling(temperature=0), (0,), FRAMES / 12.5)
    with torch.inference_mode():
        return build_prefill(model, job)


def synthetic_voice(rate: int, seconds: float = 3.0) -> np.ndarray:
    """A steady, voice-like tone (a 140 Hz pitch with vibrato and falling harmonics): the same on every machine."""
    t = np.arange(int(rate * seconds)) / rate
    phase = 2 * np.pi * (140 * t + 3 * np.sin(2 * np.pi * 5 * t) / (2 * np.pi * 5))
    wave = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2
    return (0.2 * wave * envelope / np.abs(wave).max()).astype(np.float32)


def float32_copy(inner) -> SimpleNamespace:
    """The talker and code predictor in float32, as a stand-in for the model (text weights are not copied)."""
    talker = inner.talker
    # The frame loop never reads the text embedding: leave it out rather than share it, since `.float()` on
    # the copy would convert a shared module in the model itself.
    memo = {id(talker.model.text_embedding): torch.nn.Identity()}
    model = copy.deepcopy(talker.model, memo).float()
    return SimpleNamespace(config=inner.config, talker=SimpleNamespace(
        model=model, codec_head=copy.deepcopy(talker.codec_head).float(),
        code_predictor=copy.deepcopy(talker.code_predictor).float()))


def _greedy():
    from ..sampling import Picking

    return Picking(0.0, 50, 1.0, 1.0)


def _as(prefill, dtype):
    from .talker import Prefill

    return Prefill(prefill.embeds.to(dtype), prefill.trailing.to(dtype), prefill.pad.to(dtype))


def _onnxruntime_version() -> str:
    try:
        import onnxruntime
    except ImportError:
        return "no onnxruntime"
    return f"onnxruntime {onnxruntime.__version__}"


def _read(folder: Path) -> dict:
    try:
        return json.loads((Path(folder) / CACHE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write(folder: Path, key: str, measured: dict) -> None:
    """Keep the figures beside the voices (best effort: a read-only folder only means measuring again)."""
    path = Path(folder) / CACHE
    with _cache_lock:
        known = _read(folder)
        known[key] = measured
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            scratch = path.with_suffix(".tmp")
            scratch.write_text(json.dumps(known, indent=1), encoding="utf-8")
            scratch.replace(path)
        except OSError as error:
            log.warning("could not keep the calibration figures in %s: %s", path, error)
