"""Helpers shared by the benchmark scripts: a real-size random checkpoint and fair timing."""

from __future__ import annotations

import os
import socket
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

FIXTURE = ROOT / "tests" / "fixtures" / "ja_female_1.flac"
FIXTURE_TEXT = "今日はとても良い天気ですね。散歩に行きましょう。"


def real_size_checkpoint(cache: str | None) -> Path:
    """Build (or reuse) a random checkpoint with Qwen3-TTS-12Hz-0.6B-Base's shapes."""
    from studio.engines.qwen.standin import Geometry, build_checkpoint

    directory = Path(cache or os.environ.get("STUDIO_BENCH_CHECKPOINT", "/tmp/voice-studio-bench-0.6b"))
    if not (directory / "speech_tokenizer" / "model.safetensors").exists():
        print(f"building real-size random checkpoint in {directory} ...", flush=True)
        build_checkpoint(directory, Geometry.real_size())
    return directory


def interleaved(runs: dict, repeats: int) -> dict[str, list[float]]:
    """Time each callable `repeats` times, alternating them so machine load hits all alike.

    Every call runs on one shared worker thread, as Gradio runs handlers on its worker
    threads: on CPU, torch work on a non-main thread measured 20-40% slower than on the
    main thread here, so timing one contender on the main thread would not be a fair race.
    """
    from concurrent.futures import ThreadPoolExecutor

    times: dict[str, list[float]] = {name: [] for name in runs}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench") as worker:
        for _ in range(repeats):
            for name, fn in runs.items():
                started = time.perf_counter()
                worker.submit(fn).result()
                times[name].append(time.perf_counter() - started)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def frames_seconds(frames: int) -> float:
    """Seconds of audio in `frames` Qwen frames (80 ms each), as `Sampling.max_seconds` takes them."""
    from studio.config import FRAME_RATE

    return frames / FRAME_RATE


def pipeline(engine, text: str, prompt, sampling, language: str = "English", takes: int = 1):
    """The speech pipeline for one request on `engine`, with the studio's default budgets (iterate or collect)."""
    from studio.streaming import Budget, Speech, Stream

    settings = engine.settings
    budget = Budget(settings.max_request_seconds, settings.max_generation_seconds)
    return Stream(engine, Speech(text, language, prompt, sampling), budget, takes=takes)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def live_studio(checkpoint: str | None, dtype: str):
    """The studio (UI and speech routes) on a free port in this process, on the real-size checkpoint, with the
    fixture saved as its default voice: (studio, demo, port)."""
    import tempfile

    from app import launch
    from studio import NewVoice, Settings, Studio

    port = free_port()
    settings = Settings(model=str(real_size_checkpoint(checkpoint)), dtype=dtype, port=port, quantize="none",
                        voices_dir=tempfile.mkdtemp(prefix="voices-bench-"))
    studio = Studio(settings)
    studio.engine.load()
    studio.save_voice(NewVoice("Bench", FIXTURE, FIXTURE_TEXT))
    studio.set_default_voice("Bench")
    return studio, launch(studio, block=False, quiet=True), port
