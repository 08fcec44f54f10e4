"""Streaming synthesis on the tiny checkpoint: exactness, timing in frames, cancellation, guards."""

import threading

import numpy as np
import pytest
import torch

from studio.engine import SynthesisRequest, Sampling, frame_budget
from studio.errors import Cancelled
from studio.qwen_decoder import StreamDecoder
from studio.streaming import FADE_SAMPLES, ChunkPlan, stream
from tests.conftest import counting_frames, wait_until_idle

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def prompt(engine, ja_clip):
    clip, text = ja_clip
    return engine.make_prompt(clip, text, "icl")


@pytest.mark.parametrize("ref_frames, frames", [(0, 40), (45, 30), (45, 640), (290, 40)])
def test_decoder_matches_one_shot_decode_at_every_seam(engine, ref_frames, frames):
    tokenizer = engine.model.model.speech_tokenizer
    generator = torch.Generator().manual_seed(ref_frames + frames)
    ref = torch.randint(0, 2048, (ref_frames, 16), generator=generator)
    codes = torch.randint(0, 2048, (frames, 16), generator=generator)
    one_shot = tokenizer.decode([{"audio_codes": torch.cat([ref, codes])}])[0][0][ref_frames * 1920:]
    decoder = StreamDecoder(tokenizer.model.decoder, ref if ref_frames else None)
    pieces, start, sizes = [], 0, [1, 2, 3, 5, 8, 13]
    while start < frames:
        size = sizes[len(pieces) % len(sizes)]
        pieces.append(decoder.push(codes[start:start + size]))
        start += size
    streamed = np.concatenate(pieces)
    assert len(streamed) == len(one_shot) == frames * 1920
    assert np.abs(streamed - one_shot).max() <= TOLERANCE
    assert np.abs(one_shot).max() > 0.1  # a real signal, so the comparison means something


@pytest.mark.parametrize("sampling", [
    Sampling(temperature=0, max_frames=40),
    Sampling(seed=5, max_frames=40),
    Sampling(seed=9, max_frames=330),
], ids=["greedy", "seeded", "seeded-330-frames"])
def test_stream_equals_one_shot(engine, prompt, sampling):
    request = SynthesisRequest("Hello there, how are you today", "English", prompt, sampling)
    one_shot, _ = engine.synthesize(request)
    take_stream = stream(engine, request)
    chunks = list(take_stream)
    streamed = np.concatenate([c.samples for c in chunks])
    assert len(streamed) == len(one_shot) == sampling.max_frames * 1920
    assert np.abs(streamed - one_shot).max() <= TOLERANCE
    np.testing.assert_array_equal(take_stream.take.samples, streamed)
    assert len(chunks) > 3


def test_stream_matches_official_generate_voice_clone(engine, prompt):
    """Same codes and audio as qwen-tts' own one-shot path (which may keep one reference sample more)."""
    from qwen_tts.inference.qwen3_tts_model import VoiceClonePromptItem

    item = VoiceClonePromptItem(prompt.tensor("ref_code"), prompt.tensor("speaker_embedding"), False, True,
                                prompt.ref_text)
    torch.manual_seed(21)
    official, _ = engine.model.generate_voice_clone(text="Good evening.", language="English",
                                                    voice_clone_prompt=[item], max_new_tokens=31)
    request = SynthesisRequest("Good evening.", "English", prompt, Sampling(seed=21, max_frames=30))
    streamed = np.concatenate([c.samples for c in stream(engine, request)])
    assert len(streamed) == 30 * 1920 and len(official[0]) - len(streamed) in (0, 1)
    assert np.abs(official[0][-len(streamed):] - streamed).max() <= TOLERANCE


def test_first_chunk_after_at_most_two_frames(engine, prompt):
    request = SynthesisRequest("A first chunk test.", "English", prompt, Sampling(seed=1, max_frames=30))
    generated = []
    handle = engine.model.model.talker.register_forward_hook(
        lambda _m, _a, out: generated.append(1) if out.hidden_states[1] is not None else None)
    try:
        iterator = iter(stream(engine, request, plan=ChunkPlan(first=2)))
        first = next(iterator)
        assert first.frames <= 2 and len(first.samples) == first.frames * 1920
        iterator.close()
    finally:
        handle.remove()
    assert first.index == 0


def test_chunk_plan_grows_to_its_cap():
    sizes = ChunkPlan(first=2, growth=2, largest=12).sizes()
    assert [next(sizes) for _ in range(6)] == [2, 4, 8, 12, 12, 12]
    sizes = ChunkPlan(first=1, growth=1.5, largest=5).sizes()
    assert [next(sizes) for _ in range(6)] == [1, 2, 3, 4, 5, 5]


def test_closing_the_iterator_stops_generation(engine, prompt):
    request = SynthesisRequest("Stop me early please.", "English", prompt, Sampling(seed=2, max_frames=400))
    with counting_frames(engine) as counted:
        iterator = iter(stream(engine, request, heartbeat=True))
        next(iterator)
        at_close = len(counted)
        iterator.close()  # nothing runs beside the consumer: generation has stopped, the engine is free
        assert not engine.busy
    assert len(counted) - at_close <= 2  # the frame in flight, at most one more
    assert len(counted) < 100


def test_cancel_from_another_thread_ends_within_a_frame(engine, prompt):
    request = SynthesisRequest("Cancel me from the stop button.", "English", prompt,
                               Sampling(seed=3, max_frames=400))
    take_stream = stream(engine, request)
    seen_at_cancel = []
    with counting_frames(engine) as counted:
        with pytest.raises(Cancelled):
            for chunk in take_stream:
                if chunk.index == 1:
                    seen_at_cancel.append(len(counted))
                    threading.Thread(target=take_stream.cancel).start()
        assert wait_until_idle(engine)
    assert len(counted) - seen_at_cancel[0] <= 2
    # The engine is usable again afterwards.
    samples, _ = engine.synthesize(SynthesisRequest("Again.", "English", prompt, Sampling(seed=1, max_frames=5)))
    assert len(samples) == 5 * 1920


def test_runaway_guard_flags_the_take(engine, prompt):
    request = SynthesisRequest("Short.", "English", prompt, Sampling(seed=4))
    take_stream = stream(engine, request)
    list(take_stream)
    take = take_stream.take
    # Random weights never say end-of-speech, so the budget derived from the text is what stops it.
    assert take.frames == frame_budget("Short.")
    assert any("length limit" in flag for flag in take.flags)
    assert "length limit" in take.summary()


def test_take_reports_timings(engine, prompt):
    take_stream = stream(engine, SynthesisRequest("Timing.", "English", prompt, Sampling(seed=4, max_frames=20)))
    list(take_stream)
    take = take_stream.take
    assert 0 < take.time_to_first_audio <= take.total_time
    assert take.duration == pytest.approx(20 * 1920 / 24000)
    assert take.real_time_factor == pytest.approx(take.total_time / take.duration)
    assert take.seed == 4


def test_long_text_streams_sentence_by_sentence_without_clicks(engine, prompt):
    text = "The first sentence is here. And this is the second one."
    request = SynthesisRequest(text, "English", prompt, Sampling(seed=6, max_frames=20))
    take_stream = stream(engine, request)
    chunks = list(take_stream)
    take = take_stream.take
    assert take.sentences == 2 and {c.sentence for c in chunks} == {0, 1}
    assert len(take.samples) == 2 * 20 * 1920  # no gap inserted, nothing lost
    joint = 20 * 1920
    # Faded out and in: the waveform meets at zero instead of jumping.
    assert abs(take.samples[joint - 1]) < 1e-2 and abs(take.samples[joint]) < 1e-2
    around = np.abs(np.diff(take.samples[joint - FADE_SAMPLES:joint + FADE_SAMPLES]))
    assert around.max() < np.abs(np.diff(take.samples)).max() + 1e-6


def test_request_budget_stops_a_request_of_many_sentences(engine, prompt):
    """The per-sentence cap is not enough: one request has a total budget of audio."""
    from studio.config import FRAME_RATE

    budgeted = type(engine)(engine.settings.replace(max_request_seconds=30 / FRAME_RATE))
    budgeted._state, budgeted.generation_lock = engine._state, engine.generation_lock  # share the loaded model
    text = " ".join(f"This is sentence number {i}." for i in range(10))
    take_stream = stream(budgeted, SynthesisRequest(text, "English", prompt, Sampling(seed=1, max_frames=20)))
    list(take_stream)
    take = take_stream.take
    assert take.frames == 30  # 20 frames of sentence 1, the 10 left in the budget of sentence 2
    assert any("budget" in flag for flag in take.flags)
