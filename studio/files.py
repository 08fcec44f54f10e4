"""Atomic file writes: readers see the old file or the new one, never a torn one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (best effort where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write to a temp file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; these are ordinary files
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class TempFiles:
    """The studio's own short-lived files (cleaned clips, takes, exports): one folder, swept after an hour.

    Doors hand these paths to clients (Gradio copies them into its own cache);
    the sweep keeps the folder from growing on a long-running server.
    """

    def __init__(self, max_age: float = 3600.0):
        self.max_age = max_age
        self._root: Path | None = None

    @property
    def root(self) -> Path:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="voice-studio-"))
        return self._root

    def path(self, stem: str, suffix: str) -> Path:
        """A fresh path for a new file; old files are swept first."""
        import time

        self.sweep()
        return self.root / f"{stem}-{time.time_ns()}{suffix}"

    def sweep(self) -> None:
        import time

        cutoff = time.time() - self.max_age
        for old in self.root.glob("*"):
            try:
                if old.stat().st_mtime < cutoff:
                    old.unlink()
            except OSError:
                pass  # another request swept it first
