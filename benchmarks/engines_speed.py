"""Each engine's generation cost on this machine, side by side in one run, on real-size random weights.

    python benchmarks/engines_speed.py [--seconds 2.4] [--repeats 3] [--checkpoint DIR] [--chatterbox DIR]

Qwen3-TTS makes one 80 ms frame per step (talker + code predictor, our own loop, bfloat16
where the CPU runs it natively); Chatterbox-Turbo one 40 ms speech token per step (its
24-layer, 1024-wide language model through onnxruntime, float32); Marvis one 80 ms frame
per step (backbone + 31 depth-decoder steps through transformers' `generate`, bfloat16;
shapes from its stated 250M + 60M sizes, see `studio.engines.marvis.standin.build_marvis`). All generate
the same length of audio; per-step time is measured between the first and the last step, so
prompts and prefills are left out alike. The Chatterbox stand-in's language model has
the published shape (24 layers, 16 heads of 64, GPT-2 style with a 4x MLP); its speech
encoder and decoder are tiny, so the vocoder's cost is not part of this comparison.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from common import FIXTURE, FIXTURE_TEXT, interleaved, median, real_size_checkpoint

TEXT = "This is a benchmark sentence spoken in English."


def real_size_chatterbox(cache: str | None) -> Path:
    from studio.engines.chatterbox.standin import build_chatterbox

    directory = Path(cache or os.environ.get("STUDIO_BENCH_CHATTERBOX", "/tmp/voice-studio-bench-chatterbox"))
    if not (directory / "tokenizer.json").exists():
        print(f"building real-size random Chatterbox-Turbo language model in {directory} ...", flush=True)
        build_chatterbox(directory, hidden=1024, heads=16, head_dim=64, stop_bias=-100.0)  # never stops
    return directory


def real_size_marvis(cache: str | None) -> Path:
    from studio.engines.marvis.standin import build_marvis

    directory = Path(cache or os.environ.get("STUDIO_BENCH_MARVIS", "/tmp/voice-studio-bench-marvis"))
    if not (directory / "model.safetensors").exists():
        print(f"building real-size random Marvis (CSM) checkpoint in {directory} ...", flush=True)
        build_marvis(directory, real_size=True)
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.4, help="audio generated per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--chatterbox", default=None)
    parser.add_argument("--marvis", default=None)
    args = parser.parse_args()

    import torch

    from studio import audio
    from studio.config import Settings
    from studio.engines import Sampling, SpeakJob, create_engine

    settings = Settings(model=str(real_size_checkpoint(args.checkpoint)), quantize="none",
                        chatterbox_model=str(real_size_chatterbox(args.chatterbox)),
                        marvis_model=str(real_size_marvis(args.marvis)), device="cpu")
    clip = audio.load(FIXTURE)
    engines = {name: create_engine(settings, name) for name in ("qwen", "chatterbox-turbo", "marvis")}
    steps, jobs, per_step = {}, {}, {}
    for name, engine in engines.items():
        engine.load()
        prompt = engine.make_prompt(clip, FIXTURE_TEXT)  # each engine's own way of cloning
        steps[name] = engine.steps_for(args.seconds)
        jobs[name] = SpeakJob(TEXT, engine.language_for("English"), prompt,
                              Sampling(seed=1, max_seconds=args.seconds), (1,), args.seconds)

    def run(name):
        engine, job = engines[name], jobs[name]

        def go():
            with engine.generation_lock:  # as `speak` holds it
                stamps = [time.perf_counter() for _ in engine.generate_takes(job, steps[name],
                                                                             engine.generators([1]))]
            assert len(stamps) == steps[name], (name, len(stamps))
            per_step.setdefault(name, []).append((stamps[-1] - stamps[0]) / (len(stamps) - 1))
        return go

    runs = {name: run(name) for name in engines}
    for go in runs.values():
        go()  # warm-up
    per_step.clear()
    times = interleaved(runs, args.repeats)
    print(f"\n== cpu, threads {torch.get_num_threads()}, {args.seconds:.1f} s of audio per run, "
          f"{args.repeats} interleaved repeats (medians)")
    print(f"{'engine':18}{'runtime':22}{'ms/step':>9}{'audio/step':>12}{'RTF':>7}{'wall s':>8}")
    rtf = {}
    for name, engine in engines.items():
        step = median(per_step[name])
        audio_ms = 1000 * engine.capabilities.step_seconds
        rtf[name] = 1000 * step / audio_ms
        runtime = f"{engine.runtime.device}, {engine.runtime.dtype}"
        print(f"{name:18}{runtime:22}{1000 * step:9.1f}{audio_ms:10.0f}ms"
              f"{rtf[name]:7.2f}{median(times[name]):8.2f}")
    for name in ("chatterbox-turbo", "marvis"):
        print(f"{engines[name].label} generation RTF / Qwen3-TTS generation RTF: {rtf[name] / rtf['qwen']:.2f} "
              "(below 1: it generates faster per second of audio)")


if __name__ == "__main__":
    main()
