"""Streaming on the CPU against playback: every weight format, the vocoder on its own thread or not (issue 19).

    python benchmarks/cpu_realtime.py [--seconds 30] [--repeats 2] [--threads 1] [--quality-frames 24]
                                      [--options bfloat16,int8,int4,int8+thread,int4+thread] [--checkpoint DIR]

One run, contenders interleaved (each repeat runs every option once, in turn), so
machine load hits all alike. Each option streams the same request through the
studio's own pipeline (`Stream`: sentence splitting, chunk plan, vocoder) for
--seconds of audio on the real-size random checkpoint, and prints:
  all-in ms per 80 ms frame (wall time of the stream / frames; <= 80 is real time)
  the split: talker + code predictor, vocoder (time inside the decoder's push)
  ratios against today's bfloat16 and int8 paths
  playback: started when the first audio arrives, does it run dry after its first
    second (the worst lateness of a chunk, and how many chunks came late)
then quality against float32 on the same weights: teacher-forced logits (relative
error, top-1 agreement per code group), greedy codes, decoded audio.

--threads is the machine's thread budget (default: PyTorch's, one per core). int8 and
int4 run the talker and code predictor as ONNX Runtime graphs on all of it; with
+thread (--decode-thread) the studio splits it, half for the graphs and half for
PyTorch's vocoder on its own thread, as it does for users.
"""

from __future__ import annotations

import argparse
import time

from common import FIXTURE, FIXTURE_TEXT, median, pipeline, real_size_checkpoint

TEXT = ("This is a long benchmark paragraph spoken in English without a pause, so that one stream runs for as long "
        "as the benchmark asks, and then it keeps going on and on about nothing in particular for a good while "
        "longer, well past the half minute that the playback test needs")
OPTIONS = {"bfloat16": ("none", False), "int8": ("int8", False), "int4": ("int4", False),
           "int8+thread": ("int8", True), "int4+thread": ("int4", True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="0: PyTorch's default (one per core)")
    parser.add_argument("--quality-frames", type=int, default=24)
    parser.add_argument("--options", default=",".join(OPTIONS))
    parser.add_argument("--checkpoint", default=None)
    args = parser.parse_args()

    import torch

    from studio import audio
    from studio.config import Settings
    from studio.engines import Sampling, create_engine

    budget = args.threads or torch.get_num_threads()
    checkpoint = str(real_size_checkpoint(args.checkpoint))
    clip = audio.load(FIXTURE)
    names = args.options.split(",")
    engines, prompts, threads = {}, {}, {}
    for name in names:
        quantize, ahead = OPTIONS[name]
        torch.set_num_threads(budget)
        engine = create_engine(Settings(model=checkpoint, device="cpu", dtype="bfloat16", quantize=quantize,
                                        decode_thread=ahead, max_request_seconds=args.seconds))
        engine.load()
        threads[name] = torch.get_num_threads()  # what the engine left PyTorch (the vocoder's share with +thread)
        engines[name], prompts[name] = engine, engine.make_prompt(clip, FIXTURE_TEXT, "icl")
    sampling = Sampling(seed=1, max_seconds=args.seconds)
    runs: dict[str, list] = {name: [] for name in names}
    for repeat in range(args.repeats + 1):  # the first round warms up
        for name in names:
            torch.set_num_threads(threads[name])
            result = stream(engines[name], prompts[name], sampling)
            if repeat:
                runs[name].append(result)

    rate = engines[names[0]].capabilities.sample_rate
    print(f"\n== cpu, {budget} threads, {args.seconds:.0f} s streams, "
          f"{args.repeats} repeats, interleaved")
    print(f"{'option':14}{'ms/frame':>10}{'loop':>8}{'vocoder':>9}{'RTF':>6}{'vs bf16':>9}{'vs int8':>9}"
          f"{'first audio s':>15}{'late chunks':>13}{'worst late s':>14}")
    per_frame = {name: median([r["wall"] / r["frames"] for r in runs[name]]) for name in names}
    for name in names:
        results = runs[name]
        frame = per_frame[name]
        vocoder = median([r["vocoder"] / r["frames"] for r in results])
        loop = median([(r["wall"] - r["vocoder"] * (not OPTIONS[name][1])) / r["frames"] for r in results])
        late = max(r["late"] for r in results)
        worst = max(r["worst"] for r in results)
        vs = {base: f"{frame / per_frame[base]:9.2f}" if base in per_frame else f"{'-':>9}"
              for base in ("bfloat16", "int8")}
        print(f"{name:14}{1000 * frame:10.1f}{1000 * loop:8.1f}{1000 * vocoder:9.1f}{frame / 0.08:6.2f}"
              f"{vs['bfloat16']}{vs['int8']}{median([r['first'] for r in results]):15.2f}{late:13d}{worst:14.2f}")
    print(f"(frames per stream: {runs[names[0]][0]['frames']}; 'loop' is talker + code predictor + sampling: the "
          "stream's wall time less the vocoder's where the vocoder runs in line; with +thread the vocoder overlaps "
          f"the loop; late chunks: audio arriving after it was due, playback having started with the first chunk, "
          f"after its first second; sample rate {rate})")
    quality(checkpoint, clip, names, engines, args.quality_frames)


def stream(engine, prompt, sampling) -> dict:
    """One request through the studio's pipeline: wall time, frames, vocoder time and the playback check."""
    spent = [0.0]
    original = engine.decoder

    def timed_decoder(voice):
        decoder = original(voice)
        push = decoder.push

        def timed_push(codes):
            started = time.perf_counter()
            try:
                return push(codes)
            finally:
                spent[0] += time.perf_counter() - started
        decoder.push = timed_push
        return decoder

    engine.decoder = timed_decoder
    arrivals = []  # (seconds since the start, first sample's position, samples)
    position = 0
    try:
        started = time.perf_counter()
        for chunk in pipeline(engine, TEXT, prompt, sampling):
            arrivals.append((time.perf_counter() - started, position, len(chunk.samples)))
            position += len(chunk.samples)
        wall = time.perf_counter() - started
    finally:
        del engine.decoder  # the class's own method again
    rate = engine.capabilities.sample_rate
    first = arrivals[0][0]
    lateness = [arrived - (first + at / rate) for arrived, at, _ in arrivals if at >= rate]
    late = [x for x in lateness if x > 0]
    return {"wall": wall, "frames": position / 1920, "vocoder": spent[0], "first": first, "late": len(late),
            "worst": max(lateness, default=0.0)}


def quality(checkpoint: str, clip, names: list[str], engines: dict, frames: int) -> None:
    """Each weight format against float32 on the same weights: teacher-forced logits, greedy codes, audio."""
    import numpy as np
    import torch

    from studio.config import Settings
    from studio.engines import Sampling, SpeakJob, create_engine
    from studio.engines.qwen.calibration import agreement

    exact = create_engine(Settings(model=checkpoint, device="cpu", dtype="float32", quantize="none"))
    prompt = exact.make_prompt(clip, FIXTURE_TEXT, "icl")
    greedy = Sampling(temperature=0, seed=0)
    seconds = frames / 12.5

    def greedy_codes(engine, voice):
        job = SpeakJob(TEXT, "English", voice, greedy, (0,), seconds)
        return torch.stack([step[0] for step, _ in engine.generate_takes(job, frames, engine.generators([0]))])

    def forced_logits(engine, voice, codes):
        seen: list = []
        job = SpeakJob(TEXT, "English", voice, greedy, (0,), seconds)
        talker_picking, predictor_picking = engine.pickings(greedy)
        with torch.inference_mode():
            for _ in engine.talker.frames(engine.prefill(job), talker_picking, predictor_picking,
                                          engine.generators([0]), frames, forced=codes,
                                          on_logits=lambda group, logits: seen.append((group, logits.float()))):
                pass
        return seen

    reference_codes = greedy_codes(exact, prompt)
    reference = forced_logits(exact, prompt, reference_codes)
    wave = exact.reference_decode(reference_codes, prompt)
    print(f"\n== quality against float32 (same weights), {frames} frames, request {TEXT[:40]!r}...")
    print(f"{'option':10}{'rel. error':>12}{'top-1 mean':>12}{'top-1 worst group':>19}{'greedy codes equal':>20}"
          f"{'first differing frame':>23}{'audio SNR dB':>14}")
    for name in [n for n in names if "+thread" not in n]:
        engine = engines[name]
        voice = engine.make_prompt(clip, FIXTURE_TEXT, "icl")
        mine = forced_logits(engine, voice, reference_codes)
        error = float(np.mean([float((a - b).abs().mean() / b.std()) for (_, a), (_, b) in zip(mine, reference)]))
        agree = agreement(mine, reference, engine.talker.groups)
        codes = greedy_codes(engine, voice)
        n = min(len(codes), len(reference_codes))
        same = float((codes[:n] == reference_codes[:n]).float().mean())
        differs = (codes[:n] != reference_codes[:n]).any(dim=1).nonzero()
        first = int(differs[0]) if len(differs) else n
        other = exact.reference_decode(codes[:n], prompt)
        m = min(len(wave), len(other))
        noise = float(np.mean((wave[:m] - other[:m]) ** 2))
        snr = 10 * np.log10(float(np.mean(wave[:m] ** 2)) / max(noise, 1e-20))
        print(f"{name:10}{100 * error:11.1f}%{100 * np.mean(agree):11.1f}%{100 * min(agree):18.1f}%"
              f"{100 * same:19.1f}%{first:23d}{snr:14.1f}")
        print("          top-1 per code group: " + " ".join(f"{100 * a:.0f}" for a in agree))
    print("(random weights: near-flat logits make many choices near ties, so agreement here is a floor for what "
          "trained weights give)")


if __name__ == "__main__":
    main()
