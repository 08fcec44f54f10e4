"""Scripts drive the live studio through gradio_client, exactly as the README shows."""

import soundfile as sf
from gradio_client import Client, handle_file

import pytest


@pytest.fixture(scope="module")
def client(live_server):
    return Client(live_server, verbose=False)


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
    with pytest.raises(Exception, match="reference clip"):
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
