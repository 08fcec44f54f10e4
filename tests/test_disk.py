"""A full disk: every write to the library says so and how much it needs; a prompt cache that cannot be written
never stops speech; the trash can be emptied to make room.

The disk-space check is replaced by a test double (the library takes `free_space`); the library itself, the
engine and the files are real. Where the machine allows mounting a tiny tmpfs, a truly full file system is used too.
"""

import logging
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from studio.archive import export_voice, import_zip
from studio.errors import DiskFull
from studio.library import Library
from studio.engines import Sampling
from studio.studio import SpeakRequest, Studio


class Disk:
    """The free space the library sees: plenty, until the test says the disk is full."""

    def __init__(self):
        self.free = 10**12

    def __call__(self, path) -> int:
        return self.free


@pytest.fixture()
def disk():
    return Disk()


@pytest.fixture()
def library(tmp_path, disk):
    return Library(tmp_path / "voices", free_space=disk)


@pytest.fixture()
def two_voices(library, engine, ja_clip):
    clip, text = ja_clip
    prompt = engine.make_prompt(clip, text, "icl")
    stored = (prompt.fingerprint, engine.prompt_bytes(prompt))
    library.save("Sakura", clip, text, "Japanese", "icl", prompt=stored)
    library.save("Hana", clip, text, "Japanese", "icl")
    library.set_default("Sakura")
    return library


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def test_every_library_write_on_a_full_disk_says_so(two_voices, disk, ja_clip, tmp_path):
    library = two_voices
    clip, text = ja_clip
    archive = export_voice(library, "Hana", tmp_path / "hana.zip")
    library.delete("Hana")  # so the import has a name to take
    before = snapshot(library.root)
    disk.free = 200_000  # less than any change needs with its spare megabyte
    attempts = {
        "saving": lambda: library.save("Momo", clip, text, "Japanese", "icl"),
        "duplicating": lambda: library.duplicate("Sakura", "Sakura Copy"),
        "importing": lambda: import_zip(library, archive),
        "renaming": lambda: library.rename("Sakura", "Sakura Two"),
        "changing the default": lambda: library.set_default("Sakura"),
    }
    for action, attempt in attempts.items():
        with pytest.raises(DiskFull) as refused:
            attempt()
        message = str(refused.value)
        assert "disk holding the voice library is full" in message and action in message
        assert "needs about" in message and "0.2 MB are free" in message
        assert "Emptying the trash frees" in message  # Hana is in the trash
    assert snapshot(library.root) == before  # nothing written, nothing half-written
    assert not list(library.root.glob(".tmp-*"))


def test_a_prompt_cache_that_cannot_be_written_does_not_stop_speech(two_voices, disk, engine, settings, caplog):
    library = two_voices  # Hana was saved without a prompt: speaking builds one and tries to cache it
    disk.free = 0
    studio = Studio(settings.replace(voices_dir=library.root), engine, library)
    caplog.set_level(logging.WARNING, logger="studio.studio")
    take = studio.synthesize(SpeakRequest("Still speaking.", "English", voice="Hana",
                                          sampling=Sampling(seed=1, max_seconds=4 / 12.5)))
    assert len(take.samples) > 0
    assert not (library.path(library.get("Hana")) / "prompts").exists()
    assert any("could not be stored" in r.getMessage() for r in caplog.records)


def test_emptying_the_trash_frees_its_space(two_voices):
    library = two_voices
    library.delete("Hana")
    library.delete("Sakura")
    held = library.trash_bytes()
    assert held > 0 and len(library.trash()) == 2
    assert library.empty_trash() == (2, held)
    assert library.trash() == [] and library.trash_bytes() == 0
    assert library.empty_trash() == (0, 0)


def test_empty_trash_is_a_named_endpoint(client, studio, ja_clips):
    from studio.studio import NewVoice

    studio.save_voice(NewVoice("Trash Me", ja_clips[1]["path"], ja_clips[1]["text"]))
    client.predict("Trash Me", api_name="/delete_voice")
    assert studio.library.trash()
    message = client.predict(api_name="/empty_trash")
    assert message.startswith("Removed 1 deleted voice for good") and "MB freed" in message
    assert studio.library.trash() == []
    assert client.predict(api_name="/empty_trash") == "The trash is already empty."


@pytest.fixture()
def tiny_filesystem(tmp_path):
    """A 2 MB tmpfs, where the machine lets this process mount one."""
    mount = tmp_path / f"tiny-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tiny tmpfs needs root and a machine that allows it")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_truly_full_file_system_is_reported_and_nothing_is_half_written(tiny_filesystem, ja_clip):
    clip, text = ja_clip
    library = Library(tiny_filesystem / "voices", free_space=lambda path: 10**12)  # the check is fooled: the
    library.save("First", clip, text, "Japanese", "icl")  # write itself must notice the full disk
    (tiny_filesystem / "filler").write_bytes(b"\0" * (os.statvfs(tiny_filesystem).f_bavail
                                                      * os.statvfs(tiny_filesystem).f_frsize - 20_000))
    before = snapshot(library.root)
    with pytest.raises(DiskFull, match="full"):
        library.save("Second", clip, text, "Japanese", "icl")
    with pytest.raises(DiskFull, match="duplicating"):
        library.duplicate("First", "First Copy")
    assert snapshot(library.root) == before and not list(library.root.glob(".tmp-*"))
    assert [v.name for v in library.voices()] == ["First"]
    honest = Library(tiny_filesystem / "voices")  # the real check refuses before writing
    with pytest.raises(DiskFull, match="are free"):
        honest.save("Third", clip, text, "Japanese", "icl")
