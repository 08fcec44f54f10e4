"""The voice library: approved voices on disk, reusable everywhere, never half-written.

Layout of `--voices-dir` (default `voices/`)::

    library.json                  {"schema_version": 1, "default": "<folder>"}
    <folder>/voice.json           the manifest (name, ref_text, language, mode, notes, tags, provenance ...)
    <folder>/reference.wav        cleaned reference, 24 kHz mono
    <folder>/original.<ext>       the upload as it came (optional)
    <folder>/preview.wav          an approved preview take (optional)
    <folder>/prompts/<fp>.safetensors   prompt tensors made by the model with fingerprint <fp>
    .trash/<folder>-<time>/       deleted voices, restorable

A new voice is written into a hidden temporary folder, fsynced, then renamed
into place, so a save killed half-way leaves nothing behind. Single files are
replaced atomically. Writers take an inter-process file lock. Nothing is ever
unpickled: tensors are safetensors, metadata JSON. Prompt tensors are the
engine's own bytes (`Engine.prompt_bytes`): the library stores and returns them and never calls
an engine; the core has the engine check them against its model
when they are loaded. Export and import live in `archive.py`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import unicodedata
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from . import audio
from .config import SAMPLE_RATE
from .errors import DiskFull, InvalidInput, LibraryBusy, StudioError, VoiceNotFound
from .files import fsync_dir, write_atomic
from .languages import normalise_language

SCHEMA_VERSION = 1
MANIFEST = "voice.json"
REFERENCE = "reference.wav"
PREVIEW = "preview.wav"
PROMPTS = "prompts"
TRASH = ".trash"
INDEX = "library.json"
MAX_NAME = 64
MAX_NOTES = 2000
MAX_TAGS = 16
ORIGINAL_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".webm", ".opus", ".aac")
FOLDER_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,79}$")
MODE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")  # icl, xvector, or an engine's own
FINGERPRINT_RE = re.compile(r"^[0-9a-f]{8,64}$")
MAX_STORED_REF_TEXT = 20000  # the largest --max-ref-text-chars; new voices are held to the setting
MAX_MANIFEST_BYTES = 256 * 1024  # a manifest is a few kB; anything far larger is refused unread
MAX_TRASH = 50  # deleted voices kept for Undo; older ones are removed for good
LOCK_SECONDS = 30
SPARE_BYTES = 1024 * 1024  # kept free beyond what a change writes (directories, the lock, the file system's own)
FULL_ERRORS = (errno.ENOSPC, errno.EDQUOT)

log = logging.getLogger(__name__)
# Zero-width joiners and variation selectors are format characters, but emoji need them.
EMOJI_JOINERS = {"\u200d", "\ufe0e", "\ufe0f"}


@dataclass
class Voice:
    name: str
    folder: str
    ref_text: str
    language: str
    mode: str
    notes: str = ""
    tags: list[str] = field(default_factory=list)
    created_at: str = ""
    updated_at: str = ""
    source: dict = field(default_factory=dict)  # {"file_name", "sha256"} of the upload
    has_reference: bool = True
    original: str | None = None  # file name of the original upload, if kept
    preview: str | None = None
    prompts: list[str] = field(default_factory=list)  # model fingerprints with cached prompts
    approved: dict = field(default_factory=dict)  # how the approved preview was made: seed, settings, text
    schema_version: int = SCHEMA_VERSION

    def manifest(self) -> dict:
        data = asdict(self)
        data.pop("folder")
        return data

    def manifest_bytes(self) -> bytes:
        return json.dumps(self.manifest(), indent=2, ensure_ascii=False).encode()

    def matches(self, query: str) -> bool:
        query = query.strip().lower()
        if not query:
            return True
        haystack = [self.name.lower(), self.language.lower(), *[t.lower() for t in self.tags]]
        return any(query in item for item in haystack)

    def summary(self) -> dict:
        return {"name": self.name, "language": self.language, "mode": self.mode, "tags": self.tags,
                "notes": self.notes, "ref_text": self.ref_text, "created_at": self.created_at,
                "has_preview": self.preview is not None, "has_reference": self.has_reference,
                "approved": self.approved}


def clean_name(name: str | None) -> str:
    """Validate a display name: printable, no path characters, at most 64 characters."""
    if name is not None and not isinstance(name, str):
        raise InvalidInput("A voice name must be text.")
    cleaned = unicodedata.normalize("NFC", (name or "").strip())
    cleaned = re.sub(r"\s+", " ", cleaned)
    if not cleaned:
        raise InvalidInput("Give the voice a name.")
    if len(cleaned) > MAX_NAME:
        raise InvalidInput(f"Voice names can have at most {MAX_NAME} characters.")
    if any(unicodedata.category(ch).startswith("C") and ch not in EMOJI_JOINERS for ch in cleaned):
        raise InvalidInput("Voice names cannot contain control characters.")
    if any(ch in cleaned for ch in '/\\:*?"<>|') or cleaned.startswith(".") or cleaned in ("..", "."):
        raise InvalidInput('Voice names cannot contain / \\ : * ? " < > | or start with a dot.')
    return cleaned


def name_key(name: str) -> str:
    """What makes two names the same voice: "Amy", "amy" and full-width "Ａｍｙ" are one name."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name.strip()).casefold())


def folder_for(name: str) -> str:
    """A safe folder name for a new voice: ASCII slug of the name plus a short hash.

    The folder is the voice's identity from then on: renaming a voice rewrites its
    manifest only, so a rename is one atomic step and the folder never moves.
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:48] or "voice"
    digest = hashlib.sha256(name_key(name).encode()).hexdigest()[:8]
    return f"{slug}-{digest}"


def clean_tags(tags) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = tags.split(",")
    result = []
    for tag in tags:
        tag = re.sub(r"\s+", " ", str(tag)).strip()
        if tag and tag.lower() not in (t.lower() for t in result):
            if len(tag) > 32 or any(unicodedata.category(ch).startswith("C") and ch not in EMOJI_JOINERS
                                    for ch in tag):
                raise InvalidInput(f"Tag {tag[:32]!r} is too long or has control characters.")
            result.append(tag)
    if len(result) > MAX_TAGS:
        raise InvalidInput(f"A voice can have at most {MAX_TAGS} tags.")
    return result


def _checked_approval(value) -> dict:
    """The record of an approved preview: a small flat object of numbers and short strings."""
    if value is None:
        return {}
    if (not isinstance(value, dict) or len(value) > 32 or len(json.dumps(value)) > 8192
            or not all(isinstance(k, str) and isinstance(v, (str, int, float, bool, type(None)))
                       for k, v in value.items())):
        raise InvalidInput("The voice manifest has an invalid approval record.")
    return value


def now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Library:
    """All voices in one folder. Safe for many threads and processes at once."""

    def __init__(self, root: str | os.PathLike, max_upload_bytes: float = 50e6, max_reference_seconds: float = 60.0,
                 free_space: Callable[[Path], int] | None = None):
        self.root = Path(root)
        self.max_upload_bytes = max_upload_bytes
        self.max_reference_seconds = max_reference_seconds
        self.free_space = free_space or (lambda path: shutil.disk_usage(path).free)

    # -- room on the disk --------------------------------------------------------------------
    @contextmanager
    def room_for(self, needed: int, action: str):
        """Refuse a change the disk has no room for, before writing; a disk that fills mid-way says so too."""
        free = self._free()
        if free is not None and needed + SPARE_BYTES > free:
            raise self._full(action, needed, free)
        try:
            yield
        except OSError as error:
            if error.errno not in FULL_ERRORS:
                raise
            raise self._full(action, needed, self._free()) from None

    def _free(self) -> int | None:
        try:
            return int(self.free_space(self.root if self.root.exists() else self.root.parent))
        except OSError:
            return None  # unknown: the write itself will tell

    def _full(self, action: str, needed: int, free: int | None) -> DiskFull:
        trash = self.trash_bytes()
        hint = f" Emptying the trash frees {_size(trash)}." if trash else ""
        available = f" and {_size(free)} are free" if free is not None else ""
        return DiskFull(f"The disk holding the voice library is full: {action} needs about "
                        f"{_size(needed + SPARE_BYTES)}{available}. Free some space and try again.{hint} "
                        "Nothing was changed.")

    # -- locking and reading -----------------------------------------------------------------
    @contextmanager
    def lock(self):
        """The library's inter-process writer lock; a writer that is still busy gets a clear message."""
        from filelock import FileLock, Timeout

        self.root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.root / ".lock"), timeout=LOCK_SECONDS)
        try:
            lock.acquire()
        except Timeout:
            raise LibraryBusy("The voice library is busy with another change; try again in a moment.") from None
        try:
            yield
        finally:
            lock.release()

    def sweep(self) -> None:
        """Remove what a killed save left behind (hidden staging folders, .part files) and old trash."""
        if not self.root.is_dir():
            return
        with self.lock():
            for leftover in self.root.glob(".tmp-*"):
                shutil.rmtree(leftover, ignore_errors=True)
            for part in self.root.glob("**/.*.part"):
                part.unlink(missing_ok=True)
            self._trim_trash()

    def _read_voice(self, folder: Path) -> Voice | None:
        try:
            manifest = folder / MANIFEST
            if manifest.stat().st_size > MAX_MANIFEST_BYTES:
                return None
            data = json.loads(manifest.read_text(encoding="utf-8"))
            voice = self.voice_from_manifest(data, folder.name)
        except (OSError, ValueError, TypeError, RecursionError, StudioError):
            return None  # a damaged or foreign folder is skipped, never fatal
        # The prompt files are the truth: caching a prompt never rewrites the manifest.
        voice.prompts = sorted(p.stem for p in (folder / PROMPTS).glob("*.safetensors")
                               if FINGERPRINT_RE.match(p.stem))
        return voice

    @staticmethod
    def voice_from_manifest(data: dict, folder: str) -> Voice:
        if not isinstance(data, dict):
            raise InvalidInput("The voice manifest is not a JSON object.")
        version = data.get("schema_version")
        if not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
            raise InvalidInput(f"Unsupported voice schema version {version!r} (this studio reads "
                               f"version {SCHEMA_VERSION}).")
        mode = data.get("mode")
        if not isinstance(mode, str) or not MODE_RE.match(mode):
            raise InvalidInput(f"The voice manifest has an invalid cloning mode {str(mode)[:40]!r}.")
        ref_text = data.get("ref_text") or ""
        if not isinstance(ref_text, str) or len(ref_text) > MAX_STORED_REF_TEXT:
            raise InvalidInput("The voice manifest has an invalid ref_text.")
        notes = data.get("notes") or ""
        if not isinstance(notes, str) or len(notes) > MAX_NOTES:
            raise InvalidInput("The voice manifest has invalid notes.")
        original = data.get("original")
        if original is not None and (not isinstance(original, str) or not original.startswith("original.")
                                     or Path(original).suffix.lower() not in ORIGINAL_SUFFIXES):
            raise InvalidInput("The voice manifest names an unexpected original file.")
        preview = data.get("preview")
        if preview not in (None, PREVIEW):
            raise InvalidInput("The voice manifest names an unexpected preview file.")
        prompts = data.get("prompts") or []
        if not isinstance(prompts, list) or not all(isinstance(p, str) and FINGERPRINT_RE.match(p) for p in prompts):
            raise InvalidInput("The voice manifest lists invalid prompt fingerprints.")
        source = data.get("source") or {}
        if not isinstance(source, dict) or not all(isinstance(source.get(k, ""), str) and len(source.get(k, "")) <= 255
                                                   for k in ("file_name", "sha256")):
            raise InvalidInput("The voice manifest has an invalid source.")
        stamps = [data.get("created_at") or "", data.get("updated_at") or ""]
        if not all(isinstance(stamp, str) and len(stamp) <= 40 for stamp in stamps):
            raise InvalidInput("The voice manifest has invalid dates.")
        return Voice(
            name=clean_name(data.get("name")),
            folder=folder,
            ref_text=ref_text,
            language=normalise_language(data.get("language") or "Auto"),
            mode=mode,
            notes=notes,
            tags=clean_tags(data.get("tags")),
            created_at=stamps[0],
            updated_at=stamps[1],
            source={k: v for k, v in source.items() if k in ("file_name", "sha256")},
            has_reference=bool(data.get("has_reference", True)),
            original=original,
            preview=preview,
            prompts=list(prompts),
            approved=_checked_approval(data.get("approved")),
        )

    def voices(self) -> list[Voice]:
        if not self.root.is_dir():
            return []
        found = []
        for folder in sorted(self.root.iterdir()):
            if folder.name.startswith(".") or not folder.is_dir() or folder.is_symlink():
                continue
            voice = self._read_voice(folder)
            if voice is not None:
                found.append(voice)
        return sorted(found, key=lambda v: v.name.casefold())

    def list(self, query: str = "") -> list[Voice]:
        return [v for v in self.voices() if v.matches(query or "")]

    def find(self, name: str) -> Voice | None:
        if not isinstance(name, str):
            return None
        wanted = name_key(name)
        for voice in self.voices():
            if name_key(voice.name) == wanted:
                return voice
        return None

    def get(self, name: str) -> Voice:
        voice = self.find(name)
        if voice is None:
            raise VoiceNotFound(f"There is no voice named {str(name)[:80]!r} in the library.")
        return voice

    def path(self, voice: Voice) -> Path:
        return self.root / voice.folder

    def reference_path(self, voice: Voice) -> Path | None:
        path = self.path(voice) / REFERENCE
        return path if voice.has_reference and path.is_file() else None

    def reference(self, voice: Voice) -> audio.Clip:
        path = self.reference_path(voice)
        if path is None:
            raise InvalidInput(f"Voice {voice.name!r} has no reference audio (it was imported as a prompt only).")
        return audio.load(path, max_seconds=self.max_reference_seconds)

    # -- default voice -----------------------------------------------------------------------
    def _index(self) -> dict:
        try:
            data = json.loads((self.root / INDEX).read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _write_index(self, index: dict, action: str = "changing the default voice") -> None:
        index["schema_version"] = SCHEMA_VERSION
        data = json.dumps(index, indent=2).encode()
        with self.room_for(len(data), action):
            write_atomic(self.root / INDEX, data)

    def default(self) -> Voice | None:
        folder = self._index().get("default")
        if isinstance(folder, str) and FOLDER_RE.match(folder):
            voice = self._read_voice(self.root / folder)
            if voice is not None:
                return voice
        return None

    def set_default(self, name: str) -> Voice:
        with self.lock():
            voice = self.get(name)
            index = self._index()
            index["default"] = voice.folder
            self._write_index(index)
        return voice

    # -- saving ------------------------------------------------------------------------------
    def save(self, name: str, clip: audio.Clip, ref_text: str, language: str, mode: str,
             prompt: tuple[str, bytes] | None = None, notes: str = "", tags=None,
             original: tuple[str, bytes] | None = None, preview: tuple[np.ndarray, int] | None = None) -> Voice:
        """Store a new voice. Refuses a name already in use: nothing saved is ever overwritten.

        `prompt` is (model fingerprint, bytes from `Engine.prompt_bytes`), when a model made one.
        """
        name = clean_name(name)
        if not isinstance(mode, str) or not MODE_RE.match(mode):
            raise InvalidInput("The cloning mode must be a short name such as icl or xvector.")
        ref_text = (ref_text or "").strip()
        if mode == "icl" and not ref_text:
            raise InvalidInput("ICL voices need the transcript of their reference clip (ref_text).")
        if len(ref_text) > MAX_STORED_REF_TEXT:
            raise InvalidInput(f"The reference transcript can have at most {MAX_STORED_REF_TEXT} characters.")
        if len(notes or "") > MAX_NOTES:
            raise InvalidInput(f"Notes can have at most {MAX_NOTES} characters.")
        audio.require_speech_level(clip)
        reference = audio.resample(clip, SAMPLE_RATE)
        wav = audio.to_wav_bytes(reference.samples, SAMPLE_RATE)
        created = now()
        voice = Voice(
            name=name, folder=folder_for(name), ref_text=ref_text, language=normalise_language(language),
            mode=mode, notes=notes or "", tags=clean_tags(tags), created_at=created, updated_at=created,
            source={"file_name": (original[0] if original else clip.source) or "",
                    "sha256": _sha256(original[1]) if original else clip.checksum()},
        )
        files = {REFERENCE: wav}
        if original is not None:
            suffix = Path(original[0]).suffix.lower()
            if suffix in ORIGINAL_SUFFIXES and len(original[1]) <= self.max_upload_bytes:
                voice.original = "original" + suffix
                files[voice.original] = original[1]
        if preview is not None:
            voice.preview = PREVIEW
            files[PREVIEW] = audio.to_wav_bytes(*preview)
        if prompt is not None:
            fingerprint, data = prompt
            voice.prompts = [fingerprint]
            files[f"{PROMPTS}/{fingerprint}.safetensors"] = data
        with self.lock():
            if self.find(name) is not None:
                raise InvalidInput(f"A voice named {name!r} already exists. Pick another name or rename "
                                   "the existing one first.")
            voice.folder = self.free_folder(name)
            files[MANIFEST] = voice.manifest_bytes()
            self.publish(voice.folder, files)
        return voice

    def free_folder(self, name: str) -> str:
        """A folder for a new voice that nothing occupies (a leftover of an old voice never blocks a name)."""
        base = folder_for(name)
        folder = base
        while (self.root / folder).exists():
            folder = f"{base}-{uuid.uuid4().hex[:6]}"
        return folder

    def publish(self, folder: str, files: dict[str, bytes], action: str = "saving the voice") -> None:
        """Write all files into a hidden folder, fsync, then rename it into place in one step."""
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".tmp-{uuid.uuid4().hex}"
        with self.room_for(sum(len(data) for data in files.values()), action):
            staging.mkdir()
            self._publish(staging, folder, files)

    def _publish(self, staging: Path, folder: str, files: dict[str, bytes]) -> None:
        try:
            for relative, data in files.items():
                target = staging / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
            for directory in {p.parent for p in staging.rglob("*")} | {staging}:
                fsync_dir(directory)
            destination = self.root / folder
            if destination.exists():
                raise InvalidInput("A voice folder with that name already exists; pick another name.")
            os.rename(staging, destination)
            fsync_dir(self.root)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def _update(self, voice: Voice, action: str) -> None:
        voice.updated_at = now()
        data = voice.manifest_bytes()
        with self.room_for(len(data), action):
            write_atomic(self.path(voice) / MANIFEST, data)

    # -- edits -------------------------------------------------------------------------------
    # Every change is one atomic step, or ordered so that a kill between its steps leaves a
    # library in which every listed voice loads and no name is blocked.
    def rename(self, name: str, new_name: str) -> Voice:
        """Rename by rewriting the manifest atomically; the folder (the voice's identity) stays."""
        new_name = clean_name(new_name)
        with self.lock():
            voice = self.get(name)
            other = self.find(new_name)
            if other is not None and other.folder != voice.folder:
                raise InvalidInput(f"A voice named {new_name!r} already exists.")
            voice.name = new_name
            self._update(voice, "renaming the voice")
        return voice

    def approve(self, name: str, take: tuple[np.ndarray, int], details: dict) -> Voice:
        """Keep a take as the voice's approved preview, with the seed and settings that made it.

        The audio is written first: a kill before the manifest leaves the voice as it was.
        """
        details = _checked_approval(dict(details, approved_at=now()))
        wav = audio.to_wav_bytes(*take)
        with self.lock():
            voice = self.get(name)
            with self.room_for(len(wav), "keeping the approved take"):
                write_atomic(self.path(voice) / PREVIEW, wav)
            voice.preview, voice.approved = PREVIEW, details
            self._update(voice, "keeping the approved take")
        return voice

    def duplicate(self, name: str, new_name: str) -> Voice:
        new_name = clean_name(new_name)
        with self.lock():
            voice = self.get(name)
            if self.find(new_name) is not None:
                raise InvalidInput(f"A voice named {new_name!r} already exists.")
            source = self.path(voice)
            files = {str(p.relative_to(source)): p.read_bytes() for p in source.rglob("*")
                     if p.is_file() and not p.is_symlink() and not p.name.endswith(".part")}
            copy = Voice(**{**asdict(voice), "name": new_name, "folder": self.free_folder(new_name),
                            "created_at": now(), "updated_at": now()})
            files[MANIFEST] = copy.manifest_bytes()
            self.publish(copy.folder, files, "duplicating the voice")
        return copy

    def delete(self, name: str) -> Voice:
        """Move the voice to the trash (restorable with `restore`).

        The default is cleared before the move, so a kill in between leaves the voice
        in place (just not the default) rather than a default pointing at nothing.
        """
        with self.lock():
            voice = self.get(name)
            index = self._index()
            if index.get("default") == voice.folder:
                index.pop("default")
                self._write_index(index, "deleting the default voice")
            trash = self.root / TRASH
            trash.mkdir(exist_ok=True)
            os.rename(self.path(voice), trash / f"{time.time_ns():020d}--{voice.folder}")
            fsync_dir(trash)
            fsync_dir(self.root)
            self._trim_trash()
        return voice

    def _trash_entries(self) -> list[Path]:
        """Deleted voices, most recently deleted first (the name starts with the deletion time)."""
        folder = self.root / TRASH
        if not folder.is_dir():
            return []
        entries = [e for e in folder.iterdir() if e.is_dir() and re.match(r"^\d{20}--", e.name)]
        return sorted(entries, key=lambda e: e.name, reverse=True)

    def _trim_trash(self) -> None:
        for old in self._trash_entries()[MAX_TRASH:]:
            shutil.rmtree(old, ignore_errors=True)

    def trash_bytes(self) -> int:
        """What the deleted voices take on disk."""
        return sum(_folder_bytes(entry) for entry in self._trash_entries())

    def empty_trash(self) -> tuple[int, int]:
        """Remove every deleted voice for good; returns (voices removed, bytes freed)."""
        with self.lock():
            entries = self._trash_entries()
            freed = sum(_folder_bytes(entry) for entry in entries)
            for entry in entries:
                shutil.rmtree(entry, ignore_errors=True)
            fsync_dir(self.root / TRASH)
        return len(entries), freed

    def trash(self) -> list[Voice]:
        found = []
        for entry in self._trash_entries():
            voice = self._read_voice(entry)
            if voice is not None:
                voice.folder = f"{TRASH}/{entry.name}"
                found.append(voice)
        return found

    def restore(self, name: str | None = None) -> Voice:
        """Bring back the most recently deleted voice (or the most recently deleted one called `name`)."""
        with self.lock():
            candidates = [v for v in self.trash() if name is None or name_key(v.name) == name_key(name)]
            if not candidates:
                raise VoiceNotFound("There is no deleted voice to restore." if name is None
                                    else f"There is no deleted voice named {name!r}.")
            voice = candidates[0]
            if self.find(voice.name) is not None:
                raise InvalidInput(f"A voice named {voice.name!r} exists again; rename it before restoring.")
            target = self.free_folder(voice.name)
            os.rename(self.root / voice.folder, self.root / target)
            fsync_dir(self.root / TRASH)
            fsync_dir(self.root)
            voice.folder = target
        return voice

    # -- prompts -----------------------------------------------------------------------------
    def prompt(self, voice: Voice, fingerprint: str) -> bytes | None:
        """The stored prompt of the model with `fingerprint`, as the engine wrote it; None if there is none."""
        if not FINGERPRINT_RE.match(fingerprint):
            return None
        try:
            return (self.path(voice) / PROMPTS / f"{fingerprint}.safetensors").read_bytes()
        except FileNotFoundError:
            return None

    def keep_prompt(self, voice: Voice, fingerprint: str, data: bytes) -> None:
        """Store a prompt beside the voice (only if the voice is still in the same folder)."""
        if not FINGERPRINT_RE.match(fingerprint):
            raise InvalidInput("A prompt needs the fingerprint of the model that made it.")
        with self.lock(), self.room_for(len(data), "caching the prompt"):
            current = self.find(voice.name)
            if current is not None and current.folder == voice.folder:
                write_atomic(self.path(voice) / PROMPTS / f"{fingerprint}.safetensors", data)

    def free_name(self, name: str) -> str:
        if self.find(name) is None:
            return name
        for number in range(2, 1000):
            candidate = clean_name(f"{name[:MAX_NAME - 6]} ({number})")
            if self.find(candidate) is None:
                return candidate
        raise InvalidInput("Too many voices share that name.")


def _folder_bytes(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        except OSError:
            pass
    return total


def _size(count: float) -> str:
    """Bytes for people: 0.4 MB, 12 MB, 3.1 GB."""
    if count >= 1e9:
        return f"{count / 1e9:.1f} GB"
    megabytes = count / 1e6
    return f"{megabytes:.1f} MB" if megabytes < 10 else f"{megabytes:.0f} MB"
