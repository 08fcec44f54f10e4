"""Streaming vs one-shot `generate_voice_clone` on the same checkpoint and frames.

    python benchmarks/streaming_speed.py [--frames 30] [--repeats 3] [--checkpoint DIR] [--first 1] [--dtype auto]

Prints time to first audio and total time of our stream, the official one-shot
total, and the ratios the streaming issue sets targets for: time to first audio
at most 0.15 of the one-shot total (30 frames) and stream total at most 1.05.
"""

from __future__ import annotations

import argparse

from common import FIXTURE, FIXTURE_TEXT, frames_seconds, interleaved, median, pipeline, real_size_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--first", type=int, default=1, help="frames in the first chunk")
    args = parser.parse_args()

    import time

    import torch

    from studio import audio
    from studio.config import Settings
    from studio.engines import Sampling, create_engine
    from studio.engines.frames import ChunkPlan

    settings = Settings(model=str(real_size_checkpoint(args.checkpoint)), device=args.device, dtype=args.dtype,
                        quantize="none")
    engine = create_engine(settings)
    engine.plan = ChunkPlan(first=args.first)
    engine.load()
    prompt = engine.make_prompt(audio.load(FIXTURE), FIXTURE_TEXT, "icl")
    official = engine.model
    item = official.create_voice_clone_prompt(ref_audio=str(FIXTURE), ref_text=FIXTURE_TEXT)
    text = "This is a benchmark sentence spoken in English."
    sampling = Sampling(seed=1, max_seconds=frames_seconds(args.frames))
    first_audio: list[float] = []

    def ours():
        started = time.perf_counter()
        got_first = False
        for _ in pipeline(engine, text, prompt, sampling):
            if not got_first:
                first_audio.append(time.perf_counter() - started)
                got_first = True

    def one_shot():
        torch.manual_seed(1)
        # max_new_tokens = frames + 1: the talker drops its last sampled frame.
        official.generate_voice_clone(text=text, language="English", voice_clone_prompt=item,
                                      max_new_tokens=args.frames + 1)

    ours()
    one_shot()
    first_audio.clear()
    times = interleaved({"stream": ours, "one-shot": one_shot}, args.repeats)
    t_stream, t_one = median(times["stream"]), median(times["one-shot"])
    ttfa = median(first_audio)
    print(f"\n== {engine.runtime.describe()} | threads {torch.get_num_threads()} | {args.frames} frames, "
          f"first chunk {args.first} frames, {args.repeats} interleaved repeats (medians)")
    print(f"one-shot generate_voice_clone total  {t_one:8.2f} s")
    print(f"stream time to first audio           {ttfa:8.2f} s")
    print(f"stream total                         {t_stream:8.2f} s")
    print(f"ratio first audio / one-shot total   {ttfa / t_one:8.3f}   (target <= 0.15)")
    print(f"ratio stream total / one-shot total  {t_stream / t_one:8.3f}   (target <= 1.05)")


if __name__ == "__main__":
    main()
