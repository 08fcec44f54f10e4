"""The engine protocol's contract, written once and run against every engine.

The three model engines run on their tiny stand-ins through their real loaders; `tone`
(tests/tone_engine.py) makes audio without any frames, as an engine in a browser would;
`remote` speaks through a second real studio process on loopback (the `remote_studio` fixture).
"""

import numpy as np
import pytest

from studio.engines import Piece, Sampling, SpeakJob, create_engine, registry
from studio.errors import InvalidInput

ENGINES = ["qwen", "chatterbox-turbo", "marvis", "tone", "remote"]


@pytest.fixture(scope="module")
def tone_registered():
    registry.register("tone", "tests.tone_engine:ToneEngine")
    yield
    registry.ENGINES.pop("tone", None)


class Engines(dict):
    """Engines by name, each created when first asked for (the remote one starts its server then)."""

    def __init__(self, make):
        super().__init__()
        self.make = make

    def __missing__(self, name):
        self[name] = self.make(name)
        return self[name]


@pytest.fixture(scope="module")
def make_engine(request, settings, tone_registered):
    """A fresh engine by name; the remote one pointed at a second studio process."""
    def make(name):
        if name == "remote":
            return create_engine(settings.replace(remote_url=request.getfixturevalue("remote_studio").url), name)
        return create_engine(settings, name)

    return make


@pytest.fixture(scope="module")
def engines(make_engine):
    return Engines(make_engine)


@pytest.fixture(params=ENGINES)
def engine_under_test(request, engines):
    return engines[request.param]


@pytest.fixture(scope="module")
def clip(ja_clip):
    return ja_clip


def prompt_of(engine, clip):
    samples, text = clip
    return engine.make_prompt(samples, text, None)


def spoken(engine, prompt, seeds=(1, 2), seconds=0.6, text="Hello there, my friend."):
    job = SpeakJob(text, engine.language_for("English"), prompt, Sampling(), tuple(seeds), seconds)
    takes = [[] for _ in seeds]
    for piece in engine.speak(job):
        assert isinstance(piece, Piece) and 0 <= piece.take < len(seeds)
        assert piece.samples.dtype == np.float32 and piece.samples.ndim == 1
        takes[piece.take].append(piece.samples)
    return [np.concatenate(t) if t else np.zeros(0, np.float32) for t in takes]


def test_capabilities_describe_the_engine(engine_under_test):
    caps = engine_under_test.capabilities
    assert caps.languages and caps.modes and caps.sample_rate > 0 and caps.step_seconds > 0
    assert caps.takes_at_once >= 1 and all(s.startswith(".") for s in caps.voice_files)
    note = caps.describe(engine_under_test.label)
    assert engine_under_test.label in note and "streams in steps of" in note


def test_loads_on_first_use_and_reports_status(make_engine, engine_under_test):
    fresh = make_engine(engine_under_test.name)
    assert not fresh.loaded and "loads on first use" in fresh.status()
    engine_under_test.load()
    assert engine_under_test.loaded and engine_under_test.model_name in engine_under_test.status()
    assert engine_under_test.fingerprint == engine_under_test.fingerprint
    assert 8 <= len(engine_under_test.fingerprint) <= 64


def test_modes_the_engine_cannot_clone_in_are_refused_by_name(engine_under_test):
    own = engine_under_test.capabilities.modes[0]
    assert engine_under_test.mode_for(None) == own and engine_under_test.mode_for("") == own
    with pytest.raises(InvalidInput, match=engine_under_test.label):
        engine_under_test.mode_for("no-such-mode")


def test_prompt_round_trips_through_bytes_and_refuses_damage(engine_under_test, engines, clip):
    prompt = prompt_of(engine_under_test, clip)
    assert prompt.fingerprint == engine_under_test.fingerprint
    data = engine_under_test.prompt_bytes(prompt)
    assert isinstance(data, bytes)
    again = engine_under_test.check_prompt(data, prompt.mode, prompt.ref_text)
    assert again.mode == prompt.mode and again.fingerprint == prompt.fingerprint
    for name, tensor in prompt.tensors.items():
        assert np.array_equal(again.tensors[name].cpu().float().numpy(), tensor.cpu().float().numpy()), name
    with pytest.raises(InvalidInput):
        engine_under_test.check_prompt(b"not a prompt at all", prompt.mode, prompt.ref_text)
    other = engines["qwen" if engine_under_test.name != "qwen" else "chatterbox-turbo"]
    foreign = other.prompt_bytes(prompt_of(other, clip))
    with pytest.raises(InvalidInput):
        engine_under_test.check_prompt(foreign, prompt.mode, prompt.ref_text)


def test_speak_gives_every_take_audio_within_its_budget(engine_under_test, clip):
    prompt = prompt_of(engine_under_test, clip)
    first = spoken(engine_under_test, prompt, seeds=(1, 2), seconds=0.6)
    rate = engine_under_test.capabilities.sample_rate
    for samples in first:
        assert 0 < len(samples) / rate <= 0.6 + 0.2  # an engine may close a take with a little silence
        assert np.isfinite(samples).all() and np.abs(samples).max() > 1e-3
    again = spoken(engine_under_test, prompt, seeds=(1, 2), seconds=0.6)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))  # the seeds decide the takes
    longer = spoken(engine_under_test, prompt, seeds=(1,), seconds=1.2, text="Hello there, my friend, again.")
    assert len(longer[0]) >= len(first[0])


def test_closing_speak_frees_the_engine(engine_under_test, clip):
    prompt = prompt_of(engine_under_test, clip)
    job = SpeakJob("A long line that is stopped early.", engine_under_test.language_for("English"), prompt,
                   Sampling(), (3,), 20.0)
    pieces = engine_under_test.speak(job)
    next(pieces)
    assert engine_under_test.busy
    pieces.close()
    assert not engine_under_test.busy
    assert len(spoken(engine_under_test, prompt, seeds=(3,), seconds=0.3)[0]) > 0  # usable again
