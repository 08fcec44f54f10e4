"""The studio's temporary folders: removed when it exits (also on SIGTERM), and stale ones swept at start."""

import os
import signal
import subprocess
import sys
from pathlib import Path

from studio.files import TempFiles

ROOT = Path(__file__).resolve().parent.parent


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_stale_folders_of_dead_studios_are_swept_at_start(tmp_path):
    stale = tmp_path / f"voice-studio-{dead_pid()}-abc123de"
    (stale / "nested").mkdir(parents=True)
    (stale / "nested" / "take.wav").write_bytes(b"RIFF")
    alive = tmp_path / f"voice-studio-{os.getppid()}-def456gh"
    alive.mkdir()
    unrelated = [tmp_path / "something-else", tmp_path / "voice-studio-bench-0.6b", tmp_path / "voice-studio-soak-x"]
    for folder in unrelated:
        folder.mkdir()
        os.utime(folder, (0, 0))  # old, but not ours: kept
    legacy = tmp_path / "voice-studio-ab_c12x9"  # an older studio's folder, an hour old
    legacy.mkdir()
    os.utime(legacy, (0, 0))
    files = TempFiles(parent=tmp_path)
    assert not stale.exists() and not legacy.exists() and alive.exists()
    assert all(folder.exists() for folder in unrelated)
    files.path("take", ".wav").write_bytes(b"x")
    assert files.root.parent == tmp_path and files.root.exists()
    files.close()
    assert not any(p.name.startswith(f"voice-studio-{os.getpid()}-") for p in tmp_path.iterdir())


def run_studio_files(tmp_path, tail: str) -> subprocess.Popen:
    code = ("import sys, time\n"
            "from app import exit_on_sigterm\n"
            "from studio.files import TempFiles\n"
            "exit_on_sigterm()\n"
            f"files = TempFiles(parent={str(tmp_path)!r})\n"
            "files.path('clip', '.wav').write_bytes(b'RIFF')\n"
            "print(files.root, flush=True)\n" + tail)
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)


def test_the_folder_is_removed_when_the_studio_exits(tmp_path):
    process = run_studio_files(tmp_path, "")
    root = Path(process.stdout.readline().strip())
    assert process.wait(timeout=120) == 0
    assert root.parent == tmp_path and not root.exists()


def test_the_folder_is_removed_on_sigterm(tmp_path):
    process = run_studio_files(tmp_path, "time.sleep(300)\n")
    root = Path(process.stdout.readline().strip())
    assert root.exists()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    assert not root.exists()
