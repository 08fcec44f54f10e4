"""Take history: every take the studio made, with how it was made, kept on disk within bounds.

Layout of the history folder (`.history/` inside the voices folder, beside the library)::

    history.json      {"schema_version": 1, "takes": [{...}, ...]}   newest last
    <id>.wav          the take, 16-bit PCM

The index is replaced atomically; a take's audio is written before its entry, so an entry
always has its audio. The oldest takes go first when the count or the bytes exceed the
limits. Writers in one process take a lock; the index is JSON (never unpickled).
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .audio import to_wav_bytes
from .errors import StudioError
from .files import write_atomic

SCHEMA_VERSION = 1
INDEX = "history.json"
MAX_TAKES = 200
MAX_BYTES = 256 * 1024 * 1024
MAX_INDEX_BYTES = 4 * 1024 * 1024  # a larger index is not read (it is rebuilt from new takes)
TAKE_ID = re.compile(r"^[0-9a-f]{32}$")


class TakeNotFound(StudioError):
    """No take of that id in the history (it was never made, or it is older than the history keeps)."""


@dataclass
class TakeRecord:
    """One take and how it was made: enough to hear it again, download it, or make it again."""

    id: str
    created_at: str
    source: str  # preview, stream, takes, compare, api ...
    text: str
    language: str
    voice: str  # the voice that spoke, as users name it
    voice_name: str  # the library voice, or "" for an uploaded reference clip
    engine: str
    mode: str
    seed: int
    sampling: dict
    duration: float
    time_to_first_audio: float
    total_time: float
    flags: list[str] = field(default_factory=list)
    scores: dict | None = None
    bytes: int = 0

    @property
    def file(self) -> str:
        return f"{self.id}.wav"

    @property
    def real_time_factor(self) -> float:
        return self.total_time / max(self.duration, 1e-9)

    @classmethod
    def from_dict(cls, data: dict) -> "TakeRecord | None":
        """An entry read from disk; None when it is not one of ours (skipped, never trusted)."""
        if not isinstance(data, dict) or not TAKE_ID.match(str(data.get("id", ""))):
            return None
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError:
            return None


class History:
    """The last takes, newest first, bounded in count and bytes."""

    def __init__(self, root: Path, max_takes: int = MAX_TAKES, max_bytes: int = MAX_BYTES):
        self.root = Path(root)
        self.max_takes = max_takes
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def add(self, samples: np.ndarray, rate: int, **details) -> TakeRecord:
        """Keep a take; the oldest ones go when the history is over its limits."""
        data = to_wav_bytes(samples, rate)
        record = TakeRecord(id=uuid.uuid4().hex, created_at=_now(), bytes=len(data), **details)
        with self._lock:
            write_atomic(self.root / record.file, data)
            records = self._read() + [record]
            kept, dropped = self._within_limits(records)
            self._write(kept)
        for old in dropped:
            (self.root / old.file).unlink(missing_ok=True)
        return record

    def recent(self, limit: int = 50) -> list[TakeRecord]:
        """The newest `limit` takes, newest first."""
        with self._lock:
            records = self._read()
        return list(reversed(records[-limit:])) if limit > 0 else []

    def get(self, take_id: str) -> TakeRecord:
        if not isinstance(take_id, str) or not TAKE_ID.match(take_id):
            raise TakeNotFound("That take is not in the history.")
        for record in self.recent(self.max_takes):
            if record.id == take_id:
                return record
        raise TakeNotFound("That take is no longer in the history (only the most recent takes are kept).")

    def audio_path(self, record: TakeRecord) -> Path:
        path = self.root / record.file
        if not path.is_file():
            raise TakeNotFound("That take's audio is missing from the history folder.")
        return path

    def real_time_factor(self, engine: str) -> float | None:
        """How fast `engine` spoke last (seconds of generation per second of audio), if it has spoken."""
        for record in self.recent(self.max_takes):
            if record.engine == engine and record.duration > 0:
                return record.real_time_factor
        return None

    def _within_limits(self, records: list[TakeRecord]) -> tuple[list[TakeRecord], list[TakeRecord]]:
        kept = records[-self.max_takes:]
        dropped = records[:len(records) - len(kept)]
        while len(kept) > 1 and sum(r.bytes for r in kept) > self.max_bytes:
            dropped.append(kept.pop(0))
        return kept, dropped

    def _read(self) -> list[TakeRecord]:
        path = self.root / INDEX
        try:
            if path.stat().st_size > MAX_INDEX_BYTES:
                return []
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []  # no history yet, or an unreadable one: new takes start a fresh index
        takes = data.get("takes") if isinstance(data, dict) else None
        records = [TakeRecord.from_dict(entry) for entry in takes or []] if isinstance(takes, list) else []
        return [r for r in records if r is not None]

    def _write(self, records: list[TakeRecord]) -> None:
        body = {"schema_version": SCHEMA_VERSION, "takes": [asdict(r) for r in records]}
        write_atomic(self.root / INDEX, json.dumps(body, ensure_ascii=False, indent=1).encode("utf-8"))


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


class RecordedStream:
    """A stream whose finished takes go into the history; a stream stopped early keeps nothing.

    Everything else (chunks, `take`, `takes`, `rate`, `cancel`) is the stream's own.
    """

    def __init__(self, stream, remember):
        self._stream = stream
        self._remember = remember
        self.records: list[TakeRecord | None] = []

    @property
    def record(self) -> TakeRecord | None:
        return self.records[0] if self.records else None

    def __iter__(self):
        yield from self._stream
        self.records = [self._remember(take) for take in self._stream.takes]

    def collect(self, should_stop=None) -> list:
        """Every take, whole (the stream collected, as `Stream.collect`), kept in the history too."""
        self._stream.heartbeat = True
        for _ in self:
            if should_stop is not None and should_stop():
                self._stream.cancel()
        return self._stream.takes

    def __getattr__(self, name):
        return getattr(self._stream, name)
