"""Our frame loop (`studio/engines/qwen/talker.py`) held to qwen-tts' own nested `generate()` on a tiny checkpoint.

The official path stays the reference: teacher-forced logits within 1e-4 and greedy
codes identical in float32, for both cloning modes and texts that end by
end-of-speech or hit the frame limit.
"""

import sys

import numpy as np
import pytest
import torch

from studio.config import Settings
from studio.engines import Sampling, SpeakJob, create_engine
from studio.engines.frames import SWITCH_SECONDS
from studio.errors import InvalidInput
from studio.streaming import Budget, Speech, Stream
from tests.conftest import speak_all

FRAME = 1 / 12.5

TEXTS = ["Hello there, how are you doing today?", "Hi.", "今日はいい天気ですね。"]
LANGUAGES = ["English", "English", "Japanese"]


@pytest.fixture(scope="module")
def ending_engine(tiny_checkpoint):
    """The tiny checkpoint with end-of-speech made likelier (its talker head row doubled), so takes end on
    their own: greedy after 16 frames, sampled takes at different frames."""
    engine = create_engine(Settings(model=str(tiny_checkpoint), device="cpu", dtype="float32", quantize="none"))
    inner = engine.model.model
    eos = inner.config.talker_config.codec_eos_token_id
    with torch.no_grad():
        inner.talker.codec_head.weight[eos] *= 2  # our loop reads the same tensor
    return engine


def official_codes(engine, request, limit):
    frames = []
    torch.manual_seed(0)
    with torch.inference_mode():
        engine.official_frames(request, frames.append, limit)
    return torch.stack(frames)


def our_codes(engine, request, limit, seed=0):
    steps = engine.generate_takes(request, limit, engine.generators([seed]))
    return torch.stack([codes[0] for codes, alive in steps if bool(alive[0])])


def greedy(engine, prompt, text, language, limit):
    return job(text, language, prompt, Sampling(temperature=0), limit)


def job(text, language, prompt, sampling, frames, seeds=(0,)):
    return SpeakJob(text, language, prompt, sampling, tuple(seeds), frames * FRAME)


def takes(engine, text, prompt, sampling, count):
    return Stream(engine, Speech(text, "English", prompt, sampling), Budget(600, 900), count).collect()


@pytest.mark.parametrize("mode", ["icl", "xvector"])
def test_greedy_codes_equal_the_official_path(exact_engine, ja_clip, mode):
    engine = exact_engine
    clip, ref_text = ja_clip
    prompt = engine.make_prompt(clip, ref_text, mode)
    for text, language in zip(TEXTS, LANGUAGES):
        request = greedy(engine, prompt, text, language, 24)
        expected = official_codes(engine, request, 24)
        assert len(expected) == 24  # random weights: this one hits the frame limit
        assert torch.equal(our_codes(engine, request, 24), expected), (mode, text)


@pytest.mark.parametrize("mode", ["icl", "xvector"])
def test_greedy_codes_equal_the_official_path_when_speech_ends(ending_engine, ja_clip, mode):
    clip, ref_text = ja_clip
    prompt = ending_engine.make_prompt(clip, ref_text, mode)
    request = greedy(ending_engine, prompt, TEXTS[0], "English", 60)
    expected = official_codes(ending_engine, request, 60)
    assert 2 <= len(expected) < 60  # ended by end-of-speech, not by the limit
    assert torch.equal(our_codes(ending_engine, request, 60), expected)


@pytest.mark.parametrize("mode", ["icl", "xvector"])
def test_teacher_forced_logits_match_the_official_ones(exact_engine, ja_clip, mode):
    """Fed the official codes, our loop's logits for every code group match qwen-tts' within 1e-4 (float32)."""
    engine = exact_engine
    clip, ref_text = ja_clip
    prompt = engine.make_prompt(clip, ref_text, mode)
    inner = engine.model.model
    for text, language in zip(TEXTS[:2], LANGUAGES[:2]):
        request = job(text, language, prompt, Sampling(seed=3), 12)
        official: list = []
        hooks = [inner.talker.register_forward_hook(lambda m, a, out: official.append((0, out.logits[:, -1]))),
                 inner.talker.code_predictor.register_forward_hook(
                     lambda m, a, out: official.append((1, out.logits[:, -1])))]
        try:
            codes = official_codes(engine, request, 12)  # sampled: teacher forcing must follow any codes
        finally:
            for hook in hooks:
                hook.remove()
        ours: list = []
        talker_picking, predictor_picking = engine.pickings(request.sampling)
        with torch.inference_mode():
            list(engine.talker.frames(engine.prefill(request), talker_picking, predictor_picking,
                                      engine.generators([0]), 12, forced=codes,
                                      on_logits=lambda group, logits: ours.append((group, logits))))
        # qwen-tts computes one more talker step (for a frame it then drops); the rest pair up one to one.
        assert len(ours) == 12 * 16 and len(official) == len(ours) + 1
        for (kind, theirs), (group, mine) in zip(official, ours):
            assert kind == (0 if group == 0 else 1)
            assert torch.allclose(mine, theirs.float(), atol=1e-4, rtol=0), (group, (mine - theirs).abs().max())


def test_same_seed_same_take(engine, ja_clip):
    clip, ref_text = ja_clip
    prompt = engine.make_prompt(clip, ref_text, "icl")
    sampling = Sampling(seed=42, max_seconds=8 * FRAME)
    first, again = (takes(engine, "Seeds decide takes", prompt, sampling, 1)[0] for _ in range(2))
    other = takes(engine, "Seeds decide takes", prompt, Sampling(seed=43, max_seconds=8 * FRAME), 1)[0]
    assert first.seed == 42 and (first.samples == again.samples).all()
    assert first.samples.shape != other.samples.shape or not (first.samples == other.samples).all()


def test_batch_slots_are_reproducible_and_seeded_in_turn(engine, ja_clip):
    clip, ref_text = ja_clip
    prompt = engine.make_prompt(clip, ref_text, "xvector")
    sampling = Sampling(seed=100, max_seconds=10 * FRAME)
    made = takes(engine, "One line, three takes.", prompt, sampling, 3)
    assert [take.seed for take in made] == [100, 101, 102]
    again = takes(engine, "One line, three takes.", prompt, sampling, 3)
    for a, b in zip(made, again):
        assert a.samples.shape == b.samples.shape and (a.samples == b.samples).all()
    first = made[0].samples
    assert not all(t.samples.shape == first.shape and (t.samples == first).all() for t in made[1:])


def test_takes_of_a_batch_end_at_different_frames(ending_engine, ja_clip):
    clip, ref_text = ja_clip
    prompt = ending_engine.make_prompt(clip, ref_text, "icl")
    sampling = Sampling(seed=5, max_seconds=60 * FRAME)
    made = takes(ending_engine, TEXTS[0], prompt, sampling, 4)
    frames = [len(take.samples) / 1920 for take in made]
    assert all(n.is_integer() for n in frames)
    assert len(set(frames)) >= 3 and min(frames) < 60, frames
    again = takes(ending_engine, TEXTS[0], prompt, sampling, 4)
    assert [len(take.samples) / 1920 for take in again] == frames


def test_takes_are_bounded(studio):
    from studio.studio import SpeakRequest

    for count in (0, 9, True, 2.5):
        with pytest.raises(InvalidInput, match="Takes"):
            studio.synthesize_takes(SpeakRequest("Hi.", "English"), count)


def test_int8_weights_speak_close_to_float(tiny_checkpoint, exact_engine, ja_clip):
    """--quantize int8: the same loop with 8-bit stacks (one ONNX Runtime graph each); its logits stay near
    float's on the same codes."""
    engine = exact_engine
    from studio.engines.qwen.graph import StackGraph

    int8 = create_engine(Settings(model=str(tiny_checkpoint), device="cpu", dtype="float32", quantize="int8"))
    assert isinstance(int8.talker.stack, StackGraph) and isinstance(int8.talker.predictor, StackGraph)
    assert int8.talker.head.weight.dtype == torch.int8  # heads stay in PyTorch, int8 per row
    clip, ref_text = ja_clip
    prompt = engine.make_prompt(clip, ref_text, "icl")
    request = job(TEXTS[0], "English", prompt, Sampling(seed=1), 10)
    codes = our_codes(engine, request, 10)
    spreads = {}
    for name, eng in (("float", engine), ("int8", int8)):
        seen = []
        talker_picking, predictor_picking = eng.pickings(request.sampling)
        with torch.inference_mode():
            list(eng.talker.frames(eng.prefill(request), talker_picking, predictor_picking,
                                   eng.generators([0]), 10, forced=codes,
                                   on_logits=lambda group, logits: seen.append(logits)))
        spreads[name] = seen
    for mine, exact in zip(spreads["int8"], spreads["float"]):
        difference = float((mine - exact).abs().mean() / exact.std())
        assert 0 < difference < 0.05, difference
    (samples,), _ = speak_all(int8, TEXTS[0], "English", int8.make_prompt(clip, ref_text, "icl"), seconds=10 * FRAME)
    assert len(samples) == 10 * 1920 and abs(samples).max() > 0


def teacher_forced(eng, request, codes, frames):
    """Every logit vector of our loop fed `codes`: {group: [logits per frame]}."""
    seen: dict[int, list] = {}
    talker_picking, predictor_picking = eng.pickings(request.sampling)
    with torch.inference_mode():
        list(eng.talker.frames(eng.prefill(request), talker_picking, predictor_picking, eng.generators([0]),
                               frames, forced=codes, on_logits=lambda group, logits: seen.setdefault(group, [])
                               .append(logits)))
    return seen


def test_int4_weights_speak_close_to_float(tiny_checkpoint, exact_engine, ja_clip):
    """--quantize int4: 4-bit stacks through ONNX Runtime; fed float's codes, its logits stay within 10% of their
    spread on average and pick float's top code at 70% of steps or more in every code group (random weights
    make many near ties; the tiny model measured 3% and 80-100%)."""
    engine = exact_engine
    from studio.engines.qwen.graph import StackGraph

    int4 = create_engine(Settings(model=str(tiny_checkpoint), device="cpu", dtype="float32", quantize="int4"))
    assert isinstance(int4.talker.stack, StackGraph) and isinstance(int4.talker.predictor, StackGraph)
    assert int4.talker.head.weight.dtype == torch.int8  # heads stay int8
    clip, ref_text = ja_clip
    prompt = engine.make_prompt(clip, ref_text, "icl")
    request = job(TEXTS[0], "English", prompt, Sampling(seed=1), 20)
    codes = our_codes(engine, request, 20)
    exact, mine = teacher_forced(engine, request, codes, 20), teacher_forced(int4, request, codes, 20)
    assert sorted(mine) == list(range(16))
    for group in range(16):
        pairs = list(zip(mine[group], exact[group]))
        error = sum(float((m - e).abs().mean() / e.std()) for m, e in pairs) / len(pairs)
        agreement = sum(bool(m.argmax() == e.argmax()) for m, e in pairs) / len(pairs)
        assert 0 < error < 0.10 and agreement >= 0.7, (group, error, agreement)
    (samples,), _ = speak_all(int4, TEXTS[0], "English", int4.make_prompt(clip, ref_text, "icl"), seconds=10 * FRAME)
    assert len(samples) == 10 * 1920 and abs(samples).max() > 0


def test_decoding_on_its_own_thread_gives_the_same_pieces(ending_engine, ja_clip):
    """--decode-thread: the same pieces, in the same order, as decoding in the consumer's thread (takes that end
    at different frames included)."""
    from studio.engines import sentence_budget

    clip, ref_text = ja_clip
    prompt = ending_engine.make_prompt(clip, ref_text, "icl")
    request = SpeakJob(TEXTS[0], "English", prompt, Sampling(seed=5), (5, 6, 7), sentence_budget(TEXTS[0]))
    import threading

    runs, decoded_on = {}, {False: set(), True: set()}
    decoder = type(ending_engine.decoder(prompt))
    push = decoder.push

    def traced(self, codes):
        decoded_on[ending_engine.decode_ahead].add(threading.current_thread().name)
        return push(self, codes)

    decoder.push = traced
    ending_engine.chunk_plan = lambda: ending_engine.plan  # the same chunks both ways, to compare samples
    try:
        for ahead in (False, True):
            ending_engine.decode_ahead = ahead
            try:
                runs[ahead] = [(p.take, p.samples, p.cut) for p in ending_engine.speak(request) if len(p.samples)]
            finally:
                ending_engine.decode_ahead = False
    finally:
        decoder.push = push
        del ending_engine.chunk_plan
    assert decoded_on[True] and all(name.startswith("decode") for name in decoded_on[True])
    assert not any(name.startswith("decode") for name in decoded_on[False])
    assert len(runs[True]) == len(runs[False]) > 3
    for (take, samples, cut), (take2, samples2, cut2) in zip(runs[False], runs[True]):
        assert take == take2 and cut == cut2 and np.array_equal(samples, samples2)

    ending_engine.decode_ahead = True  # and by default its chunks stay small, so a player keeps up on a CPU
    try:
        sizes = [len(p.samples) // 1920 for p in ending_engine.speak(request) if len(p.samples)]
        assert ending_engine.chunk_plan().largest == 2 and ending_engine.plan.largest > 2
    finally:
        ending_engine.decode_ahead = False
    # two frames each, but for each take's last piece, which may be shorter
    assert len(sizes) > 3 and max(sizes) <= 2 and sizes.count(2) >= len(sizes) - len(request.seeds)
    assert sys.getswitchinterval() <= SWITCH_SECONDS


def test_quantize_auto_measures_once_and_says_why(tiny_checkpoint, tmp_path):
    """--quantize auto: the agreement with float32 is measured on the loaded weights, kept per fingerprint in the
    voices folder, and the choice follows the kept figures (edited here to both sides of the threshold)."""
    import json

    from studio.engines.qwen import calibration

    settings = Settings(model=str(tiny_checkpoint), device="cpu", dtype="float32", quantize="auto",
                        voices_dir=tmp_path)
    first = create_engine(settings)
    first.load()
    kept = json.loads((tmp_path / calibration.CACHE).read_text())
    (key, measured), = kept.items()
    assert key.startswith(first.fingerprint) and set(measured) == set(calibration.CANDIDATES)
    for figures in measured.values():
        assert len(figures) == 16 and all(0 <= f <= 1 for f in figures)
    assert "auto:" in first.status() and "calibration line" in first.status()

    for picked, figures in (("int4", {"int4": [1.0] * 16, "int8": [1.0] * 16}),
                            ("int8", {"int4": [1.0] * 15 + [0.5], "int8": [0.95] * 16}),
                            ("none", {"int4": [0.5] * 16, "int8": [0.89] * 16})):
        (tmp_path / calibration.CACHE).write_text(json.dumps({key: figures}))
        engine = create_engine(settings)
        assert engine.talker.quantize == picked, figures
        assert ("full-precision" if picked == "none" else f"{picked} weights") in engine.status()
        if picked != "none":
            assert f"{100 * min(figures[picked]):.0f}%" in engine.status()


def test_quantize_auto_leaves_a_bfloat16_model_speaking(tiny_checkpoint, tmp_path, ja_clip):
    """Calibration copies the talker to float32 beside the loaded bfloat16 model; the model itself keeps its
    dtype (its text embedding included) and speaks afterwards with whatever was picked."""
    settings = Settings(model=str(tiny_checkpoint), device="cpu", dtype="bfloat16", quantize="auto",
                        voices_dir=tmp_path)
    engine = create_engine(settings)
    engine.load()
    inner = engine.model.model
    assert {p.dtype for p in inner.talker.parameters()} == {torch.bfloat16}
    clip, ref_text = ja_clip
    (samples,), _ = speak_all(engine, TEXTS[0], "English", engine.make_prompt(clip, ref_text, "icl"),
                              seconds=6 * FRAME)
    assert len(samples) == 6 * 1920 and np.isfinite(samples).all() and abs(samples).max() > 0


def test_decode_thread_splits_the_cores_between_graphs_and_vocoder():
    """With --decode-thread on a CPU, ONNX Runtime's graphs get half the threads and PyTorch (the vocoder) the
    other half, from the same budget however often it is done; without it both may use them all."""
    from studio.engines.qwen.engine import split_threads

    before = torch.get_num_threads()
    try:
        assert split_threads(4, True) == 2 and torch.get_num_threads() == 2
        assert split_threads(4, True) == 2 and torch.get_num_threads() == 2  # a retried load: the same split
        assert split_threads(4, False) == 4 and torch.get_num_threads() == 4
        assert split_threads(3, True) == 2 and torch.get_num_threads() == 1
        assert split_threads(1, True) == 1 and torch.get_num_threads() == 1  # one core: nothing to split
    finally:
        torch.set_num_threads(before)
