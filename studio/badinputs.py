"""A corpus of hostile and broken inputs, built small on disk, for tests and the reliability benchmark.

Each entry is a file that once got too far (or could): long compressed audio that decodes to gigabytes,
extreme sample rates and channel counts, playlists that pull in other files, silent multichannel zips,
tampered prompt tensors. `measure` runs one studio action on one input in a fresh process and reports
the process's peak memory growth, so a figure is the server's own cost of refusing that input.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent


def _encode(path: Path, samples: np.ndarray, rate: int, codec: str, container: str, codec_rate: int | None = None,
            channels: int = 1) -> Path:
    import av

    layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=codec_rate or rate)
        stream.layout = layout
        block = rate * 10
        for start in range(0, len(samples), block):
            piece = np.tile(samples[None, start:start + block], (channels, 1)).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(piece, format="fltp", layout=layout)
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def build(directory: str | Path, minutes: float = 20.0) -> dict[str, Path]:
    """Write the corpus into `directory`; `minutes` scales the long files (tests use less)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    rate = 24000
    quiet = np.zeros(int(rate * 60 * minutes), np.float32)
    files = {
        "long_opus.webm": _encode(out / "long_opus.webm", quiet, rate, "libopus", "webm", 48000),
        "long_aac.m4a": _encode(out / "long_aac.m4a", quiet, rate, "aac", "mp4"),
    }
    wide = out / "wide_fast.flac"
    sf.write(wide, np.zeros((384000 * 2, 8), np.int16), 384000, subtype="PCM_16")
    files["wide_fast.flac"] = wide
    playlist = out / "playlist.m3u8"
    playlist.write_text(f"#EXTM3U\n#EXTINF:600,\nfile://{out / 'long_aac.m4a'}\n#EXT-X-ENDLIST\n")
    files["playlist.m3u8"] = playlist
    files["silent_zip.zip"] = _silent_voice_zip(out / "silent_zip.zip")
    ten_minutes = out / "ten_minutes.wav"
    sf.write(ten_minutes, np.zeros(8000 * 600, np.int16), 8000, subtype="PCM_16")
    files["ten_minutes.wav"] = ten_minutes
    channels = out / "ten_channels.wav"
    sf.write(channels, np.zeros((24000, 10), np.int16), 24000, subtype="PCM_16")
    files["ten_channels.wav"] = channels
    truncated = out / "truncated.wav"
    truncated.write_bytes(ten_minutes.read_bytes()[:30])
    files["truncated.wav"] = truncated
    text = out / "not_audio.wav"
    text.write_text("Dear diary, nothing was recorded today. " * 100)
    files["not_audio.wav"] = text
    return files


def _silent_voice_zip(path: Path) -> Path:
    """A voice zip whose reference is 8-channel 96 kHz silence, stored uncompressed (no bomb ratio)."""
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros((96000 * 20, 8), np.int16), 96000, format="FLAC", subtype="PCM_16")
    manifest = {"schema_version": 1, "name": "Silent", "mode": "xvector", "ref_text": "", "language": "Japanese"}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("voice.json", json.dumps(manifest))
        archive.writestr("reference.wav", buffer.getvalue())
    return path


PROBE = """
import json, sys, time
sys.path.insert(0, {root!r})
from studio.config import Settings
from studio.errors import StudioError
from studio.studio import Studio

def memory(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # MB

import av  # a running server has FFmpeg's libraries loaded after its first upload; count only the action
studio = Studio(Settings(voices_dir={voices!r}, model="/nonexistent"))
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")  # reset the peak (VmHWM) to the current size, so the peak below is this action's
before = memory("VmRSS")
started = time.perf_counter()
try:
    getattr(studio, {action!r})({path!r})
    outcome = "accepted"
except StudioError as error:
    outcome = str(error)
print(json.dumps({{"growth_mb": memory("VmHWM") - before, "seconds": time.perf_counter() - started,
                  "outcome": outcome}}))
"""


def measure(action: str, path: str | Path, voices_dir: str | Path) -> dict:
    """Run `Studio.<action>(path)` in a fresh process: peak memory growth (MB), seconds, and the message."""
    script = PROBE.format(root=str(ROOT), voices=str(voices_dir), action=action, path=str(path))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


ACTIONS = {  # which door-facing action receives each file
    "long_opus.webm": "prepare_reference",
    "long_aac.m4a": "prepare_reference",
    "wide_fast.flac": "prepare_reference",
    "playlist.m3u8": "prepare_reference",
    "silent_zip.zip": "import_voice",
    "ten_minutes.wav": "prepare_reference",
    "ten_channels.wav": "prepare_reference",
    "truncated.wav": "prepare_reference",
    "not_audio.wav": "prepare_reference",
}
