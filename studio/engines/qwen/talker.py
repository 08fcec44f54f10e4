"""Our own frame loop for the Qwen3-TTS talker and its code predictor.

qwen-tts makes every 80 ms frame with nested Hugging Face `generate()` calls: the
talker's, and inside each talker step a fresh `generate()` of the 5-layer code
predictor for the 15 other code groups, each with its own set-up, logits-processor
lists and growing cache objects. Here the same weights run as plain tensor code:
q/k/v and gate/up projections fused into one product each, key/value caches
allocated once, sampling done in place, and the frames handed out as they are made.
A batch of rows costs about what one row costs, since reading the weights, not
arithmetic, bounds a frame: `Batch` lets several requests (each with its takes,
prefill, position, sampling and random generators) share every step, joining and
leaving between frames.

The numbers follow qwen-tts exactly (same normalisation, rotary tables, products and
sums in the same order); the tests hold our logits to the official ones within 1e-4
in float32 and greedy codes to `generate_voice_clone`'s.

CUDA graphs are not used: a batch whose members come and go changes shape between
steps, and capturing them needs a GPU to build and test on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from ...config import QUANTIZE
from ..sampling import Picking, pick

# The heads pick the codes, and each runs once per frame (a sixteenth of what the layers read):
# they stay in PyTorch, int8 with per-row scales under either grouped format.
HEADS = {"none": "none", "int8": "int8", "int4": "int8"}


@dataclass
class Projection:
    """A linear layer, several fused into one, optionally with int8 weights (per-row scales)."""

    weight: torch.Tensor  # [out, in]: compute dtype, or int8 with `scales`
    bias: torch.Tensor | None = None
    scales: torch.Tensor | None = None

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
        return cls(weight, bias)

    @classmethod
    def int8(cls, weight: torch.Tensor, bias: torch.Tensor | None) -> "Projection":
        full = weight.float()
        scales = (full.abs().amax(dim=1) / 127).clamp_min(1e-12)
        quantized = torch.round(full / scales[:, None]).clamp(-128, 127).to(torch.int8)
        return cls(quantized.contiguous(), bias, scales.to(weight.dtype))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
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
    def from_layer(cls, layer) -> "Block":
        attn, mlp = layer.self_attn, layer.mlp
        return cls(layer.input_layernorm.weight, layer.post_attention_layernorm.weight,
                   attn.q_norm.weight, attn.k_norm.weight,
                   Projection.fuse([attn.q_proj, attn.k_proj, attn.v_proj]),
                   Projection.fuse([attn.o_proj]),
                   Projection.fuse([mlp.gate_proj, mlp.up_proj]),
                   Projection.fuse([mlp.down_proj]))


class Cache:
    """Keys and values of every layer, allocated once for a batch and a longest sequence."""

    def __init__(self, layers: int, batch: int, kv_heads: int, length: int, head_dim: int, dtype, device):
        shape = (layers, batch, kv_heads, length, head_dim)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)
        self.values = torch.zeros(shape, dtype=dtype, device=device)
        self.length = length

    def repeat(self, rows: int) -> "Cache":
        """`rows` copies of a one-row cache: one prefill serves every take of a request."""
        copy = Cache.__new__(Cache)
        copy.keys = self.keys.repeat(1, rows, 1, 1, 1)
        copy.values = self.values.repeat(1, rows, 1, 1, 1)
        copy.length = self.length
        return copy


@dataclass
class Part:
    """Consecutive rows of a batch that share a cache and positions: one request's takes."""

    rows: slice
    cache: Cache
    start: int


class Stack:
    """A Qwen3 decoder stack (attention with q/k norms and rotary positions, SwiGLU) over a static cache."""

    def __init__(self, model):
        config = model.config
        if config.hidden_act != "silu":
            raise ValueError(f"unsupported activation {config.hidden_act!r}")
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.eps = config.rms_norm_eps
        self.blocks = [Block.from_layer(layer) for layer in model.layers]
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
        return self.run(x, [Part(slice(None), cache, start)])

    def run(self, x: torch.Tensor, parts: list[Part]) -> torch.Tensor:
        """Run `x` whose rows come in `parts`, each over its own cache and positions.

        The products, which read the weights, are shared by every row; attention is per part,
        so a request's numbers do not depend on which others share its batch (beyond the
        rounding of batched products).
        """
        batch, tokens, _ = x.shape
        q_size, kv_size = self.heads * self.head_dim, self.kv_heads * self.head_dim
        for index, block in enumerate(self.blocks):
            h = rms_norm(x, block.input_norm, self.eps)
            q, k, v = block.qkv(h).split([q_size, kv_size, kv_size], dim=-1)
            q = rms_norm(q.view(batch, tokens, self.heads, self.head_dim), block.q_norm, self.eps).transpose(1, 2)
            k = rms_norm(k.view(batch, tokens, self.kv_heads, self.head_dim), block.k_norm, self.eps).transpose(1, 2)
            v = v.view(batch, tokens, self.kv_heads, self.head_dim).transpose(1, 2)
            attended = torch.cat([self.attend(index, q[p.rows], k[p.rows], v[p.rows], p.cache, p.start)
                                  for p in parts]) if len(parts) > 1 else \
                self.attend(index, q, k, v, parts[0].cache, parts[0].start)
            x = x + block.out(attended.transpose(1, 2).reshape(batch, tokens, q_size))
            gate, up = block.gate_up(rms_norm(x, block.post_norm, self.eps)).chunk(2, dim=-1)
            x = x + block.down(F.silu(gate) * up)
        return rms_norm(x, self.norm, self.eps)

    def attend(self, index: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cache: Cache,
               start: int) -> torch.Tensor:
        """Layer `index`'s attention for rows at positions start..: rotary positions, cache, then SDPA."""
        tokens = q.shape[2]
        end = start + tokens
        cos, sin = self.rope(end)
        cos, sin = cos[start:end], sin[start:end]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        cache.keys[index, :, :, start:end] = k
        cache.values[index, :, :, start:end] = v
        return F.scaled_dot_product_attention(
            q, cache.keys[index, :, :, :end], cache.values[index, :, :, :end],
            is_causal=tokens > 1 and start == 0, scale=self.head_dim ** -0.5,
            enable_gqa=self.kv_heads != self.heads)


@dataclass
class Prefill:
    """The talker's prompt for one text: prefill embeddings, the text still to feed, and the pad embedding."""

    embeds: torch.Tensor  # [1, tokens, hidden]
    trailing: torch.Tensor  # [1, n, hidden]: one text embedding added to each of the first n frames
    pad: torch.Tensor  # [1, 1, hidden]: added to every later frame


class Talker:
    """The frame loop over a loaded `Qwen3TTSForConditionalGeneration` (weights shared, not copied)."""

    def __init__(self, model, quantize: str = "none", threads: int = 1):
        if quantize not in QUANTIZE or quantize == "auto":  # auto is resolved by the engine (calibration)
            raise ValueError(f"quantize must be one of {QUANTIZE[:-1]}")
        talker = model.talker
        config = model.config.talker_config
        self.quantize = quantize
        self.stack = self._stack(talker.model, quantize, threads)
        heads = HEADS[quantize]
        self.head = Projection.fuse([talker.codec_head], heads)
        self.codec_embedding = talker.model.codec_embedding.weight
        predictor = talker.code_predictor
        self.predictor = self._stack(predictor.model, quantize, threads)
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
        self.banned_with_eos = self.banned.clone()
        self.banned_with_eos[self.eos] = True

    @staticmethod
    def _stack(model, quantize: str, threads: int):
        """PyTorch runs full-precision stacks op by op; int8 and 4-bit ones run as one ONNX Runtime graph each."""
        if quantize == "none":
            return Stack(model)
        from .graph import StackGraph

        return StackGraph(Stack(model), quantize, threads)

    # -- one talker step and one frame of the code predictor ------------------------------------
    def step(self, embeds: torch.Tensor, cache: Cache, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Talker positions start..: returns (last hidden state [b, 1, h], float32 logits [b, vocab])."""
        hidden = self.stack(embeds, cache, start)[:, -1:]
        return hidden, self.head(hidden)[:, 0].float()

    def predict(self, hidden: torch.Tensor, first: torch.Tensor, choose: Callable, cache: Cache) -> torch.Tensor:
        """The other code groups of one frame from the talker's hidden state and the first code: [b, groups].

        `choose(group, logits)` gives group's codes [b] from its float32 logits [b, vocab].
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
            codes.append(choose(group + 1, self.predictor_heads[group](out).float()))
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
        It is a batch with this one member.
        """
        batch = Batch(self)
        member = Member(prefill, talker_picking, predictor_picking, generators, limit, forced, on_logits)
        batch.join(member)
        while not member.done:
            for _, codes, alive in batch.step():
                if codes is None:
                    return
                yield codes, alive


@dataclass(eq=False)
class Member:
    """One request in a batch: its prefill, how it picks, a generator per take, its limit, and where it is.

    `forced` [frames, groups] replays given codes (teacher forcing); `on_logits(group, logits)`
    sees its logits; `owner` is whatever the caller wants to find the request by.
    """

    prefill: Prefill
    talker_picking: Picking
    predictor_picking: Picking
    generators: list
    limit: int
    forced: torch.Tensor | None = None
    on_logits: Callable | None = None
    owner: object = None
    frames: int = 0  # frames made so far
    done: bool = False
    cache: Cache | None = None
    hidden: torch.Tensor | None = None  # the talker's last hidden state [takes, 1, h]
    logits: torch.Tensor | None = None  # and its logits for the next first code [takes, vocab]
    fed: torch.Tensor | None = None  # the last frame's codes, to feed the talker next step
    history: torch.Tensor | None = None  # first codes so far [takes, frames], for the repetition penalty
    alive: torch.Tensor | None = None  # takes that have not ended [takes]
    first: torch.Tensor | None = None  # this step's first codes

    @property
    def takes(self) -> int:
        return len(self.generators)

    @property
    def length(self) -> int:
        return self.prefill.embeds.shape[1]


class Batch:
    """Frames for several requests at once: each joins with its own prefill and leaves when it is done.

    A step feeds every member its last frame in one talker pass and makes every member's next
    frame in one code-predictor pass: the products that read the weights are shared by all
    rows (reading weights, not arithmetic, bounds a frame), while attention, text, sampling and
    random generators stay each member's own.
    """

    def __init__(self, talker: Talker):
        self.talker = talker
        self.members: list[Member] = []
        self._predictor_cache: Cache | None = None

    @property
    def rows(self) -> int:
        return sum(member.takes for member in self.members)

    def join(self, member: Member) -> None:
        """Prefill `member` (alone, once for all its takes) and take it into the next step."""
        takes, talker = member.takes, self.talker
        with torch.inference_mode():
            cache = talker.stack.cache(1, member.length + member.limit)
            hidden, logits = talker.step(member.prefill.embeds, cache, 0)
            member.cache = cache if takes == 1 else cache.repeat(takes)
            member.hidden = hidden.expand(takes, -1, -1).contiguous()
            member.logits = logits.expand(takes, -1).contiguous()
            member.history = torch.zeros(takes, 0, dtype=torch.long, device=logits.device)
            member.alive = torch.ones(takes, dtype=torch.bool, device=logits.device)
        self.members.append(member)

    def leave(self, member: Member) -> None:
        if member in self.members:
            self.members.remove(member)
        member.done = True
        member.cache = None

    def step(self) -> list[tuple[Member, torch.Tensor | None, torch.Tensor]]:
        """One frame for every member: (member, codes [takes, groups] or None, alive [takes]).

        None means the member ended before this frame (every take picked end-of-speech). A
        member that ended or reached its limit is marked done and has left the batch.
        """
        with torch.inference_mode():
            self._feed()
            ready = [member for member in self.members if self._pick_first(member)]
            codes = self._predict(ready) if ready else None
        results = []
        start = 0
        for member in list(self.members):
            if member not in ready:
                results.append((member, None, member.alive))
                self.leave(member)
                continue
            made = codes[start:start + member.takes]
            start += member.takes
            member.frames += 1
            member.fed = made
            results.append((member, made, member.alive.clone()))
            if member.frames >= member.limit:
                self.leave(member)
        return results

    def _feed(self) -> None:
        """The talker pass: every member's last frame (and its text), each at its own position."""
        waiting = [member for member in self.members if member.fed is not None]
        if not waiting:
            return
        talker = self.talker
        embeds, parts, start = [], [], 0
        for member in waiting:
            made = member.frames - 1
            embeds.append(talker.frame_embedding(member.fed) + _text_at(member.prefill, made))
            parts.append(Part(slice(start, start + member.takes), member.cache, member.length + made))
            start += member.takes
        hidden = talker.stack.run(torch.cat(embeds), parts)[:, -1:]
        logits = talker.head(hidden)[:, 0].float()
        for member, part in zip(waiting, parts):
            member.hidden, member.logits, member.fed = hidden[part.rows], logits[part.rows], None

    def _pick_first(self, member: Member) -> bool:
        """The member's first codes of its next frame; False when it has ended."""
        index, talker = member.frames, self.talker
        if member.on_logits is not None:
            member.on_logits(0, member.logits)
        if member.forced is not None:
            if index >= member.forced.shape[0]:
                return False
            first = member.forced[index, :1].expand(member.takes)
        else:
            banned = talker.banned if index >= talker.min_frames else talker.banned_with_eos
            first = pick(member.logits, member.talker_picking, member.generators, member.history, banned)
        member.history = torch.cat([member.history, first[:, None]], dim=1)
        member.alive = member.alive & (first != talker.eos)
        member.first = first
        return bool(member.alive.any())

    def _predict(self, ready: list[Member]) -> torch.Tensor:
        """The code predictor pass for every ready member's rows; each member picks its own codes."""
        rows = sum(member.takes for member in ready)
        if self._predictor_cache is None or self._predictor_cache.keys.shape[1] != rows:
            self._predictor_cache = self.talker.predictor.cache(rows, self.talker.groups)

        def choose(group: int, logits: torch.Tensor) -> torch.Tensor:
            picked, start = [], 0
            for member in ready:
                mine = logits[start:start + member.takes]
                start += member.takes
                if member.on_logits is not None:
                    member.on_logits(group, mine)
                if member.forced is not None:
                    picked.append(member.forced[member.frames, group].expand(member.takes))
                else:
                    picked.append(pick(mine, member.predictor_picking, member.generators))
            return torch.cat(picked)

        hidden = torch.cat([member.hidden for member in ready])
        first = torch.cat([member.first for member in ready])
        return self.talker.predict(hidden, first, choose, self._predictor_cache)


def _text_at(prefill: Prefill, index: int) -> torch.Tensor:
    """The text embedding added to frame `index`'s input: the trailing text, then the pad."""
    if index < prefill.trailing.shape[1]:
        return prefill.trailing[:, index:index + 1]
    return prefill.pad
