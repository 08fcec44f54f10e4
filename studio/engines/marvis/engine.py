"""Marvis TTS (a CSM model: Llama-style backbone, depth decoder, Mimi codec) behind the engine interface.

Loaded with transformers' `CsmForConditionalGeneration` and its `CsmProcessor`. A voice
is cloned by giving the reference clip and its transcript as the conversation's first
turn, then the text to speak as the same speaker's next turn. The model makes one
frame of 32 Mimi codes per 80 ms step; transformers' `generate` hands each frame to a
streamer, which this module turns into an iterator (generation runs in a worker thread
and stops at the next frame when the consumer stops asking). Mimi is decoded in fixed
windows with left context, in streaming and one-shot alike, so the two are equal.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ... import audio
from ...config import SAMPLE_RATE
from ...errors import InvalidInput, ModelUnavailable
from ..base import Capabilities, SpeakJob, VoicePrompt, first_line
from ..frames import ChunkPlan, FrameEngine
from ..runtime import checkpoint_fingerprint, choose_runtime
from ..windows import WindowDecoder

log = logging.getLogger(__name__)

REFERENCE_AUDIO = "reference_audio"
FRAME_RATE = 12.5
WINDOW = 5  # frames decoded per window (0.4 s)
CONTEXT = 10  # frames of left context per window
SPEAKER = 0


class _Stopped(Exception):
    """Raised inside `generate` (from the streamer) to end it between frames."""


class _Relay:
    """transformers' streamer protocol: frames into a queue; a stop request ends generation."""

    def __init__(self):
        self.frames: queue.Queue = queue.Queue()
        self.stop = threading.Event()
        self.prompt_seen = False

    def put(self, value):
        if self.stop.is_set():
            raise _Stopped
        if not self.prompt_seen:  # generate() first hands over the prompt itself
            self.prompt_seen = True
            return
        self.frames.put(value)

    def end(self):
        pass


class MarvisEngine(FrameEngine):
    """Marvis TTS: English, cloning from a reference clip and its transcript, frames of 80 ms."""

    name = "marvis"
    label = "Marvis TTS"
    capabilities = Capabilities(languages=("English",), modes=("icl",), sample_rate=SAMPLE_RATE,
                                step_seconds=1 / FRAME_RATE)

    plan = ChunkPlan(first=1, growth=1.0, largest=1)  # the window decoder decides when audio is ready

    @property
    def model_name(self) -> str:
        return self.settings.marvis_model

    def _load(self):
        from transformers import AutoProcessor, CsmForConditionalGeneration

        runtime = choose_runtime(self.settings)
        name = self.model_name
        local = Path(name).expanduser()
        if local.exists() and not (local / "config.json").is_file():
            raise ModelUnavailable(f"{local} has no config.json: it is not a Marvis (CSM) model folder.")
        source = str(local) if local.exists() else name
        try:
            model = CsmForConditionalGeneration.from_pretrained(source, dtype=getattr(torch, runtime.dtype))
            processor = AutoProcessor.from_pretrained(source)
        except (OSError, ValueError, RuntimeError, ImportError) as error:
            raise ModelUnavailable(
                f"Could not load the Marvis model {name!r}: {first_line(error)}. If this machine is offline, "
                "download it elsewhere and start with --marvis-model /path/to/folder.") from error
        model = model.to(runtime.device).eval()
        return (model, processor), runtime, checkpoint_fingerprint(source, model.config)

    @property
    def csm(self):
        return self.model[0]

    @property
    def processor(self):
        return self.model[1]

    # -- prompts -----------------------------------------------------------------------------
    def _encode_prompt(self, clip: audio.Clip, ref_text: str, mode: str) -> VoicePrompt:
        tensors = {REFERENCE_AUDIO: torch.from_numpy(np.ascontiguousarray(clip.samples, dtype=np.float32))}
        return VoicePrompt(mode="icl", ref_text=ref_text, fingerprint=self.fingerprint,
                           tensors=self._checked(tensors))

    def prompt_to_tensors(self, prompt: VoicePrompt) -> dict:
        return {REFERENCE_AUDIO: prompt.tensors[REFERENCE_AUDIO].detach().cpu().contiguous()}

    def prompt_from_tensors(self, tensors: dict, mode: str, ref_text: str, fingerprint: str) -> VoicePrompt:
        if not ref_text:
            raise InvalidInput("Marvis clones from the reference clip and its transcript; this voice has none.")
        return VoicePrompt(mode="icl", ref_text=ref_text, fingerprint=fingerprint, tensors=self._checked(tensors))

    def _checked(self, tensors: dict) -> dict:
        """The reference audio (24 kHz mono), checked: one dimension, finite, within the reference limit."""
        samples = tensors.get(REFERENCE_AUDIO)
        longest = math.ceil(self.settings.max_reference_seconds * SAMPLE_RATE)
        if not torch.is_tensor(samples) or samples.ndim != 1 or not samples.is_floating_point():
            raise InvalidInput("The voice prompt is not a Marvis prompt (24 kHz reference audio is missing).")
        if not SAMPLE_RATE // 2 <= samples.shape[0] <= longest:
            raise InvalidInput(f"The voice prompt's reference audio must be 0.5 to "
                               f"{self.settings.max_reference_seconds:.0f} s long.")
        if not bool(torch.isfinite(samples).all()) or float(samples.abs().max()) > 1.0 + 1e-3:
            raise InvalidInput("The voice prompt's reference audio has invalid values.")
        return {REFERENCE_AUDIO: samples.float()}

    # -- generation --------------------------------------------------------------------------
    def inputs(self, job: SpeakJob, batch: int) -> dict:
        """The processor's inputs: the reference as the speaker's first turn, then the text to speak."""
        conversation = (f"<|begin_of_text|>[{SPEAKER}]{job.prompt.ref_text}<|end_of_text|><|AUDIO|>"
                        f"<|audio_eos|><|begin_of_text|>[{SPEAKER}]{job.text}<|end_of_text|>")
        reference = job.prompt.tensors[REFERENCE_AUDIO].numpy()
        inputs = self.processor(text=[conversation] * batch, audio=[reference] * batch, return_tensors="pt")
        inputs.pop("token_type_ids", None)
        model = self.csm
        return {key: value.to(model.device, dtype=model.dtype) if value.is_floating_point() else value.to(model.device)
                for key, value in inputs.items()}

    def generate_kwargs(self, job: SpeakJob, limit: int) -> dict:
        s = job.sampling
        sample = s.temperature > 0
        config = self.csm.config
        beyond = list(range(config.codec_config.codebook_size, config.vocab_size))  # pad ids: no Mimi code
        kwargs = dict(max_new_tokens=limit, do_sample=sample, depth_decoder_do_sample=sample,
                      suppress_tokens=beyond, depth_decoder_suppress_tokens=beyond)
        if sample:  # CSM's generate has no repetition penalty over frames: that setting is not used here
            kwargs.update(temperature=s.temperature, top_k=s.top_k, top_p=s.top_p,
                          depth_decoder_temperature=s.temperature, depth_decoder_top_k=s.top_k,
                          depth_decoder_top_p=s.top_p)
        return kwargs

    def generate_takes(self, job: SpeakJob, limit: int, generators: list) -> Iterator:
        """Frames (codes [b, 32], alive [b]) as transformers' generate makes them, from a worker thread.

        transformers samples from torch's global generator, so a batch is seeded once, from
        its first take's seed: the batch as a whole is reproducible (the caller holds the
        engine's lock, so nothing else draws from that generator meanwhile).
        """
        relay = _Relay()
        inputs = self.inputs(job, len(generators))
        kwargs = self.generate_kwargs(job, limit)
        seed = generators[0].initial_seed()
        failure: list[BaseException] = []
        done = object()

        def work():
            try:
                torch.manual_seed(seed)
                with torch.inference_mode():
                    self.csm.generate(**inputs, streamer=relay, **kwargs)
            except _Stopped:
                pass
            except BaseException as error:  # handed to the consuming thread
                failure.append(error)
            finally:
                relay.frames.put(done)

        worker = threading.Thread(target=work, name="studio-marvis", daemon=True)
        worker.start()
        eos = self.csm.config.codebook_eos_token_id
        alive = torch.ones(len(generators), dtype=torch.bool)
        try:
            while (codes := relay.frames.get()) is not done:
                codes = codes.to("cpu")
                alive = alive & ~(codes[:, :-1] == eos).all(dim=-1)
                if not bool(alive.any()):
                    break
                yield codes, alive
        finally:
            relay.stop.set()
            worker.join()
        if failure:
            raise failure[0]

    def decoder(self, prompt: VoicePrompt):
        return WindowDecoder(self._decode_frames, WINDOW, CONTEXT)

    def _decode_frames(self, frames: np.ndarray, closing: bool) -> np.ndarray:
        codec = self.csm.codec_model
        codes = torch.as_tensor(frames, device=self.csm.device).transpose(0, 1).unsqueeze(0)
        with torch.inference_mode():
            return codec.decode(codes).audio_values[0, 0].float().cpu().numpy()
