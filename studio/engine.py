"""The Qwen3-TTS model, loaded once and shared: voice prompts and synthesis.

`Engine` wraps qwen-tts' `Qwen3TTSModel`. It loads lazily behind a lock, picks
device, dtype and attention for the machine, validates what users send, and runs
one generation at a time (the model and torch's random generator are shared
state, so "same seed, same audio" needs serialised generation).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import random
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from . import audio
from .config import Settings
from .errors import InvalidInput, ModelUnavailable

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

SAMPLE_RATE = 24000
FRAME_RATE = 12.5
SAMPLES_PER_FRAME = 1920
MODES = ("icl", "xvector")
# Qwen3-TTS' languages, known before the model is loaded so the UI can offer them.
LANGUAGES = ("Auto", "Chinese", "English", "Japanese", "Korean", "German", "French", "Russian",
             "Portuguese", "Spanish", "Italian")
HARD_FRAME_CAP = 4096  # about 5.5 minutes of audio in one sentence


@dataclass(frozen=True)
class Runtime:
    device: str  # torch device string, e.g. "cuda:0"
    dtype: str
    attn: str

    def describe(self) -> str:
        return f"{self.device}, {self.dtype}, {self.attn} attention"


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.9
    top_p: float = 1.0
    top_k: int = 50
    repetition_penalty: float = 1.05
    seed: int | None = None  # None: a fresh seed, reported back with the take
    max_frames: int | None = None  # None: derived from the text length

    def validate(self) -> None:
        if not 0 <= self.temperature <= 2:
            raise InvalidInput("Temperature must be between 0 (greedy) and 2.")
        if not 0 < self.top_p <= 1:
            raise InvalidInput("Top-p must be above 0 and at most 1.")
        if not 0 <= self.top_k <= 1000:
            raise InvalidInput("Top-k must be between 0 and 1000 (0 disables it).")
        if not 1 <= self.repetition_penalty <= 2:
            raise InvalidInput("Repetition penalty must be between 1 and 2.")
        if self.seed is not None and not 0 <= self.seed < 2**32:
            raise InvalidInput("Seed must be a whole number from 0 to 4294967295.")
        if self.max_frames is not None and not 1 <= self.max_frames <= HARD_FRAME_CAP:
            raise InvalidInput(f"Max length must be between 1 and {HARD_FRAME_CAP} frames (12.5 per second).")


@dataclass
class VoicePrompt:
    """What the model needs of a reference voice; reusable across many syntheses."""

    speaker_embedding: "torch.Tensor"  # (hidden,)
    ref_code: "torch.Tensor | None"  # (frames, 16) in ICL mode, None in x-vector mode
    mode: str
    ref_text: str
    fingerprint: str  # of the model that made it

    @property
    def ref_frames(self) -> int:
        return 0 if self.ref_code is None else int(self.ref_code.shape[0])


@dataclass(frozen=True)
class SynthesisRequest:
    text: str
    language: str
    prompt: VoicePrompt
    sampling: Sampling = field(default_factory=Sampling)


def choose_runtime(settings: Settings) -> Runtime:
    """Resolve auto settings: CUDA > MPS > CPU; bf16 on CUDA; flash-attn only if importable on CUDA."""
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
    dtype = settings.dtype
    if dtype == "auto":
        if device == "cuda":
            dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        elif device == "cpu":
            dtype = fastest_cpu_dtype()
        else:
            dtype = "float32"  # safe on MPS
    flash_ok = device == "cuda" and importlib.util.find_spec("flash_attn") is not None
    attn = settings.attn
    if attn == "auto":
        attn = "flash_attention_2" if flash_ok else "sdpa"
    elif attn == "flash_attention_2" and not flash_ok:
        raise ModelUnavailable("flash_attention_2 needs a CUDA GPU and the flash-attn package; use --attn sdpa.")
    return Runtime(device="cuda:0" if device == "cuda" else device, dtype=dtype, attn=attn)


@functools.lru_cache(maxsize=1)
def fastest_cpu_dtype() -> str:
    """bfloat16 where this CPU runs it natively (about 2x faster per frame), else float32.

    Measured with a small matmul (about 20 ms); CPUs without bf16 units run it
    many times slower, so the choice is made per machine, once.
    """
    import torch

    x = torch.randn(16, 1024)
    w = torch.randn(1024, 1024)
    timings = {}
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        a, b = x.to(dtype), w.to(dtype)
        a @ b  # warm-up
        started = time.perf_counter()
        for _ in range(10):
            a @ b
        timings[name] = time.perf_counter() - started
    return "bfloat16" if timings["bfloat16"] < 0.8 * timings["float32"] else "float32"


def frame_budget(text: str) -> int:
    """Generous upper bound on frames for `text`, so a runaway generation stops."""
    return min(HARD_FRAME_CAP, 40 + 6 * len(text))


def model_fingerprint(directory: str | Path) -> str:
    """Identify a checkpoint by its config and samples of its weight files (cheap, content-based)."""
    directory = Path(directory)
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if path.name == "config.json":
            digest.update(path.read_bytes())
        elif path.suffix == ".safetensors":
            size = path.stat().st_size
            digest.update(f"{path.relative_to(directory)}:{size}".encode())
            with path.open("rb") as handle:
                digest.update(handle.read(1 << 20))
                handle.seek(max(0, size - (1 << 20)))
                digest.update(handle.read(1 << 20))
    return digest.hexdigest()[:16]


def normalise_language(language: str | None, supported: tuple[str, ...] = LANGUAGES) -> str:
    value = (language or "Auto").strip()
    for name in supported:
        if name.lower() == value.lower():
            return name
    raise InvalidInput(f"Language {value!r} is not supported. Choose one of: {', '.join(supported)}.")


def validate_text(text: str | None, max_chars: int) -> str:
    cleaned = (text or "").strip()
    if not cleaned:
        raise InvalidInput("Type the text you want the voice to say.")
    if len(cleaned) > max_chars:
        raise InvalidInput(f"The text is {len(cleaned)} characters; the limit is {max_chars}. "
                           "Split it into several requests.")
    if not any(ch.isalnum() for ch in cleaned):
        raise InvalidInput("The text has no words to speak.")
    return cleaned


class Engine:
    """One shared Qwen3-TTS Base model; safe to call from many threads."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._model = None
        self._runtime: Runtime | None = None
        self._fingerprint: str | None = None
        self._load_lock = threading.Lock()
        self.generation_lock = threading.Lock()
        self._prompt_cache: OrderedDict[tuple, VoicePrompt] = OrderedDict()
        self._cache_lock = threading.Lock()  # the cache is shared by request threads
        self.load_error: str | None = None

    # -- loading -----------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._model is not None

    def status(self) -> str:
        if self._model is not None:
            return f"TTS model {self.settings.model} loaded on {self._runtime.describe()}."
        if self.load_error:
            return self.load_error
        return f"TTS model {self.settings.model} loads on first use."

    def load(self, progress: Callable[[str], None] | None = None):
        """Load the model once; raise ModelUnavailable with advice if that fails."""
        if self._model is not None:
            return self._model
        with self._load_lock:
            if self._model is not None:
                return self._model
            if progress:
                progress(f"Loading TTS model {self.settings.model} ...")
            try:
                self._model, self._runtime, self._fingerprint = self._load()
                self.load_error = None
            except ModelUnavailable as error:
                self.load_error = str(error)
                raise
            log.info("loaded %s on %s", self.settings.model, self._runtime.describe())
        return self._model

    def _load(self):
        import torch
        from qwen_tts import Qwen3TTSModel

        runtime = choose_runtime(self.settings)
        name = self.settings.model
        local = Path(name).expanduser()
        if local.exists() and not (local / "config.json").is_file():
            raise ModelUnavailable(f"{local} has no config.json: it is not a Qwen3-TTS model folder.")
        source = str(local) if local.exists() else name
        try:
            model = Qwen3TTSModel.from_pretrained(
                source, device_map=runtime.device, dtype=getattr(torch, runtime.dtype),
                attn_implementation=runtime.attn,
            )
        except torch.cuda.OutOfMemoryError as error:
            raise ModelUnavailable(f"Not enough GPU memory to load {name}. Close other GPU programs or start "
                                   "with --device cpu.") from error
        except (OSError, ValueError, RuntimeError, ImportError) as error:
            raise ModelUnavailable(
                f"Could not load the TTS model {name!r}: {_first_line(error)}. If this machine is offline or "
                "the Hub is unreachable, download the model elsewhere and start with --model /path/to/folder."
            ) from error
        if model.model.tts_model_type != "base":
            raise ModelUnavailable(f"{name} is a {model.model.tts_model_type} model; voice cloning needs a Base "
                                   "model such as Qwen/Qwen3-TTS-12Hz-0.6B-Base.")
        model.model.eval()
        directory = source if Path(source).is_dir() else _snapshot_dir(model)
        fingerprint = model_fingerprint(directory) if directory else hashlib.sha256(name.encode()).hexdigest()[:16]
        return model, runtime, fingerprint

    @property
    def model(self):
        return self.load()

    @property
    def runtime(self) -> Runtime:
        self.load()
        return self._runtime

    @property
    def fingerprint(self) -> str:
        self.load()
        return self._fingerprint

    def languages(self) -> tuple[str, ...]:
        if self._model is None:
            return LANGUAGES
        names = self._model.get_supported_languages() or []
        return tuple(["Auto"] + [n.title() for n in names if n != "auto"])

    # -- prompts -----------------------------------------------------------------------------
    def make_prompt(self, clip: audio.Clip, ref_text: str | None, mode: str = "icl") -> VoicePrompt:
        """Encode reference audio (and its transcript in ICL mode) into a reusable prompt."""
        if mode not in MODES:
            raise InvalidInput(f"Cloning mode must be one of {', '.join(MODES)}.")
        ref_text = (ref_text or "").strip()
        if mode == "icl" and not ref_text:
            raise InvalidInput("ICL cloning needs the transcript of the reference clip (ref_text). "
                               "Transcribe it, type it, or switch to x-vector-only mode.")
        audio.require_speech_level(clip)
        clip = audio.resample(clip, SAMPLE_RATE)
        key = (clip.checksum(), ref_text if mode == "icl" else "", mode)
        with self._cache_lock:
            cached = self._prompt_cache.get(key)
            if cached is not None and cached.fingerprint == self.fingerprint:
                self._prompt_cache.move_to_end(key)
                return cached
        model = self.model
        with self.generation_lock:
            item = model.create_voice_clone_prompt(
                ref_audio=(clip.samples, SAMPLE_RATE), ref_text=ref_text or None,
                x_vector_only_mode=(mode == "xvector"),
            )[0]
        prompt = VoicePrompt(
            speaker_embedding=item.ref_spk_embedding.detach(),
            ref_code=None if item.ref_code is None else item.ref_code.detach(),
            mode=mode,
            ref_text=ref_text,
            fingerprint=self.fingerprint,
        )
        with self._cache_lock:
            self._prompt_cache[key] = prompt
            while len(self._prompt_cache) > 16:
                self._prompt_cache.popitem(last=False)
        return prompt

    # -- synthesis ---------------------------------------------------------------------------
    def check_request(self, request: SynthesisRequest) -> SynthesisRequest:
        text = validate_text(request.text, self.settings.max_text_chars)
        language = normalise_language(request.language, self.languages())
        request.sampling.validate()
        if request.prompt.fingerprint != self.fingerprint:
            raise InvalidInput("This voice prompt was made by a different model; rebuild it from its reference.")
        return SynthesisRequest(text, language, request.prompt, request.sampling)

    def generate_kwargs(self, request: SynthesisRequest, text: str | None = None) -> dict:
        """Arguments for `Qwen3TTSForConditionalGeneration.generate`, as `generate_voice_clone` builds them."""
        model = self.model
        text = request.text if text is None else text
        prompt = request.prompt
        item_prompt = dict(
            ref_code=[None if prompt.ref_code is None else prompt.ref_code.to(model.device)],
            ref_spk_embedding=[prompt.speaker_embedding.to(model.device)],
            x_vector_only_mode=[prompt.mode == "xvector"],
            icl_mode=[prompt.mode == "icl"],
        )
        input_ids = model._tokenize_texts([model._build_assistant_text(text)])
        ref_ids = [None]
        if prompt.mode == "icl":
            ref_ids = [model._tokenize_texts([model._build_ref_text(prompt.ref_text)])[0]]
        s = request.sampling
        greedy = s.temperature == 0
        sampling = model._merge_generate_kwargs(
            do_sample=not greedy, top_k=s.top_k, top_p=s.top_p, temperature=max(s.temperature, 1e-5),
            repetition_penalty=s.repetition_penalty, subtalker_dosample=not greedy, subtalker_top_k=s.top_k,
            subtalker_top_p=s.top_p, subtalker_temperature=max(s.temperature, 1e-5),
            # The talker drops its last sampled frame, so ask for one more than we want.
            max_new_tokens=(s.max_frames or frame_budget(text)) + 1,
        )
        return dict(input_ids=input_ids, ref_ids=ref_ids, voice_clone_prompt=item_prompt,
                    languages=[request.language], non_streaming_mode=False, **sampling)

    def seed(self, sampling: Sampling) -> int:
        """Seed torch's generators; returns the seed so a take can be reproduced."""
        import torch

        seed = sampling.seed if sampling.seed is not None else random.randrange(2**32)
        torch.manual_seed(seed)
        return seed

    def generate_codes(self, request: SynthesisRequest, text: str | None = None) -> "torch.Tensor":
        """Run the talker to completion; returns codes (frames, 16). Caller holds generation_lock."""
        codes, _ = self.model.model.generate(**self.generate_kwargs(request, text))
        return codes[0]

    def decode(self, codes: "torch.Tensor", prompt: VoicePrompt) -> np.ndarray:
        """One-shot decode, with the reference codes as left context exactly as upstream does."""
        import torch

        tokenizer = self.model.model.speech_tokenizer
        if prompt.ref_code is not None:
            codes = torch.cat([prompt.ref_code.to(codes.device), codes], dim=0)
        wavs, _ = tokenizer.decode([{"audio_codes": codes}])
        return wavs[0][prompt.ref_frames * SAMPLES_PER_FRAME:].astype(np.float32)

    def synthesize(self, request: SynthesisRequest) -> tuple[np.ndarray, int]:
        """Generate the whole take, then decode it (no streaming). Returns (samples, seed)."""
        request = self.check_request(request)
        with self.generation_lock:
            seed = self.seed(request.sampling)
            codes = self.generate_codes(request)
            samples = self.decode(codes, request.prompt)
        return samples, seed


def _snapshot_dir(model) -> str | None:
    path = getattr(model.model.config, "_name_or_path", None)
    return path if path and Path(path).is_dir() else None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
