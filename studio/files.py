"""Atomic file writes: readers see the old file or the new one, never a torn one."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import time
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


PREFIX = "voice-studio-"
# mkdtemp's folders: voice-studio-<pid>-<8 random characters>, or (older studios) voice-studio-<8 characters>
LEGACY_AGE = 7 * 24 * 3600.0
OURS = re.compile(r"^voice-studio-(?:(?P<pid>\d+)-)?[a-z0-9_]{8}$")


class TempFiles:
    """The studio's own short-lived files (cleaned clips, takes, exports): one folder, swept after an hour.

    Doors hand these paths to clients (Gradio copies them into its own cache);
    the sweep keeps the folder from growing on a long-running server. The folder
    carries the process id in its name: it is removed when the studio exits, and
    a studio that starts removes the folders of studios that died without doing so.
    """

    def __init__(self, max_age: float = 3600.0, parent: str | os.PathLike | None = None):
        self.max_age = max_age
        self.parent = Path(parent or tempfile.gettempdir())
        self._root: Path | None = None
        sweep_stale(self.parent, max_age)

    @property
    def root(self) -> Path:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=self.parent))
            atexit.register(self.close)
        return self._root

    def close(self) -> None:
        """Remove the folder and everything in it (at exit; a later `path` makes a new one)."""
        root, self._root = self._root, None
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
            atexit.unregister(self.close)

    def path(self, stem: str, suffix: str) -> Path:
        """A fresh path for a new file; old files are swept first."""
        self.sweep()
        return self.root / f"{stem}-{time.time_ns()}{suffix}"

    def sweep(self) -> None:
        cutoff = time.time() - self.max_age
        for old in self.root.glob("*"):
            try:
                if old.stat().st_mtime < cutoff:
                    old.unlink()
            except OSError:
                pass  # another request swept it first


def sweep_stale(parent: Path, max_age: float = 3600.0) -> list[Path]:
    """Remove the temporary folders of studios that are no longer running; returns what was removed."""
    removed = []
    for folder in parent.glob(f"{PREFIX}*"):
        ours = OURS.match(folder.name)
        if ours is None:
            continue  # another tool's folder that happens to share the prefix (a benchmark cache, say)
        try:
            if not folder.is_dir() or folder.is_symlink() or folder.stat().st_uid != os.getuid():
                continue
            if ours["pid"]:
                stale = not _running(int(ours["pid"]))
            else:  # from before process ids were in the name: its studio may still run, so only old ones go
                stale = folder.stat().st_mtime < time.time() - max(max_age, LEGACY_AGE)
        except OSError:
            continue
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
