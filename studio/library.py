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
unpickled: tensors are safetensors, metadata JSON; the official demo's `.pt`
files are read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import stat
import unicodedata
import uuid
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import audio
from .engine import MODES, Engine, VoicePrompt, normalise_language
from .errors import InvalidInput, StudioError
from .files import fsync_dir, write_atomic

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
FINGERPRINT_RE = re.compile(r"^[0-9a-f]{8,64}$")
# Import limits: a voice is a few MB; anything far larger is refused before it is unpacked.
MAX_ZIP_MEMBERS = 32
MAX_MEMBER_BYTES = 64 * 2**20
MAX_TOTAL_BYTES = 160 * 2**20
MAX_COMPRESSION_RATIO = 200


class VoiceNotFound(StudioError):
    """No voice of that name in the library."""


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
                "has_preview": self.preview is not None, "has_reference": self.has_reference}


def clean_name(name: str | None) -> str:
    """Validate a display name: printable, no path characters, at most 64 characters."""
    cleaned = unicodedata.normalize("NFC", (name or "").strip())
    cleaned = re.sub(r"\s+", " ", cleaned)
    if not cleaned:
        raise InvalidInput("Give the voice a name.")
    if len(cleaned) > MAX_NAME:
        raise InvalidInput(f"Voice names can have at most {MAX_NAME} characters.")
    if any(unicodedata.category(ch).startswith("C") for ch in cleaned):
        raise InvalidInput("Voice names cannot contain control characters.")
    if any(ch in cleaned for ch in '/\\:*?"<>|') or cleaned.startswith(".") or cleaned in ("..", "."):
        raise InvalidInput('Voice names cannot contain / \\ : * ? " < > | or start with a dot.')
    return cleaned


def folder_for(name: str) -> str:
    """A safe folder name: ASCII slug of the name plus a short hash, so distinct names never collide."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:48] or "voice"
    digest = hashlib.sha256(name.casefold().encode()).hexdigest()[:8]
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
            if len(tag) > 32 or any(unicodedata.category(ch).startswith("C") for ch in tag):
                raise InvalidInput(f"Tag {tag[:32]!r} is too long or has control characters.")
            result.append(tag)
    if len(result) > MAX_TAGS:
        raise InvalidInput(f"A voice can have at most {MAX_TAGS} tags.")
    return result


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def prompt_bytes(prompt: VoicePrompt) -> bytes:
    from safetensors.torch import save

    tensors = {"speaker_embedding": prompt.speaker_embedding.detach().float().cpu().contiguous()}
    if prompt.ref_code is not None:
        tensors["ref_code"] = prompt.ref_code.detach().long().cpu().contiguous()
    return save(tensors, metadata={"mode": prompt.mode, "fingerprint": prompt.fingerprint})


def prompt_from_bytes(data: bytes, voice: Voice, fingerprint: str, engine: Engine) -> VoicePrompt:
    import torch
    from safetensors.torch import load

    tensors = load(data)
    embedding = tensors.get("speaker_embedding")
    code = tensors.get("ref_code")
    if embedding is None or embedding.ndim != 1:
        raise InvalidInput(f"Voice {voice.name!r} has a damaged prompt file (no speaker embedding).")
    if voice.mode == "icl" and (code is None or code.ndim != 2):
        raise InvalidInput(f"Voice {voice.name!r} has a damaged prompt file (no reference codes).")
    device, dtype = engine.model.device, engine.model.model.dtype
    return VoicePrompt(
        speaker_embedding=embedding.to(device=device, dtype=dtype),
        ref_code=None if voice.mode == "xvector" else code.to(device=device, dtype=torch.long),
        mode=voice.mode,
        ref_text=voice.ref_text,
        fingerprint=fingerprint,
    )


class Library:
    """All voices in one folder. Safe for many threads and processes at once."""

    def __init__(self, root: str | os.PathLike, max_upload_bytes: float = 50e6):
        self.root = Path(root)
        self.max_upload_bytes = max_upload_bytes

    # -- locking and reading -----------------------------------------------------------------
    def _lock(self):
        from filelock import FileLock

        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / ".lock"), timeout=60)

    def _read_voice(self, folder: Path) -> Voice | None:
        try:
            data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            voice = self._voice_from_manifest(data, folder.name)
        except (OSError, ValueError, TypeError, StudioError):
            return None  # a damaged or foreign folder is skipped, never fatal
        # The prompt files are the truth: caching a prompt never rewrites the manifest.
        voice.prompts = sorted(p.stem for p in (folder / PROMPTS).glob("*.safetensors")
                               if FINGERPRINT_RE.match(p.stem))
        return voice

    @staticmethod
    def _voice_from_manifest(data: dict, folder: str) -> Voice:
        if not isinstance(data, dict):
            raise InvalidInput("The voice manifest is not a JSON object.")
        version = data.get("schema_version")
        if not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
            raise InvalidInput(f"Unsupported voice schema version {version!r} (this studio reads "
                               f"version {SCHEMA_VERSION}).")
        mode = data.get("mode")
        if mode not in MODES:
            raise InvalidInput(f"The voice manifest has an unknown cloning mode {mode!r}.")
        ref_text = data.get("ref_text") or ""
        if not isinstance(ref_text, str) or len(ref_text) > 5000:
            raise InvalidInput("The voice manifest has an invalid ref_text.")
        notes = data.get("notes") or ""
        if not isinstance(notes, str):
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
        if not isinstance(source, dict):
            raise InvalidInput("The voice manifest has an invalid source.")
        return Voice(
            name=clean_name(data.get("name")),
            folder=folder,
            ref_text=ref_text,
            language=normalise_language(data.get("language") or "Auto"),
            mode=mode,
            notes=notes[:MAX_NOTES],
            tags=clean_tags(data.get("tags")),
            created_at=str(data.get("created_at") or ""),
            updated_at=str(data.get("updated_at") or ""),
            source={k: str(v) for k, v in source.items() if k in ("file_name", "sha256")},
            has_reference=bool(data.get("has_reference", True)),
            original=original,
            preview=preview,
            prompts=list(prompts),
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
        wanted = unicodedata.normalize("NFC", (name or "").strip()).casefold()
        for voice in self.voices():
            if voice.name.casefold() == wanted:
                return voice
        return None

    def get(self, name: str) -> Voice:
        voice = self.find(name)
        if voice is None:
            raise VoiceNotFound(f"There is no voice named {name!r} in the library.")
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
        return audio.load(path)

    # -- default voice -----------------------------------------------------------------------
    def _index(self) -> dict:
        try:
            data = json.loads((self.root / INDEX).read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _write_index(self, index: dict) -> None:
        index["schema_version"] = SCHEMA_VERSION
        write_atomic(self.root / INDEX, json.dumps(index, indent=2).encode())

    def default(self) -> Voice | None:
        folder = self._index().get("default")
        if isinstance(folder, str) and FOLDER_RE.match(folder):
            voice = self._read_voice(self.root / folder)
            if voice is not None:
                return voice
        return None

    def set_default(self, name: str) -> Voice:
        with self._lock():
            voice = self.get(name)
            index = self._index()
            index["default"] = voice.folder
            self._write_index(index)
        return voice

    # -- saving ------------------------------------------------------------------------------
    def save(self, name: str, clip: audio.Clip, ref_text: str, language: str, mode: str,
             prompt: VoicePrompt | None = None, notes: str = "", tags=None,
             original: tuple[str, bytes] | None = None, preview: tuple[np.ndarray, int] | None = None) -> Voice:
        """Store a new voice. Refuses a name already in use: nothing saved is ever overwritten."""
        name = clean_name(name)
        if mode not in MODES:
            raise InvalidInput(f"Cloning mode must be one of {', '.join(MODES)}.")
        ref_text = (ref_text or "").strip()
        if mode == "icl" and not ref_text:
            raise InvalidInput("ICL voices need the transcript of their reference clip (ref_text).")
        if len(notes or "") > MAX_NOTES:
            raise InvalidInput(f"Notes can have at most {MAX_NOTES} characters.")
        audio.require_speech_level(clip)
        reference = audio.resample(clip, 24000)
        wav = audio.to_wav_bytes(reference.samples, 24000)
        now = _now()
        voice = Voice(
            name=name, folder=folder_for(name), ref_text=ref_text, language=normalise_language(language),
            mode=mode, notes=notes or "", tags=clean_tags(tags), created_at=now, updated_at=now,
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
            voice.prompts = [prompt.fingerprint]
            files[f"{PROMPTS}/{prompt.fingerprint}.safetensors"] = prompt_bytes(prompt)
        files[MANIFEST] = voice.manifest_bytes()
        with self._lock():
            if self.find(name) is not None:
                raise InvalidInput(f"A voice named {name!r} already exists. Pick another name or rename "
                                   "the existing one first.")
            self._publish(voice.folder, files)
        return voice

    def _publish(self, folder: str, files: dict[str, bytes]) -> None:
        """Write all files into a hidden folder, fsync, then rename it into place in one step."""
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".tmp-{uuid.uuid4().hex}"
        staging.mkdir()
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

    def _update(self, voice: Voice) -> None:
        voice.updated_at = _now()
        write_atomic(self.path(voice) / MANIFEST, voice.manifest_bytes())

    # -- edits -------------------------------------------------------------------------------
    def rename(self, name: str, new_name: str) -> Voice:
        new_name = clean_name(new_name)
        with self._lock():
            voice = self.get(name)
            other = self.find(new_name)
            if other is not None and other.folder != voice.folder:
                raise InvalidInput(f"A voice named {new_name!r} already exists.")
            was_default = self._index().get("default") == voice.folder
            voice.name = new_name
            # Manifest first: if interrupted now, the voice keeps its files under the old folder name.
            self._update(voice)
            target = folder_for(new_name)
            if target != voice.folder and not (self.root / target).exists():
                os.rename(self.path(voice), self.root / target)
                fsync_dir(self.root)
                voice.folder = target
                if was_default:
                    index = self._index()
                    index["default"] = target
                    self._write_index(index)
        return voice

    def update_details(self, name: str, notes: str | None = None, tags=None, language: str | None = None) -> Voice:
        with self._lock():
            voice = self.get(name)
            if notes is not None:
                if len(notes) > MAX_NOTES:
                    raise InvalidInput(f"Notes can have at most {MAX_NOTES} characters.")
                voice.notes = notes
            if tags is not None:
                voice.tags = clean_tags(tags)
            if language:
                voice.language = normalise_language(language)
            self._update(voice)
        return voice

    def duplicate(self, name: str, new_name: str) -> Voice:
        new_name = clean_name(new_name)
        with self._lock():
            voice = self.get(name)
            if self.find(new_name) is not None:
                raise InvalidInput(f"A voice named {new_name!r} already exists.")
            source = self.path(voice)
            files = {str(p.relative_to(source)): p.read_bytes() for p in source.rglob("*")
                     if p.is_file() and not p.is_symlink() and not p.name.endswith(".part")}
            copy = Voice(**{**asdict(voice), "name": new_name, "folder": folder_for(new_name),
                            "created_at": _now(), "updated_at": _now()})
            files[MANIFEST] = copy.manifest_bytes()
            self._publish(copy.folder, files)
        return copy

    def delete(self, name: str) -> Voice:
        """Move the voice to the trash (restorable with `restore`)."""
        with self._lock():
            voice = self.get(name)
            trash = self.root / TRASH
            trash.mkdir(exist_ok=True)
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
            os.rename(self.path(voice), trash / f"{voice.folder}--{stamp}")
            fsync_dir(self.root)
            index = self._index()
            if index.get("default") == voice.folder:
                index.pop("default")
                self._write_index(index)
        return voice

    def trash(self) -> list[Voice]:
        folder = self.root / TRASH
        if not folder.is_dir():
            return []
        found = []
        for entry in sorted(folder.iterdir(), reverse=True):
            voice = self._read_voice(entry)
            if voice is not None:
                voice.folder = f"{TRASH}/{entry.name}"
                found.append(voice)
        return found

    def restore(self, name: str | None = None) -> Voice:
        """Bring back the most recently deleted voice (or the newest one called `name`)."""
        with self._lock():
            candidates = [v for v in self.trash() if name is None or v.name.casefold() == name.strip().casefold()]
            if not candidates:
                raise VoiceNotFound("There is no deleted voice to restore." if name is None
                                    else f"There is no deleted voice named {name!r}.")
            voice = candidates[0]
            if self.find(voice.name) is not None:
                raise InvalidInput(f"A voice named {voice.name!r} exists again; rename it before restoring.")
            target = folder_for(voice.name)
            os.rename(self.root / voice.folder, self.root / target)
            fsync_dir(self.root)
            voice.folder = target
        return voice

    # -- prompts -----------------------------------------------------------------------------
    def prompt(self, voice: Voice, engine: Engine) -> VoicePrompt:
        """The voice's prompt for the engine's model: from disk, or rebuilt from the reference once."""
        fingerprint = engine.fingerprint
        cached = self.path(voice) / PROMPTS / f"{fingerprint}.safetensors"
        if cached.is_file():
            return prompt_from_bytes(cached.read_bytes(), voice, fingerprint, engine)
        if not voice.has_reference:
            raise InvalidInput(f"Voice {voice.name!r} was imported as a prompt for another model and has no "
                               "reference audio to rebuild it from.")
        prompt = engine.make_prompt(self.reference(voice), voice.ref_text, voice.mode)
        with self._lock():
            current = self.find(voice.name)
            if current is not None and current.folder == voice.folder:
                write_atomic(cached, prompt_bytes(prompt))
        return prompt

    # -- export and import -------------------------------------------------------------------
    def export(self, name: str, destination: str | os.PathLike) -> Path:
        voice = self.get(name)
        source = self.path(voice)
        destination = Path(destination)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(source.rglob("*")):
                if path.is_file() and not path.is_symlink() and not path.name.startswith("."):
                    archive.write(path, path.relative_to(source).as_posix())
        write_atomic(destination, buffer.getvalue())
        return destination

    def import_zip(self, path: str | os.PathLike) -> Voice:
        files = read_voice_zip(Path(path), self.max_upload_bytes)
        try:
            manifest = json.loads(files[MANIFEST].decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise InvalidInput("The voice file's voice.json is not valid JSON.") from error
        voice = self._voice_from_manifest(manifest, "")
        if REFERENCE in files:
            try:
                clip = audio.load_bytes(files[REFERENCE], REFERENCE)
            except StudioError as error:
                raise InvalidInput(f"The voice file's reference audio is unusable: {error}") from error
            audio.require_speech_level(clip)
        elif voice.has_reference:
            raise InvalidInput("The voice file has no reference.wav.")
        voice.prompts = sorted(name[len(PROMPTS) + 1: -len(".safetensors")] for name in files
                               if name.startswith(PROMPTS + "/"))
        for fingerprint in voice.prompts:
            _check_prompt_tensors(files[f"{PROMPTS}/{fingerprint}.safetensors"], voice.mode)
        keep = {MANIFEST, REFERENCE, PREVIEW, *(f"{PROMPTS}/{p}.safetensors" for p in voice.prompts)}
        if voice.original:
            keep.add(voice.original)
        files = {k: v for k, v in files.items() if k in keep}
        if voice.original and voice.original not in files:
            voice.original = None
        if voice.preview and PREVIEW not in files:
            voice.preview = None
        with self._lock():
            voice.name = self._free_name(voice.name)
            voice.folder = folder_for(voice.name)
            files[MANIFEST] = voice.manifest_bytes()
            self._publish(voice.folder, files)
        return voice

    def import_official(self, path: str | os.PathLike, name: str, engine: Engine, language: str = "Auto") -> Voice:
        """Import a voice file saved by the official qwen-tts demo (`{"items": [...]}` in a .pt file)."""
        import torch

        path = Path(path)
        if path.stat().st_size > self.max_upload_bytes:
            raise InvalidInput("That voice file is larger than the upload limit.")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - any failure means "not a safe .pt voice file"
            raise InvalidInput("That file is not a voice file saved by the official Qwen3-TTS demo "
                               "(it could not be read safely).") from error
        items = payload.get("items") if isinstance(payload, dict) else None
        if not isinstance(items, list) or not items or not isinstance(items[0], dict):
            raise InvalidInput("That .pt file holds no voice prompt items.")
        item = items[0]
        embedding = item.get("ref_spk_embedding")
        code = item.get("ref_code")
        xvector = bool(item.get("x_vector_only_mode", code is None))
        hidden = engine.model.model.config.talker_config.hidden_size
        if not torch.is_tensor(embedding) or embedding.ndim != 1 or embedding.shape[0] != hidden:
            raise InvalidInput(f"The voice file's speaker embedding does not fit this model (expected {hidden} "
                               "values). It was probably made by a different model size.")
        if not xvector:
            groups = engine.model.model.config.talker_config.num_code_groups
            if (not torch.is_tensor(code) or code.ndim != 2 or code.shape[1] != groups
                    or code.dtype not in (torch.int64, torch.int32) or code.min() < 0 or code.max() >= 2048):
                raise InvalidInput("The voice file's reference codes are missing or malformed.")
        ref_text = item.get("ref_text") or ""
        if not isinstance(ref_text, str):
            raise InvalidInput("The voice file's ref_text is not text.")
        mode = "xvector" if xvector else "icl"
        if mode == "icl" and not ref_text.strip():
            raise InvalidInput("The voice file is an ICL prompt without its ref_text.")
        prompt = VoicePrompt(embedding.float(), None if xvector else code.long(), mode, ref_text.strip(),
                             engine.fingerprint)
        name = clean_name(name or path.stem)
        now = _now()
        voice = Voice(name=name, folder=folder_for(name), ref_text=ref_text.strip(),
                      language=normalise_language(language), mode=mode, created_at=now, updated_at=now,
                      source={"file_name": path.name, "sha256": _sha256(path.read_bytes())},
                      has_reference=False, prompts=[engine.fingerprint],
                      notes="Imported from an official Qwen3-TTS demo voice file (prompt only).")
        files = {f"{PROMPTS}/{engine.fingerprint}.safetensors": prompt_bytes(prompt),
                 MANIFEST: voice.manifest_bytes()}
        with self._lock():
            if self.find(name) is not None:
                raise InvalidInput(f"A voice named {name!r} already exists. Pick another name.")
            self._publish(voice.folder, files)
        return voice

    def _free_name(self, name: str) -> str:
        if self.find(name) is None:
            return name
        for number in range(2, 1000):
            candidate = clean_name(f"{name[:MAX_NAME - 6]} ({number})")
            if self.find(candidate) is None:
                return candidate
        raise InvalidInput("Too many voices share that name.")


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
            with archive.open(info) as handle:
                data = handle.read(MAX_MEMBER_BYTES + 1)
            if len(data) > MAX_MEMBER_BYTES or len(data) != info.file_size:
                raise InvalidInput(f"{name!r} in the voice file is not what its header says.")
            files[name] = data
    if MANIFEST not in files:
        raise InvalidInput("The voice file has no voice.json.")
    return files


def _allowed_member(name: str) -> bool:
    if name in (MANIFEST, REFERENCE, PREVIEW):
        return True
    if name.startswith("original.") and "/" not in name and Path(name).suffix.lower() in ORIGINAL_SUFFIXES:
        return True
    parts = name.split("/")
    return (len(parts) == 2 and parts[0] == PROMPTS and parts[1].endswith(".safetensors")
            and bool(FINGERPRINT_RE.match(parts[1][: -len(".safetensors")])))


def _check_prompt_tensors(data: bytes, mode: str) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        tensors = load(data)
    except (SafetensorError, ValueError, RuntimeError) as error:
        raise InvalidInput("The voice file's prompt tensors are damaged.") from error
    embedding = tensors.get("speaker_embedding")
    if embedding is None or embedding.ndim != 1 or not embedding.is_floating_point():
        raise InvalidInput("The voice file's prompt has no valid speaker embedding.")
    if mode == "icl":
        code = tensors.get("ref_code")
        if code is None or code.ndim != 2 or code.is_floating_point():
            raise InvalidInput("The voice file's prompt has no valid reference codes.")
