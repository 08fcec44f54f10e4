"""Marvis TTS (CSM) through transformers' CsmForConditionalGeneration, on a tiny random checkpoint."""

import threading

import numpy as np
import pytest
import torch

from studio.engines import Sampling, create_engine
from studio.errors import InvalidInput, ModelUnavailable
from studio.streaming import Budget, Speech, Stream
from studio.studio import NewVoice, SpeakRequest

FRAME = 1 / 12.5


def stream(engine, text, prompt, sampling, takes=1, heartbeat=False):
    return Stream(engine, Speech(text, "English", prompt, sampling), Budget(600, 900), takes, heartbeat)


@pytest.fixture(scope="module")
def marvis(settings):
    engine = create_engine(settings, "marvis")
    engine.load()
    return engine


@pytest.fixture(scope="module")
def prompt(marvis, ja_clip):
    clip, text = ja_clip
    return marvis.make_prompt(clip, text, "icl")


def marvis_threads():
    return [t for t in threading.enumerate() if t.name == "studio-marvis" and t.is_alive()]


def test_loads_through_transformers_and_says_what_it_can_do(marvis):
    assert "loaded on cpu, float32" in marvis.status()
    assert type(marvis.csm).__name__ == "CsmForConditionalGeneration"
    assert type(marvis.processor).__name__ == "CsmProcessor"
    assert marvis.capabilities.languages == ("English",) and marvis.capabilities.modes == ("icl",)


def test_refuses_what_is_not_a_marvis_model(settings, tmp_path):
    with pytest.raises(ModelUnavailable, match="no config.json"):
        create_engine(settings.replace(marvis_model=str(tmp_path)), "marvis").load()
    with pytest.raises(ModelUnavailable, match="--marvis-model"):
        create_engine(settings.replace(marvis_model="nobody/no-such-model"), "marvis").load()


def test_cloning_needs_the_transcript(marvis, ja_clip):
    clip, _ = ja_clip
    with pytest.raises(InvalidInput, match="transcript"):
        marvis.make_prompt(clip, "", "xvector")  # its only way of cloning is audio + transcript


def test_prompt_round_trips_and_bad_audio_is_refused(marvis, prompt):
    stored = marvis.prompt_to_tensors(prompt)
    again = marvis.prompt_from_tensors(stored, "icl", prompt.ref_text, prompt.fingerprint)
    assert torch.equal(again.tensors["reference_audio"], prompt.tensors["reference_audio"])
    for bad in (torch.full((24000,), float("nan")), torch.zeros(10), torch.zeros(2, 24000), torch.full((24000,), 5.0)):
        with pytest.raises(InvalidInput):
            marvis.prompt_from_tensors({"reference_audio": bad}, "icl", "text", prompt.fingerprint)


def test_seeded_one_shot_equals_the_stream(marvis, prompt):
    sampling = Sampling(seed=3, max_seconds=24 * FRAME)
    first, again = (stream(marvis, "Hello there my friend", prompt, sampling).collect()[0] for _ in range(2))
    assert first.seed == 3 and np.array_equal(first.samples, again.samples)
    first = first.samples
    assert len(first) == 24 * 1920 and 0.01 < np.abs(first).max() < 1.0
    chunks = list(stream(marvis, "Hello there my friend", prompt, sampling))
    assert len(chunks) >= 4
    assert np.array_equal(np.concatenate([c.samples for c in chunks]), first)  # Mimi windows fixed by index
    assert not marvis_threads()


def test_closing_the_stream_stops_generation(marvis, prompt):
    iterator = iter(stream(marvis, "A long line to stop early", prompt, Sampling(seed=1, max_seconds=400 * FRAME),
                           heartbeat=True))
    next(iterator)
    iterator.close()
    assert not marvis.busy and not marvis_threads()  # the worker ended at its next frame and was joined


def test_takes_in_one_batch(marvis, prompt):
    sampling = Sampling(seed=5, max_seconds=8 * FRAME)
    takes = stream(marvis, "Three takes", prompt, sampling, 3).collect()
    assert [t.seed for t in takes] == [5, 6, 7] and all(len(t.samples) == 8 * 1920 for t in takes)
    again = stream(marvis, "Three takes", prompt, sampling, 3).collect()
    assert all(np.array_equal(a.samples, b.samples) for a, b in zip(takes, again))


def test_one_saved_voice_speaks_through_all_three_engines(studio, ja_clips):
    entry = ja_clips[1]
    voice = studio.save_voice(NewVoice("Three Engines", entry["path"], entry["text"], "Japanese", "icl"))
    for engine in ("qwen", "chatterbox-turbo", "marvis"):
        take = studio.synthesize(SpeakRequest("Hello.", "en", voice=voice.name, engine=engine,
                                              sampling=Sampling(seed=1, max_seconds=6 * FRAME)))
        assert take.rate == 24000 and len(take.samples), engine
    assert len(list((studio.library.path(voice) / "prompts").iterdir())) == 3
