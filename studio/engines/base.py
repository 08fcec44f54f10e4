"""The engine protocol: what the core may ask of any engine, and the data that crosses it.

An engine turns (voice prompt, one sentence, sampling) into audio. The core sees
capabilities, `load`/`status`/`fingerprint`, prompts (made from a clip, stored as
opaque bytes, checked on the way back in) and `speak`, an iterator of audio pieces
for one sentence and N takes. Frames, codes, caches and random generators stay
inside the engine, so an engine that makes audio any other way (a remote server,
a browser) fits the same protocol. `engines.frames.FrameEngine` is the shared
machinery of the local codec language models.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from .. import audio
from ..config import FRAME_RATE, SAMPLE_RATE, Settings
from ..errors import InvalidInput, ModelUnavailable
from ..languages import LANGUAGES, normalise_language

if TYPE_CHECKING:
    import torch

    from .runtime import Runtime

log = logging.getLogger(__name__)

MODES = ("icl", "xvector")
MODE_NAMES = {"icl": "ICL (reference audio and its transcript)", "xvector": "x-vector (reference audio alone)"}
MAX_TAKES = 8
LONGEST_SENTENCE_SECONDS = 4096 / FRAME_RATE  # about 5.5 minutes of audio in one sentence, for every engine
PROMPT_CACHE_SIZE = 16
PROMPT_FORMAT = "voice-studio-prompt"


@dataclass(frozen=True)
class Capabilities:
    """What an engine can do, as the core, the doors and the page describe it."""

    languages: tuple[str, ...] = LANGUAGES
    modes: tuple[str, ...] = MODES  # the first is the engine's own way of cloning
    sample_rate: int = SAMPLE_RATE
    step_seconds: float = 1 / FRAME_RATE  # the smallest piece of audio a stream can deliver
    tags: bool = False  # paralinguistic tags such as [laugh]
    takes_at_once: int = MAX_TAKES  # takes of one line generated together
    voice_files: tuple[str, ...] = ()  # suffixes of other programs' voice files it reads, e.g. ".pt"
    seeds: bool = True  # whether a seed decides the take

    def describe(self, label: str) -> str:
        """One line for a form: languages, cloning modes, tags and the stream's step."""
        languages = ("English only" if self.languages == ("English",) else
                     f"{len([n for n in self.languages if n != 'Auto'])} languages")
        modes = " or ".join(MODE_NAMES.get(mode, mode) for mode in self.modes)
        if len(self.modes) == 1:
            modes = f"clones in {modes} only"
        else:
            modes = f"clones in {modes}"
        tags = "; understands tags such as [laugh]" if self.tags else ""
        seeds = "" if self.seeds else "; ignores seeds, so a take cannot be repeated"
        return (f"**{label}**: {languages}; {modes}{tags}; streams in steps of {self.step_seconds * 1000:.0f} ms"
                f"{seeds}.")


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.9
    top_p: float = 1.0
    top_k: int = 50
    repetition_penalty: float = 1.05
    seed: int | None = None  # None: a fresh seed, reported back with the take
    max_seconds: float | None = None  # audio per sentence; None: derived from the sentence's length

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
        if self.max_seconds is not None and not 0 < self.max_seconds <= LONGEST_SENTENCE_SECONDS:
            raise InvalidInput(f"Max length must be above 0 and at most {LONGEST_SENTENCE_SECONDS:.0f} seconds "
                               "of audio per sentence.")


def sentence_budget(text: str) -> float:
    """Generous upper bound on a sentence's audio in seconds, so a runaway generation stops (any engine)."""
    return min(LONGEST_SENTENCE_SECONDS, (40 + 6 * len(text)) / FRAME_RATE)


@dataclass
class VoicePrompt:
    """What an engine needs of a reference voice; reusable across many syntheses.

    `tensors` are the engine's own; the core treats a prompt as opaque and the library
    stores it as the bytes `Engine.prompt_bytes` gives, keyed by `fingerprint`.
    """

    mode: str
    ref_text: str
    fingerprint: str  # of the model that made it
    tensors: dict = field(default_factory=dict)

    def tensor(self, name: str) -> "torch.Tensor | None":
        return self.tensors.get(name)


@dataclass(frozen=True)
class SpeakJob:
    """One sentence for `len(seeds)` takes: what `Engine.speak` is asked to say."""

    text: str
    language: str
    prompt: VoicePrompt
    sampling: Sampling
    seeds: tuple[int, ...]  # one per take; a take's seed alone decides it
    max_seconds: float  # audio per take for this sentence

    @property
    def takes(self) -> int:
        return len(self.seeds)


@dataclass
class Piece:
    """Audio of one take, as it is made. Empty samples are a heartbeat: a step was made, nothing to hear yet."""

    take: int
    samples: np.ndarray
    cut: bool = False  # this take reached the job's max_seconds


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


class Engine:
    """Base of every engine: lazy loading, status, the prompt cache and its bytes, language and mode rules.

    An engine implements `_load` (returning (model, runtime, fingerprint, ...)), `_encode_prompt`,
    `prompt_to_tensors`, `prompt_from_tensors` and `speak`.
    """

    name = "engine"
    label = "This engine"  # as users know it, for messages
    capabilities = Capabilities()
    batching = False  # requests speak together in one running batch, rather than one after another

    def __init__(self, settings: Settings):
        self.settings = settings
        self._state: tuple | None = None  # (model, runtime, fingerprint, ...), published together
        self._load_lock = threading.Lock()
        self._prompt_cache: OrderedDict[tuple, VoicePrompt] = OrderedDict()
        self._cache_lock = threading.Lock()  # the cache is shared by request threads
        self.load_error: str | None = None

    # -- loading -----------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._state is not None

    @property
    def model_name(self) -> str:
        """The Hub id, folder or address this engine loads (each engine has its own setting)."""
        return self.settings.model

    def status(self) -> str:
        if self._state is not None:
            return f"{self.label} model {self.model_name} loaded on {self._state[1].describe()}."
        if self.load_error:
            return self.load_error
        return f"{self.label} model {self.model_name} loads on first use."

    def load(self, progress: Callable[[str], None] | None = None):
        """Load the model once; raise ModelUnavailable with advice if that fails."""
        if self._state is not None:
            return self._state[0]
        with self._load_lock:
            if self._state is None:
                if progress:
                    progress(f"Loading {self.label} model {self.model_name} ...")
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
    def runtime(self) -> "Runtime":
        self.load()
        return self._state[1]

    @property
    def fingerprint(self) -> str:
        self.load()
        return self._state[2]

    @property
    def busy(self) -> bool:
        """Whether a generation holds the model now."""
        return False

    # -- what it speaks ----------------------------------------------------------------------
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
        """The cloning mode asked for (None: the engine's own); one the engine cannot clone in is refused."""
        modes = self.capabilities.modes
        if mode is None or mode == "":
            return modes[0]
        if mode not in modes:
            named = " or ".join(MODE_NAMES.get(m, m) for m in modes)
            raise InvalidInput(f"{self.label} clones in {named} only, not {MODE_NAMES.get(mode, mode)}. "
                               "Choose that mode, or another engine.")
        return mode

    def voice_mode(self, stored: str) -> str:
        """The mode to hear a saved voice in: its own where this engine has it, else the engine's own."""
        return stored if stored in self.capabilities.modes else self.capabilities.modes[0]

    # -- prompts -----------------------------------------------------------------------------
    def make_prompt(self, clip: audio.Clip, ref_text: str | None, mode: str | None = None) -> VoicePrompt:
        """Encode reference audio (and its transcript where the mode uses it) into a reusable prompt."""
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
        """CPU tensors to store, the inverse of `prompt_from_tensors`."""
        raise NotImplementedError

    def prompt_from_tensors(self, tensors: dict, mode: str, ref_text: str, fingerprint: str) -> VoicePrompt:
        """A prompt from stored tensors, checked against this model (shapes, dtypes, ranges, finiteness)."""
        raise NotImplementedError

    def prompt_bytes(self, prompt: VoicePrompt) -> bytes:
        """The prompt as bytes to store (safetensors: nothing is ever unpickled)."""
        from safetensors.torch import save

        return save(self.prompt_to_tensors(prompt),
                    metadata={"format": PROMPT_FORMAT, "mode": prompt.mode, "fingerprint": prompt.fingerprint})

    def check_prompt(self, data: bytes, mode: str, ref_text: str) -> VoicePrompt:
        """A stored prompt, parsed and checked against the loaded model before any use."""
        from safetensors.torch import load

        try:
            tensors = load(data)
        except Exception as error:  # safetensors raises its own error types for damaged data
            raise InvalidInput("The stored voice prompt is damaged.") from error
        return self.prompt_from_tensors(tensors, self.voice_mode(mode), ref_text, self.fingerprint)

    def read_voice_file(self, path) -> VoicePrompt:
        """A prompt from another program's voice file (a suffix in `capabilities.voice_files`)."""
        raise InvalidInput(f"{self.label} reads no voice files of other programs.")

    # -- speech ------------------------------------------------------------------------------
    def speak(self, job: SpeakJob) -> Iterator[Piece]:
        """Audio for one sentence and `job.takes` takes, as it is made.

        Closing the iterator (or no longer asking for the next piece) stops generation within
        one step and frees the model. Each take ends with a piece whose `cut` says whether it
        reached `job.max_seconds`.
        """
        raise NotImplementedError


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
