"""Chatterbox-Turbo's real-size language model in the browser (ONNX Runtime Web) beside onnxruntime on the server.

    python benchmarks/browser_engines.py [--tokens 40] [--repeats 2] [--backend wasm] [--chatterbox DIR]

The same greedy take (same voice, text and number of speech tokens) is made by the server
engine (onnxruntime in Python) and by the /browser/ page in headless Chromium, alternately,
and the ratio of their times is printed, with the page's own time to first audio and real-time
factor. The stand-in has the published language model's shape (24 layers, 16 heads of 64,
GPT-2 style) and never stops early; its speech encoder and decoder are tiny, so the vocoder's
cost is not part of this comparison. Headless Chromium has no GPU here: `--backend webgpu` runs
Chromium's software adapter, which says nothing about WebGPU speed on a real GPU.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import FIXTURE, median
from engines_speed import real_size_chatterbox

TEXT = "This is a benchmark sentence spoken in English."
CHROMIUM = "/usr/bin/chromium"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--backend", choices=["wasm", "webgpu"], default="wasm")
    parser.add_argument("--chatterbox", help="real-size stand-in folder (built when missing)")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from app import launch
    from studio.config import Settings
    from studio.engines import Sampling
    from studio.studio import NewVoice, SpeakRequest, Studio
    from tests.conftest import free_port

    folder = real_size_chatterbox(args.chatterbox)
    voices = Path(tempfile.mkdtemp(prefix="browser-bench-voices-"))
    studio = Studio(Settings(engine="chatterbox-turbo", chatterbox_model=str(folder), device="cpu", dtype="float32",
                             voices_dir=voices, port=free_port()))
    studio.save_voice(NewVoice("Bench", FIXTURE, "", "English", "xvector"))
    request = SpeakRequest(TEXT, "English", voice="Bench",
                           sampling=Sampling(temperature=0, max_seconds=args.tokens // 2 * 0.08))
    demo = launch(studio, block=False, quiet=True)
    server, browser, first, factor = [], [], [], []
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=[
                "--headless", "--no-sandbox", "--enable-unsafe-webgpu", "--autoplay-policy=no-user-gesture-required"])
            page = chromium.new_page()
            page.goto(f"http://127.0.0.1:{studio.settings.port}/browser/?backend={args.backend}&variant=fp32")
            page.wait_for_selector("body[data-ready=true]", timeout=120000)
            page.fill("#text", TEXT)
            page.fill("#temperature", "0")
            page.fill("#max-frames", str(args.tokens // 2))  # the page counts 80 ms, two 40 ms tokens
            started = time.perf_counter()
            take = speak(page)  # the first take also downloads the graphs and builds the sessions
            print(f"page: graphs loaded and a first take in {time.perf_counter() - started:.1f} s "
                  f"({page.locator('#status').inner_text()})", flush=True)
            for _ in range(args.repeats):
                started = time.perf_counter()
                studio.synthesize(request)
                server.append(time.perf_counter() - started)
                take = speak(page)
                browser.append(take["seconds"])
                first.append(take["timeToFirstAudio"])
                factor.append(take["realTimeFactor"])
            chromium.close()
    finally:
        demo.close()
    print(f"{args.tokens} speech tokens, greedy, median of {args.repeats}:")
    print(f"  server (onnxruntime, Python): {median(server):.2f} s")
    print(f"  page ({args.backend}):{' ' * (21 - len(args.backend))}{median(browser):.2f} s "
          f"(first audio after {median(first):.2f} s, real-time factor {median(factor):.2f})")
    print(f"  page / server: {median(browser) / median(server):.2f}x")


def speak(page) -> dict:
    page.evaluate("window.voiceStudioTake = null")
    page.click("#speak")
    page.wait_for_function("window.voiceStudioTake", timeout=1800000)
    take = page.evaluate("(() => { const t = window.voiceStudioTake; return t.error ? t : "
                         "{...t, samples: t.samples.length}; })()")
    if "error" in take:
        raise SystemExit(f"the page failed: {take['error']}")
    return take


if __name__ == "__main__":
    main()
