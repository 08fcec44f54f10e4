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

from ...config import FRAME_RATE, SAMPLE_RATE, SAMPLES_PER_FRAME

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
