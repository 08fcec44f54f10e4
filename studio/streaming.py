"""True streaming synthesis: audio chunks while the talker is still generating.

qwen-tts' `generate()` has no streaming and drops unknown kwargs, so no streamer
can be passed. Instead `generate()` runs in a worker thread and a forward hook on
`model.talker` sees every finished frame (all 16 code groups, in
`out.hidden_states[1]`); the hook decodes each completed chunk in that same thread
and hands the audio over through a queue.

Frames become audio through `StreamDecoder`, which reproduces the one-shot
decode (upstream `chunked_decode`: windows of 300 frames with 25 frames of left
context) incrementally: the 12.5 Hz stages keep a KV cache and the causal conv
vocoder keeps each layer's left context as state, so every frame is decoded once
and the concatenated stream equals the one-shot output, seams included.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from .engine import SAMPLE_RATE, Engine, SynthesisRequest, frame_budget
from .errors import Cancelled

CHUNK_FRAMES = 300  # upstream chunked_decode window
LEFT_CONTEXT = 25  # upstream chunked_decode left context
VOCODER_WARMUP = 16  # frames; the conv vocoder's receptive field is about 10 frames
FADE_SAMPLES = 240  # 10 ms fades where two sentences meet


@dataclass(frozen=True)
class ChunkPlan:
    """Frames per chunk: a small first chunk for fast start, then growing to `largest`."""

    first: int = 2
    growth: float = 2.0
    largest: int = 12

    def sizes(self) -> Iterator[int]:
        size = max(1, self.first)
        while True:
            yield size
            size = min(max(self.largest, 1), max(size + 1, int(size * self.growth)))


@dataclass
class Chunk:
    samples: np.ndarray  # float32 mono at 24 kHz
    index: int
    sentence: int
    frames: int
    elapsed: float  # seconds since the request started


@dataclass
class Take:
    samples: np.ndarray
    rate: int
    seed: int
    frames: int
    time_to_first_audio: float
    total_time: float
    sentences: int
    flags: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate

    @property
    def real_time_factor(self) -> float:
        return self.total_time / max(self.duration, 1e-9)

    def summary(self) -> str:
        text = (f"{self.duration:.2f} s of audio; first audio after {self.time_to_first_audio:.2f} s; "
                f"total {self.total_time:.2f} s (real-time factor {self.real_time_factor:.2f}); seed {self.seed}.")
        return " ".join([text] + self.flags)


def split_sentences(text: str, longest: int = 300) -> list[str]:
    """Split at sentence ends (Latin and CJK); merge scraps; break over-long sentences at clauses."""
    pieces = [p.strip() for p in re.split(r"(?<=[.!?。！？…])\s+|(?<=[。！？])|\n+", text) if p and p.strip()]
    merged: list[str] = []
    for piece in pieces:
        if merged and (len(piece) < 8 or not any(ch.isalnum() for ch in piece)):
            merged[-1] = f"{merged[-1]} {piece}" if piece[0].isalnum() else merged[-1] + piece
        else:
            merged.append(piece)
    result: list[str] = []
    for sentence in merged:
        result.extend(_break_long(sentence, longest))
    return result or [text.strip()]


def _break_long(sentence: str, longest: int) -> list[str]:
    if len(sentence) <= longest:
        return [sentence]
    parts, current = [], ""
    for clause in re.split(r"(?<=[,;:、，；])\s*", sentence):
        if current and len(current) + len(clause) > longest:
            parts.append(current.strip())
            current = ""
        if current and clause[:1].isalnum():
            current += " "  # Latin clauses were separated by a space; CJK ones were not
        current += clause
        while len(current) > longest:
            cut = current.rfind(" ", 0, longest)
            cut = cut if cut > 0 else longest
            parts.append(current[:cut].strip())
            current = current[cut:].strip()
    if current.strip():
        parts.append(current.strip())
    return parts


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

    @property
    def frames(self) -> int:
        return int(self.codes.shape[0])

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
        """Causal transposed conv (kernel <= 2 * stride) continuing from the previous input frame."""
        import torch

        stride = module.conv.stride[0]
        previous = self._states.get(id(module))
        if previous is None:
            previous = x.new_zeros(x.shape[0], x.shape[1], 1)
        self._states[id(module)] = x[..., -1:]
        full = module.conv(torch.cat([previous, x], dim=-1))
        return full[..., stride: stride * (x.shape[-1] + 1)]


class _Stop(Exception):
    """Raised inside the talker's forward hook to end generate() early."""


class Stream:
    """Iterate to get `Chunk`s as they are generated; `take` holds the whole take afterwards.

    Closing the iterator (a Stop button, a disconnected client) or calling
    `cancel()` ends generation within one frame and joins the worker thread.
    """

    def __init__(self, engine: Engine, request: SynthesisRequest, plan: ChunkPlan | None = None,
                 heartbeat: bool = False):
        self.engine = engine
        # With heartbeat, iteration also yields None after every frame that completes no chunk, so a
        # consumer that is closed between items (Gradio on Stop or disconnect) stops within one frame.
        self.heartbeat = heartbeat
        self.request = engine.check_request(request)
        self.plan = plan or ChunkPlan()
        self.sentences = split_sentences(self.request.text)
        self.take: Take | None = None
        self._stop = threading.Event()

    def cancel(self) -> None:
        self._stop.set()

    def __iter__(self) -> Iterator[Chunk | None]:
        started = time.perf_counter()
        pieces: list[np.ndarray] = []
        flags: list[str] = []
        first_audio = None
        frames = 0
        index = 0
        with self.engine.generation_lock:
            seed = self.engine.seed(self.request.sampling)
            for number, sentence in enumerate(self.sentences):
                last = number == len(self.sentences) - 1
                for piece in self._sentence(sentence, fade_in=number > 0, fade_out=not last):
                    if piece is None:
                        yield None
                        continue
                    samples, count, hit = piece
                    frames += count
                    if first_audio is None:
                        first_audio = time.perf_counter() - started
                    pieces.append(samples)
                    yield Chunk(samples, index, number, count, time.perf_counter() - started)
                    index += 1
                    if hit:
                        flags.append(f"Sentence {number + 1} hit the length limit and may be cut off.")
        total = time.perf_counter() - started
        samples = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        self.take = Take(samples, SAMPLE_RATE, seed, frames, first_audio or total, total, len(self.sentences), flags)

    def _sentence(self, text: str, fade_in: bool, fade_out: bool):
        """Yield (samples, frames, limit_hit) for one sentence, or None per frame as a heartbeat.

        Generation and decoding both run in one worker thread (decoding inside the
        talker's forward hook, between frames): torch ops from two threads at once
        fight over the same cores and made streaming 20% slower than one-shot on a
        2-core machine. This thread only hands chunks on.
        """
        import torch

        engine = self.engine
        model = engine.model.model
        eos = model.config.talker_config.codec_eos_token_id
        limit = self.request.sampling.max_frames or frame_budget(text)
        out: queue.Queue = queue.Queue()
        halt = threading.Event()  # ends this sentence's worker; set on cancel or when the consumer leaves
        done = object()
        decoder = StreamDecoder(model.speech_tokenizer.model.decoder, self.request.prompt.ref_code)
        sizes = self.plan.sizes()
        pending: list = []
        want = [next(sizes)]

        def emit():
            samples = decoder.push(torch.stack(pending))
            out.put((samples, len(pending)))
            pending.clear()
            want[0] = next(sizes)

        def hook(_module, _args, output):
            codes = output.hidden_states[1]
            if codes is None:
                return  # prefill step: no frame yet
            if halt.is_set() or self._stop.is_set():
                raise _Stop
            if int(codes[0, 0]) == eos:
                return
            pending.append(codes[0].detach().clone())
            if len(pending) >= want[0]:
                emit()
            elif self.heartbeat:
                out.put(None)

        def work():
            try:
                with torch.inference_mode():
                    engine.generate_codes(self.request, text)
                    if pending:
                        emit()
            except _Stop:
                pass
            except BaseException as error:  # handed to the consuming thread
                out.put(error)
            finally:
                out.put(done)

        handle = model.talker.register_forward_hook(hook)
        worker = threading.Thread(target=work, name="studio-generate", daemon=True)
        worker.start()
        produced = 0
        held = np.zeros(0, np.float32)  # the tail kept back for a fade-out
        try:
            while (item := out.get()) is not done:
                if item is None:
                    yield None
                    continue
                if isinstance(item, BaseException):
                    raise item
                samples, count = item
                produced += count
                if fade_in and produced == count:
                    samples = _fade(samples, rising=True)
                if fade_out:
                    samples = np.concatenate([held, samples])
                    held, samples = samples[-FADE_SAMPLES:], samples[:-FADE_SAMPLES]
                yield samples, count, False
            if self._stop.is_set():
                raise Cancelled("Generation was stopped.")
            hit = produced >= limit
            if fade_out and len(held):
                yield _fade(held, rising=False), 0, hit
            elif hit:
                yield np.zeros(0, np.float32), 0, True
        finally:
            halt.set()
            worker.join()
            handle.remove()


def _fade(samples: np.ndarray, rising: bool) -> np.ndarray:
    n = min(FADE_SAMPLES, len(samples))
    if n == 0:
        return samples
    ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
    samples = samples.copy()
    if rising:
        samples[:n] *= ramp
    else:
        samples[-n:] *= ramp[::-1]
    return samples


def stream(engine: Engine, request: SynthesisRequest, plan: ChunkPlan | None = None,
           heartbeat: bool = False) -> Stream:
    return Stream(engine, request, plan, heartbeat)
