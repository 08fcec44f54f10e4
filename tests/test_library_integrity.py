"""Library integrity: names, undo order, trash limits, leftovers, bounded manifests, and random kills."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from studio import audio
from studio.errors import InvalidInput
from studio.library import MAX_TRASH, Library, LibraryBusy

ROOT = Path(__file__).resolve().parent.parent
TONE = audio.Clip((0.3 * np.sin(np.linspace(0, 2 * np.pi * 220 * 2, 48000))).astype(np.float32), 24000, "tone.wav")


@pytest.fixture()
def library(tmp_path):
    return Library(tmp_path / "voices")


def save(library, name, **extra):
    return library.save(name, TONE, "text", "English", "icl", **extra)


def test_names_that_look_the_same_are_the_same_voice(library):
    save(library, "Amy")
    for twin in ("amy", "AMY", "Ａｍｙ", " Amy "):
        with pytest.raises(InvalidInput, match="already exists"):
            save(library, twin)
        assert library.get(twin).name == "Amy"


def test_emoji_with_joiners_are_allowed_in_names_and_tags(library):
    family = "Family \U0001F468\u200d\U0001F469\u200d\U0001F467"
    voice = save(library, family, tags=["\u2764\ufe0f warm"])
    assert library.get(family).name == family and voice.tags == ["\u2764\ufe0f warm"]
    with pytest.raises(InvalidInput, match="control characters"):
        save(library, "bell\x07")


def test_undo_restores_the_most_recent_delete(library):
    save(library, "Zed")
    save(library, "Amy")
    library.delete("Zed")
    library.delete("Amy")
    assert library.restore().name == "Amy"  # the folder names sort the other way
    assert library.restore().name == "Zed"


def test_trash_keeps_a_bounded_number_of_voices(library):
    for i in range(MAX_TRASH + 3):
        save(library, f"Voice {i}")
        library.delete(f"Voice {i}")
    trash = library.trash()
    assert len(trash) == MAX_TRASH and trash[0].name == f"Voice {MAX_TRASH + 2}"


def test_leftovers_of_a_killed_save_are_swept_at_start(library):
    save(library, "Kept")
    (library.root / ".tmp-deadbeef").mkdir()
    (library.root / ".tmp-deadbeef" / "reference.wav").write_bytes(b"half")
    folder = library.path(library.get("Kept"))
    (folder / ".voice.json.1234.part").write_bytes(b"{")
    library.sweep()
    assert not list(library.root.glob(".tmp-*")) and not list(folder.glob(".*.part"))
    assert library.get("Kept").name == "Kept"


def test_restore_never_lands_on_an_occupied_folder(library):
    voice = save(library, "Sam")
    library.delete("Sam")
    (library.root / voice.folder).mkdir()  # something now sits where the voice used to be
    restored = library.restore()
    assert restored.folder != voice.folder and library.get("Sam").name == "Sam"


@pytest.mark.parametrize("manifest, why", [
    ("[" * 100000 + "]" * 100000, "deeply nested"),
    ('{"name": "Huge", "notes": "' + "x" * 300000 + '"}', "huge"),
    ('{"schema_version": 1, "name": "Dates", "mode": "icl", "ref_text": "t", "created_at": "' + "9" * 100 + '"}',
     "absurd date"),
])
def test_damaged_manifests_are_skipped(library, manifest, why):
    save(library, "Good")
    bad = library.root / "bad-voice"
    bad.mkdir()
    (bad / "voice.json").write_text(manifest)
    assert [v.name for v in library.list()] == ["Good"], why


def test_a_lock_held_too_long_gives_a_clear_message(library, monkeypatch):
    import studio.library as module

    save(library, "Locked")
    monkeypatch.setattr(module, "LOCK_SECONDS", 0.2)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from filelock import FileLock; "
        f"lock = FileLock({str(library.root / '.lock')!r}); lock.acquire(); print('held', flush=True); "
        "time.sleep(30)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LibraryBusy, match="busy"):
            library.rename("Locked", "Still Locked")
    finally:
        holder.kill()
        holder.wait()
    assert library.rename("Locked", "Unlocked").name == "Unlocked"


WRITER = """
import os, random, sys
sys.path.insert(0, {root!r})
import numpy as np
from safetensors.numpy import save as save_tensors
from studio import audio
from studio.errors import StudioError
from studio.library import Library
library = Library({voices!r})
rng = random.Random({seed})
clip = audio.Clip((0.3 * np.sin(np.linspace(0, 2 * np.pi * 220 * 2, 48000))).astype(np.float32), 24000, "tone.wav")
prompt = ("0123456789abcdef", save_tensors({{"speaker_embedding": np.ones(8, np.float32)}}))
names = ["Ann", "Bob", "Cy", "Dee", "Eve"]
print("ready", flush=True)
while True:
    a, b = rng.choice(names), rng.choice(names)
    op = rng.choice(["save", "save", "rename", "duplicate", "delete", "restore", "default"])
    try:
        if op == "save":
            library.save(a, clip, "some text", "English", "icl", prompt=prompt, original=("up.wav", b"RIFF"))
        elif op == "rename":
            library.rename(a, b + str(rng.randrange(3)))
        elif op == "duplicate":
            library.duplicate(a, b + str(rng.randrange(3)))
        elif op == "delete":
            library.delete(a)
        elif op == "restore":
            library.restore()
        else:
            library.set_default(a)
    except StudioError:
        pass
"""


def check_every_voice_loads(library):
    from safetensors.numpy import load

    voices = library.voices()
    keys = [v.name.casefold() for v in voices]
    assert len(keys) == len(set(keys)), "two voices share a name"
    for voice in voices:
        clip = library.reference(voice)
        assert clip.rate == 24000 and clip.duration > 1
        for fingerprint in voice.prompts:
            load((library.path(voice) / "prompts" / f"{fingerprint}.safetensors").read_bytes())
    default = library.default()
    assert default is None or default.folder in {v.folder for v in voices}
    return voices


def test_random_kills_never_lose_or_break_a_voice(tmp_path):
    """A writer doing random saves, renames, duplicates, deletes, restores and defaults is SIGKILLed 50 times."""
    voices_dir = tmp_path / "voices"
    library = Library(voices_dir)
    rng = random.Random(1234)
    survived = 0
    for kill in range(50):
        script = WRITER.format(root=str(ROOT), voices=str(voices_dir), seed=kill)
        child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.01, 0.25))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        check_every_voice_loads(library)
        survived += 1
    library.sweep()  # what the kills left half-written goes at the next start
    voices = check_every_voice_loads(library)
    assert not list(voices_dir.glob(".tmp-*"))
    free = next(n for n in ("Ann", "Bob", "Cy", "Dee", "Eve", "Zoe") if library.find(n) is None)
    assert save(library, free).name == free  # no name is blocked by a leftover
    assert survived == 50 and voices
