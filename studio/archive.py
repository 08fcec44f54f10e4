"""Voices in and out of the library: Voice Studio `.zip` files, and prompts read from other programs' voice files.

Everything imported is untrusted. A zip is checked before anything is unpacked
(size, entry count, compression ratio, allowed names only, no links); its
reference is decoded within the reference limits and stored re-encoded as
24 kHz mono; its prompt tensors must parse, and are checked against the model
when they are first used. Another program's voice file (the official Qwen3-TTS demo's
`.pt`) is read by the engine that understands it; this module stores the prompt it made.
"""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

from . import audio
from .config import SAMPLE_RATE
from .errors import InvalidInput, StudioError
from .files import write_atomic
from .library import (FINGERPRINT_RE, MANIFEST, MAX_MANIFEST_BYTES, ORIGINAL_SUFFIXES, PREVIEW, PROMPTS, REFERENCE,
                      Library, Voice, clean_name, folder_for, now)
from .languages import normalise_language

# Import limits: a voice is a few MB; anything far larger is refused before it is unpacked.
MAX_ZIP_MEMBERS = 32
MAX_MEMBER_BYTES = 64 * 2**20
MAX_TOTAL_BYTES = 160 * 2**20
MAX_COMPRESSION_RATIO = 200


def export_voice(library: Library, name: str, destination: str | os.PathLike) -> Path:
    """Write the voice's folder (manifest, audio, prompts) as a .zip at `destination`."""
    buffer = io.BytesIO()
    with library.lock():  # a delete or a cached prompt racing the export cannot tear it
        voice = library.get(name)
        source = library.path(voice)
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(source.rglob("*")):
                if path.is_file() and not path.is_symlink() and not path.name.startswith("."):
                    archive.write(path, path.relative_to(source).as_posix())
    destination = Path(destination)
    write_atomic(destination, buffer.getvalue())
    return destination


def import_zip(library: Library, path: str | os.PathLike) -> Voice:
    """Add a voice exported by Voice Studio; a name in use gets a number ("Sakura (2)")."""
    files = read_voice_zip(Path(path), library.max_upload_bytes)
    if len(files[MANIFEST]) > MAX_MANIFEST_BYTES:
        raise InvalidInput("The voice file's voice.json is far larger than a voice manifest can be.")
    try:
        manifest = json.loads(files[MANIFEST].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise InvalidInput("The voice file's voice.json is not valid JSON.") from error
    voice = library.voice_from_manifest(manifest, "")
    if REFERENCE in files:
        files[REFERENCE] = _reference_wav(files[REFERENCE], library.max_reference_seconds)
    elif voice.has_reference:
        raise InvalidInput("The voice file has no reference.wav.")
    if PREVIEW in files:
        files[PREVIEW] = _checked_audio(files[PREVIEW], PREVIEW, library.max_reference_seconds * 10)
    if voice.original and voice.original in files:
        _checked_audio(files[voice.original], voice.original, library.max_reference_seconds)  # kept as uploaded
    voice.prompts = sorted(name[len(PROMPTS) + 1: -len(".safetensors")] for name in files
                           if name.startswith(PROMPTS + "/"))
    for fingerprint in voice.prompts:
        _check_prompt_tensors(files[f"{PROMPTS}/{fingerprint}.safetensors"])
    keep = {MANIFEST, REFERENCE, PREVIEW, *(f"{PROMPTS}/{p}.safetensors" for p in voice.prompts)}
    if voice.original:
        keep.add(voice.original)
    files = {k: v for k, v in files.items() if k in keep}
    if voice.original and voice.original not in files:
        voice.original = None
    if voice.preview and PREVIEW not in files:
        voice.preview = None
    with library.lock():
        voice.name = library.free_name(voice.name)
        voice.folder = library.free_folder(voice.name)
        files[MANIFEST] = voice.manifest_bytes()
        library.publish(voice.folder, files, "importing the voice")
    return voice


@dataclass(frozen=True)
class ForeignPrompt:
    """A prompt an engine read from another program's voice file, as bytes for the library."""

    data: bytes
    fingerprint: str
    mode: str
    ref_text: str
    made_by: str  # the engine's name, for the voice's notes


def import_prompt(library: Library, path: str | os.PathLike, name: str, prompt: ForeignPrompt,
                  language: str = "Auto") -> Voice:
    """Save a voice that has a prompt but no reference audio (it speaks through that engine's model only)."""
    path = Path(path)
    name = clean_name(name or path.stem)
    created = now()
    voice = Voice(name=name, folder=folder_for(name), ref_text=prompt.ref_text,
                  language=normalise_language(language), mode=prompt.mode, created_at=created, updated_at=created,
                  source={"file_name": path.name[:200], "sha256": _sha256_file(path)},
                  has_reference=False, prompts=[prompt.fingerprint],
                  notes=f"Imported from {path.suffix or 'a'} voice file (prompt only, for {prompt.made_by}).")
    files = {f"{PROMPTS}/{prompt.fingerprint}.safetensors": prompt.data, MANIFEST: voice.manifest_bytes()}
    with library.lock():
        if library.find(name) is not None:
            raise InvalidInput(f"A voice named {name!r} already exists. Pick another name.")
        voice.folder = library.free_folder(name)
        library.publish(voice.folder, files, "importing the voice")
    return voice


def read_voice_zip(path: Path, max_bytes: float) -> dict[str, bytes]:
    """Read a voice .zip defensively: size, bomb, traversal, symlink and name checks before reading."""
    if not path.is_file():
        raise InvalidInput("The voice file was not found.")
    if path.stat().st_size > max_bytes:
        raise InvalidInput(f"The voice file is larger than the {max_bytes / 1e6:.0f} MB upload limit.")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise InvalidInput("That file is not a voice .zip exported by Voice Studio.") from error
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise InvalidInput("The voice file has too many entries.")
        total = 0
        files: dict[str, bytes] = {}
        for info in members:
            name = info.filename
            if info.is_dir():
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                raise InvalidInput(f"The voice file contains a link ({name!r}); links are not allowed.")
            if not _allowed_member(name):
                raise InvalidInput(f"The voice file contains an unexpected entry {name!r}.")
            if info.file_size > MAX_MEMBER_BYTES:
                raise InvalidInput(f"{name!r} in the voice file is too large.")
            if info.compress_size and info.file_size / info.compress_size > MAX_COMPRESSION_RATIO:
                raise InvalidInput("The voice file is compressed suspiciously well (a zip bomb?); refused.")
            total += info.file_size
            if total > MAX_TOTAL_BYTES:
                raise InvalidInput("The voice file unpacks to more than the studio accepts.")
            try:
                with archive.open(info) as handle:
                    data = handle.read(MAX_MEMBER_BYTES + 1)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as error:
                raise InvalidInput(f"{name!r} in the voice file is damaged.") from error
            if len(data) > MAX_MEMBER_BYTES or len(data) != info.file_size:
                raise InvalidInput(f"{name!r} in the voice file is not what its header says.")
            files[name] = data
    if MANIFEST not in files:
        raise InvalidInput("The voice file has no voice.json.")
    return files


def _reference_wav(data: bytes, max_seconds: float) -> bytes:
    """The imported reference decoded within the limits and stored as the library stores its own."""
    try:
        clip = audio.load_bytes(data, REFERENCE, max_seconds=max_seconds)
        audio.require_speech_level(clip)
    except StudioError as error:
        raise InvalidInput(f"The voice file's reference audio is unusable: {error}") from error
    return audio.to_wav_bytes(audio.resample(clip, SAMPLE_RATE).samples, SAMPLE_RATE)


def _checked_audio(data: bytes, name: str, max_seconds: float) -> bytes:
    try:
        clip = audio.load_bytes(data, name, max_seconds=max_seconds)
    except StudioError as error:
        raise InvalidInput(f"The voice file's {name} is unusable: {error}") from error
    return audio.to_wav_bytes(audio.resample(clip, SAMPLE_RATE).samples, SAMPLE_RATE)


def _allowed_member(name: str) -> bool:
    if name in (MANIFEST, REFERENCE, PREVIEW):
        return True
    if name.startswith("original.") and "/" not in name and Path(name).suffix.lower() in ORIGINAL_SUFFIXES:
        return True
    parts = name.split("/")
    return (len(parts) == 2 and parts[0] == PROMPTS and parts[1].endswith(".safetensors")
            and bool(FINGERPRINT_RE.match(parts[1][: -len(".safetensors")])))


def _check_prompt_tensors(data: bytes) -> None:
    """Prompt tensors must parse; the engine checks them against its model when they are used."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        tensors = load(data)
    except (SafetensorError, ValueError, RuntimeError) as error:
        raise InvalidInput("The voice file's prompt tensors are damaged.") from error
    if not tensors or any(t.numel() > 1_000_000 for t in tensors.values()):
        raise InvalidInput("The voice file's prompt tensors are empty or far too large.")


def _sha256_file(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
