"""Chatterbox-Turbo through onnxruntime, on tiny random ONNX graphs with the published names, ranks and dtypes."""

import shutil

import numpy as np
import pytest
import torch

from studio.engines import Sampling, create_engine
from studio.engines.chatterbox.engine import ENCODER_OUTPUTS
from studio.errors import InvalidInput, ModelUnavailable
from studio.streaming import Budget, Speech, Stream
from studio.studio import Column, CompareRequest, NewVoice, SpeakRequest

TOKEN = 0.04  # seconds per speech token


def stream(engine, text, prompt, sampling, takes=1):
    return Stream(engine, Speech(text, "English", prompt, sampling), Budget(600, 900), takes)


@pytest.fixture(scope="module")
def chatterbox(settings):
    engine = create_engine(settings, "chatterbox-turbo")
    engine.load()
    return engine


@pytest.fixture(scope="module")
def prompt(chatterbox, ja_clip):
    clip, _ = ja_clip
    return chatterbox.make_prompt(clip, None, "xvector")


def test_loads_the_four_graphs_through_onnxruntime(chatterbox):
    graphs = chatterbox.graphs
    assert len(graphs.past_names) == 48 and graphs.past_names[:2] == ["past_key_values.0.key",
                                                                      "past_key_values.0.value"]
    assert [o.name for o in graphs.encoder.get_outputs()] == list(ENCODER_OUTPUTS)
    assert [o.name for o in graphs.language_model.get_outputs()][:2] == ["logits", "present.0.key"]
    assert "loaded on cpu" in chatterbox.status() and "onnxruntime" in chatterbox.status()
    assert chatterbox.capabilities.languages == ("English",) and chatterbox.capabilities.tags


def test_refuses_folders_that_are_not_chatterbox(settings, chatterbox_dir, tmp_path):
    empty = create_engine(settings.replace(chatterbox_model=str(tmp_path)), "chatterbox-turbo")
    with pytest.raises(ModelUnavailable, match="not a Chatterbox-Turbo ONNX folder"):
        empty.load()
    swapped = tmp_path / "swapped"
    shutil.copytree(chatterbox_dir, swapped)
    shutil.copy(swapped / "onnx" / "embed_tokens.onnx", swapped / "onnx" / "speech_encoder.onnx")
    with pytest.raises(ModelUnavailable, match="speech_encoder.onnx takes"):
        create_engine(settings.replace(chatterbox_model=str(swapped)), "chatterbox-turbo").load()
    offline = create_engine(settings.replace(chatterbox_model="nobody/no-such-model"), "chatterbox-turbo")
    with pytest.raises(ModelUnavailable, match="--chatterbox-model"):
        offline.load()


def test_prompt_round_trips_and_bad_tensors_are_refused(chatterbox, prompt):
    tokens = prompt.tensor("audio_tokens")
    assert prompt.mode == "xvector" and tokens.dtype == torch.int64 and tokens.shape[0] == 1
    stored = chatterbox.prompt_to_tensors(prompt)
    again = chatterbox.prompt_from_tensors(stored, "icl", "", prompt.fingerprint)
    assert all(torch.equal(again.tensors[k], prompt.tensors[k]) for k in ENCODER_OUTPUTS)
    for name, bad in (("audio_tokens", torch.full_like(tokens, 9999)),
                      ("speaker_embeddings", torch.full_like(stored["speaker_embeddings"], float("nan"))),
                      ("audio_features", torch.zeros(1, 4, 7))):
        with pytest.raises(InvalidInput):
            chatterbox.prompt_from_tensors(dict(stored, **{name: bad}), "xvector", "", prompt.fingerprint)


def test_one_shot_with_a_tag_is_seeded_and_streams_the_same(chatterbox, prompt):
    text = "Oh that is funny [laugh] how are you today"
    first, again = (stream(chatterbox, text, prompt, Sampling(seed=4, max_seconds=40 * TOKEN)).collect()[0]
                    for _ in range(2))
    assert first.seed == 4 and np.array_equal(first.samples, again.samples) and len(first.samples) % 960 == 0
    greedy = Sampling(temperature=0, max_seconds=40 * TOKEN)
    whole = stream(chatterbox, text, prompt, greedy).collect()[0].samples
    assert len(whole) == (40 + 3) * 960 and np.abs(whole).max() > 0.05
    chunks = list(stream(chatterbox, text, prompt, greedy))
    assert len(chunks) >= 4  # audio while tokens are still coming, a window at a time
    assert np.array_equal(np.concatenate([c.samples for c in chunks]), whole)  # windows fixed by index


def test_takes_in_one_batch_end_on_their_own(chatterbox, prompt):
    sampling = Sampling(seed=10, max_seconds=60 * TOKEN)
    takes = stream(chatterbox, "A batch of takes", prompt, sampling, 3).collect()
    assert [t.seed for t in takes] == [10, 11, 12]
    tokens = [len(t.samples) / 960 - 3 for t in takes]  # three tokens of closing silence
    assert all(n.is_integer() for n in tokens)
    again = stream(chatterbox, "A batch of takes", prompt, sampling, 3).collect()
    assert [len(t.samples) for t in again] == [len(t.samples) for t in takes]
    assert any(n < 60 for n in tokens)  # a take that picked the stop token ends there


def test_other_languages_are_refused_clearly(studio, ja_clips):
    entry = ja_clips[0]
    with pytest.raises(InvalidInput, match="Chatterbox-Turbo speaks English only, not Japanese"):
        studio.synthesize(SpeakRequest("こんにちは", "Japanese", reference=entry["path"], engine="chatterbox-turbo"))
    take = studio.synthesize(SpeakRequest("Hello", "auto", reference=entry["path"], engine="chatterbox-turbo",
                                          sampling=Sampling(seed=1, max_seconds=5 * TOKEN)))
    assert len(take.samples) > 0  # Auto on an English-only engine is English


def test_one_saved_voice_speaks_through_both_engines(studio, ja_clips):
    entry = ja_clips[0]
    voice = studio.save_voice(NewVoice("Both Engines", entry["path"], entry["text"], "Japanese", "icl"))
    qwen = studio.synthesize(SpeakRequest("Hello.", "English", voice=voice.name,
                                          sampling=Sampling(seed=1, max_seconds=0.48)))
    turbo = studio.synthesize(SpeakRequest("Hello.", "English", voice=voice.name, engine="chatterbox-turbo",
                                           sampling=Sampling(seed=1, max_seconds=0.48)))
    assert qwen.rate == turbo.rate == 24000 and len(qwen.samples) and len(turbo.samples)
    prompts = sorted(p.name for p in (studio.library.path(voice) / "prompts").iterdir())
    assert prompts == sorted({f"{studio.engine.fingerprint}.safetensors",
                              f"{studio.engine_for('chatterbox-turbo').fingerprint}.safetensors"})
    with pytest.raises(InvalidInput, match="Unknown engine"):
        studio.synthesize(SpeakRequest("Hello.", "English", voice=voice.name, engine="nope"))


def test_compare_columns_can_use_different_engines(studio, ja_clips):
    entry = ja_clips[0]
    columns = (Column(reference=entry["path"], ref_text=entry["text"]),
               Column(reference=entry["path"], engine="chatterbox-turbo"))
    results = studio.compare(CompareRequest("Which engine sounds closer?", "English", columns, seed=2, takes=1,
                                            sampling=Sampling(max_seconds=0.64)))
    assert [r.column.label() for r in results] == ["Reference clip", "Reference clip (chatterbox-turbo)"]
    assert all(r.best.scores.similarity is not None for r in results)
