"""Tiny random Chatterbox-Turbo ONNX graphs for offline tests: the real loader and loop run on them."""

from __future__ import annotations

from pathlib import Path

from .engine import GRAPHS, TAGS


def build_chatterbox(directory: str | Path, hidden: int = 32, layers: int = 24, heads: int = 2, head_dim: int = 8,
                     seed: int = 0, stop_bias: float = 12.0) -> Path:
    """Four tiny random ONNX graphs named, shaped and typed like `ResembleAI/chatterbox-turbo-ONNX`, and a tokenizer.

    Inputs and outputs (names, ranks, dtypes) follow ResembleAI's published usage code for
    that export (see `engine.py` beside this file): `speech_encoder` audio_values [b, samples] ->
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
