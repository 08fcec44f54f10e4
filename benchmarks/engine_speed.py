"""Engine speed vs a direct qwen-tts `generate_voice_clone` call on the same checkpoint.

    python benchmarks/engine_speed.py [--frames 30] [--repeats 3] [--checkpoint DIR] [--dtypes float32,bfloat16]

Prints prompt time, per-frame cost and real-time factor for both, and our/official
ratios measured side by side in one run (random weights never emit end-of-speech,
so every run generates exactly --frames frames). "ours" is one take through the speech
pipeline, collected, as `Studio.synthesize` makes it.
"""

from __future__ import annotations

import argparse
import time

from common import FIXTURE, FIXTURE_TEXT, frames_seconds, interleaved, median, pipeline, real_size_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--dtypes", default="auto", help="comma list, e.g. float32,bfloat16")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    import torch

    from studio import audio
    from studio.config import SAMPLE_RATE, SAMPLES_PER_FRAME, Settings
    from studio.engines import Sampling, create_engine

    checkpoint = real_size_checkpoint(args.checkpoint)
    clip = audio.load(FIXTURE)
    text = "This is a benchmark sentence spoken in English."
    per_frame_by_dtype = {}
    for dtype in args.dtypes.split(","):
        engine = create_engine(Settings(model=str(checkpoint), device=args.device, dtype=dtype, quantize="none"))
        started = time.perf_counter()
        engine.load()
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        prompt = engine.make_prompt(clip, FIXTURE_TEXT, "icl")
        prompt_s = time.perf_counter() - started
        official = engine.model
        item = official.create_voice_clone_prompt(ref_audio=str(FIXTURE), ref_text=FIXTURE_TEXT)

        sampling = Sampling(seed=1, max_seconds=frames_seconds(args.frames))

        def ours():
            take = pipeline(engine, text, prompt, sampling).collect()[0]
            assert len(take.samples) == args.frames * SAMPLES_PER_FRAME, len(take.samples)

        def upstream():
            torch.manual_seed(1)
            official.generate_voice_clone(text=text, language="English", voice_clone_prompt=item,
                                          max_new_tokens=args.frames + 1)  # same frame count as ours

        ours()  # warm-up both paths
        upstream()
        times = interleaved({"ours": ours, "official": upstream}, args.repeats)
        audio_s = args.frames * SAMPLES_PER_FRAME / SAMPLE_RATE
        t_ours, t_official = median(times["ours"]), median(times["official"])
        per_frame_by_dtype[dtype] = t_ours / args.frames
        print(f"\n== {engine.runtime.describe()} | threads {torch.get_num_threads()} | {args.frames} frames")
        print(f"load {load_s:.1f} s | prompt from {clip.duration:.1f} s clip: {prompt_s:.2f} s")
        print(f"{'':10}{'total s':>10}{'ms/frame':>10}{'RTF':>8}")
        for name, total in (("ours", t_ours), ("official", t_official)):
            print(f"{name:10}{total:10.2f}{1000 * total / args.frames:10.1f}{total / audio_s:8.2f}")
        print(f"ratio ours/official total: {t_ours / t_official:.3f}")
    if len(per_frame_by_dtype) > 1:
        base = next(iter(per_frame_by_dtype.values()))
        print("\nper-frame cost relative to " + next(iter(per_frame_by_dtype)) + ": " +
              ", ".join(f"{k} {v / base:.2f}" for k, v in per_frame_by_dtype.items()))


if __name__ == "__main__":
    main()
