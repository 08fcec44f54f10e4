"""Click-to-sound of the Preview's live player, measured in Chromium, against the engine's own first audio.

    python benchmarks/live_player.py --streams 10

Serves the studio on a tiny random-weight Qwen3-TTS (as the tests do), opens the page in Debian's chromium
(autoplay allowed by flag), uploads a reference clip and presses Stream `--streams` times. For each stream the
page measures the time from the click to the first sample its AudioContext plays; the server reports the
engine's time to first audio. Target: the page's figure within 150 ms of the engine's. The first stream also
loads the model and is listed apart.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import common  # noqa: F401 - puts the project on sys.path

from app import launch
from studio.config import Settings
from studio.studio import Studio
from studio.engines.qwen.standin import build_checkpoint

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
PLAYER = "#player .live-player"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--port", type=int, default=7877)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="live-player-"))
    settings = Settings(model=str(build_checkpoint(folder / "tiny")), voices_dir=folder / "voices", device="cpu",
                        dtype="float32", quantize="none", port=args.port, whisper_model="none")
    demo = launch(Studio(settings), block=False, quiet=True)
    clip = json.loads((FIXTURES / "clips.json").read_text(encoding="utf-8"))[0]
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{args.port}/")
            page.get_by_role("tab", name="Preview").click()
            page.locator("#preview-reference input[type=file]").set_input_files(str(FIXTURES / clip["file"]))
            page.get_by_label("Reference transcript (ref_text)").fill(clip["text"])
            page.get_by_label("Text to speak").fill("How soon does the first sound come?")
            page.get_by_text("Sampling").click()
            page.get_by_label("Max frames per sentence (0 = from text)").fill("12")
            print(f"{'stream':>6}{'click to sound ms':>19}{'engine first audio ms':>23}{'difference ms':>15}"
                  f"{'ticket ms':>11}{'socket open ms':>16}{'first chunk ms':>16}")
            differences = []
            for number in range(1, args.streams + 2):
                page.locator("#preview-stream").click()
                page.wait_for_function(f"document.querySelector('{PLAYER}').dataset.streams === '{number}'")
                page.wait_for_function(f"document.querySelector('{PLAYER}').dataset.state === 'done'",
                                       timeout=120000)
                page.wait_for_function("document.querySelector('#take-summary').innerText.includes('seed')")
                heard = float(page.locator(PLAYER).get_attribute("data-click-to-sound"))
                summary = page.locator("#take-summary").inner_text()
                engine = 1000 * float(summary.split("engine's first audio after ")[1].split(" s")[0])
                label = "load" if number == 1 else str(number - 1)
                marks = json.loads(page.locator(PLAYER).get_attribute("data-marks"))
                print(f"{label:>6}{heard:>19.0f}{engine:>23.0f}{heard - engine:>15.0f}"
                      + "".join(f"{marks.get(k, float('nan')):>{w}.0f}" for k, w in
                                (("ticket", 11), ("open", 16), ("first", 16))))
                if number > 1:
                    differences.append(heard - engine)
                page.wait_for_timeout(300)
            print(f"median difference {statistics.median(differences):.0f} ms, worst {max(differences):.0f} ms "
                  f"(target: within 150 ms)")
            browser.close()
    finally:
        demo.close()


if __name__ == "__main__":
    main()
