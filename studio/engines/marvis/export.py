"""Marvis (CSM) as ONNX graphs for ONNX Runtime (Web): a backbone step and a depth-decoder step, each with an
explicit key/value cache, the audio-frame embedding, and Mimi's decoder, checked against PyTorch.

    python -m studio.export marvis --out DIR [--model ID_OR_FOLDER] [--no-quantize]

The step graphs are small modules over the checkpoint's own layers (norms, projections,
rotary embedding, MLPs); only attention is written out, over a cache passed in and out,
so that a browser can run the same frame loop as transformers' `generate`. The export
then checks the graphs with ONNX Runtime against PyTorch: backbone and depth-decoder
logits within 1e-4, greedy codes identical to the server engine's over a whole line, and
that line's audio (Mimi in fixed windows) within 1e-4. 8-bit (`_quantized`, dynamic int8
MatMuls) and 4-bit (`_q4`, MatMulNBits) variants follow; they are smaller, not equal.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ... import audio
from ...config import Settings
from ...errors import StudioError
from ..base import Sampling, SpeakJob
from ..windows import WindowDecoder
from .engine import CONTEXT, REFERENCE_AUDIO, SPEAKER, WINDOW

log = logging.getLogger(__name__)

GRAPHS = ("embed_audio", "backbone", "depth_decoder", "mimi_decoder")  # text is embedded by the studio
OPSET = 17
LOGITS_TOLERANCE = 1e-4
AUDIO_TOLERANCE = 1e-4


# -- the step modules ----------------------------------------------------------------------------------------------

def attend(layer, x, cos, sin, past_key, past_value):
    """One CSM decoder layer over new positions `x`, attending to the cache and to themselves (causal)."""
    from transformers.models.csm.modeling_csm import apply_rotary_pos_emb, repeat_kv

    attention = layer.self_attn
    batch, length, _ = x.shape
    hidden = layer.input_layernorm(x)
    shape = (batch, length, -1, attention.head_dim)
    query = attention.q_proj(hidden).view(shape).transpose(1, 2)
    key = attention.k_proj(hidden).view(shape).transpose(1, 2)
    value = attention.v_proj(hidden).view(shape).transpose(1, 2)
    query, key = apply_rotary_pos_emb(query, key, cos, sin)
    key = torch.cat([past_key, key], dim=2)
    value = torch.cat([past_value, value], dim=2)
    total = key.shape[2]
    scores = query @ repeat_kv(key, attention.num_key_value_groups).transpose(2, 3) * attention.scaling
    allowed = torch.arange(total)[None, :] <= (torch.arange(length)[:, None] + (total - length))
    scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    weights = scores.softmax(dim=-1)
    out = (weights @ repeat_kv(value, attention.num_key_value_groups)).transpose(1, 2).reshape(batch, length, -1)
    x = x + attention.o_proj(out)
    x = x + layer.mlp(layer.post_attention_layernorm(x))
    return x, key, value


class BackboneStep(nn.Module):
    """inputs_embeds [b, t, H], position_ids [b, t], past k/v per layer -> last logits [b, V], last hidden, present."""

    def __init__(self, csm):
        super().__init__()
        self.backbone = csm.backbone_model
        self.head = csm.lm_head

    def forward(self, inputs_embeds, position_ids, *past):
        x = inputs_embeds
        cos, sin = self.backbone.rotary_emb(x, position_ids)
        present = []
        for index, layer in enumerate(self.backbone.layers):
            x, key, value = attend(layer, x, cos, sin, past[2 * index], past[2 * index + 1])
            present += [key, value]
        last = self.backbone.norm(x)[:, -1, :]
        return (self.head(last), last, *present)


class DepthStep(nn.Module):
    """input_ids [b, t], backbone_hidden [b, Hb], cache_position [t], past -> logits [b, V] of the last position.

    Position 0 is the backbone's last hidden state; position p > 0 holds codebook p-1's code,
    and the logits at position p are codebook p's (the head's weight p-1), as in transformers.
    """

    def __init__(self, csm):
        super().__init__()
        self.model = csm.depth_decoder.model
        self.head = csm.depth_decoder.codebooks_head
        self.vocab = csm.depth_decoder.config.vocab_size

    def forward(self, input_ids, backbone_hidden, cache_position, *past):
        offset = torch.clamp(cache_position - 1, min=0) * self.vocab
        embeds = self.model.embed_tokens(input_ids + offset[None, :])
        first = (cache_position == 0)[None, :, None]
        embeds = torch.where(first, backbone_hidden[:, None, :].to(embeds.dtype), embeds)
        x = self.model.inputs_embeds_projector(embeds)
        cos, sin = self.model.rotary_emb(x, cache_position[None, :])
        present = []
        for index, layer in enumerate(self.model.layers):
            x, key, value = attend(layer, x, cos, sin, past[2 * index], past[2 * index + 1])
            present += [key, value]
        last = self.model.norm(x)[:, -1, :]
        weight = self.head.weight[cache_position[-1] - 1]
        return (last @ weight, *present)


class EmbedAudio(nn.Module):
    """A frame of codes [b, t, codebooks] -> the backbone's input embedding (the sum over codebooks)."""

    def __init__(self, csm):
        super().__init__()
        self.embed = csm.backbone_model.embed_tokens

    def forward(self, codes):
        return self.embed(codes)


class MimiDecoder(nn.Module):
    """codes [b, codebooks, frames] -> audio [b, samples] (24 kHz): Mimi's `_decode_frame` without a cache.

    The decoder transformer gets its causal mask as a tensor, so no mask-building code is traced.
    """

    def __init__(self, csm):
        super().__init__()
        self.codec = csm.codec_model

    def forward(self, codes):
        codec = self.codec
        hidden = codec.upsample(codec.quantizer.decode(codes)).transpose(1, 2)
        length = hidden.shape[1]
        causal = torch.arange(length)[None, :] <= torch.arange(length)[:, None]
        mask = torch.zeros(length, length, dtype=hidden.dtype).masked_fill(~causal, torch.finfo(hidden.dtype).min)
        hidden = codec.decoder_transformer(hidden, attention_mask=mask[None, None], use_cache=False,
                                           return_dict=False)[0]
        return codec.decoder(hidden.transpose(1, 2))[:, 0, :]


# -- the export ----------------------------------------------------------------------------------------------------

@dataclass
class Layout:
    """What a loop needs to know about the graphs (written to DIR/config.json for the browser)."""

    num_codebooks: int
    vocab_size: int
    codebook_size: int  # codes 0..codebook_size-1 are Mimi codes; the rest are never picked
    codebook_eos: int
    audio_token_id: int
    audio_eos_token_id: int
    backbone_layers: int
    backbone_kv_heads: int
    backbone_head_dim: int
    backbone_hidden: int
    depth_layers: int
    depth_kv_heads: int
    depth_head_dim: int
    frame_rate: float
    sample_rate: int
    source_fingerprint: str = ""

    @classmethod
    def of(cls, csm, fingerprint: str = "") -> "Layout":
        config, depth = csm.config, csm.depth_decoder.config
        return cls(num_codebooks=config.num_codebooks, vocab_size=config.vocab_size,
                   codebook_size=config.codec_config.codebook_size, codebook_eos=config.codebook_eos_token_id,
                   audio_token_id=config.audio_token_id, audio_eos_token_id=config.audio_eos_token_id,
                   backbone_layers=config.num_hidden_layers, backbone_kv_heads=config.num_key_value_heads,
                   backbone_head_dim=config.head_dim, backbone_hidden=config.hidden_size,
                   depth_layers=depth.num_hidden_layers, depth_kv_heads=depth.num_key_value_heads,
                   depth_head_dim=depth.head_dim, frame_rate=config.codec_config.frame_rate,
                   sample_rate=config.codec_config.sampling_rate, source_fingerprint=fingerprint)


def cache_names(layers: int) -> tuple[list[str], list[str]]:
    past = [f"past_key_values.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    return past, [name.replace("past_key_values", "present") for name in past]


def empty_cache(layers: int, heads: int, head_dim: int, batch: int = 1, length: int = 0) -> list[torch.Tensor]:
    return [torch.zeros(batch, heads, length, head_dim) for _ in range(2 * layers)]


def export_graphs(csm, layout: Layout, onnx_dir: Path) -> None:
    """Write the five float32 graphs into `onnx_dir`."""
    onnx_dir.mkdir(parents=True, exist_ok=True)
    b_past, b_present = cache_names(layout.backbone_layers)
    d_past, d_present = cache_names(layout.depth_layers)
    hidden = layout.backbone_hidden
    b_axes = {name: {0: "batch_size", 2: "past_sequence_length"} for name in b_past}
    b_axes |= {name: {0: "batch_size", 2: "total_sequence_length"} for name in b_present}
    d_axes = {name: {0: "batch_size", 2: "past_sequence_length"} for name in d_past}
    d_axes |= {name: {0: "batch_size", 2: "total_sequence_length"} for name in d_present}
    specs = {
        "embed_audio": (EmbedAudio(csm), (torch.zeros(1, 2, layout.num_codebooks, dtype=torch.long),), ["codes"],
                        ["inputs_embeds"], {"codes": {0: "batch_size", 1: "sequence_length"},
                                            "inputs_embeds": {0: "batch_size", 1: "sequence_length"}}),
        "backbone": (BackboneStep(csm), (torch.randn(1, 3, hidden), torch.arange(2, 5)[None],
                                         *empty_cache(layout.backbone_layers, layout.backbone_kv_heads,
                                                      layout.backbone_head_dim, length=2)),
                     ["inputs_embeds", "position_ids", *b_past], ["logits", "last_hidden_state", *b_present],
                     {"inputs_embeds": {0: "batch_size", 1: "sequence_length"},
                      "position_ids": {0: "batch_size", 1: "sequence_length"}, "logits": {0: "batch_size"},
                      "last_hidden_state": {0: "batch_size"}, **b_axes}),
        "depth_decoder": (DepthStep(csm), (torch.zeros(1, 2, dtype=torch.long), torch.randn(1, hidden),
                                           torch.arange(1, 3), *empty_cache(layout.depth_layers,
                                                                            layout.depth_kv_heads,
                                                                            layout.depth_head_dim, length=1)),
                          ["input_ids", "backbone_hidden", "cache_position", *d_past], ["logits", *d_present],
                          {"input_ids": {0: "batch_size", 1: "sequence_length"}, "backbone_hidden": {0: "batch_size"},
                           "cache_position": {0: "sequence_length"}, "logits": {0: "batch_size"}, **d_axes}),
        "mimi_decoder": (MimiDecoder(csm), (torch.randint(0, layout.codebook_size, (1, layout.num_codebooks, 15)),),
                         ["codes"], ["audio"], {"codes": {0: "batch_size", 2: "frames"},
                                                "audio": {0: "batch_size", 1: "samples"}}),
    }
    for name in GRAPHS:
        module, args, inputs, outputs, axes = specs[name]
        with torch.no_grad():
            torch.onnx.export(module.eval(), args, str(onnx_dir / f"{name}.onnx"), input_names=inputs,
                              output_names=outputs, dynamic_axes=axes, opset_version=OPSET, dynamo=False)


def quantize(onnx_dir: Path) -> dict[str, str]:
    """8-bit (`_quantized`: dynamic int8 MatMuls) and 4-bit (`_q4`: MatMulNBits, block 32) copies of each graph."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    written = {}
    for name in GRAPHS:
        source = onnx_dir / f"{name}.onnx"
        eight = onnx_dir / f"{name}_quantized.onnx"
        quantize_dynamic(str(source), str(eight), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
        four = MatMulNBitsQuantizer(onnx.load(str(source)), bits=4, block_size=32, is_symmetric=True)
        four.process()
        four.model.save_model_to_file(str(onnx_dir / f"{name}_q4.onnx"), use_external_data_format=False)
        written[name] = f"{eight.name}, {name}_q4.onnx"
    return written


# -- the checks ----------------------------------------------------------------------------------------------------

class OnnxMarvis:
    """The exported graphs run with ONNX Runtime in Python: the same loop the browser page runs."""

    def __init__(self, onnx_dir: Path, layout: Layout, suffix: str = ""):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self.layout = layout
        self.sessions = {name: onnxruntime.InferenceSession(str(onnx_dir / f"{name}{suffix}.onnx"), options,
                                                            providers=["CPUExecutionProvider"]) for name in GRAPHS}

    def run(self, name: str, feeds: dict) -> list[np.ndarray]:
        return self.sessions[name].run(None, feeds)

    def backbone(self, embeds: np.ndarray, start: int, past: list[np.ndarray]):
        positions = np.arange(start, start + embeds.shape[1], dtype=np.int64)[None]
        names, _ = cache_names(self.layout.backbone_layers)
        logits, hidden, *present = self.run("backbone", dict(inputs_embeds=embeds, position_ids=positions,
                                                             **dict(zip(names, past))))
        return logits, hidden, present

    def frame(self, logits: np.ndarray, hidden: np.ndarray) -> np.ndarray:
        """One frame of codes, greedy: the backbone's code 0, then the depth decoder's codes 1..n-1."""
        size, layout = self.layout.codebook_size, self.layout
        codes = [int(np.argmax(logits[0, :size]))]
        names, _ = cache_names(layout.depth_layers)
        past = [np.zeros((1, layout.depth_kv_heads, 0, layout.depth_head_dim), np.float32)
                for _ in range(2 * layout.depth_layers)]
        ids, positions = np.array([[0, codes[0]]], np.int64), np.array([0, 1], np.int64)
        for _ in range(layout.num_codebooks - 1):
            logits, *past = self.run("depth_decoder", dict(input_ids=ids, backbone_hidden=hidden,
                                                           cache_position=positions, **dict(zip(names, past))))
            codes.append(int(np.argmax(logits[0, :size])))
            ids, positions = np.array([[codes[-1]]], np.int64), positions[-1:] + 1
        return np.array(codes, np.int64)

    def greedy(self, prefill: np.ndarray, limit: int) -> list[np.ndarray]:
        """Greedy frames after `prefill` embeddings [1, L, H], ending at the end-of-audio frame, as generate() does."""
        layout = self.layout
        past = [np.zeros((1, layout.backbone_kv_heads, 0, layout.backbone_head_dim), np.float32)
                for _ in range(2 * layout.backbone_layers)]
        logits, hidden, past = self.backbone(prefill, 0, past)
        position, frames = prefill.shape[1], []
        for _ in range(limit):
            codes = self.frame(logits, hidden)
            if (codes[:-1] == layout.codebook_eos).all():
                break
            frames.append(codes)
            embeds = self.run("embed_audio", {"codes": codes[None, None, :]})[0]
            logits, hidden, past = self.backbone(embeds, position, past)
            position += 1
        return frames

    def decode(self, frames: np.ndarray, closing: bool = False) -> np.ndarray:
        return self.run("mimi_decoder", {"codes": np.ascontiguousarray(frames.T[None])})[0][0]


def prefill_embeds(engine, prompt, text: str) -> torch.Tensor:
    """The server engine's prefill for `text` (reference turn, Mimi codes of the reference, then the text)."""
    job = SpeakJob(text, "English", prompt, Sampling(temperature=0), (0,), 1.0)
    return _merged(engine, engine.inputs(job, 1))


def prefix_embeds(engine, prompt) -> torch.Tensor:
    """The reference turn alone, embedded (its Mimi codes made by the server's codec): the browser's voice prompt.

    Followed by `text_ids` of a sentence, embedded by the page, it is the server engine's prefill.
    """
    turn = f"<|begin_of_text|>[{SPEAKER}]{prompt.ref_text}<|end_of_text|><|AUDIO|><|audio_eos|>"
    reference = prompt.tensors[REFERENCE_AUDIO].numpy()
    inputs = engine.processor(text=[turn], audio=[reference], return_tensors="pt")
    model = engine.csm
    inputs = {key: value.to(model.device, dtype=model.dtype) if value.is_floating_point() else value.to(model.device)
              for key, value in inputs.items() if key != "token_type_ids"}
    return _merged(engine, inputs)


def text_ids(engine, sentence: str) -> list[int]:
    """A sentence's turn as token ids, without the special tokens a tokenizer adds at the start of a text."""
    turn = f"<|begin_of_text|>[{SPEAKER}]{sentence}<|end_of_text|>"
    return list(engine.processor.tokenizer(turn, add_special_tokens=False)["input_ids"])


def _merged(engine, inputs: dict) -> torch.Tensor:
    with torch.no_grad():
        merged = engine.csm._merge_input_ids_with_input_values(inputs["input_ids"], inputs.get("input_values"),
                                                               inputs.get("input_values_cutoffs"))
    return merged["inputs_embeds"].float().cpu()


@dataclass
class Check:
    backbone_logits: float  # largest difference from PyTorch's CsmForConditionalGeneration
    depth_logits: float
    frames: int
    codes_identical: bool
    audio: float
    passed: bool
    variants: dict = field(default_factory=dict)  # suffix -> backbone logits' largest difference from float32


def variant_drift(onnx_dir: Path, layout: Layout, embeds: np.ndarray, suffix: str) -> float:
    """How far a smaller variant's backbone logits stray from the float32 graph's (reported, not bounded)."""
    plain, variant = OnnxMarvis(onnx_dir, layout), OnnxMarvis(onnx_dir, layout, suffix)
    past = [np.zeros((1, layout.backbone_kv_heads, 0, layout.backbone_head_dim), np.float32)
            for _ in range(2 * layout.backbone_layers)]
    return float(np.abs(plain.backbone(embeds, 0, past)[0] - variant.backbone(embeds, 0, past)[0]).max())


def check_marvis(engine, onnx_dir: Path, layout: Layout, prompt, text: str, limit: int = 40) -> Check:
    """Graphs against PyTorch: logits, greedy codes against the server engine, and a whole line's audio."""
    from transformers.cache_utils import DynamicCache

    csm = engine.csm
    graphs = OnnxMarvis(onnx_dir, layout)
    embeds = prefill_embeds(engine, prompt, text)
    with torch.no_grad():
        reference = csm(inputs_embeds=embeds, past_key_values=DynamicCache(), use_cache=True,
                        output_hidden_states=True)
    past = [np.zeros((1, layout.backbone_kv_heads, 0, layout.backbone_head_dim), np.float32)
            for _ in range(2 * layout.backbone_layers)]
    logits, hidden, _ = graphs.backbone(embeds.numpy(), 0, past)
    backbone_error = float(np.abs(logits - reference.logits[:, -1].numpy()).max())
    with torch.no_grad():  # the depth decoder's first two positions against transformers' own forward
        code = int(np.argmax(logits[0, :layout.codebook_size]))
        depth = csm.depth_decoder(input_ids=torch.tensor([[0, code]]), backbone_last_hidden_state=torch.from_numpy(
            hidden), use_cache=True, past_key_values=DynamicCache(), cache_position=torch.arange(2),
            logits_to_keep=1)
    names, _ = cache_names(layout.depth_layers)
    empty = [np.zeros((1, layout.depth_kv_heads, 0, layout.depth_head_dim), np.float32)
             for _ in range(2 * layout.depth_layers)]
    depth_logits = graphs.run("depth_decoder", dict(input_ids=np.array([[0, code]], np.int64), backbone_hidden=hidden,
                                                    cache_position=np.arange(2, dtype=np.int64),
                                                    **dict(zip(names, empty))))[0]
    depth_error = float(np.abs(depth_logits - depth.logits[:, -1].numpy()).max())

    job = SpeakJob(text, "English", prompt, Sampling(temperature=0), (0,), limit * engine.capabilities.step_seconds)
    with engine.generation_lock:
        steps = engine.generate_takes(job, limit, engine.generators([0]))
        server = [codes[0].numpy() for codes, alive in steps if bool(alive[0])]
    ours = graphs.greedy(embeds.numpy(), limit)
    identical = len(server) == len(ours) and all(np.array_equal(a, b) for a, b in zip(server, ours))

    def line(decode) -> np.ndarray:
        decoder = WindowDecoder(decode, WINDOW, CONTEXT)
        return np.concatenate([decoder.push(np.stack(server)), decoder.finish()])

    audio_error = float(np.abs(line(engine._decode_frames) - line(graphs.decode)).max()) if server else 0.0
    passed = (backbone_error <= LOGITS_TOLERANCE and depth_error <= LOGITS_TOLERANCE and identical
              and audio_error <= AUDIO_TOLERANCE)
    return Check(backbone_error, depth_error, len(server), identical, audio_error, passed)


def export_marvis(settings: Settings, out: Path, quantized: bool = True, text: str = "Hello from the browser.",
                  reference=None, reference_text: str = "A reference line.") -> Check:
    """Export the Marvis checkpoint of `settings`, check it, and write its variants; returns the check."""
    from .engine import MarvisEngine

    engine = MarvisEngine(settings)
    engine.load()
    layout = Layout.of(engine.csm, engine.fingerprint)
    onnx_dir = Path(out) / "onnx"
    export_graphs(engine.csm.float().eval(), layout, onnx_dir)
    clip = reference if reference is not None else _sine_clip()
    prompt = engine.make_prompt(clip, reference_text, "icl")
    check = check_marvis(engine, onnx_dir, layout, prompt, text)
    embeds = prefill_embeds(engine, prompt, text).numpy()
    if quantized:
        quantize(onnx_dir)
        check.variants = {suffix: variant_drift(onnx_dir, layout, embeds, suffix)
                          for suffix in ("_quantized", "_q4")}
    (Path(out) / "config.json").write_text(json.dumps(dict(asdict(layout), check=asdict(check)), indent=2))
    return check


def _sine_clip():
    """A stand-in reference when none is given: two seconds of a voiced, speech-level tone."""
    from ...config import SAMPLE_RATE

    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    samples = (0.2 * np.sin(2 * np.pi * 140 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    return audio.Clip(samples, SAMPLE_RATE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("engine", choices=["marvis"])
    parser.add_argument("--out", required=True, help="folder to write onnx/*.onnx and config.json into")
    parser.add_argument("--model", default=Settings().marvis_model, help="Hub id or folder of the Marvis checkpoint")
    parser.add_argument("--no-quantize", action="store_true", help="skip the 8-bit and 4-bit variants")
    parser.add_argument("--reference", help="a voice clip to check with (default: a synthetic tone)")
    parser.add_argument("--reference-text", default="A reference line.", help="the clip's transcript")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("onnxruntime").setLevel(logging.WARNING)  # its quantizers log every node they skip
    settings = Settings(marvis_model=args.model, device="cpu", dtype="float32")
    try:
        reference = audio.load(args.reference, max_seconds=settings.max_reference_seconds) if args.reference else None
        check = export_marvis(settings, Path(args.out), quantized=not args.no_quantize, reference=reference,
                              reference_text=args.reference_text)
    except StudioError as error:
        print(error, file=sys.stderr)
        return 2
    print(f"backbone logits within {check.backbone_logits:.2e}, depth decoder logits within {check.depth_logits:.2e}"
          f" (limit {LOGITS_TOLERANCE:g}); greedy codes {'identical' if check.codes_identical else 'DIFFERENT'} over "
          f"{check.frames} frames; audio within {check.audio:.2e} (limit {AUDIO_TOLERANCE:g}).")
    if not check.passed:
        print("The exported graphs do not match PyTorch: do not use them.", file=sys.stderr)
        return 1
    for suffix, drift in check.variants.items():
        print(f"{suffix[1:]}: backbone logits differ from float32 by up to {drift:.3g} (smaller, not equal).")
    print(f"Wrote {args.out}/onnx: {', '.join(GRAPHS)} (float32{'' if args.no_quantize else ', _quantized, _q4'}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
