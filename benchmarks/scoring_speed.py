"""Scoring a take (speaker similarity + Whisper transcript + flags) as a ratio to the take's duration.

    python benchmarks/scoring_speed.py --seconds 5 --repeats 5

Uses real Japanese speech from the fixtures as the take and the reference, the speaker encoder from
resemblyzer's wheel and whisper-base from PyPI (the studio's CPU default is `small`, which needs a download;
pass --whisper-model DIR to time another). Target: scoring / duration <= 0.5, so scores are never the slow
part of Compare.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from common import ROOT, median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--whisper-model", default=None)
    args = parser.parse_args()

    from studio import audio
    from studio.quality import Scorer
    from studio.testing import whisper_base
    from studio.transcribe import Transcriber

    fixtures = ROOT / "tests" / "fixtures"
    clips = [audio.load(fixtures / name) for name in ("ja_female_1.flac", "ja_female_2.flac", "ja_male_1.flac")]
    joined = np.concatenate([c.samples for c in clips])
    take = audio.Clip(joined[: int(args.seconds * clips[0].rate)], clips[0].rate, "take")
    reference = clips[0]
    text = "今日はとても良い天気ですね。散歩に行きましょう。この本は図書館で借りました。"
    model = args.whisper_model or str(whisper_base(tempfile.mkdtemp(prefix="whisper-base-")))
    scorer = Scorer(Transcriber(model, "cpu"))
    scorer.score(take, text, "Japanese", reference)  # loads both models
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        scores = scorer.score(take, text, "Japanese", reference)
        times.append(time.perf_counter() - started)
    spent = median(times)
    print(f"\n== CPU | Whisper {model} | take {take.duration:.1f} s | {args.repeats} repeats (median)")
    print(f"scoring time                {spent:8.2f} s   (similarity {scores.similarity}, "
          f"{scores.error_kind} {scores.error_rate})")
    print(f"ratio scoring / duration    {spent / take.duration:8.3f}   (target <= 0.5)")


if __name__ == "__main__":
    main()
