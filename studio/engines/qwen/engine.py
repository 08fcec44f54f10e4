"""Qwen3-TTS Base behind the engine interface: the only module that knows qwen-tts.

`QwenEngine` wraps qwen-tts' `Qwen3TTSModel`: it loads the checkpoint lazily,
builds voice prompts with `create_voice_clone_prompt`, validates stored and
imported prompt tensors against the loaded model, and generates frames with the
frame loop in `talker` (static caches, fused projections, a batch of takes
with a random generator each). qwen-tts' own nested `generate()` stays available
as `official_frames`, the reference the tests and benchmarks hold our loop to.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from ... import audio
from ...config import SAMPLES_PER_FRAME, SAMPLE_RATE
from ...errors import InvalidInput, ModelUnavailable
from ...languages import LANGUAGES
from ..base import MODES, Capabilities, Sampling, SpeakJob, VoicePrompt, check_ref_text, first_line
from ..frames import FrameEngine
from ..runtime import checkpoint_fingerprint, choose_runtime
from ..sampling import Picking
from . import calibration
from .talker import Batch, Member, Prefill, Talker

log = logging.getLogger(__name__)

SPEAKER_EMBEDDING = "speaker_embedding"
REF_CODE = "ref_code"


def split_threads(cores: int, split: bool) -> int:
    """ONNX Runtime's threads for the grouped formats: all `cores`, or, where the vocoder has a thread of its own
    (`split`), half of them, with PyTorch (which then runs the vocoder) set to the other half, so neither waits."""
    import torch

    if not split or cores < 2:
        torch.set_num_threads(cores)
        return cores
    torch.set_num_threads(cores // 2)
    return cores - cores // 2


class QwenEngine(FrameEngine):
    """One shared Qwen3-TTS Base model; safe to call from many threads."""

    name = "qwen"
    label = "Qwen3-TTS"
    capabilities = Capabilities(languages=LANGUAGES, modes=MODES, voice_files=(".pt",))
    batching = True  # every request joins one running batch (continuous batching)
    WARM_DECODERS = 8  # references whose vocoder state is kept warm

    def __init__(self, settings):
        import torch

        super().__init__(settings)
        self._warm: OrderedDict[str, object] = OrderedDict()
        self._warm_lock = threading.Lock()
        self._cores = torch.get_num_threads()  # the thread budget, before any split (a retried load splits anew)

    def status(self) -> str:
        return super().status() + self.load_note()

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
                f"Could not load the TTS model {name!r}: {first_line(error)}. If this machine is offline or "
                "the Hub is unreachable, download the model elsewhere and start with --model /path/to/folder."
            ) from error
        if model.model.tts_model_type != "base":
            raise ModelUnavailable(f"{name} is a {model.model.tts_model_type} model; voice cloning needs a Base "
                                   "model such as Qwen/Qwen3-TTS-12Hz-0.6B-Base.")
        model.model.eval()
        quantize = self.settings.quantize
        if quantize not in ("none", "auto") and runtime.device != "cpu":
            raise ModelUnavailable(f"--quantize {quantize} runs on the CPU only; leave it off on a GPU.")
        fingerprint = checkpoint_fingerprint(source, model.model.config)
        split = self.settings.decode_thread and runtime.device == "cpu" and quantize != "none"
        threads = split_threads(self._cores, split)
        if quantize == "auto":
            choice, talker = calibration.choose(model, runtime, fingerprint, self.settings.voices_dir, threads)
        else:
            choice, talker = calibration.Choice(quantize), Talker(model.model, quantize, threads)
        if choice.quantize == "none" and split:
            split_threads(self._cores, False)  # auto kept full precision: PyTorch runs the loop on every core
        runtime = dataclasses.replace(runtime, weights=choice.describe())
        return model, runtime, fingerprint, talker

    def languages(self) -> tuple[str, ...]:
        if not self.loaded:
            return LANGUAGES
        names = self.model.get_supported_languages() or []
        return tuple(["Auto"] + [n.title() for n in names if n != "auto"])

    # -- the talker's shapes -----------------------------------------------------------------
    @property
    def _talker_config(self):
        return self.model.model.config.talker_config

    @property
    def code_groups(self) -> int:
        return int(self._talker_config.num_code_groups)

    @property
    def codebook_size(self) -> int:
        return int(self._talker_config.code_predictor_config.vocab_size)

    @property
    def embedding_size(self) -> int:
        return int(self._talker_config.hidden_size)

    # -- prompts -----------------------------------------------------------------------------
    def _encode_prompt(self, clip: audio.Clip, ref_text: str, mode: str) -> VoicePrompt:
        model = self.model
        with self.generation_lock:
            item = model.create_voice_clone_prompt(
                ref_audio=(clip.samples, SAMPLE_RATE), ref_text=ref_text or None,
                x_vector_only_mode=(mode == "xvector"),
            )[0]
        tensors = {SPEAKER_EMBEDDING: item.ref_spk_embedding.detach()}
        if item.ref_code is not None and mode == "icl":
            tensors[REF_CODE] = item.ref_code.detach()
        return VoicePrompt(mode=mode, ref_text=ref_text, fingerprint=self.fingerprint, tensors=tensors)

    def prompt_to_tensors(self, prompt: VoicePrompt) -> dict:
        tensors = {SPEAKER_EMBEDDING: prompt.tensors[SPEAKER_EMBEDDING].detach().float().cpu().contiguous()}
        if prompt.tensor(REF_CODE) is not None:
            tensors[REF_CODE] = prompt.tensors[REF_CODE].detach().long().cpu().contiguous()
        return tensors

    def prompt_from_tensors(self, tensors: dict, mode: str, ref_text: str, fingerprint: str) -> VoicePrompt:
        import torch

        embedding = self._checked_embedding(tensors.get(SPEAKER_EMBEDDING))
        code = self._checked_codes(tensors.get(REF_CODE)) if mode == "icl" else None
        model = self.model
        checked = {SPEAKER_EMBEDDING: embedding.to(device=model.device, dtype=model.model.dtype)}
        if code is not None:
            checked[REF_CODE] = code.to(device=model.device, dtype=torch.long)
        return VoicePrompt(mode=mode, ref_text=ref_text, fingerprint=fingerprint, tensors=checked)

    def read_voice_file(self, path) -> VoicePrompt:
        """The first voice of a `.pt` file saved by the official Qwen3-TTS demo (`{"items": [...]}`).

        Read with `weights_only=True`: plain tensors and containers, never arbitrary objects.
        """
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - any failure means "not a safe .pt voice file"
            raise InvalidInput("That file is not a voice file saved by the official Qwen3-TTS demo "
                               "(it could not be read safely).") from error
        items = payload.get("items") if isinstance(payload, dict) else None
        if not isinstance(items, list) or not items:
            raise InvalidInput("That .pt file holds no voice prompt items.")
        return self.prompt_from_official(items[0])

    def prompt_from_official(self, item: dict) -> VoicePrompt:
        """A prompt from one item of the official demo's `.pt` voice file, checked like any import."""
        if not isinstance(item, dict):
            raise InvalidInput("That .pt file holds no voice prompt items.")
        code = item.get("ref_code")
        xvector = bool(item.get("x_vector_only_mode", code is None))
        ref_text = item.get("ref_text") or ""
        if not isinstance(ref_text, str):
            raise InvalidInput("The voice file's ref_text is not text.")
        mode = "xvector" if xvector else "icl"
        tensors = {SPEAKER_EMBEDDING: item.get("ref_spk_embedding")}
        if not xvector:
            tensors[REF_CODE] = code
        ref_text = check_ref_text(ref_text, mode, self.settings.max_ref_text_chars)
        return self.prompt_from_tensors(tensors, mode, ref_text, self.fingerprint)

    def _checked_embedding(self, embedding):
        import torch

        size = self.embedding_size
        if (not torch.is_tensor(embedding) or embedding.ndim != 1 or embedding.shape[0] != size
                or not embedding.is_floating_point()):
            raise InvalidInput(f"The voice prompt's speaker embedding does not fit this model (expected {size} "
                               "values). It was probably made by a different model size.")
        if not bool(torch.isfinite(embedding).all()):
            raise InvalidInput("The voice prompt's speaker embedding has invalid (NaN or infinite) values.")
        if float(embedding.float().abs().max()) > 1e4:
            raise InvalidInput("The voice prompt's speaker embedding has absurd values.")
        return embedding.float()

    def _checked_codes(self, code):
        import torch

        groups, size = self.code_groups, self.codebook_size
        longest = math.ceil(self.settings.max_reference_seconds / self.capabilities.step_seconds) + 2
        if (not torch.is_tensor(code) or code.ndim != 2 or code.shape[1] != groups
                or code.dtype not in (torch.int64, torch.int32, torch.int16)):
            raise InvalidInput(f"The voice prompt's reference codes are missing or malformed (expected frames x "
                               f"{groups} whole numbers).")
        if not 1 <= code.shape[0] <= longest:
            raise InvalidInput(f"The voice prompt's reference codes hold {code.shape[0]} frames; a reference of "
                               f"at most {self.settings.max_reference_seconds:.0f} s has 1 to {longest}.")
        if int(code.min()) < 0 or int(code.max()) >= size:
            raise InvalidInput(f"The voice prompt's reference codes are out of range (0 to {size - 1}).")
        return code.long()

    # -- generation --------------------------------------------------------------------------
    @property
    def talker(self):
        """Our frame loop over the loaded weights (built with the model; see `talker`)."""
        self.load()
        return self._state[3]

    def prefill(self, job: SpeakJob) -> Prefill:
        """The talker's prompt for `text`, built as qwen-tts' `generate` builds it (voice cloning, streaming text)."""
        return build_prefill(self.model, job)

    def pickings(self, sampling: Sampling) -> tuple[Picking, Picking]:
        """(talker, code predictor) picking, as the studio passes its sampling settings to qwen-tts."""
        talker = Picking(sampling.temperature, sampling.top_k, sampling.top_p, sampling.repetition_penalty)
        return talker, Picking(sampling.temperature, sampling.top_k, sampling.top_p, 1.0)

    def generators(self, seeds: list[int]) -> list:
        device = self.model.device
        return [torch.Generator(device=device).manual_seed(seed) for seed in seeds]

    def generate_takes(self, job: SpeakJob, limit: int, generators: list) -> Iterator:
        """Frames for len(generators) takes at once through our own loop: (codes [b, 16], alive [b])."""
        talker_picking, predictor_picking = self.pickings(job.sampling)
        with torch.inference_mode():
            prefill = self.prefill(job)
        return self.talker.frames(prefill, talker_picking, predictor_picking, generators, limit)

    def new_batch(self) -> Batch:
        return Batch(self.talker)

    def member(self, job: SpeakJob, limit: int, generators: list, owner) -> Member:
        talker_picking, predictor_picking = self.pickings(job.sampling)
        with torch.inference_mode():
            prefill = self.prefill(job)
        return Member(prefill, talker_picking, predictor_picking, generators, limit, owner=owner)

    # -- the official path, kept as the reference for tests and benchmarks ------------------------
    def generate_kwargs(self, job: SpeakJob, limit: int) -> dict:
        """Arguments for `Qwen3TTSForConditionalGeneration.generate`, as `generate_voice_clone` builds them."""
        model = self.model
        prompt, text = job.prompt, job.text
        code = prompt.tensor(REF_CODE)
        item_prompt = dict(
            ref_code=[None if code is None else code.to(model.device)],
            ref_spk_embedding=[prompt.tensors[SPEAKER_EMBEDDING].to(model.device)],
            x_vector_only_mode=[prompt.mode == "xvector"],
            icl_mode=[prompt.mode == "icl"],
        )
        input_ids = model._tokenize_texts([model._build_assistant_text(text)])
        ref_ids = [None]
        if prompt.mode == "icl":
            ref_ids = [model._tokenize_texts([model._build_ref_text(prompt.ref_text)])[0]]
        s = job.sampling
        greedy = s.temperature == 0
        sampling = model._merge_generate_kwargs(
            do_sample=not greedy, top_k=s.top_k, top_p=s.top_p, temperature=max(s.temperature, 1e-5),
            repetition_penalty=s.repetition_penalty, subtalker_dosample=not greedy, subtalker_top_k=s.top_k,
            subtalker_top_p=s.top_p, subtalker_temperature=max(s.temperature, 1e-5),
            # The talker drops its last sampled frame, so ask for one more than we want.
            max_new_tokens=limit + 1,
        )
        return dict(input_ids=input_ids, ref_ids=ref_ids, voice_clone_prompt=item_prompt,
                    languages=[job.language], non_streaming_mode=False, **sampling)

    def official_frames(self, job: SpeakJob, on_frame: Callable, limit: int) -> None:
        """Frames from qwen-tts' own nested `generate()` (a forward hook hands each one over); global RNG."""
        inner = self.model.model
        eos = inner.config.talker_config.codec_eos_token_id

        def hook(_module, _args, output):
            codes = output.hidden_states[1]
            if codes is None or int(codes[0, 0]) == eos:
                return  # the prefill step, or end of speech
            on_frame(codes[0].detach().clone())

        handle = inner.talker.register_forward_hook(hook)
        try:
            inner.generate(**self.generate_kwargs(job, limit))
        finally:
            handle.remove()

    def decoder(self, prompt: VoicePrompt):
        """A decoder already past the reference's frames: warmed once per reference, then copied for
        every take and sentence (the reference is often longer than what is said)."""
        from .decoder import StreamDecoder

        reference = prompt.tensor(REF_CODE)
        vocoder = self.model.model.speech_tokenizer.model.decoder
        if reference is None:
            return StreamDecoder(vocoder)
        key = hashlib.sha256(reference.detach().cpu().numpy().tobytes()).hexdigest()
        with self._warm_lock:
            warm = self._warm.get(key)
            if warm is None:
                warm = self._warm[key] = StreamDecoder(vocoder, reference)
                while len(self._warm) > self.WARM_DECODERS:
                    self._warm.popitem(last=False)
            self._warm.move_to_end(key)
            return warm.fork()

    def reference_decode(self, codes, prompt: VoicePrompt) -> np.ndarray:
        """Upstream's whole-take decode (reference codes as left context), which `decoder` reproduces
        incrementally; kept for tests and benchmarks, never used to speak."""
        import torch

        tokenizer = self.model.model.speech_tokenizer
        reference = prompt.tensor(REF_CODE)
        ref_frames = 0 if reference is None else int(reference.shape[0])
        if reference is not None:
            codes = torch.cat([reference.to(codes.device), codes], dim=0)
        wavs, _ = tokenizer.decode([{"audio_codes": codes}])
        return wavs[0][ref_frames * SAMPLES_PER_FRAME:].astype(np.float32)


def build_prefill(model, job: SpeakJob) -> Prefill:
    """The talker's prompt for `job.text` on a loaded `Qwen3TTSModel`, built as qwen-tts' `generate` builds it
    (voice cloning, streaming text)."""
    inner = model.model
    talker = inner.talker
    config, codes = inner.config, inner.config.talker_config
    device = model.device
    prompt, text = job.prompt, job.text

    def ids(values) -> torch.Tensor:
        return torch.tensor([values], device=device, dtype=torch.long)

    def text_embeds(token_ids):
        return talker.text_projection(talker.get_text_embeddings()(token_ids))

    codec = talker.get_input_embeddings()
    text_ids = model._tokenize_texts([model._build_assistant_text(text)])[0]
    bos, eos, pad = text_embeds(ids([config.tts_bos_token_id, config.tts_eos_token_id,
                                     config.tts_pad_token_id])).chunk(3, dim=1)
    language = job.language.lower()
    if language == "auto":
        tags = [codes.codec_nothink_id, codes.codec_think_bos_id, codes.codec_think_eos_id]
    else:
        tags = [codes.codec_think_id, codes.codec_think_bos_id, codes.codec_language_id[language],
                codes.codec_think_eos_id]
    speaker = prompt.tensors[SPEAKER_EMBEDDING].to(device=device, dtype=talker.dtype).view(1, 1, -1)
    codec_prefix = torch.cat([codec(ids(tags)), speaker, codec(ids([codes.codec_pad_id, codes.codec_bos_id]))],
                             dim=1)
    role = text_embeds(text_ids[:, :3])
    body = torch.cat((pad.expand(-1, codec_prefix.shape[1] - 2, -1), bos), dim=1) + codec_prefix[:, :-1]
    embeds = torch.cat((role, body), dim=1)
    reference = prompt.tensor(REF_CODE)
    if prompt.mode == "icl" and reference is not None:
        ref_ids = model._tokenize_texts([model._build_ref_text(prompt.ref_text)])[0]
        spoken = torch.cat([text_embeds(torch.cat([ref_ids[:, 3:-2], text_ids[:, 3:-5]], dim=-1)), eos], dim=1)
        reference = reference.to(device)
        groups = [codec(reference[:, :1])]
        groups += [talker.code_predictor.get_input_embeddings()[g - 1](reference[:, g:g + 1])
                   for g in range(1, codes.num_code_groups)]
        heard = torch.cat(groups, dim=1).sum(1).unsqueeze(0)
        heard = torch.cat([codec(ids([codes.codec_bos_id])), heard], dim=1)
        if spoken.shape[1] > heard.shape[1]:
            icl, trailing = spoken[:, :heard.shape[1]] + heard, spoken[:, heard.shape[1]:]
        else:
            padded = torch.cat([spoken] + [pad] * (heard.shape[1] - spoken.shape[1]), dim=1)
            icl, trailing = padded + heard, pad
        embeds = torch.cat([embeds, icl], dim=1)
    else:
        embeds = torch.cat([embeds, text_embeds(text_ids[:, 3:4]) + codec_prefix[:, -1:]], dim=1)
        trailing = torch.cat((text_embeds(text_ids[:, 4:-5]), eos), dim=1)
    return Prefill(embeds, trailing, pad)
