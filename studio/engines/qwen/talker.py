"""Our own frame loop for the Qwen3-TTS talker and its code predictor.

qwen-tts makes every 80 ms frame with nested Hugging Face `generate()` calls: the
talker's, and inside each talker step a fresh `generate()` of the 5-layer code
predictor for the 15 other code groups, each with its own set-up, logits-processor
lists and growing cache objects. Here the same weights run as plain tensor code:
q/k/v and gate/up projections fused into one product each, key/value caches
allocated once, sampling done in place, and the frames handed out as they are made.
A batch of takes (each with its own random generator) costs about what one costs,
since reading the weights, not arithmetic, bounds a frame.

The numbers follow qwen-tts exactly (same normalisation, rotary tables, products and
sums in the same order); the tests hold our logits to the official ones within 1e-4
in float32 and greedy codes to `generate_voice_clone`'s.

CUDA graphs: every step reads and writes fixed tensors (static caches, a fixed
batch), so `Talker.step` and `Talker.predict` are the seams to capture; that needs a
GPU to build and test on, and is not done yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from ...config import QUANTIZE
from ..sampling import Picking, pick

# The heads pick the codes, and each runs once per frame (a sixteenth of what the layers read):
# with 4-bit layers they stay int8.
HEADS = {"none": "none", "int8": "int8", "int4": "int8"}


@dataclass
class Projection:
    """A linear layer, several fused into one, optionally with int8 weights (per-row scales) or 4-bit ones
    (groups of 32, run by `kernel`)."""

    weight: torch.Tensor  # [out, in]: compute dtype, or int8 with `scales`
    bias: torch.Tensor | None = None
    scales: torch.Tensor | None = None
    kernel: Callable | None = None  # 4-bit: FourBitLinear over its own packed copy of the weight

    @classmethod
    def fuse(cls, linears: list, quantize: str = "none") -> "Projection":
        """One product for several layers that read the same input; the originals then view the fused weight."""
        weight = torch.cat([layer.weight.data for layer in linears]) if len(linears) > 1 else linears[0].weight.data
        biases = [layer.bias for layer in linears]
        bias = None if biases[0] is None else torch.cat([b.data for b in biases])
        if len(linears) > 1:  # share memory: the official modules keep working on the same numbers
            start = 0
            for layer in linears:
                rows = layer.weight.shape[0]
                layer.weight.data = weight[start:start + rows]
                if layer.bias is not None:
                    layer.bias.data = bias[start:start + rows]
                start += rows
        if quantize == "int8":
            return cls.int8(weight, bias)
        if quantize == "int4":
            return cls.int4(weight, bias)
        return cls(weight, bias)

    @classmethod
    def int8(cls, weight: torch.Tensor, bias: torch.Tensor | None) -> "Projection":
        full = weight.float()
        scales = (full.abs().amax(dim=1) / 127).clamp_min(1e-12)
        quantized = torch.round(full / scales[:, None]).clamp(-128, 127).to(torch.int8)
        return cls(quantized.contiguous(), bias, scales.to(weight.dtype))

    @classmethod
    def int4(cls, weight: torch.Tensor, bias: torch.Tensor | None) -> "Projection":
        from .fourbit import FourBitLinear

        return cls(weight, bias, kernel=FourBitLinear(weight, bias))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel is not None:
            return self.kernel(x)
        if self.scales is None:
            return F.linear(x, self.weight, self.bias)
        flat = x.reshape(-1, x.shape[-1])
        out = torch.ops.aten._weight_int8pack_mm(flat, self.weight, self.scales)
        out = out.view(*x.shape[:-1], -1)
        return out if self.bias is None else out + self.bias


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Qwen3's RMSNorm, step for step (variance in float32, scale in the input dtype)."""
    dtype = x.dtype
    x = x.to(torch.float32)
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x.to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


@dataclass
class Block:
    """One decoder layer's weights, with fused projections."""

    input_norm: torch.Tensor
    post_norm: torch.Tensor
    q_norm: torch.Tensor
    k_norm: torch.Tensor
    qkv: Projection
    out: Projection
    gate_up: Projection
    down: Projection

    @classmethod
    def from_layer(cls, layer, quantize: str) -> "Block":
        attn, mlp = layer.self_attn, layer.mlp
        return cls(layer.input_layernorm.weight, layer.post_attention_layernorm.weight,
                   attn.q_norm.weight, attn.k_norm.weight,
                   Projection.fuse([attn.q_proj, attn.k_proj, attn.v_proj], quantize),
                   Projection.fuse([attn.o_proj], quantize),
                   Projection.fuse([mlp.gate_proj, mlp.up_proj], quantize),
                   Projection.fuse([mlp.down_proj], quantize))


class Cache:
    """Keys and values of every layer, allocated once for a batch and a longest sequence."""

    def __init__(self, layers: int, batch: int, kv_heads: int, length: int, head_dim: int, dtype, device):
        shape = (layers, batch, kv_heads, length, head_dim)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)
        self.values = torch.zeros(shape, dtype=dtype, device=device)
        self.length = length


class Stack:
    """A Qwen3 decoder stack (attention with q/k norms and rotary positions, SwiGLU) over a static cache."""

    def __init__(self, model, quantize: str = "none"):
        config = model.config
        if config.hidden_act != "silu":
            raise ValueError(f"unsupported activation {config.hidden_act!r}")
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.eps = config.rms_norm_eps
        self.blocks = [Block.from_layer(layer, quantize) for layer in model.layers]
        self.norm = model.norm.weight
        self.inv_freq = model.rotary_emb.inv_freq
        self.rope_scale = model.rotary_emb.attention_scaling
        self._rope: tuple[torch.Tensor, torch.Tensor] | None = None

    def cache(self, batch: int, length: int) -> Cache:
        return Cache(len(self.blocks), batch, self.kv_heads, length, self.head_dim, self.norm.dtype, self.norm.device)

    def rope(self, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin tables computed as the official rotary module does (float32, then the model dtype)."""
        if self._rope is None or self._rope[0].shape[0] < length:
            size = max(length, 256)
            positions = torch.arange(size, device=self.inv_freq.device, dtype=torch.float32)
            freqs = positions[:, None] * self.inv_freq.float()[None, :]
            emb = torch.cat((freqs, freqs), dim=-1)
            dtype = self.norm.dtype
            self._rope = ((emb.cos() * self.rope_scale).to(dtype), (emb.sin() * self.rope_scale).to(dtype))
        return self._rope

    def __call__(self, x: torch.Tensor, cache: Cache, start: int) -> torch.Tensor:
        """Run `x` [batch, tokens, hidden] at positions start..; returns the normed last hidden states."""
        batch, tokens, _ = x.shape
        end = start + tokens
        cos, sin = self.rope(end)
        cos, sin = cos[start:end], sin[start:end]
        q_size, kv_size = self.heads * self.head_dim, self.kv_heads * self.head_dim
        for index, block in enumerate(self.blocks):
            h = rms_norm(x, block.input_norm, self.eps)
            q, k, v = block.qkv(h).split([q_size, kv_size, kv_size], dim=-1)
            q = rms_norm(q.view(batch, tokens, self.heads, self.head_dim), block.q_norm, self.eps).transpose(1, 2)
            k = rms_norm(k.view(batch, tokens, self.kv_heads, self.head_dim), block.k_norm, self.eps).transpose(1, 2)
            v = v.view(batch, tokens, self.kv_heads, self.head_dim).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            cache.keys[index, :, :, start:end] = k
            cache.values[index, :, :, start:end] = v
            attended = F.scaled_dot_product_attention(
                q, cache.keys[index, :, :, :end], cache.values[index, :, :, :end],
                is_causal=tokens > 1 and start == 0, scale=self.head_dim ** -0.5,
                enable_gqa=self.kv_heads != self.heads)
            x = x + block.out(attended.transpose(1, 2).reshape(batch, tokens, q_size))
            gate, up = block.gate_up(rms_norm(x, block.post_norm, self.eps)).chunk(2, dim=-1)
            x = x + block.down(F.silu(gate) * up)
        return rms_norm(x, self.norm, self.eps)


@dataclass
class Prefill:
    """The talker's prompt for one text: prefill embeddings, the text still to feed, and the pad embedding."""

    embeds: torch.Tensor  # [1, tokens, hidden]
    trailing: torch.Tensor  # [1, n, hidden]: one text embedding added to each of the first n frames
    pad: torch.Tensor  # [1, 1, hidden]: added to every later frame


class Talker:
    """The frame loop over a loaded `Qwen3TTSForConditionalGeneration` (weights shared, not copied)."""

    def __init__(self, model, quantize: str = "none"):
        if quantize not in QUANTIZE or quantize == "auto":  # auto is resolved by the engine (calibration)
            raise ValueError(f"quantize must be one of {QUANTIZE[:-1]}")
        talker = model.talker
        config = model.config.talker_config
        self.quantize = quantize
        self.stack = Stack(talker.model, quantize)
        heads = HEADS[quantize]
        self.head = Projection.fuse([talker.codec_head], heads)
        self.codec_embedding = talker.model.codec_embedding.weight
        predictor = talker.code_predictor
        self.predictor = Stack(predictor.model, quantize)
        self.predictor_heads = [Projection.fuse([head], heads) for head in predictor.lm_head]
        self.predictor_embeddings = [embedding.weight for embedding in predictor.model.codec_embedding]
        projection = predictor.small_to_mtp_projection
        self.projection = None if isinstance(projection, torch.nn.Identity) else Projection.fuse([projection])
        self.groups = config.num_code_groups
        self.eos = config.codec_eos_token_id
        vocab = config.vocab_size
        self.banned = torch.zeros(vocab, dtype=torch.bool, device=self.codec_embedding.device)
        self.banned[vocab - 1024:] = True  # qwen-tts suppresses the top 1024 ids, all but end-of-speech
        self.banned[self.eos] = False
        self.min_frames = 2  # qwen-tts' min_new_tokens: end-of-speech cannot come first or second

    # -- one talker step and one frame of the code predictor ------------------------------------
    def step(self, embeds: torch.Tensor, cache: Cache, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Talker positions start..: returns (last hidden state [b, 1, h], float32 logits [b, vocab])."""
        hidden = self.stack(embeds, cache, start)[:, -1:]
        return hidden, self.head(hidden)[:, 0].float()

    def predict(self, hidden: torch.Tensor, first: torch.Tensor, how: Picking, generators: list,
                cache: Cache, forced: torch.Tensor | None = None,
                on_logits: Callable | None = None) -> torch.Tensor:
        """The other code groups of one frame from the talker's hidden state and the first code: [b, groups].

        `forced` [b, groups - 1] feeds given codes instead of picked ones (teacher forcing, for tests).
        """
        x = torch.cat([hidden, F.embedding(first[:, None], self.codec_embedding)], dim=1)
        codes = [first]
        for group in range(self.groups - 1):
            if group:
                x = F.embedding(codes[-1][:, None], self.predictor_embeddings[group - 1])
            if self.projection is not None:
                x = self.projection(x)
            start = 0 if group == 0 else group + 1
            out = self.predictor(x, cache, start)[:, -1]
            logits = self.predictor_heads[group](out).float()
            if on_logits is not None:
                on_logits(group + 1, logits)
            codes.append(forced[:, group] if forced is not None else pick(logits, how, generators))
        return torch.stack(codes, dim=1)

    def frame_embedding(self, codes: torch.Tensor) -> torch.Tensor:
        """The talker's input for a frame: its 16 code embeddings summed, [b, 1, hidden]."""
        parts = [F.embedding(codes[:, :1], self.codec_embedding)]
        parts += [F.embedding(codes[:, g + 1:g + 2], self.predictor_embeddings[g]) for g in range(self.groups - 1)]
        return torch.cat(parts, dim=1).sum(1, keepdim=True)

    # -- the loop ---------------------------------------------------------------------------------
    def frames(self, prefill: Prefill, talker_picking: Picking, predictor_picking: Picking, generators: list,
               limit: int, forced: torch.Tensor | None = None,
               on_logits: Callable | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (codes [b, groups], alive [b]) per frame for a batch of b = len(generators) takes.

        A take ends when it picks end-of-speech; the loop ends when all have, or after
        `limit` frames. `forced` [frames, groups] replays given codes (teacher forcing) and
        `on_logits(group, logits)` sees every logit vector, group 0 being the talker's.
        """
        batch = len(generators)
        tokens = prefill.embeds.shape[1]
        # Each step runs under inference_mode, but no `with` spans a yield: the consumer may resume
        # this generator from another thread, and grad mode is per thread.
        with torch.inference_mode():
            cache = self.stack.cache(batch, tokens + limit)
            predictor_cache = self.predictor.cache(batch, self.groups)
            hidden, logits = self.step(prefill.embeds.expand(batch, -1, -1), cache, 0)
            history = torch.zeros(batch, 0, dtype=torch.long, device=logits.device)
            alive = torch.ones(batch, dtype=torch.bool, device=logits.device)
        for index in range(limit):
            with torch.inference_mode():
                if on_logits is not None:
                    on_logits(0, logits)
                if forced is not None and index >= forced.shape[0]:
                    return
                if forced is not None:
                    first = forced[index, :1].expand(batch)
                else:
                    banned = self.banned if index >= self.min_frames else self._banned_with_eos()
                    first = pick(logits, talker_picking, generators, history, banned)
                history = torch.cat([history, first[:, None]], dim=1)
                alive = alive & (first != self.eos)
                if not bool(alive.any()):
                    return
                rest = None if forced is None else forced[index, 1:].expand(batch, -1)
                codes = self.predict(hidden, first, predictor_picking, generators, predictor_cache, rest, on_logits)
            yield codes, alive
            if index + 1 == limit:
                return
            with torch.inference_mode():
                embeds = self.frame_embedding(codes) + self._text_at(prefill, index)
                hidden, logits = self.step(embeds, cache, tokens + index)

    def _banned_with_eos(self) -> torch.Tensor:
        banned = self.banned.clone()
        banned[self.eos] = True
        return banned

    @staticmethod
    def _text_at(prefill: Prefill, index: int) -> torch.Tensor:
        if index < prefill.trailing.shape[1]:
            return prefill.trailing[:, index:index + 1]
        return prefill.pad
