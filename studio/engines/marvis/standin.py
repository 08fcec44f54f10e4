"""A tiny random Marvis (CSM) checkpoint with its processor, for offline tests and benchmarks."""

from __future__ import annotations

from pathlib import Path

from ...config import SAMPLE_RATE
from .engine import FRAME_RATE

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
