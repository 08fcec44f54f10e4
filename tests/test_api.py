"""Scripts drive the live studio through gradio_client, exactly as the README shows."""

import soundfile as sf
from gradio_client import handle_file

import pytest

from tests.conftest import wait_until_idle


def test_synthesize_endpoint_returns_24khz_wav(client, ja_clips):
    entry = ja_clips[1]
    wav_path, summary = client.predict(
        text="Hello from a script.", language="English", reference=handle_file(str(entry["path"])),
        ref_text=entry["text"], mode="icl", temperature=0.9, top_p=1.0, top_k=50, repetition_penalty=1.05,
        seed=11, max_frames=10, api_name="/synthesize",
    )
    samples, rate = sf.read(wav_path)
    assert rate == 24000
    assert 0 < len(samples) <= 10 * 1920
    assert "seed 11" in summary


def test_synthesize_errors_reach_the_client_as_messages(client, ja_clips):
    entry = ja_clips[0]
    with pytest.raises(Exception, match="Type the text"):
        client.predict(text="", language="English", reference=handle_file(str(entry["path"])),
                       ref_text=entry["text"], mode="icl", temperature=0.9, top_p=1.0, top_k=50,
                       repetition_penalty=1.05, seed=1, max_frames=10, api_name="/synthesize")


def test_missing_reference_is_explained(client):
    with pytest.raises(Exception, match="upload a reference clip"):
        client.predict(text="Hi there", language="English", reference=None, ref_text="", mode="icl",
                       temperature=0.9, top_p=1.0, top_k=50, repetition_penalty=1.05, seed=1, max_frames=10,
                       api_name="/synthesize")


def test_non_audio_upload_is_explained(client, tmp_path):
    bogus = tmp_path / "notes.wav"
    bogus.write_bytes(b"this is not audio at all" * 100)
    with pytest.raises(Exception, match="could not be decoded|not a WAV"):
        client.predict(text="Hi there", language="English", reference=handle_file(str(bogus)), ref_text="x",
                       mode="icl", temperature=0.9, top_p=1.0, top_k=50, repetition_penalty=1.05, seed=1,
                       max_frames=10, api_name="/synthesize")


def stream_args(entry, **overrides):
    args = dict(text="Streaming to a script.", language="English", reference=handle_file(str(entry["path"])),
                ref_text=entry["text"], mode="icl", temperature=0.9, top_p=1.0, top_k=50,
                repetition_penalty=1.05, seed=5, max_frames=30, api_name="/stream")
    args.update(overrides)
    return args


def test_stream_endpoint_delivers_wav_chunks_as_they_are_made(client, ja_clips, tmp_path):
    """The README's example: write the chunks to one file as they arrive."""
    job = client.submit(**stream_args(ja_clips[0]))
    out = tmp_path / "streamed.wav"
    chunks = 0
    with sf.SoundFile(out, "w", samplerate=24000, channels=1, subtype="PCM_16") as sink:
        for item in job:
            if isinstance(item, str):  # a WAV file per chunk; other items are no-op updates
                samples, rate = sf.read(item, dtype="float32")
                assert rate == 24000
                sink.write(samples)
                chunks += 1
    samples, _ = sf.read(out)
    assert chunks >= 4
    assert len(samples) == 30 * 1920


def test_cancelled_stream_stops_generation(client, ja_clips, engine):

    job = client.submit(**stream_args(ja_clips[0], max_frames=600))
    for item in job:
        if isinstance(item, str):
            break
    job.cancel()
    assert wait_until_idle(engine, 10)


def test_synthesize_takes_an_iso_language_code(client, ja_clips):
    entry = ja_clips[0]
    wav_path, summary = client.predict(text="Hello.", language="en", reference=handle_file(str(entry["path"])),
                                       ref_text=entry["text"], seed=3, max_frames=4, api_name="/synthesize")
    assert "seed 3" in summary


def test_synthesize_takes_returns_one_wav_per_seed(client, ja_clips):
    entry = ja_clips[1]
    files, details = client.predict(
        text="Three takes to pick from.", language="English", reference=handle_file(str(entry["path"])),
        ref_text=entry["text"], seed=30, max_frames=6, takes=3, api_name="/synthesize_takes",
    )
    assert [d["seed"] for d in details] == [30, 31, 32]
    assert len(files) == 3
    waves = [sf.read(path) for path in files]
    assert all(rate == 24000 and 0 < len(samples) <= 6 * 1920 for samples, rate in waves)
    assert any(len(a) != len(b) or (a != b).any() for (a, _), (b, _) in zip(waves, waves[1:]))


def test_synthesize_takes_refuses_absurd_counts(client, ja_clips):
    entry = ja_clips[1]
    for takes in (0, 9, 2.5):  # Gradio's slider refuses out-of-range values itself, with its own message
        with pytest.raises(Exception, match="Takes|less than minimum|greater than maximum"):
            client.predict(text="Hi.", language="English", reference=handle_file(str(entry["path"])),
                           ref_text=entry["text"], takes=takes, api_name="/synthesize_takes")
