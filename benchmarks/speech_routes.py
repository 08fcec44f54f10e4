"""Time to first audio through the speech routes vs the engine's own, on the same request, in one run.

    python benchmarks/speech_routes.py --repeats 5

Starts the studio (UI and speech routes) in this process on a free port, saves the fixture as the default
voice, and times, interleaved: the core's stream (first chunk), the /api/v1/speak WebSocket (first
audio_chunk after the speak message) and POST /v1/audio/speech (first body bytes). Prints medians and the
route overhead as ratios (targets <= 1.1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from common import frames_seconds, live_studio, median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frames", type=int, default=24, help="max frames per request")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()

    import httpx
    import websockets

    from studio import Sampling, SpeakRequest

    studio, demo, port = live_studio(args.checkpoint, args.dtype)
    text = "This is a benchmark sentence spoken in English."
    sampling = dict(seed=1, max_frames=args.frames)  # as the routes take it (80 ms frames)
    core_sampling = Sampling(seed=1, max_seconds=frames_seconds(args.frames))

    def engine_first() -> float:
        started = time.perf_counter()
        stream = studio.stream(SpeakRequest(text, "English", sampling=core_sampling))
        iterator = iter(stream)
        next(iterator)
        first = time.perf_counter() - started
        for _ in iterator:
            pass
        return first

    async def websocket_first() -> float:
        async with websockets.connect(f"ws://127.0.0.1:{port}/api/v1/speak") as ws:
            await ws.send(json.dumps({"type": "start", **sampling}))
            await ws.recv()
            started = time.perf_counter()
            await ws.send(json.dumps({"type": "speak", "text": text}))
            first = None
            while True:
                message = json.loads(await ws.recv())
                if message["type"] == "audio_chunk" and first is None:
                    first = time.perf_counter() - started
                if message["type"] == "complete":
                    return first

    def http_first() -> float:
        body = {"model": "qwen3-tts", "input": text, "response_format": "pcm", **sampling}
        started = time.perf_counter()
        with httpx.stream("POST", f"http://127.0.0.1:{port}/v1/audio/speech", json=body, timeout=600) as response:
            first = None
            for _ in response.iter_bytes():
                if first is None:
                    first = time.perf_counter() - started
        return first

    runs = {"engine": engine_first, "websocket": lambda: asyncio.run(websocket_first()), "http": http_first}
    for run in runs.values():
        run()  # warm-up
    times = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            times[name].append(run())
    demo.close()
    engine, ws, http = (median(times[n]) for n in ("engine", "websocket", "http"))
    print(f"\n== {studio.engine.runtime.describe()} | {args.frames} frames | {args.repeats} interleaved repeats "
          "(medians)")
    print(f"engine time to first audio                {1000 * engine:8.1f} ms")
    print(f"/api/v1/speak time to first audio_chunk   {1000 * ws:8.1f} ms")
    print(f"/v1/audio/speech time to first bytes      {1000 * http:8.1f} ms")
    print(f"ratio WebSocket / engine                  {ws / engine:8.3f}   (target <= 1.1)")
    print(f"ratio /v1/audio/speech / engine           {http / engine:8.3f}   (target <= 1.1)")


if __name__ == "__main__":
    main()
