"""Chatterbox-Turbo (ResembleAI's ONNX export) behind the engine interface, run with onnxruntime.

Four graphs: `speech_encoder` turns the reference clip into conditioning (`audio_features`),
its speech tokens (`audio_tokens`) and the speaker's embedding and features;
`embed_tokens` embeds text and speech tokens; `language_model` (a GPT-2 style
decoder with a key/value cache passed in and out) predicts the next speech token at
25 per second; `conditional_decoder` turns speech tokens into 24 kHz audio. The input
and output names and the loop follow ResembleAI's published usage code for
`ResembleAI/chatterbox-turbo-ONNX` (its model card, mirrored in
github.com/babybirdprd/ort-chatterbox `PYTHON_README.md`; output names as read in that
project's `crates/chatterbox-core/src/inference.rs`).

The conditional decoder is not causal, so it cannot decode a stream token by token.
The studio decodes in fixed windows of `WINDOW` tokens, each with `CONTEXT` tokens of
left context whose samples are dropped, both when streaming and in one shot: the
stream equals the one-shot output by construction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ... import audio
from ...config import SAMPLE_RATE
from ...errors import InvalidInput, ModelUnavailable
from ..base import Capabilities, Sampling, SpeakJob, VoicePrompt, first_line
from ..frames import ChunkPlan, FrameEngine
from ..runtime import Runtime, model_fingerprint
from ..sampling import Picking, pick
from ..windows import WindowDecoder

log = logging.getLogger(__name__)

GRAPHS = ("speech_encoder", "embed_tokens", "language_model", "conditional_decoder")
START_TOKEN = 6561
STOP_TOKEN = 6562
SILENCE_TOKEN = 4299
SPEECH_TOKENS = 6561  # ids 0..6560 are speech; 6561 and 6562 start and stop
TOKEN_RATE = 25.0
TAIL_SILENCE = 3  # tokens of silence after the last, as the published code adds
WINDOW = 10  # tokens decoded per window (0.4 s)
CONTEXT = 10  # tokens of left context per window
TAGS = ("[clear throat]", "[sigh]", "[shush]", "[cough]", "[groan]", "[sniff]", "[gasp]", "[chuckle]",
        "[laugh]")
ENCODER_OUTPUTS = ("audio_features", "audio_tokens", "speaker_embeddings", "speaker_features")
DECODER_INPUTS = ("speech_tokens", "speaker_embeddings", "speaker_features")
PROMPT_TENSORS = ENCODER_OUTPUTS


@dataclass
class Graphs:
    """The four onnxruntime sessions and the language model's cache layout."""

    encoder: object
    embed: object
    language_model: object
    decoder: object
    past_names: list[str]  # past_key_values.<i>.key / .value, in the graph's order
    kv_heads: int
    head_dim: int
    hidden: int
    cache_dtype: type


class ChatterboxEngine(FrameEngine):
    """Chatterbox-Turbo: English, cloning from reference audio alone, paralinguistic tags such as [laugh]."""

    name = "chatterbox-turbo"
    label = "Chatterbox-Turbo"
    capabilities = Capabilities(languages=("English",), modes=("xvector",), sample_rate=SAMPLE_RATE,
                                step_seconds=1 / TOKEN_RATE, tags=True)

    plan = ChunkPlan(first=1, growth=1.0, largest=1)  # the window decoder decides when audio is ready

    @property
    def model_name(self) -> str:
        return self.settings.chatterbox_model

    def _load(self):
        import onnxruntime
        from tokenizers import Tokenizer

        folder = self._folder()
        missing = [name for name in GRAPHS if not (folder / "onnx" / f"{name}.onnx").is_file()]
        if missing or not (folder / "tokenizer.json").is_file():
            raise ModelUnavailable(f"{folder} is not a Chatterbox-Turbo ONNX folder: it needs onnx/"
                                   f"{{{','.join(GRAPHS)}}}.onnx and tokenizer.json.")
        device = self.settings.device
        providers = ["CPUExecutionProvider"]
        if device in ("auto", "cuda") and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.log_severity_level = 3
        try:
            sessions = [onnxruntime.InferenceSession(str(folder / "onnx" / f"{name}.onnx"), options,
                                                     providers=providers) for name in GRAPHS]
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelUnavailable(f"Could not load Chatterbox-Turbo from {folder}: {first_line(error)}") from error
        graphs = _check_graphs(*sessions)
        runtime = Runtime(device="cuda:0" if providers[0].startswith("CUDA") else "cpu", dtype="float32",
                          attn="onnxruntime", reason=f"{providers[0]}")
        return (sessions, tokenizer, graphs), runtime, model_fingerprint(folder)

    def _folder(self) -> Path:
        name = self.model_name
        local = Path(name).expanduser()
        if local.exists():
            return local
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(name, allow_patterns=[f"onnx/{g}.onnx*" for g in GRAPHS]
                                          + ["tokenizer.json"]))
        except Exception as error:  # offline, unknown repo, interrupted download
            raise ModelUnavailable(
                f"Could not load the Chatterbox-Turbo model {name!r}: {first_line(error)}. If this machine is "
                "offline, download it elsewhere and start with --chatterbox-model /path/to/folder.") from error

    @property
    def graphs(self) -> Graphs:
        return self.model[2]

    @property
    def tokenizer(self):
        return self.model[1]

    # -- prompts -----------------------------------------------------------------------------
    def _encode_prompt(self, clip: audio.Clip, ref_text: str, mode: str) -> VoicePrompt:
        with self.generation_lock:
            outputs = self.graphs.encoder.run(list(ENCODER_OUTPUTS),
                                              {"audio_values": clip.samples[None, :].astype(np.float32)})
        tensors = {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in zip(ENCODER_OUTPUTS,
                                                                                             outputs)}
        return VoicePrompt(mode=mode, ref_text=ref_text, fingerprint=self.fingerprint,
                           tensors=self._checked(tensors))

    def prompt_to_tensors(self, prompt: VoicePrompt) -> dict:
        return {name: prompt.tensors[name].detach().cpu().contiguous() for name in PROMPT_TENSORS}

    def prompt_from_tensors(self, tensors: dict, mode: str, ref_text: str, fingerprint: str) -> VoicePrompt:
        return VoicePrompt(mode="xvector", ref_text=ref_text, fingerprint=fingerprint,
                           tensors=self._checked(tensors))

    def _checked(self, tensors: dict) -> dict:
        """The speech encoder's outputs, checked: shapes, dtypes, token range, finite values."""
        hidden = self.graphs.hidden
        features, tokens = tensors.get("audio_features"), tensors.get("audio_tokens")
        embedding, speaker = tensors.get("speaker_embeddings"), tensors.get("speaker_features")
        if not all(torch.is_tensor(t) for t in (features, tokens, embedding, speaker)):
            raise InvalidInput("The voice prompt is not a Chatterbox-Turbo prompt (tensors are missing).")
        if (features.ndim != 3 or features.shape[0] != 1 or features.shape[2] != hidden
                or not features.is_floating_point()):
            raise InvalidInput(f"The voice prompt's conditioning does not fit this model (expected 1 x n x "
                               f"{hidden}).")
        if tokens.ndim != 2 or tokens.shape[0] != 1 or tokens.dtype not in (torch.int64, torch.int32):
            raise InvalidInput("The voice prompt's speech tokens are malformed.")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= SPEECH_TOKENS):
            raise InvalidInput(f"The voice prompt's speech tokens are out of range (0 to {SPEECH_TOKENS - 1}).")
        if embedding.ndim != 2 or speaker.ndim != 3 or not speaker.is_floating_point():
            raise InvalidInput("The voice prompt's speaker embedding or features are malformed.")
        for value in (features, embedding, speaker):
            if not bool(torch.isfinite(value).all()):
                raise InvalidInput("The voice prompt has invalid (NaN or infinite) values.")
        return {"audio_features": features.float(), "audio_tokens": tokens.long(),
                "speaker_embeddings": embedding.float(), "speaker_features": speaker.float()}

    # -- generation --------------------------------------------------------------------------
    def picking(self, sampling: Sampling) -> Picking:
        return Picking(sampling.temperature, sampling.top_k, sampling.top_p, sampling.repetition_penalty)

    def generate_takes(self, job: SpeakJob, limit: int, generators: list) -> Iterator:
        """Speech tokens for len(generators) takes at once: ([b, 1] tokens, alive [b]) per token."""
        graphs = self.graphs
        batch = len(generators)
        ids = np.array([self.tokenizer.encode(job.text).ids], dtype=np.int64)
        text_embeds = graphs.embed.run(None, {"input_ids": ids})[0]
        conditioning = job.prompt.tensors["audio_features"].numpy()
        embeds = np.repeat(np.concatenate([conditioning, text_embeds], axis=1), batch, axis=0)
        length = embeds.shape[1]
        past = {name: np.zeros((batch, graphs.kv_heads, 0, graphs.head_dim), dtype=graphs.cache_dtype)
                for name in graphs.past_names}
        mask = np.ones((batch, length), dtype=np.int64)
        positions = np.tile(np.arange(length, dtype=np.int64), (batch, 1))
        history = torch.full((batch, 1), START_TOKEN, dtype=torch.long)
        alive = torch.ones(batch, dtype=torch.bool)
        how = self.picking(job.sampling)
        banned = torch.zeros(STOP_TOKEN + 1, dtype=torch.bool)
        banned[START_TOKEN] = True  # never a token to speak
        for _ in range(limit):
            logits, *present = graphs.language_model.run(None, dict(inputs_embeds=embeds, attention_mask=mask,
                                                                    position_ids=positions, **past))
            scores = torch.from_numpy(np.ascontiguousarray(logits[:, -1, :], dtype=np.float32))
            tokens = pick(scores[:, :STOP_TOKEN + 1], how, generators, history, banned)
            history = torch.cat([history, tokens[:, None]], dim=1)
            alive = alive & (tokens != STOP_TOKEN)
            if not bool(alive.any()):
                return
            yield tokens[:, None].clone(), alive
            past = dict(zip(graphs.past_names, present))
            embeds = graphs.embed.run(None, {"input_ids": tokens[:, None].numpy()})[0]
            mask = np.ones((batch, mask.shape[1] + 1), dtype=np.int64)
            positions = positions[:, -1:] + 1

    def decoder(self, prompt: VoicePrompt):
        return WindowDecoder(TokenVocoder(self.graphs.decoder, prompt), WINDOW, CONTEXT)


class TokenVocoder:
    """The conditional decoder over speech tokens, with the reference's tokens and speaker in front."""

    closing_steps = TAIL_SILENCE  # silence tokens added after the last window

    def __init__(self, session, prompt: VoicePrompt):
        self.session = session
        self.prompt_tokens = prompt.tensors["audio_tokens"].numpy()
        self.embedding = prompt.tensors["speaker_embeddings"].numpy()
        self.features = prompt.tensors["speaker_features"].numpy()

    def __call__(self, steps: np.ndarray, closing: bool) -> np.ndarray:
        body = steps.reshape(1, -1).astype(np.int64)
        if closing:
            body = np.concatenate([body, np.full((1, TAIL_SILENCE), SILENCE_TOKEN, dtype=np.int64)], axis=1)
        speech = np.concatenate([self.prompt_tokens, body], axis=1)
        return self.session.run(None, {"speech_tokens": speech, "speaker_embeddings": self.embedding,
                                       "speaker_features": self.features})[0][0]


def _check_graphs(encoder, embed, language_model, decoder) -> Graphs:
    """Refuse graphs whose inputs and outputs are not Chatterbox-Turbo's, with a message naming what differs."""
    def names(items):
        return [item.name for item in items]

    expected = [(encoder, ["audio_values"], list(ENCODER_OUTPUTS), "speech_encoder"),
                (embed, ["input_ids"], ["inputs_embeds"], "embed_tokens"),
                (decoder, list(DECODER_INPUTS), None, "conditional_decoder")]
    for session, inputs, outputs, label in expected:
        if sorted(names(session.get_inputs())) != sorted(inputs):
            raise ModelUnavailable(f"{label}.onnx takes {names(session.get_inputs())}, not Chatterbox-Turbo's "
                                   f"{inputs}.")
        if outputs is not None and names(session.get_outputs()) != outputs:
            raise ModelUnavailable(f"{label}.onnx gives {names(session.get_outputs())}, not {outputs}.")
    lm_inputs = language_model.get_inputs()
    past = [item for item in lm_inputs if item.name.startswith("past_key_values.")]
    if not past or {"inputs_embeds", "attention_mask", "position_ids"} - set(names(lm_inputs)):
        raise ModelUnavailable("language_model.onnx is not Chatterbox-Turbo's (it needs inputs_embeds, "
                               "attention_mask, position_ids and past_key_values.*).")
    outputs = names(language_model.get_outputs())
    if outputs[0] != "logits" or outputs[1:] != [name.replace("past_key_values", "present") for name in
                                                 names(past)]:
        raise ModelUnavailable("language_model.onnx's outputs are not logits and present.* in cache order.")
    shape = past[0].shape
    heads = shape[1] if isinstance(shape[1], int) else 16
    head_dim = shape[3] if isinstance(shape[3], int) else 64
    hidden = embed.get_outputs()[0].shape[2]
    hidden = hidden if isinstance(hidden, int) else heads * head_dim
    cache_dtype = np.float16 if past[0].type == "tensor(float16)" else np.float32
    return Graphs(encoder, embed, language_model, decoder, names(past), heads, head_dim, hidden, cache_dtype)
