"""Our frame loop vs qwen-tts' own nested `generate()` on the same real-size checkpoint.

    python benchmarks/generation_loop.py [--frames 30] [--repeats 3] [--agreement-frames 200] [--checkpoint DIR]

One run, contenders interleaved, so machine load hits all alike. Per-frame time is
measured between the first and the last frame a path hands out (prefill excluded,
the same way for both). Prints the ratios issue 10 sets targets for:
  ours / official per frame (bfloat16, one take)     <= 0.8
  4 takes in one batch / 1 take, wall time           <= 1.5
  stream time to first audio / official one-shot     <= 0.10  (30 frames)
  int8 per frame / our bfloat16 per frame            <= 0.6
then the split of a frame (talker, code predictor, sampling, vocoder), real-time
factors, and how far int8 strays from bfloat16 (greedy codes over
--agreement-frames frames, and the decoded audio).
"""

from __future__ import annotations

import argparse
import time

from common import FIXTURE, FIXTURE_TEXT, frames_seconds, interleaved, median, pipeline, real_size_checkpoint

TEXT = "This is a benchmark sentence spoken in English."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--agreement-frames", type=int, default=200)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--dtype", default="bfloat16")
    args = parser.parse_args()

    import numpy as np
    import torch

    from studio import audio
    from studio.config import SAMPLE_RATE, SAMPLES_PER_FRAME, Settings
    from studio.engines import Sampling, SpeakJob, create_engine
    from studio.engines.qwen import talker as qwen_talker

    checkpoint = str(real_size_checkpoint(args.checkpoint))
    engine = create_engine(Settings(model=checkpoint, device="cpu", dtype=args.dtype, quantize="none"))
    int8 = create_engine(Settings(model=checkpoint, device="cpu", dtype=args.dtype, quantize="int8"))
    clip = audio.load(FIXTURE)
    prompt = engine.make_prompt(clip, FIXTURE_TEXT, "icl")
    int8.load()
    prompt8 = int8.make_prompt(clip, FIXTURE_TEXT, "icl")
    frames = args.frames
    seconds = frames_seconds(frames)
    sampling = Sampling(seed=1, max_seconds=seconds)
    job = SpeakJob(TEXT, "English", prompt, sampling, (1,), seconds)
    job8 = SpeakJob(TEXT, "English", prompt8, sampling, (1,), seconds)
    official = engine.model
    item = official.create_voice_clone_prompt(ref_audio=str(FIXTURE), ref_text=FIXTURE_TEXT)
    per_frame: dict[str, list[float]] = {}
    first_audio: list[float] = []

    def note(name: str, stamps: list[float]) -> None:
        assert len(stamps) == frames, f"{name}: {len(stamps)} frames, expected {frames}"
        per_frame.setdefault(name, []).append((stamps[-1] - stamps[0]) / (frames - 1))

    def ours(eng, job_: SpeakJob, takes: int, name: str):
        def run():
            stamps = [time.perf_counter() for _ in eng.generate_takes(job_, frames,
                                                                      eng.generators(list(range(1, takes + 1))))]
            note(name, stamps)
        return run

    def upstream():
        stamps: list[float] = []
        torch.manual_seed(1)
        with torch.inference_mode():
            engine.official_frames(job, lambda codes: stamps.append(time.perf_counter()), frames)
        note("official", stamps)

    def streamed():
        started = time.perf_counter()
        for chunk in pipeline(engine, TEXT, prompt, sampling):
            if chunk.index == 0:
                first_audio.append(time.perf_counter() - started)

    def one_shot():
        torch.manual_seed(1)
        official.generate_voice_clone(text=TEXT, language="English", voice_clone_prompt=item,
                                      max_new_tokens=frames + 1)  # the talker drops its last frame

    runs = {"official": upstream, "ours": ours(engine, job, 1, "ours"),
            "ours x4": ours(engine, job, 4, "ours x4"), "ours int8": ours(int8, job8, 1, "ours int8"),
            "stream": streamed, "official one-shot": one_shot}
    for run in runs.values():  # warm-up
        run()
    per_frame.clear()
    first_audio.clear()
    times = interleaved(runs, args.repeats)

    audio_s = frames * SAMPLES_PER_FRAME / SAMPLE_RATE
    pf = {name: median(values) for name, values in per_frame.items()}
    print(f"\n== cpu, {args.dtype}, threads {torch.get_num_threads()}, {frames} frames, {args.repeats} repeats")
    print(f"{'':20}{'wall s':>9}{'ms/frame':>10}")
    for name in runs:
        frame_ms = f"{1000 * pf[name]:10.1f}" if name in pf else f"{'':10}"
        print(f"{name:20}{median(times[name]):9.2f}{frame_ms}")
    print(f"stream time to first audio: {median(first_audio):.2f} s")
    print("\nratios (target):")
    print(f"  ours / official per frame          {pf['ours'] / pf['official']:.3f}  (<= 0.8)")
    print(f"  4 takes / 1 take wall              {median(times['ours x4']) / median(times['ours']):.3f}  (<= 1.5)")
    print(f"  time to first audio / one-shot     {median(first_audio) / median(times['official one-shot']):.3f}"
          "  (<= 0.10)")
    print(f"  int8 / bfloat16 per frame          {pf['ours int8'] / pf['ours']:.3f}  (<= 0.6)")

    split(engine, job, frames, qwen_talker, torch, "bfloat16")
    split(int8, job8, frames, qwen_talker, torch, "int8")
    print("\nend-to-end real-time factor (stream wall / audio; < 1 is faster than real time):")
    print(f"  ours stream {median(times['stream']) / audio_s:.2f} | official one-shot "
          f"{median(times['official one-shot']) / audio_s:.2f}")

    agreement(engine, int8, prompt, prompt8, args.agreement_frames, np, torch)


def split(engine, job, frames: int, qwen_talker, torch, label: str) -> None:
    """Time each part of a frame by wrapping the loop's parts (one extra, untimed-against run)."""
    talker = engine.talker
    spent = {"talker": 0.0, "code predictor": 0.0, "sampling": 0.0, "vocoder": 0.0}
    inside = {"predictor": False, "picks": 0.0}  # picks made inside the predictor, to take out of its time
    originals = talker.step, talker.predict, qwen_talker.pick

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            inside["predictor"] |= name == "code predictor"
            try:
                return fn(*args, **kwargs)
            finally:
                took = time.perf_counter() - started
                spent[name] += took
                if name == "code predictor":
                    inside["predictor"] = False
                elif name == "sampling" and inside["predictor"]:
                    inside["picks"] += took
        return wrapper

    talker.step, talker.predict = timed("talker", talker.step), timed("code predictor", talker.predict)
    qwen_talker.pick = timed("sampling", qwen_talker.pick)
    try:
        kept = [codes[0] for codes, _ in engine.generate_takes(job, frames, engine.generators([1]))]
        with torch.inference_mode():
            decoder = engine.decoder(job.prompt)
            started = time.perf_counter()
            for start in range(0, frames, 4):
                decoder.push(torch.stack(kept[start:start + 4]))
            spent["vocoder"] = time.perf_counter() - started
    finally:
        talker.step, talker.predict, qwen_talker.pick = originals
    spent["code predictor"] -= inside["picks"]
    print(f"\nsplit per frame, {label} (ms): " + ", ".join(f"{k} {1000 * v / frames:.1f}" for k, v in spent.items())
          + f"; the talker's figure includes the prefill once ({frames} frames)")


def agreement(engine, int8, prompt, prompt8, frames: int, np, torch) -> None:
    """Greedy codes and decoded audio of int8 against bfloat16 over `frames` frames."""
    from studio.engines import Sampling, SpeakJob

    seconds = frames_seconds(frames)
    greedy = Sampling(temperature=0, seed=0, max_seconds=seconds)
    codes = {}
    for name, eng, p in (("bfloat16", engine, prompt), ("int8", int8, prompt8)):
        job = SpeakJob(TEXT, "English", p, greedy, (0,), seconds)
        # one take: every step the loop hands out is alive (it returns once the take ends)
        codes[name] = torch.stack([step[0] for step, _ in eng.generate_takes(job, frames, eng.generators([0]))])
    a, b = codes["bfloat16"], codes["int8"]
    n = min(len(a), len(b))
    same = (a[:n] == b[:n]).float()
    differs = (a[:n] != b[:n]).any(dim=1).nonzero()
    first = int(differs[0]) if len(differs) else n
    with torch.inference_mode():
        wave_a = engine.reference_decode(a[:n], prompt)
        wave_b = engine.reference_decode(b[:n], prompt)
    noise = float(np.mean((wave_a - wave_b) ** 2))
    snr = 10 * np.log10(float(np.mean(wave_a ** 2)) / max(noise, 1e-20))
    print(f"\nint8 vs bfloat16, greedy, {n} frames: {100 * float(same.mean()):.1f}% of codes equal "
          f"({100 * float(same[:, 0].mean()):.1f}% of first-group codes); first differing frame {first}; "
          f"decoded audio SNR {snr:.1f} dB (random weights: once codes differ, the audio does)")
    # The same codes fed to both (teacher forcing): how far int8's logits are from bfloat16's, every step.
    logits = {}
    for name, eng, p in (("bfloat16", engine, prompt), ("int8", int8, prompt8)):
        seen = []
        forced_job = SpeakJob(TEXT, "English", p, greedy, (0,), seconds)
        talker_picking, predictor_picking = eng.pickings(greedy)
        with torch.inference_mode():
            prefill = eng.prefill(forced_job)
        for _ in eng.talker.frames(prefill, talker_picking, predictor_picking, eng.generators([0]), 30,
                                   forced=a[:30], on_logits=lambda group, values: seen.append(values.float())):
            pass
        logits[name] = seen
    errors = [float((q - r).abs().mean() / r.std()) for q, r in zip(logits["int8"], logits["bfloat16"])]
    agree = [bool(q.argmax() == r.argmax()) for q, r in zip(logits["int8"], logits["bfloat16"])]
    print(f"teacher-forced on the same 30 frames: int8 logits differ from bfloat16's by {100 * np.mean(errors):.1f}% "
          f"of their spread on average; the top choice agrees at {100 * np.mean(agree):.1f}% of {len(agree)} steps "
          f"(request {TEXT!r})")


if __name__ == "__main__":
    main()
