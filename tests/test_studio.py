"""The core rules every door shares, tested on the core itself (no UI, no server)."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from studio import audio
from studio.config import SAMPLES_PER_FRAME
from studio.engines import Sampling
from studio.errors import InvalidInput, StudioError, VoiceNotFound
from studio.studio import NewVoice, SpeakRequest, Studio
from studio.transcribe import Transcript, Word


def new_voice(entry, name, **extra):
    return NewVoice(name=name, reference=entry["path"], ref_text=entry["text"], **extra)


def test_prompt_comes_from_voice_then_reference_then_default(studio, ja_clips):
    studio.save_voice(new_voice(ja_clips[0], "First"))
    studio.save_voice(new_voice(ja_clips[1], "Second"))
    by_name = studio.prompt_for("second")
    assert by_name.ref_text == ja_clips[1]["text"]
    uploaded = studio.prompt_for(None, ja_clips[2]["path"], ja_clips[2]["text"], "icl")
    assert uploaded.ref_text == ja_clips[2]["text"]
    studio.set_default_voice("First")
    assert studio.prompt_for("", None).ref_text == ja_clips[0]["text"]


def test_without_voice_reference_or_default_the_request_is_explained(settings, engine, tmp_path):
    empty = Studio(settings.replace(voices_dir=tmp_path / "empty"), engine)
    with pytest.raises(VoiceNotFound, match="no default voice: choose a voice from the library"):
        empty.synthesize(SpeakRequest("Hello there."))


def test_cheap_checks_come_before_model_work(settings, tmp_path):
    """A typo is reported without loading the model (the model here does not even exist)."""
    studio = Studio(settings.replace(model=str(tmp_path / "missing"), voices_dir=tmp_path / "v"))
    for request, message in [(SpeakRequest(""), "Type the text"),
                             (SpeakRequest("Hi", "Klingon"), "not supported"),
                             (SpeakRequest("Hi", sampling=Sampling(temperature=9)), "Temperature"),
                             (SpeakRequest("Hi", reference="x.wav", ref_text="x" * 5000), "reference transcript")]:
        with pytest.raises(InvalidInput, match=message):
            studio.synthesize(request)
    assert not studio.engine.loaded


def test_one_shot_take_has_the_same_summary_as_a_stream(studio, ja_clips):
    request = SpeakRequest("Hello.", "en", reference=ja_clips[0]["path"], ref_text=ja_clips[0]["text"],
                           sampling=Sampling(seed=4, max_seconds=6/12.5))
    take = studio.synthesize(request)
    assert len(take.samples) == 6 * SAMPLES_PER_FRAME
    assert "seed 4" in take.summary() and "length limit" in take.summary()
    stream = studio.stream(request)
    streamed = np.concatenate([c.samples for c in stream])
    np.testing.assert_array_equal(streamed, take.samples)
    assert stream.take.seed == take.seed == 4


def test_saving_keeps_the_raw_upload_beside_the_cleaned_reference(studio, ja_clips):
    raw = ja_clips[2]["path"]
    cleaned = studio.prepare_reference(raw)
    assert cleaned.report.after.ok
    path = studio.write_wav(cleaned.cleaned, "reference")
    voice = studio.save_voice(NewVoice("Kept", path, ja_clips[2]["text"], original=raw))
    folder = studio.library.path(voice)
    assert (folder / "original.flac").read_bytes() == Path(raw).read_bytes()
    reference = audio.load(folder / "reference.wav")
    assert reference.rate == 24000 and abs(reference.duration - cleaned.cleaned.duration) < 0.01


def test_saving_works_without_a_loadable_model(settings, ja_clips, tmp_path):
    """The model is unavailable: the voice is saved anyway and its prompt is built on first use."""
    studio = Studio(settings.replace(model=str(tmp_path / "no-model"), voices_dir=tmp_path / "v"))
    voice = studio.save_voice(new_voice(ja_clips[0], "Offline"))
    assert voice.prompts == [] and studio.library.get("Offline").has_reference
    assert not (studio.library.path(voice) / "prompts").exists()


def test_saving_an_approved_take_stores_it_as_preview(studio, ja_clips):
    take = audio.Clip(np.sin(np.linspace(0, 300, 24000)).astype(np.float32) * 0.3, 24000)
    voice = studio.save_voice(new_voice(ja_clips[1], "With Preview", preview=take))
    details = studio.voice_details("With Preview")
    assert voice.preview == "preview.wav" and details.preview is not None and details.preview.is_file()


def test_trimming_cuts_audio_and_transcript_together(studio, ja_clips):
    path = ja_clips[0]["path"]
    clip = audio.load(path)
    words = Transcript("abc", "Japanese", "ja", 1.0,
                       [Word(0.0, 1.0, "a"), Word(1.0, 2.0, "b"), Word(2.0, clip.duration, "c")])
    result = studio.trim_reference(path, words, 0.9, 2.1)
    assert result.transcript.text == "b" and abs(result.clip.duration - 1.2) < 0.01
    assert "'a'" in result.note and "'c'" in result.note  # both words are cut through
    untouched = studio.trim_reference(path, None, 0.0, 0.0)
    assert untouched.transcript is None and abs(untouched.clip.duration - clip.duration) < 0.01


def test_error_level_quality_issue_blocks_a_reference(studio, ja_clips, tmp_path):
    assert studio.approve_reference(ja_clips[0]["path"]).ok
    blip = tmp_path / "blip.wav"
    sf.write(blip, np.concatenate([np.zeros(24000), 0.3 * np.sin(np.linspace(0, 900, 12000)),
                                   np.zeros(24000)]).astype(np.float32), 24000)
    with pytest.raises(InvalidInput, match="cannot be used yet"):
        studio.approve_reference(blip)


def test_temporary_files_are_swept_after_their_lifetime(studio, ja_clip):
    clip, _ = ja_clip
    old = studio.write_wav(clip, "old")
    studio.files.max_age = 0.0
    try:
        studio.write_wav(clip, "new")
    finally:
        studio.files.max_age = 3600.0
    assert not old.exists()


def test_empty_library_is_a_normal_state(settings, engine, tmp_path):
    empty = Studio(settings.replace(voices_dir=tmp_path / "none"), engine)
    assert empty.list_voices() == [] and empty.voice_details(None) is None and empty.voice_details("") is None


def test_transcribe_takes_languages_as_people_write_them(studio, ja_clips):
    for written in ("auto", "AUTO", "ja", "Japanese", "japanese"):
        result = studio.transcribe(ja_clips[0]["path"], written)
        assert result.language == "Japanese"


@pytest.mark.parametrize("case, message", [
    ("nan-embedding", "NaN or infinite"),
    ("short-embedding", "does not fit this model"),
    ("codes-out-of-range", "out of range"),
    ("negative-codes", "out of range"),
    ("wrong-groups", "malformed"),
    ("float-codes", "malformed"),
    ("huge-codes", "frames"),
])
def test_stored_prompt_tensors_are_checked_against_the_model(studio, ja_clips, case, message):
    import torch
    from safetensors.torch import save

    voice = studio.save_voice(new_voice(ja_clips[0], f"Tampered {case}"))
    prompt_file = studio.library.path(voice) / "prompts" / f"{studio.engine.fingerprint}.safetensors"
    from safetensors.torch import load

    tensors = load(prompt_file.read_bytes())
    embedding, codes = tensors["speaker_embedding"], tensors["ref_code"]
    if case == "nan-embedding":
        embedding[0] = float("nan")
    elif case == "short-embedding":
        embedding = embedding[:-1].clone()
    elif case == "codes-out-of-range":
        codes[0, 0] = 5000
    elif case == "negative-codes":
        codes[0, 0] = -1
    elif case == "wrong-groups":
        codes = codes[:, :8].clone()
    elif case == "float-codes":
        codes = codes.float()
    elif case == "huge-codes":
        codes = torch.zeros((100000, 16), dtype=torch.long)
    prompt_file.write_bytes(save({"speaker_embedding": embedding.contiguous(), "ref_code": codes.contiguous()}))
    with pytest.raises(InvalidInput, match=message):
        studio.synthesize(SpeakRequest("Hello.", voice=voice.name, sampling=Sampling(max_seconds=2/12.5)))


def test_compare_columns_rank_takes_and_check_before_generating(studio, ja_clips):
    from studio.studio import Column, CompareRequest

    studio.save_voice(new_voice(ja_clips[0], "Compare A"))
    studio.save_voice(new_voice(ja_clips[2], "Compare B", mode="xvector"))
    with pytest.raises(StudioError, match="no voice named 'Nobody'"):
        studio.compare(CompareRequest("Hello there.", "en", (Column("Compare A"), Column("Nobody"))))
    request = CompareRequest("Hello there.", "en", (Column("Compare A"), Column("Compare A", mode="xvector"),
                                                    Column(reference=ja_clips[1]["path"],
                                                           ref_text=ja_clips[1]["text"])),
                             seed=7, takes=2, sampling=Sampling(max_seconds=8/12.5))
    with pytest.raises(StudioError, match="Takes per column must be between 1 and 8"):
        studio.check_compare(replace(request, takes=9))  # the page's cheap checks, before its live player opens
    assert studio.check_compare(request)[:2] == ("Hello there.", "English")
    events = list(studio.compare_events(request))
    chunks = [e for e in events if e[0] == "chunk"]
    results = events[-1][1]
    # Each take's audio is complete ("spoken", so the live player can play it out) before it is scored.
    ends = [(e[0], e[1]) for e in events if e[0] in ("spoken", "scored")]
    assert ends == [(kind, column) for column in range(3) for _ in range(2) for kind in ("spoken", "scored")]
    assert all(e[3].duration > 0 for e in events if e[0] == "spoken")
    assert {e[1] for e in chunks} == {0, 1, 2}  # every column streamed
    assert [len(r.takes) for r in results] == [2, 2, 2]
    for result in results:
        combined = [t.scores.combined for t in result.takes]
        assert combined == sorted(combined, reverse=True)
        assert {t.take.seed for t in result.takes} == {7, 8}  # the same seeds in every column
        assert all(t.scores.similarity is not None and t.scores.error_rate is not None for t in result.takes)
        assert all(any(f.startswith("cut off") for f in t.scores.flags) for t in result.takes)


def test_approving_a_take_records_how_it_was_made(studio, ja_clips):
    take = studio.synthesize(SpeakRequest("Approve me.", "en", reference=ja_clips[0]["path"],
                                          ref_text=ja_clips[0]["text"], sampling=Sampling(seed=5, max_seconds=6/12.5)))
    path = studio.write_wav(audio.Clip(take.samples, take.rate), "take")
    voice = studio.approve(NewVoice("Approved New", ja_clips[0]["path"], ja_clips[0]["text"]), path,
                           {"seed": 5, "text": "Approve me.", "temperature": 0.9})
    stored = studio.library.get("Approved New")
    assert stored.preview == "preview.wav" and stored.approved["seed"] == 5 and stored.approved["approved_at"]
    assert voice.summary()["approved"]["text"] == "Approve me."
    again = studio.approve("Approved New", path, {"seed": 6})
    assert again.approved["seed"] == 6


def test_flagged_takes_are_retried_with_the_next_seed(studio, ja_clips):
    """The random model never ends a sentence, so every take is cut off: each retry is reported."""
    request = SpeakRequest("Retry me.", "en", reference=ja_clips[0]["path"], ref_text=ja_clips[0]["text"],
                           sampling=Sampling(seed=10, max_seconds=5/12.5))
    take, report = studio.retry_flagged(request, studio.synthesize(request), retries=2)
    assert take.seed == 12 and len(report) == 3
    assert "retrying with seed 11" in report[0] and "no retries left" in report[2]
    with pytest.raises(InvalidInput, match="Retries"):
        studio.retry_flagged(request, take, retries=9)


def test_no_retries_means_no_scoring(settings, engine, ja_clips, tmp_path):
    """A plain synthesis never loads Whisper or the speaker encoder (here Whisper could not even load)."""
    studio = Studio(settings.replace(whisper_model=str(tmp_path / "no-whisper"), voices_dir=tmp_path / "v"), engine)
    request = SpeakRequest("Hello.", "en", reference=ja_clips[0]["path"], ref_text=ja_clips[0]["text"],
                           sampling=Sampling(seed=1, max_seconds=3/12.5))
    take = studio.synthesize(request)
    assert studio.retry_flagged(request, take, retries=0) == (take, [])
    assert not studio.transcriber.loaded and not studio.scorer.loaded
