"""What the core may ask of any TTS engine, and the data that crosses that boundary.

An engine loads its model lazily (once, behind a lock), turns a reference clip
into a reusable `VoicePrompt`, serialises prompts as plain tensors (validated on
the way back in), and generates codec frames one at a time through
`generate_takes` (a batch of takes, each with its own random generator), which
both one-shot synthesis and streaming use, so the two give the same audio. Only
an engine's own module imports its model package; `create_engine` picks the
module by name.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import random
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, NamedTuple

import numpy as np

from . import audio
from .config import ENGINES, FRAME_RATE, SAMPLE_RATE, Settings
from .errors import Cancelled, InvalidInput, ModelUnavailable
from .languages import LANGUAGES, normalise_language
from .text import validate_text

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

MODES = ("icl", "xvector")
HARD_FRAME_CAP = 4096  # about 5.5 minutes of audio in one sentence
PROMPT_CACHE_SIZE = 16
MAX_TAKES = 8


@dataclass(frozen=True)
class Capabilities:
    languages: tuple[str, ...] = LANGUAGES
    modes: tuple[str, ...] = MODES
    streaming: str = "frame"  # the smallest unit a stream can deliver
    tags: bool = False  # paralinguistic tags such as [laugh]
    sample_rate: int = SAMPLE_RATE
    frame_rate: float = FRAME_RATE


@dataclass(frozen=True)
class Runtime:
    device: str  # torch device string, e.g. "cuda:0"
    dtype: str
    attn: str
    reason: str = ""  # why auto chose this dtype

    def describe(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.device}, {self.dtype}{why}, {self.attn} attention"


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.9
    top_p: float = 1.0
    top_k: int = 50
    repetition_penalty: float = 1.05
    seed: int | None = None  # None: a fresh seed, reported back with the take
    max_frames: int | None = None  # per sentence; None: derived from the text length

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
    """What an engine needs of a reference voice; reusable across many syntheses.

    `tensors` are the engine's own (for Qwen: `speaker_embedding` and, in ICL
    mode, `ref_code`); they are what the library stores, keyed by `fingerprint`.
    """

    mode: str
    ref_text: str
    fingerprint: str  # of the model that made it
    tensors: dict = field(default_factory=dict)

    def tensor(self, name: str) -> "torch.Tensor | None":
        return self.tensors.get(name)


class Generated(NamedTuple):
    """One take of a one-shot request."""

    samples: np.ndarray
    seed: int
    frames: int  # generated, before any closing silence a decoder adds


@dataclass(frozen=True)
class SynthesisRequest:
    text: str
    language: str
    prompt: VoicePrompt
    sampling: Sampling = field(default_factory=Sampling)


def frame_budget(text: str) -> int:
    """Generous upper bound on frames for `text`, so a runaway generation stops."""
    return min(HARD_FRAME_CAP, 40 + 6 * len(text))


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


class FairLock:
    """A lock granted in arrival order: the UI, scripts and apps share the engine without starving each other.

    CPython's own locks make no ordering promise, so a busy door could win the engine
    again and again; here a releasing owner hands the lock straight to the oldest waiter.
    """

    def __init__(self):
        self._guard = threading.Lock()
        self._waiters: deque[threading.Event] = deque()
        self._owned = False

    def acquire(self) -> bool:
        with self._guard:
            if not self._owned and not self._waiters:
                self._owned = True
                return True
            turn = threading.Event()
            self._waiters.append(turn)
        turn.wait()  # ownership is handed over by release()
        return True

    def release(self) -> None:
        with self._guard:
            if self._waiters:
                self._waiters.popleft().set()
            else:
                self._owned = False

    def locked(self) -> bool:
        return self._owned

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


class Engine:
    """Base of every engine: lazy loading, prompt cache, request checks, one generation at a time.

    Subclasses implement `_load`, `_encode_prompt`, `prompt_to_tensors`,
    `prompt_from_tensors`, `generate_takes`, `decoder` and `decode`.
    """

    name = "engine"
    label = "This engine"  # as users know it, for messages
    capabilities = Capabilities()

    def __init__(self, settings: Settings):
        self.settings = settings
        self._state: tuple | None = None  # (model, runtime, fingerprint), published together
        self._load_lock = threading.Lock()
        self.generation_lock = FairLock()
        self._prompt_cache: OrderedDict[tuple, VoicePrompt] = OrderedDict()
        self._cache_lock = threading.Lock()  # the cache is shared by request threads
        self.load_error: str | None = None

    # -- loading -----------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._state is not None

    @property
    def model_name(self) -> str:
        """The Hub id or folder this engine loads (each engine has its own setting)."""
        return self.settings.model

    def status(self) -> str:
        if self._state is not None:
            return f"TTS model {self.model_name} loaded on {self._state[1].describe()}."
        if self.load_error:
            return self.load_error
        return f"TTS model {self.model_name} loads on first use."

    def load(self, progress: Callable[[str], None] | None = None):
        """Load the model once; raise ModelUnavailable with advice if that fails."""
        if self._state is not None:
            return self._state[0]
        with self._load_lock:
            if self._state is None:
                if progress:
                    progress(f"Loading TTS model {self.model_name} ...")
                try:
                    state = self._load()
                except ModelUnavailable as error:
                    self.load_error = str(error)
                    raise
                self.load_error = None
                self._state = state  # model, runtime and fingerprint appear at once
                log.info("loaded %s on %s", self.model_name, state[1].describe())
        return self._state[0]

    def _load(self) -> tuple:
        raise NotImplementedError

    @property
    def model(self):
        return self.load()

    @property
    def runtime(self) -> Runtime:
        self.load()
        return self._state[1]

    @property
    def fingerprint(self) -> str:
        self.load()
        return self._state[2]

    def languages(self) -> tuple[str, ...]:
        return self.capabilities.languages

    def language_for(self, language: str | None) -> str:
        """The language to speak: Auto on a one-language engine is that language; others are refused clearly."""
        name = normalise_language(language)
        spoken = self.languages()
        if name in spoken:
            return name
        if name == "Auto" and len(spoken) == 1:
            return spoken[0]
        raise InvalidInput(f"{self.label} speaks {', '.join(spoken)} only, not {name}. Choose "
                           f"{'that' if len(spoken) == 1 else 'one of those'}, or another engine.")

    def mode_for(self, mode: str | None) -> str:
        """The cloning mode used for `mode`: an engine with one way of cloning always uses it."""
        if mode not in MODES:
            raise InvalidInput(f"Cloning mode must be one of {', '.join(MODES)}.")
        return mode if mode in self.capabilities.modes else self.capabilities.modes[0]

    # -- prompts -----------------------------------------------------------------------------
    def make_prompt(self, clip: audio.Clip, ref_text: str | None, mode: str = "icl") -> VoicePrompt:
        """Encode reference audio (and its transcript in ICL mode) into a reusable prompt."""
        mode = self.mode_for(mode)
        ref_text = check_ref_text(ref_text, mode, self.settings.max_ref_text_chars)
        audio.require_speech_level(clip)
        clip = audio.resample(clip, self.capabilities.sample_rate)
        key = (clip.checksum(), ref_text if mode == "icl" else "", mode)
        fingerprint = self.fingerprint
        with self._cache_lock:
            cached = self._prompt_cache.get(key)
            if cached is not None and cached.fingerprint == fingerprint:
                self._prompt_cache.move_to_end(key)
                return cached
        prompt = self._encode_prompt(clip, ref_text, mode)
        with self._cache_lock:
            self._prompt_cache[key] = prompt
            while len(self._prompt_cache) > PROMPT_CACHE_SIZE:
                self._prompt_cache.popitem(last=False)
        return prompt

    def _encode_prompt(self, clip: audio.Clip, ref_text: str, mode: str) -> VoicePrompt:
        raise NotImplementedError

    def prompt_to_tensors(self, prompt: VoicePrompt) -> dict:
        """CPU tensors to store (safetensors), the inverse of `prompt_from_tensors`."""
        raise NotImplementedError

    def prompt_from_tensors(self, tensors: dict, mode: str, ref_text: str, fingerprint: str) -> VoicePrompt:
        """A prompt from stored tensors, checked against this model (shapes, dtypes, ranges, finiteness)."""
        raise NotImplementedError

    # -- synthesis ---------------------------------------------------------------------------
    def check_request(self, request: SynthesisRequest) -> SynthesisRequest:
        text = validate_text(request.text, self.settings.max_text_chars)
        language = self.language_for(request.language)
        request.sampling.validate()
        if request.prompt.fingerprint != self.fingerprint:
            raise InvalidInput("This voice prompt was made by a different model; rebuild it from its reference.")
        return SynthesisRequest(text, language, request.prompt, request.sampling)

    def choose_seed(self, sampling: Sampling) -> int:
        """The take's seed: the asked one, else a fresh one that is reported back so the take can be redone."""
        return sampling.seed if sampling.seed is not None else random.randrange(2**32)

    def generators(self, seeds: list[int]) -> list:
        """One random generator per take; a take draws only from its own, so its seed alone decides it."""
        import torch

        return [torch.Generator().manual_seed(seed) for seed in seeds]

    def generate_takes(self, request: SynthesisRequest, text: str, limit: int, generators: list) -> Iterator:
        """Frames of `text` for len(generators) takes at once, as they are made: (codes, alive) per frame.

        `codes` is [takes, ...] and `alive` [takes] says which takes are still speaking; a
        take that has ended stays ended. The caller holds generation_lock; closing the
        iterator (or simply not asking for the next frame) ends generation between frames.
        """
        raise NotImplementedError

    def generate_frames(self, request: SynthesisRequest, text: str, limit: int, generator) -> Iterator:
        """One take of `text`, frame by frame."""
        frames = self.generate_takes(request, text, limit, [generator])
        try:
            for codes, alive in frames:
                if not bool(alive[0]):
                    return
                yield codes[0]
        finally:
            frames.close()

    @property
    def busy(self) -> bool:
        """Whether a generation holds the model now."""
        return self.generation_lock.locked()

    def decoder(self, prompt: VoicePrompt):
        """An incremental decoder: `push(codes) -> samples`, then `finish()`, equal to the one-shot `decode`."""
        raise NotImplementedError

    def decode(self, codes: "torch.Tensor", prompt: VoicePrompt) -> np.ndarray:
        """One-shot decode: the incremental decoder over every frame (an engine may override it with a faster
        whole-take decode that gives the same samples)."""
        decoder = self.decoder(prompt)
        return np.concatenate([decoder.push(codes), decoder.finish()])

    def synthesize(self, request: SynthesisRequest, should_stop: Callable[[], bool] | None = None
                   ) -> tuple[np.ndarray, int]:
        """Generate the whole take, then decode it (no streaming). Returns (samples, seed)."""
        made = self.synthesize_takes(request, 1, should_stop)[0]
        return made.samples, made.seed

    def synthesize_takes(self, request: SynthesisRequest, takes: int = 1,
                         should_stop: Callable[[], bool] | None = None) -> list["Generated"]:
        """`takes` takes of one request in one batch, with seeds seed, seed+1, ...

        `should_stop` is asked between frames, so a cancelled request ends within a frame.
        """
        import torch

        if not 1 <= takes <= MAX_TAKES:
            raise InvalidInput(f"Takes must be between 1 and {MAX_TAKES}.")
        request = self.check_request(request)
        frames: list[list] = [[] for _ in range(takes)]
        limit = request.sampling.max_frames or frame_budget(request.text)
        first = self.choose_seed(request.sampling)
        seeds = [(first + slot) % 2**32 for slot in range(takes)]
        with self.generation_lock:
            made = self.generate_takes(request, request.text, limit, self.generators(seeds))
            try:
                for codes, alive in made:
                    if should_stop is not None and should_stop():
                        raise Cancelled("Generation was stopped.")
                    for slot in range(takes):
                        if bool(alive[slot]):
                            frames[slot].append(codes[slot])
            finally:
                made.close()
            with torch.inference_mode():
                return [Generated(self.decode(torch.stack(kept), request.prompt) if kept else
                                  np.zeros(0, np.float32), seed, len(kept)) for kept, seed in zip(frames, seeds)]


def check_ref_text(ref_text: str | None, mode: str, max_chars: int) -> str:
    """The reference transcript, bounded: it goes into every prefill."""
    ref_text = (ref_text or "").strip()
    if len(ref_text) > max_chars:
        raise InvalidInput(f"The reference transcript is {len(ref_text)} characters; the limit is {max_chars}. "
                           "A 3-15 s reference needs far less: trim the clip and its transcript together.")
    if mode == "icl" and not ref_text:
        raise InvalidInput("ICL cloning needs the transcript of the reference clip (ref_text). "
                           "Transcribe it, type it, or switch to x-vector-only mode.")
    return ref_text


def create_engine(settings: Settings, name: str = "qwen") -> Engine:
    """The engine called `name`, not yet loaded (its model package is imported on first use)."""
    if name not in ENGINES:
        raise InvalidInput(f"Unknown engine {name!r}. Choose one of: {', '.join(ENGINES)}.")
    module, _, cls = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module), cls)(settings)
