"""Continuous batching: many WebSocket sessions at once, a late joiner, and several takes counted whole.

    python benchmarks/batching.py [--frames 40] [--repeats 2] [--checkpoint DIR] [--dtype auto]

Starts the studio in this process on the real-size random checkpoint with six voices (three
clips, each in ICL and x-vector mode) and, interleaved in one run:
  - 1, 4 and 8 /api/v1/speak sessions at once, each with its own voice, seed and text of similar
    length (--frames 80 ms frames each): wall time from the first connect to the last `complete`.
    Targets: 4 sessions <= 1.5x one alone, 8 <= 2.5x.
  - gradio_client's /synthesize_takes with 4 takes against 1 take: the whole request, decoding
    included, as a user waits for it. Target <= 1.5x.
Then a late joiner: three sessions speak 3x as long; once they are 10 frames in, a fourth speaks.
Its time from the end of its prefill to its first audio is given in the batch's own frame times
(median step of that moment). Target: within 2 frames.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time

from common import FIXTURE, interleaved, live_studio, median

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves this machine

TEXTS = ["The morning train was late again today.", "Please leave the parcel by the front door.",
         "We will meet again at the usual place.", "The garden looks lovely after the rain.",
         "She asked for a cup of tea with lemon.", "Turn left at the second set of lights.",
         "My brother plays the piano every night.", "The report is due at the end of the week."]


def save_voices(studio) -> list[str]:
    """Six voices: three clips, each in both cloning modes."""
    from studio import NewVoice

    clips = json.loads((FIXTURE.parent / "clips.json").read_text(encoding="utf-8"))
    names = []
    for clip in clips:
        for mode in ("icl", "xvector"):
            name = f"{clip['voice']} {mode}"
            studio.save_voice(NewVoice(name, FIXTURE.parent / clip["file"], clip["text"], mode=mode))
            names.append(name)
    return names


async def session(port: int, voice: str, text: str, frames: int, seed: int, stamps: dict | None = None) -> int:
    """One app: connect, start, speak one line, read to `complete`; returns the samples heard."""
    import websockets

    async with websockets.connect(f"ws://127.0.0.1:{port}/api/v1/speak", max_size=None) as ws:
        await ws.send(json.dumps({"type": "start", "voice": voice, "language": "English", "seed": seed,
                                  "max_frames": frames, "encoding": "pcm16", "binary": True}))
        ready = json.loads(await ws.recv())
        if ready["type"] != "ready":
            raise RuntimeError(f"WebSocket: {ready}")
        await ws.send(json.dumps({"type": "speak", "text": text}))
        got = 0
        while True:
            message = await ws.recv()
            if isinstance(message, bytes):
                if stamps is not None and "first" not in stamps:
                    stamps["first"] = time.perf_counter()
                got += len(message) // 2
                continue
            message = json.loads(message)
            if message["type"] == "complete":
                return got
            if message["type"] != "audio_chunk":
                raise RuntimeError(f"WebSocket: {message}")


def sessions(port: int, voices: list[str], count: int, frames: int) -> list[int]:
    async def everyone():
        return await asyncio.gather(*(session(port, voices[n % len(voices)], TEXTS[n], frames, n)
                                      for n in range(count)))

    return asyncio.run(everyone())


class StepClock:
    """Times of the batch's steps and joins, from the real Batch (wrapped, not replaced)."""

    def __init__(self):
        from studio.engines.qwen import talker

        self.steps: list[tuple[float, float, int]] = []  # (start, end, rows)
        self.joins: list[tuple[float, int]] = []  # (end of prefill, rows of the joiner)
        self._talker = talker
        self._join, self._step = talker.Batch.join, talker.Batch.step
        clock = self

        def join(batch, member):
            clock._join(batch, member)
            clock.joins.append((time.perf_counter(), member.takes))

        def step(batch):
            started, rows = time.perf_counter(), batch.rows
            out = clock._step(batch)
            clock.steps.append((started, time.perf_counter(), rows))
            return out

        talker.Batch.join, talker.Batch.step = join, step

    def close(self) -> None:
        self._talker.Batch.join, self._talker.Batch.step = self._join, self._step


def late_joiner(port: int, voices: list[str], frames: int) -> tuple[float, float, float]:
    """(seconds from the joiner's prefill to its first audio, the median step then, the ratio)."""
    clock = StepClock()
    stamps: dict = {}
    try:
        async def scenario():
            early = [asyncio.create_task(session(port, voices[n], TEXTS[n], 3 * frames, n)) for n in range(3)]
            while len([s for s in clock.steps if s[2] >= 3]) < 10:  # three in the batch, 10 frames made
                await asyncio.sleep(0.01)
            clock.joins.clear()
            await session(port, voices[3], TEXTS[3], frames, 3, stamps)
            await asyncio.gather(*early)

        asyncio.run(scenario())
    finally:
        clock.close()
    prefilled = clock.joins[0][0]
    around = [end - start for start, end, rows in clock.steps if rows >= 3 and abs(start - prefilled) < 5]
    step = statistics.median(around)
    wait = stamps["first"] - prefilled
    return wait, step, wait / step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=40, help="audio per session, in 80 ms frames")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()

    import soundfile as sf
    from gradio_client import Client

    studio, demo, port = live_studio(args.checkpoint, args.dtype)
    voices = save_voices(studio)
    client = Client(f"http://127.0.0.1:{port}/", verbose=False, analytics_enabled=False,
                    download_files=tempfile.mkdtemp(prefix="batching-bench-"))
    expected = args.frames * 1920

    def check(heard: list[int], label: str) -> None:
        if any(h != expected for h in heard):
            raise SystemExit(f"{label}: expected {expected} samples per session, got {heard}")

    def takes(count: int) -> None:
        files, _ = client.predict(text=TEXTS[0], language="English", voice=voices[0], seed=1,
                                  max_frames=args.frames, takes=count, api_name="/synthesize_takes")
        heard = [sf.info(f).frames for f in files]
        if heard != [expected] * count:
            raise SystemExit(f"/synthesize_takes x{count}: got {heard}")

    runs = {f"{n} session{'s' * (n > 1)}": (lambda n=n: check(sessions(port, voices, n, args.frames), f"{n}"))
            for n in (1, 4, 8)}
    runs |= {"1 take": lambda: takes(1), "4 takes": lambda: takes(4)}
    try:
        for run in runs.values():
            run()  # warm-up, and every request's audio checked once
        times = interleaved(runs, args.repeats)
        wait, step, frames_late = late_joiner(port, voices, args.frames)
    finally:
        client.close()
        demo.close()

    seconds = args.frames * 0.08
    print(f"\n== {studio.engine.runtime.describe()} | {args.frames} frames ({seconds:.2f} s of audio) per session "
          f"| {args.repeats} interleaved repeats (medians) | max batch {studio.engine.batch_rows()}")
    print(f"{'':32}{'wall s':>8}{'ratio':>8}")
    one, take = median(times["1 session"]), median(times["1 take"])
    for name, base, target in (("1 session", one, None), ("4 sessions", one, 1.5), ("8 sessions", one, 2.5),
                               ("1 take", take, None), ("4 takes", take, 1.5)):
        ratio = median(times[name]) / base
        note = f"   (target <= {target})" if target else ""
        print(f"{name:32}{median(times[name]):8.2f}{ratio:8.3f}{note}")
    print(f"late joiner: first audio {wait * 1000:.0f} ms after its prefill; the batch's step then "
          f"{step * 1000:.0f} ms: {frames_late:.2f} frames (target <= 2)")


if __name__ == "__main__":
    main()
