"""The speech pipeline on the tiny checkpoint: exactness, chunks, cancellation, budgets in seconds."""

import threading

import numpy as np
import pytest
import torch

from studio.engines import Sampling, sentence_budget
from studio.engines.frames import ChunkPlan
from studio.engines.qwen.decoder import StreamDecoder
from studio.errors import Cancelled
from studio.streaming import FADE_SAMPLES, Budget, Speech, Stream
from tests.conftest import counting_frames, wait_until_idle

TOLERANCE = 1e-4
FRAME = 1 / 12.5
ROOMY = Budget(600, 900)


def stream(engine, text, prompt, sampling, budget=ROOMY, takes=1, heartbeat=False) -> Stream:
    return Stream(engine, Speech(text, "English", prompt, sampling), budget, takes, heartbeat)


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


@pytest.mark.parametrize("sampling, frames", [
    (Sampling(temperature=0, max_seconds=40 * FRAME), 40),
    (Sampling(seed=5, max_seconds=40 * FRAME), 40),
    (Sampling(seed=9, max_seconds=330 * FRAME), 330),
], ids=["greedy", "seeded", "seeded-330-frames"])
def test_collected_equals_streamed(engine, prompt, sampling, frames):
    text = "Hello there, how are you today"
    one_shot = stream(engine, text, prompt, sampling).collect()[0].samples
    take_stream = stream(engine, text, prompt, sampling)
    chunks = list(take_stream)
    streamed = np.concatenate([c.samples for c in chunks])
    assert len(streamed) == len(one_shot) == frames * 1920
    np.testing.assert_array_equal(streamed, one_shot)
    np.testing.assert_array_equal(take_stream.take.samples, streamed)
    assert len(chunks) > 3


def test_stream_matches_official_generate_voice_clone(exact_engine, prompt):
    """Same codes and audio as qwen-tts' own one-shot path (which may keep one reference sample more)."""
    engine = exact_engine
    from qwen_tts.inference.qwen3_tts_model import VoiceClonePromptItem

    item = VoiceClonePromptItem(prompt.tensor("ref_code"), prompt.tensor("speaker_embedding"), False, True,
                                prompt.ref_text)
    torch.manual_seed(21)
    official, _ = engine.model.generate_voice_clone(text="Good evening.", language="English",
                                                    voice_clone_prompt=[item], max_new_tokens=31)
    streamed = np.concatenate([c.samples for c in stream(engine, "Good evening.", prompt,
                                                         Sampling(seed=21, max_seconds=30 * FRAME))])
    assert len(streamed) == 30 * 1920 and len(official[0]) - len(streamed) in (0, 1)
    assert np.abs(official[0][-len(streamed):] - streamed).max() <= TOLERANCE


def test_first_chunk_after_one_frame(engine, prompt):
    """The first chunk is one frame's audio, heard long before the sentence is done; closing stops the rest.

    The batch's worker does not wait for its reader, so it may have made a frame more by then."""
    with counting_frames(engine) as counted:
        iterator = iter(stream(engine, "A first chunk test.", prompt, Sampling(seed=1, max_seconds=30 * FRAME)))
        first = next(iterator)
        made_by_then = len(counted)
        iterator.close()
    assert made_by_then < 30 and len(counted) < 30 and len(first.samples) == 1920
    assert first.index == 0 and first.take == 0


def test_chunk_plan_grows_to_its_cap():
    sizes = ChunkPlan(first=2, growth=2, largest=12).sizes()
    assert [next(sizes) for _ in range(6)] == [2, 4, 8, 12, 12, 12]
    sizes = ChunkPlan(first=1, growth=1.5, largest=5).sizes()
    assert [next(sizes) for _ in range(6)] == [1, 2, 3, 4, 5, 5]


def test_closing_the_iterator_stops_generation(engine, prompt):
    with counting_frames(engine) as counted:
        iterator = iter(stream(engine, "Stop me early please.", prompt, Sampling(seed=2, max_seconds=400 * FRAME),
                               heartbeat=True))
        next(iterator)
        at_close = len(counted)
        iterator.close()  # nothing runs beside the consumer: generation has stopped, the engine is free
        assert not engine.busy
    assert len(counted) - at_close <= 2  # the frame in flight, at most one more
    assert len(counted) < 100


def test_cancel_from_another_thread_ends_within_a_frame(engine, prompt):
    take_stream = stream(engine, "Cancel me from the stop button.", prompt,
                         Sampling(seed=3, max_seconds=400 * FRAME))
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
    again = stream(engine, "Again.", prompt, Sampling(seed=1, max_seconds=5 * FRAME)).collect()[0]
    assert len(again.samples) == 5 * 1920 and not again.stopped
    assert take_stream.take.stopped and take_stream.take.summary().startswith("Stopped after")


def test_runaway_guard_flags_the_take(engine, prompt):
    take_stream = stream(engine, "Short.", prompt, Sampling(seed=4))
    list(take_stream)
    take = take_stream.take
    # Random weights never say end-of-speech, so the budget derived from the text is what stops it.
    assert take.duration == pytest.approx(sentence_budget("Short."))
    assert any("length limit" in flag for flag in take.flags)
    assert "length limit" in take.summary()


def test_take_reports_timings(engine, prompt):
    take_stream = stream(engine, "Timing.", prompt, Sampling(seed=4, max_seconds=20 * FRAME))
    list(take_stream)
    take = take_stream.take
    assert 0 < take.time_to_first_audio <= take.total_time
    assert take.duration == pytest.approx(20 * 1920 / 24000)
    assert take.real_time_factor == pytest.approx(take.total_time / take.duration)
    assert take.seed == 4


def test_long_text_streams_sentence_by_sentence_without_clicks(engine, prompt):
    text = "The first sentence is here. And this is the second one."
    take_stream = stream(engine, text, prompt, Sampling(seed=6, max_seconds=20 * FRAME))
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
    """The per-sentence cap is not enough: one request has a total budget of audio, in seconds."""
    text = " ".join(f"This is sentence number {i}." for i in range(10))
    take_stream = stream(engine, text, prompt, Sampling(seed=1, max_seconds=20 * FRAME), Budget(30 * FRAME, 900))
    list(take_stream)
    take = take_stream.take
    assert take.duration == pytest.approx(30 * FRAME)  # 20 frames of sentence 1, the 10 left for sentence 2
    assert any("budget" in flag for flag in take.flags)
