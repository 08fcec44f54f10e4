"""The voice library on disk, with the real engine on the tiny checkpoint (no mocks)."""

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import zipfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from studio import audio
from studio.archive import export_voice, import_zip
from studio.engines import Sampling, create_engine
from studio.errors import InvalidInput
from studio.library import Library, VoiceNotFound, folder_for
from studio.studio import SpeakRequest, Studio
from tests.conftest import speak_all

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def library(tmp_path):
    return Library(tmp_path / "voices")


@pytest.fixture()
def saved(library, engine, ja_clip):
    clip, text = ja_clip
    prompt = engine.make_prompt(clip, text, "icl")
    stored = (prompt.fingerprint, engine.prompt_bytes(prompt))
    voice = library.save("Sakura", clip, text, "Japanese", "icl", prompt=stored, notes="calm", tags="female, ja")
    return voice, prompt


class CallCounter:
    """Counts calls to the real qwen-tts prompt builder and passes them through."""

    def __init__(self, model):
        self.model, self.calls = model, 0
        self.original = model.create_voice_clone_prompt

    def __enter__(self):
        def counted(*args, **kwargs):
            self.calls += 1
            return self.original(*args, **kwargs)

        self.model.create_voice_clone_prompt = counted
        return self

    def __exit__(self, *exc):
        del self.model.create_voice_clone_prompt


def test_save_list_and_files_on_disk(library, saved):
    voice, prompt = saved
    assert [v.name for v in library.list()] == ["Sakura"]
    folder = library.root / voice.folder
    manifest = json.loads((folder / "voice.json").read_text())
    assert manifest["schema_version"] == 1 and manifest["mode"] == "icl" and manifest["language"] == "Japanese"
    assert manifest["tags"] == ["female", "ja"] and manifest["notes"] == "calm"
    assert manifest["source"]["sha256"] and manifest["prompts"] == [prompt.fingerprint]
    samples, rate = audio.load(folder / "reference.wav").samples, 24000
    assert rate == 24000 and len(samples) > 24000
    assert (folder / "prompts" / f"{prompt.fingerprint}.safetensors").is_file()
    assert not [p for p in library.root.iterdir() if p.name.startswith(".tmp-")]


def test_search_by_name_tag_and_language(library, saved, engine, ja_clips):
    clip = audio.load(ja_clips[2]["path"])
    library.save("Kumo", clip, ja_clips[2]["text"], "Japanese", "xvector", tags=["male"])
    assert [v.name for v in library.list("kum")] == ["Kumo"]
    assert [v.name for v in library.list("FEMALE")] == ["Sakura"]
    assert {v.name for v in library.list("japanese")} == {"Kumo", "Sakura"}
    assert library.list("nothing-matches") == []


def core(library, engine, settings, transcriber) -> Studio:
    """The core over this library: it, not the library, has an engine check or build a voice's prompt."""
    return Studio(settings.replace(voices_dir=library.root), engine, library, transcriber)


def test_saved_prompt_is_reused_without_rebuilding(library, saved, settings, transcriber, ja_clip):
    voice, original = saved
    fresh = create_engine(settings)  # empty prompt cache, same model
    with CallCounter(fresh.model) as counter:
        prompt = core(library, fresh, settings, transcriber).voice_prompt(library.get("sakura"), fresh)
    assert counter.calls == 0  # the time saved is measured in benchmarks/library_reuse.py
    for name in ("ref_code", "speaker_embedding"):
        torch.testing.assert_close(prompt.tensor(name).cpu().float(), original.tensor(name).cpu().float())
    with CallCounter(fresh.model) as counter:
        fresh.make_prompt(*ja_clip, "icl")
    assert counter.calls == 1
    (reused,), _ = speak_all(fresh, "Same voice, same seed.", "English", prompt, seeds=(3,), seconds=0.64)
    (direct,), _ = speak_all(fresh, "Same voice, same seed.", "English", original, seeds=(3,), seconds=0.64)
    np.testing.assert_allclose(reused, direct, atol=1e-6)


def test_prompt_rebuilt_once_for_another_model(library, saved, settings, transcriber, tmp_path):
    from studio.config import Settings
    from studio.engines.qwen.standin import build_checkpoint

    voice, original = saved
    other = create_engine(Settings(model=str(build_checkpoint(tmp_path / "other-model", seed=1)), quantize="none"))
    assert other.fingerprint != original.fingerprint
    studio = core(library, other, settings, transcriber)
    with CallCounter(other.model) as counter:
        first = studio.voice_prompt(library.get("Sakura"), other)
        other._prompt_cache.clear()
        second = studio.voice_prompt(library.get("Sakura"), other)
    assert counter.calls == 1
    assert first.fingerprint == second.fingerprint == other.fingerprint
    assert set(library.get("Sakura").prompts) == {original.fingerprint, other.fingerprint}


@pytest.mark.parametrize("bad", ["", "   ", "../evil", "a/b", "back\\slash", ".hidden", "x" * 65, "nul\x00byte",
                                 "bell\x07", "what?"])
def test_unsafe_names_are_refused(library, ja_clip, bad):
    clip, text = ja_clip
    with pytest.raises(InvalidInput):
        library.save(bad, clip, text, "Japanese", "icl")
    assert not library.root.exists() or not [p for p in library.root.iterdir() if not p.name.startswith(".")]


def test_unicode_names_get_safe_folders(library, ja_clip):
    clip, text = ja_clip
    voice = library.save("さくら 2", clip, text, "Japanese", "icl")
    assert library.get("さくら 2").folder == voice.folder
    assert voice.folder == folder_for("さくら 2") == "2-" + voice.folder.split("-")[1]
    assert folder_for("さくら").startswith("voice-")
    assert (library.root / voice.folder).resolve().parent == library.root.resolve()
    assert library.save("  tab\there  ", clip, text, "Japanese", "icl").name == "tab here"  # whitespace folded


def test_existing_voice_is_never_overwritten(library, saved, ja_clips):
    clip = audio.load(ja_clips[1]["path"])
    with pytest.raises(InvalidInput, match="already exists"):
        library.save("sakura", clip, ja_clips[1]["text"], "Japanese", "icl")
    assert library.get("Sakura").notes == "calm"


def test_rename_duplicate_delete_restore_and_default(library, saved):
    library.set_default("Sakura")
    folder = library.get("Sakura").folder
    renamed = library.rename("Sakura", "Sakura Calm")
    assert library.default().name == "Sakura Calm"
    assert library.find("Sakura") is None and renamed.folder == folder  # one atomic manifest write, no move
    copy = library.duplicate("Sakura Calm", "Sakura Copy")
    assert {v.name for v in library.list()} == {"Sakura Calm", "Sakura Copy"}
    assert (library.root / copy.folder / "reference.wav").is_file()
    with pytest.raises(InvalidInput, match="already exists"):
        library.rename("Sakura Copy", "sakura calm")
    library.delete("Sakura Calm")
    assert library.default() is None
    assert [v.name for v in library.list()] == ["Sakura Copy"]
    assert [v.name for v in library.trash()] == ["Sakura Calm"]
    restored = library.restore()
    assert restored.name == "Sakura Calm" and library.get("Sakura Calm").notes == "calm"
    with pytest.raises(VoiceNotFound):
        library.restore()
    with pytest.raises(VoiceNotFound, match="no voice named"):
        library.delete("Nobody")


def test_export_import_round_trip(library, saved, engine, tmp_path):
    voice, prompt = saved
    archive = export_voice(library, "Sakura", tmp_path / "sakura.zip")
    names = set(zipfile.ZipFile(archive).namelist())
    assert {"voice.json", "reference.wav", f"prompts/{prompt.fingerprint}.safetensors"} <= names
    imported = import_zip(library, archive)
    assert imported.name == "Sakura (2)"  # never overwrites
    other = Library(tmp_path / "elsewhere")
    moved = import_zip(other, archive)
    assert moved.name == "Sakura" and moved.ref_text == voice.ref_text
    with CallCounter(engine.model) as counter:
        engine._prompt_cache.clear()
        reused = engine.check_prompt(other.prompt(moved, engine.fingerprint), moved.mode, moved.ref_text)
    assert counter.calls == 0 and torch.equal(reused.tensor("ref_code").cpu(), prompt.tensor("ref_code").cpu())


def make_zip(path, entries, symlink=None):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return path


@pytest.fixture()
def valid_entries(library, saved, tmp_path):
    archive = export_voice(library, "Sakura", tmp_path / "good.zip")
    with zipfile.ZipFile(archive) as z:
        return {name: z.read(name) for name in z.namelist()}


@pytest.mark.parametrize("case, message", [
    ("traversal", "unexpected entry"),
    ("absolute", "unexpected entry"),
    ("symlink", "link"),
    ("extra-file", "unexpected entry"),
    ("bomb", "zip bomb"),
    ("bad-json", "not valid JSON"),
    ("future-schema", "schema version"),
    ("no-manifest", "no voice.json"),
    ("not-a-zip", "not a voice .zip"),
    ("bad-audio", "reference audio"),
    ("bad-tensors", "damaged"),
    ("evil-name", "cannot contain"),
])
def test_malicious_or_broken_zips_are_refused(library, valid_entries, tmp_path, case, message):
    entries = dict(valid_entries)
    manifest = json.loads(entries["voice.json"])
    symlink = None
    if case == "traversal":
        entries["../../escaped.txt"] = b"x"
    elif case == "absolute":
        entries["/tmp/absolute.txt"] = b"x"
    elif case == "symlink":
        symlink = "reference2.wav"
    elif case == "extra-file":
        entries["run_me.py"] = b"import os"
    elif case == "bomb":
        entries["original.wav"] = b"\0" * (40 * 2**20)
        manifest["original"] = "original.wav"
    elif case == "bad-json":
        entries["voice.json"] = b"{not json"
    elif case == "future-schema":
        manifest["schema_version"] = 99
    elif case == "no-manifest":
        entries.pop("voice.json")
    elif case == "bad-audio":
        entries["reference.wav"] = b"RIFF garbage"
    elif case == "bad-tensors":
        key = next(k for k in entries if k.startswith("prompts/"))
        entries[key] = b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage"
    elif case == "evil-name":
        manifest["name"] = "../../etc"
    if case not in ("bad-json", "no-manifest"):
        entries["voice.json"] = json.dumps(manifest).encode()
    path = tmp_path / f"{case}.zip"
    if case == "not-a-zip":
        path.write_bytes(b"PK\x03\x04 this is not really a zip")
    else:
        make_zip(path, entries, symlink)
    before = {v.name for v in library.list()}
    with pytest.raises(InvalidInput, match=message):
        import_zip(library, path)
    assert {v.name for v in library.list()} == before
    assert not (tmp_path / "escaped.txt").exists() and not Path("/tmp/absolute.txt").exists()


def test_oversized_upload_is_refused_before_reading(tmp_path, valid_entries):
    small = Library(tmp_path / "small", max_upload_bytes=1000)
    with pytest.raises(InvalidInput, match="upload limit"):
        import_zip(small, make_zip(tmp_path / "v.zip", valid_entries))


def test_concurrent_saves_from_threads(library, ja_clip):
    clip, text = ja_clip
    errors, done = [], []

    def save(name):
        try:
            done.append(library.save(name, clip, text, "Japanese", "icl").name)
        except InvalidInput as error:
            errors.append(str(error))

    threads = [threading.Thread(target=save, args=(f"Voice {i}",)) for i in range(8)]
    threads += [threading.Thread(target=save, args=("Same Name",)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    names = [v.name for v in library.list()]
    assert sorted(names) == sorted([f"Voice {i}" for i in range(8)] + ["Same Name"])
    assert len(errors) == 3 and all("already exists" in e for e in errors)
    for voice in library.list():
        assert json.loads((library.root / voice.folder / "voice.json").read_text())["name"] == voice.name
    assert not [p for p in library.root.iterdir() if p.name.startswith(".tmp-")]


KILL_SCRIPT = """
import os, sys, time
sys.path.insert(0, {root!r})
from studio import audio
from studio.library import Library
clip = audio.load({clip!r})
real_fsync = os.fsync
def slow_fsync(fd):
    real_fsync(fd)
    print("writing", flush=True)
    time.sleep(30)
os.fsync = slow_fsync
Library({voices!r}).save("Half Saved", clip, "text", "Japanese", "icl")
"""


def test_save_killed_midway_leaves_no_voice(library, saved, ja_clips):
    script = KILL_SCRIPT.format(root=str(ROOT), clip=str(ja_clips[0]["path"]), voices=str(library.root))
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "writing"  # inside the save, files half written
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert [v.name for v in library.list()] == ["Sakura"]  # whole voices only, the old one intact
    assert library.find("Half Saved") is None
    clip = audio.load(ja_clips[0]["path"])
    assert library.save("Half Saved", clip, "text", "Japanese", "icl").name == "Half Saved"


def test_official_demo_voice_file_imports(library, engine, settings, transcriber, ja_clip, tmp_path):
    clip, text = ja_clip
    items = engine.model.create_voice_clone_prompt(ref_audio=(clip.samples, clip.rate), ref_text=text)
    path = tmp_path / "voice_clone_prompt_abc.pt"
    torch.save({"items": [asdict(it) for it in items]}, path)
    studio = core(library, engine, settings, transcriber)
    voice = studio.import_voice(path, "From Demo", language="Japanese")
    assert voice.mode == "icl" and not voice.has_reference and voice.ref_text == text
    take = studio.synthesize(SpeakRequest("Hello.", "English", voice="From Demo",
                                          sampling=Sampling(seed=1, max_seconds=0.48)))
    assert len(take.samples) == 6 * 1920


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/voice-studio-pwned",))


def test_pickled_code_in_pt_file_is_never_run(library, engine, settings, transcriber, tmp_path):
    marker = Path("/tmp/voice-studio-pwned")
    marker.unlink(missing_ok=True)
    path = tmp_path / "evil.pt"
    torch.save({"items": [Exploit()]}, path)
    with pytest.raises(InvalidInput, match="could not be read safely"):
        core(library, engine, settings, transcriber).import_voice(path, "Evil")
    assert not marker.exists() and library.list() == []


def test_damaged_voice_folder_is_skipped_not_fatal(library, saved):
    broken = library.root / "broken-voice"
    broken.mkdir()
    (broken / "voice.json").write_text("{ half a manifest")
    assert [v.name for v in library.list()] == ["Sakura"]


def test_shipped_sample_voice_is_valid():
    library = Library(ROOT / "voices")
    voices = library.list()
    assert len(voices) == 1
    voice = voices[0]
    assert voice.language == "Japanese" and voice.mode == "icl" and voice.ref_text
    assert library.default().name == voice.name
    clip = library.reference(voice)
    assert 3 <= clip.duration <= 15 and clip.rate == 24000
