"""The engine on a tiny random checkpoint, loaded through the real Qwen3TTSModel.from_pretrained."""

import numpy as np
import pytest

from studio import audio
from studio.config import Settings
from studio.engines import Sampling, create_engine, sentence_budget
from studio.engines.runtime import choose_runtime, cpu_runs_bf16, model_fingerprint
from studio.errors import AudioError, InvalidInput, ModelUnavailable
from studio.studio import SpeakRequest

from tests.conftest import speak_all


def test_runtime_on_cpu_machine_follows_the_cpu_features():
    import torch

    runtime = choose_runtime(Settings(device="auto"))
    native = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    assert runtime.device == "cpu" and runtime.attn == "sdpa"
    assert runtime.dtype == ("bfloat16" if native else "float32")
    assert runtime.reason == cpu_runs_bf16()[1] and runtime.reason in runtime.describe()
    assert choose_runtime(Settings(device="cpu", dtype="float32")).dtype == "float32"


def test_auto_dtype_is_the_same_every_time():
    """Decided from CPU feature flags, not a timing: the same machine always gets the same dtype."""
    assert len({choose_runtime(Settings(device="cpu")).dtype for _ in range(20)}) == 1


def test_flash_attention_refused_without_cuda():
    with pytest.raises(ModelUnavailable, match="flash"):
        choose_runtime(Settings(device="cpu", attn="flash_attention_2"))


def test_engine_does_not_load_until_used(settings):
    fresh = create_engine(settings)
    assert not fresh.loaded
    assert "loads on first use" in fresh.status()


def test_loaded_engine_reports_languages(engine):
    assert engine.loaded
    langs = engine.languages()
    assert langs[0] == "Auto" and "English" in langs and "Japanese" in langs
    assert "cpu" in engine.status()


def test_icl_prompt_from_japanese_clip(engine, ja_clip):
    clip, text = ja_clip
    prompt = engine.make_prompt(clip, text, "icl")
    assert prompt.mode == "icl" and prompt.ref_text == text
    # 12.5 frames per second of reference audio, 16 code groups.
    codes = prompt.tensor("ref_code")
    assert codes.shape[1] == 16
    assert abs(codes.shape[0] - clip.duration * 12.5) <= 1
    assert prompt.tensor("speaker_embedding").ndim == 1
    assert prompt.fingerprint == engine.fingerprint


def test_xvector_prompt_needs_no_transcript(engine, ja_clip):
    clip, _ = ja_clip
    prompt = engine.make_prompt(clip, "", "xvector")
    assert prompt.tensor("ref_code") is None and prompt.mode == "xvector"


def test_prompt_is_cached_for_same_audio(engine, ja_clip):
    clip, text = ja_clip
    assert engine.make_prompt(clip, text, "icl") is engine.make_prompt(clip, text, "icl")


def test_synthesize_cross_lingual_and_seeded(engine, ja_clip):
    clip, text = ja_clip
    prompt = engine.make_prompt(clip, text, "icl")
    text = "Hello, this is a test."
    (first,), _ = speak_all(engine, text, "English", prompt, Sampling(), seeds=(7,), seconds=12 / 12.5)
    (second,), _ = speak_all(engine, text, "English", prompt, Sampling(), seeds=(7,), seconds=12 / 12.5)
    assert first.dtype == np.float32 and first.ndim == 1
    assert len(first) % 1920 == 0 and 0 < len(first) <= 12 * 1920
    assert np.abs(first).max() > 1e-3  # real audio, not silence
    np.testing.assert_array_equal(first, second)
    (other,), _ = speak_all(engine, text, "English", prompt, Sampling(), seeds=(8,), seconds=12 / 12.5)
    assert not np.array_equal(first[: len(other)], other[: len(first)])


def test_greedy_and_xvector_synthesis(engine, ja_clip):
    clip, _ = ja_clip
    prompt = engine.make_prompt(clip, None, "xvector")
    (samples,), _ = speak_all(engine, "Good morning.", "Auto", prompt, Sampling(temperature=0), seconds=8 / 12.5)
    assert 0 < len(samples) <= 8 * 1920


@pytest.mark.parametrize("text, language, sampling, message", [
    ("", "English", Sampling(), "Type the text"),
    ("   ", "English", Sampling(), "Type the text"),
    ("x" * 5000, "English", Sampling(), "limit is"),
    ("?!...", "English", Sampling(), "no words"),
    ("Hello", "Klingon", Sampling(), "not supported"),
    ("Hello", "xx", Sampling(), "not supported"),
    ("Hello", "English", Sampling(temperature=5), "Temperature"),
    ("Hello", "English", Sampling(top_p=0), "Top-p"),
    ("Hello", "English", Sampling(seed=-3), "Seed"),
    ("Hello", "English", Sampling(max_seconds=10**6), "Max length"),
    ("Hello", "English", Sampling(max_seconds=0.0001 - 1), "Max length"),
])
def test_bad_requests_get_clear_messages(studio, ja_clips, text, language, sampling, message):
    entry = ja_clips[0]
    request = SpeakRequest(text, language, reference=str(entry["path"]), ref_text=entry["text"], sampling=sampling)
    with pytest.raises(InvalidInput, match=message):
        studio.synthesize(request)


def test_icl_without_transcript_is_refused(engine, ja_clip):
    clip, _ = ja_clip
    with pytest.raises(InvalidInput, match="transcript"):
        engine.make_prompt(clip, "  ", "icl")


def test_unknown_mode_is_refused(engine, ja_clip):
    clip, text = ja_clip
    with pytest.raises(InvalidInput, match="mode"):
        engine.make_prompt(clip, text, "magic")


def test_silent_or_tiny_reference_is_refused(engine):
    with pytest.raises(AudioError, match="silent"):
        engine.make_prompt(audio.Clip(np.zeros(24000 * 4, np.float32), 24000, "silence.wav"), "hi", "icl")
    with pytest.raises(AudioError, match="only 0.20 s"):
        engine.make_prompt(audio.Clip(np.ones(4800, np.float32) * 0.1, 24000, "blip.wav"), "hi", "icl")


def test_prompt_from_other_model_is_refused(engine, ja_clip):
    clip, text = ja_clip
    prompt = engine.make_prompt(clip, text, "icl")
    foreign = type(prompt)("icl", text, "0" * 16, prompt.tensors)
    with pytest.raises(InvalidInput, match="different model"):
        speak_all(engine, "Hello", "English", foreign)


def test_missing_model_folder_names_the_model_and_the_fix(tmp_path):
    engine = create_engine(Settings(model=str(tmp_path)))
    with pytest.raises(ModelUnavailable, match="not a Qwen3-TTS model folder"):
        engine.load()
    assert "not a Qwen3-TTS model folder" in engine.status()


def test_unreachable_hub_model_gives_offline_advice():
    engine = create_engine(Settings(model="nobody/no-such-qwen3-tts-model"))
    with pytest.raises(ModelUnavailable) as caught:
        engine.load()
    message = str(caught.value)
    assert "nobody/no-such-qwen3-tts-model" in message and "--model /path/to/folder" in message


def test_fingerprint_tells_checkpoints_apart(tiny_checkpoint, tmp_path):
    from studio.engines.qwen.standin import build_checkpoint

    other = build_checkpoint(tmp_path / "other", seed=1)
    assert model_fingerprint(tiny_checkpoint) == model_fingerprint(tiny_checkpoint)
    assert model_fingerprint(tiny_checkpoint) != model_fingerprint(other)


def test_sentence_budget_grows_with_text_and_is_capped():
    assert sentence_budget("Hi") < sentence_budget("Hello there, a longer sentence.")
    assert sentence_budget("x" * 100000) == pytest.approx(4096 / 12.5)


def test_concurrent_requests_share_one_model_safely(engine, ja_clip):
    """Threads synthesizing at once get exactly what they would get one after another."""
    import threading

    clip, text = ja_clip
    prompt = engine.make_prompt(clip, text, "icl")
    texts = [f"Request number {i}." for i in range(4)]

    def say(i):
        return speak_all(engine, texts[i], "English", prompt, seeds=(i,), seconds=6 / 12.5)[0][0]

    expected = [say(i) for i in range(len(texts))]
    results = [None] * len(texts)

    def run(i):
        results[i] = say(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("written", ["English", "english", "ENGLISH", "en", "EN", " en "])
def test_languages_are_accepted_as_people_write_them(engine, written):
    assert engine.language_for(written) == "English"


def test_long_reference_transcript_is_refused_before_any_model_work(engine, ja_clip):
    clip, _ = ja_clip
    limit = engine.settings.max_ref_text_chars
    with pytest.raises(InvalidInput, match=f"limit is {limit}"):
        engine.make_prompt(clip, "あ" * (limit + 1), "icl")


def test_closing_speak_stops_generation_within_a_step(engine, ja_clip):
    """A consumer that closes its pieces has stopped its request within a step: the batch makes no more
    rows for it (the batch's worker may have made one frame ahead of its reader), and the model is free."""
    from studio.engines import SpeakJob
    from tests.conftest import row_trace

    clip, text = ja_clip
    prompt = engine.make_prompt(clip, text, "icl")
    with row_trace(engine) as rows:
        pieces = engine.speak(SpeakJob("Stop me.", "English", prompt, Sampling(), (1,), 400 / 12.5))
        for number, _ in enumerate(pieces):
            if number == 2:
                break
        pieces.close()
        made = len(rows)
        assert made <= 4 and not engine.busy
        after = list(engine.speak(SpeakJob("Then me.", "English", prompt, Sampling(), (2,), 3 / 12.5)))
    assert sum(len(piece.samples) for piece in after) == 3 * 1920
    assert rows[made:] == [1, 1, 1]  # the next request's frames alone: the closed one is gone
