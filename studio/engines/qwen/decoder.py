"""Qwen3-TTS' 12 Hz vocoder, decoded incrementally into exactly what the one-shot decode gives.

`StreamDecoder` reproduces upstream `chunked_decode` (windows of 300 frames with
25 frames of left context) frame by frame: the 12.5 Hz stages keep a KV cache
and every causal conv layer of the vocoder keeps its left context as state, so
each frame is decoded once and the concatenated stream equals the one-shot
output, seams and window boundaries included.
"""

from __future__ import annotations

import copy
import weakref

import numpy as np

CHUNK_FRAMES = 300  # upstream chunked_decode window
LEFT_CONTEXT = 25  # upstream chunked_decode left context
VOCODER_WARMUP = 16  # frames; the conv vocoder's receptive field is about 10 frames


class StreamDecoder:
    """Decodes 12 Hz codes frame by frame into exactly what the one-shot decode gives."""

    def __init__(self, decoder, context=None):
        import torch

        self.decoder = decoder
        self.device = next(decoder.parameters()).device
        self.codes = torch.zeros((0, decoder.config.num_quantizers), dtype=torch.long, device=self.device)
        self._states: dict[int, "torch.Tensor"] = {}
        self._cache = None
        if context is not None and len(context):
            with torch.inference_mode():
                self._append(context.to(self.device), emit=False)

    def fork(self) -> "StreamDecoder":
        """A decoder in this one's state that goes on independently (the module's weights are shared).

        Codes and conv states are replaced, never changed in place, so they are shared until
        either side moves on; the transformer's KV cache grows in place, so it is copied.
        """
        twin = StreamDecoder.__new__(StreamDecoder)
        twin.decoder, twin.device, twin.codes = self.decoder, self.device, self.codes
        twin._states = dict(self._states)
        twin._cache = copy.deepcopy(self._cache)
        return twin

    @property
    def frames(self) -> int:
        return int(self.codes.shape[0])

    def finish(self) -> np.ndarray:
        """Nothing is held back: every frame's audio came out of `push`."""
        return np.zeros(0, np.float32)

    def push(self, codes) -> np.ndarray:
        """Add frames (n, 16); return their audio (n * 1920 samples)."""
        import torch

        if len(codes) == 0:
            return np.zeros(0, np.float32)
        with torch.inference_mode():
            return self._append(codes.to(self.device), emit=True)

    def _append(self, codes, emit: bool) -> np.ndarray:
        import torch

        out = []
        while len(codes):
            start = self.frames
            offset = start % CHUNK_FRAMES
            take = min(len(codes), CHUNK_FRAMES - offset)
            piece, codes = codes[:take], codes[take:]
            if offset == 0:
                self._start_window(start)
            self.codes = torch.cat([self.codes, piece])
            latent = self._latent(piece)
            if emit:
                out.append(self._vocode(latent))
            else:
                self._warm_vocoder(latent)
        if not out:
            return np.zeros(0, np.float32)
        return torch.cat(out, dim=-1).reshape(-1).float().cpu().numpy()

    def _start_window(self, start: int) -> None:
        """Fresh state at a window boundary, primed with the window's left context like upstream."""
        self._states.clear()
        self._cache = None
        context = self.codes[max(0, start - LEFT_CONTEXT):start]
        if len(context):
            self._warm_vocoder(self._latent(context))

    def _warm_vocoder(self, latent) -> None:
        """Bring the vocoder's state up to date without audio; only its receptive field matters."""
        if latent.shape[-1] > VOCODER_WARMUP:
            for key in [k for k in self._states if k != id(self.decoder.pre_conv)]:
                del self._states[key]
            latent = latent[..., -VOCODER_WARMUP:]
        self._vocode(latent)

    def _latent(self, codes):
        """The 12.5 Hz stages (quantizer, pre-conv, transformer with KV cache) for new frames."""
        from transformers import DynamicCache

        d = self.decoder
        hidden = d.quantizer.decode(codes.T.unsqueeze(0))
        hidden = self._causal_conv(d.pre_conv, hidden).transpose(1, 2)
        if self._cache is None:
            self._cache = DynamicCache(config=d.pre_transformer.config)
        hidden = d.pre_transformer(inputs_embeds=hidden, past_key_values=self._cache, use_cache=True).last_hidden_state
        return hidden.permute(0, 2, 1)

    def _vocode(self, hidden):
        d = self.decoder
        for blocks in d.upsample:
            for block in blocks:
                hidden = self._run(block, hidden)
        for block in d.decoder:
            hidden = self._run(block, hidden)
        return hidden.clamp(min=-1, max=1)

    def _run(self, module, x):
        from qwen_tts.core.tokenizer_12hz import modeling_qwen3_tts_tokenizer_v2 as m

        if isinstance(module, m.Qwen3TTSTokenizerV2CausalConvNet):
            return self._causal_conv(module, x)
        if isinstance(module, m.Qwen3TTSTokenizerV2CausalTransConvNet):
            return self._trans_conv(module, x)
        if isinstance(module, m.Qwen3TTSTokenizerV2ConvNeXtBlock):
            residual = x
            x = self._causal_conv(module.dwconv, x).permute(0, 2, 1)
            x = module.pwconv2(module.act(module.pwconv1(module.norm(x))))
            return residual + (module.gamma * x).permute(0, 2, 1)
        if isinstance(module, m.Qwen3TTSTokenizerV2DecoderDecoderResidualUnit):
            residual = x
            x = self._causal_conv(module.conv1, module.act1(x))
            return self._causal_conv(module.conv2, module.act2(x)) + residual
        if isinstance(module, m.Qwen3TTSTokenizerV2DecoderDecoderBlock):
            for block in module.block:
                x = self._run(block, x)
            return x
        return module(x)  # pointwise (SnakeBeta)

    def _causal_conv(self, module, x):
        """Causal conv whose left padding is the previous input instead of zeros."""
        import torch

        assert module.stride == 1
        pad = module.padding
        if pad == 0:
            return module.conv(x)
        state = self._states.get(id(module))
        if state is None:
            state = x.new_zeros(x.shape[0], x.shape[1], pad)
        full = torch.cat([state, x], dim=-1)
        self._states[id(module)] = full[..., -pad:]
        return module.conv(full)

    def _trans_conv(self, module, x):
        """Causal transposed conv (kernel <= 2 * stride) continuing from the previous input frame.

        Written as one matrix product and an overlap-add of two halves: PyTorch's own
        transposed conv took 45 ms for a frame of the 1536-channel layer on one CPU thread
        (bfloat16), the product about 5 ms (PyTorch's profiler, one-off).
        """
        import torch

        conv = module.conv
        stride, kernel = conv.stride[0], conv.kernel_size[0]
        if kernel > 2 * stride or conv.groups != 1 or conv.dilation[0] != 1 or conv.padding[0] != 0:
            raise ValueError(f"unsupported transposed conv: kernel {kernel}, stride {stride}, groups "
                             f"{conv.groups}, dilation {conv.dilation[0]}, padding {conv.padding[0]}")
        previous = self._states.get(id(module))
        if previous is None:
            previous = x.new_zeros(x.shape[0], x.shape[1], 1)
        self._states[id(module)] = x[..., -1:]
        full = torch.cat([previous, x], dim=-1)  # [b, in, frames + 1]
        out_channels = conv.weight.shape[1]
        columns = full.transpose(1, 2) @ _columns(conv)  # [b, frames + 1, out * 2 stride]
        columns = columns.view(*columns.shape[:2], out_channels, 2, stride)
        # output block s (one per input frame) = this frame's first half + the previous frame's second half
        blocks = columns[:, 1:, :, 0] + columns[:, :-1, :, 1]  # [b, frames, out, stride]
        out = blocks.permute(0, 2, 1, 3).reshape(x.shape[0], out_channels, -1)
        return out if conv.bias is None else out + conv.bias[:, None]


_prepared: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _columns(conv):
    """A transposed conv's weight [in, out, kernel] as [in, out * 2 stride] (zero-padded), made once per layer."""
    import torch

    matrix = _prepared.get(conv)
    if matrix is None or matrix.dtype != conv.weight.dtype or matrix.device != conv.weight.device:
        weight = conv.weight.detach()
        stride = conv.stride[0]
        weight = torch.nn.functional.pad(weight, (0, 2 * stride - weight.shape[-1]))
        matrix = _prepared[conv] = weight.reshape(weight.shape[0], -1).contiguous()
    return matrix
