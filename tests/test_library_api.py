"""The library through gradio_client on a live server, as the README shows it."""

import zipfile

import pytest
import soundfile as sf
from gradio_client import handle_file


def save(client, entry, name, **extra):
    return client.predict(name=name, reference=handle_file(str(entry["path"])), ref_text=entry["text"],
                          language="Japanese", mode="icl", notes="from a script", tags="api, test",
                          api_name="/save_voice", **extra)


def test_save_list_and_synthesize_by_name(client, ja_clips):
    saved = save(client, ja_clips[1], "Api Voice")
    assert saved["name"] == "Api Voice" and saved["language"] == "Japanese"
    names = [v["name"] for v in client.predict(query="api", api_name="/list_voices")]
    assert "Api Voice" in names
    wav, summary = client.predict(text="Hello from the library.", language="English", voice="Api Voice",
                                  seed=2, max_frames=8, api_name="/synthesize")
    samples, rate = sf.read(wav)
    assert rate == 24000 and len(samples) == 8 * 1920 and "seed 2" in summary
    chunks = [item for item in client.submit(text="Streaming a saved voice.", language="English",
                                              voice="Api Voice", seed=2, max_frames=12, api_name="/stream")
              if isinstance(item, str)]
    assert sum(len(sf.read(c)[0]) for c in chunks) == 12 * 1920


def test_default_voice_is_used_when_none_is_given(client, ja_clips):
    save(client, ja_clips[0], "Default Api")
    client.predict(name="Default Api", api_name="/set_default_voice")
    listed = {v["name"]: v["default"] for v in client.predict(query="", api_name="/list_voices")}
    assert listed["Default Api"] is True
    wav, _ = client.predict(text="Who am I?", language="English", seed=1, max_frames=6, api_name="/synthesize")
    assert len(sf.read(wav)[0]) == 6 * 1920


def test_rename_delete_restore(client, ja_clips):
    save(client, ja_clips[2], "Rename Me")
    assert client.predict(name="Rename Me", new_name="Renamed", api_name="/rename_voice")["name"] == "Renamed"
    assert "trash" in client.predict(name="Renamed", api_name="/delete_voice")
    names = [v["name"] for v in client.predict(query="", api_name="/list_voices")]
    assert "Renamed" not in names
    assert client.predict(name="", api_name="/restore_voice")["name"] == "Renamed"


def test_export_then_import(client, ja_clips):
    save(client, ja_clips[0], "Travelling")
    archive = client.predict(name="Travelling", api_name="/export_voice")
    assert "voice.json" in zipfile.ZipFile(archive).namelist()
    imported = client.predict(file=handle_file(archive), name="", language="Auto", api_name="/import_voice")
    assert imported["name"] == "Travelling (2)"


@pytest.mark.parametrize("name, message", [("../../etc/passwd", "cannot contain"), ("", "Give the voice a name")])
def test_unsafe_names_get_messages(client, ja_clips, name, message):
    with pytest.raises(Exception, match=message):
        save(client, ja_clips[0], name)


def test_unknown_voice_is_explained(client):
    with pytest.raises(Exception, match="no voice named"):
        client.predict(text="Hi", language="English", voice="Nobody Here", api_name="/synthesize")


def test_bad_import_is_explained(client, tmp_path):
    bogus = tmp_path / "voice.zip"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(Exception, match="not a voice .zip"):
        client.predict(file=handle_file(str(bogus)), name="", language="Auto", api_name="/import_voice")
