"""The whole of one request through every door vs the speech pipeline's own time, in one server, in one run.

    python benchmarks/doors_speed.py [--frames 48] [--repeats 3] [--checkpoint DIR] [--dtype auto]

Starts the studio (UI and speech routes) in this process on a free port, on the real-size checkpoint,
saves the fixture as the default voice, and times the same request (text, seed and length: --frames
80 ms frames, `max_frames` on the doors) from start to its last audio, interleaved: the pipeline itself
(`Studio.stream` iterated in one thread), gradio_client's /stream (the job iterated to its end) and
/synthesize, the /api/v1/speak WebSocket (connect, start, speak, until complete) and POST
/v1/audio/speech (pcm, the body streamed to its end). Every door must return the same amount of audio.
Prints each median and its ratio to the pipeline's time (target <= 1.10 for every door).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import tempfile

from common import interleaved, live_studio, median

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves this machine

TEXT = "This is a benchmark sentence spoken in English."
TARGET = 1.10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=48, help="audio per request, in 80 ms frames")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()

    import httpx
    import soundfile as sf
    import websockets
    from gradio_client import Client

    from studio import Sampling, SpeakRequest
    from studio.config import SAMPLES_PER_FRAME
    from studio.studio import seconds_of_frames

    studio, demo, port = live_studio(args.checkpoint, args.dtype)
    base = f"http://127.0.0.1:{port}"
    client = Client(f"{base}/", verbose=False, download_files=tempfile.mkdtemp(prefix="doors-bench-"),
                    analytics_enabled=False)
    door_args = dict(seed=1, max_frames=args.frames)  # as every door takes them (the default voice)
    request = SpeakRequest(TEXT, "English", sampling=Sampling(seed=1, max_seconds=seconds_of_frames(args.frames)))
    expected = args.frames * SAMPLES_PER_FRAME  # random weights never stop early
    samples: dict[str, int] = {}

    def pipeline():
        stream = studio.stream(request)
        samples["pipeline"] = sum(len(chunk.samples) for chunk in stream)

    def gradio_stream():
        job = client.submit(text=TEXT, language="English", api_name="/stream", **door_args)
        # One WAV file per chunk; the other items are the no-op updates sent between chunks.
        samples["gradio /stream"] = sum(sf.info(item).frames for item in job if isinstance(item, str))

    def gradio_synthesize():
        wav, _ = client.predict(text=TEXT, language="English", api_name="/synthesize", **door_args)
        samples["gradio /synthesize"] = sf.info(wav).frames

    async def websocket_speak():
        async with websockets.connect(f"ws://127.0.0.1:{port}/api/v1/speak", max_size=None) as ws:
            await ws.send(json.dumps({"type": "start", "language": "English", **door_args}))
            ready = json.loads(await ws.recv())
            assert ready["type"] == "ready", ready
            await ws.send(json.dumps({"type": "speak", "text": TEXT}))
            got = 0
            while True:
                message = json.loads(await ws.recv())
                if message["type"] == "audio_chunk":
                    got += len(base64.b64decode(message["data"])) // 2  # pcm16
                elif message["type"] == "complete":
                    samples["/api/v1/speak"] = got
                    return
                else:
                    raise RuntimeError(f"WebSocket: {message}")

    def http_speech():
        body = {"model": "qwen3-tts", "input": TEXT, "language": "English", "response_format": "pcm", **door_args}
        got = 0
        with httpx.stream("POST", f"{base}/v1/audio/speech", json=body, timeout=3600) as response:
            response.raise_for_status()
            for data in response.iter_bytes():
                got += len(data)
        samples["/v1/audio/speech"] = got // 2  # pcm16

    runs = {"pipeline": pipeline, "gradio /stream": gradio_stream, "gradio /synthesize": gradio_synthesize,
            "/api/v1/speak": lambda: asyncio.run(websocket_speak()), "/v1/audio/speech": http_speech}
    try:
        for run in runs.values():
            run()  # warm-up, and every door's audio checked once
        wrong = {name: got for name, got in samples.items() if got != expected}
        if wrong:
            raise SystemExit(f"not the same request: expected {expected} samples from every door, got {wrong}")
        times = interleaved(runs, args.repeats)
    finally:
        client.close()
        demo.close()
    labels = {"pipeline": "pipeline (Studio.stream, one thread)"}
    own = median(times["pipeline"])
    seconds = expected / studio.engine.capabilities.sample_rate
    print(f"\n== {studio.engine.runtime.describe()} | {args.frames} frames ({seconds:.2f} s of audio) | "
          f"{args.repeats} interleaved repeats (medians)")
    print(f"{'':40}{'wall s':>8}{'/ pipeline':>12}")
    worst = 0.0
    for name in runs:
        ratio = median(times[name]) / own
        if name != "pipeline":
            worst = max(worst, ratio)
        target = "" if name == "pipeline" else f"   (target <= {TARGET:.2f})"
        print(f"{labels.get(name, name):40}{median(times[name]):8.2f}{ratio:12.3f}{target}")
    print(f"{'worst door / pipeline':40}{'':8}{worst:12.3f}   (target <= {TARGET:.2f})")


if __name__ == "__main__":
    main()
