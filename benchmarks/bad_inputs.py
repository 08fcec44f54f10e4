"""The bad-input corpus at full size: what refusing each input costs the server, measured in a fresh process.

    python benchmarks/bad_inputs.py --minutes 20

Builds the corpus (`studio/badinputs.py`: a 20-minute Opus file of 0.5 MB, 20-minute AAC, 8-channel 384 kHz FLAC,
an .m3u8 playlist, a voice zip whose reference is 8-channel 96 kHz silence, a 10-minute WAV, 10 channels, a
truncated header, a text file named .wav) and runs the studio action a client would reach with each one, each in
its own process, printing the peak memory growth (VmHWM after, minus VmRSS before) and the time to the refusal.
Target: no input grows the server by more than 200 MB or takes more than a second.
"""

from __future__ import annotations

import argparse
import tempfile

import common  # noqa: F401 - puts the project on sys.path

from studio import badinputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0, help="length of the long files")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="bad-inputs-")
    files = badinputs.build(folder, minutes=args.minutes)
    print(f"{'input':18}{'size':>10}{'growth MB':>11}{'seconds':>9}  answer")
    worst_mb = worst_s = 0.0
    for name, action in badinputs.ACTIONS.items():
        result = badinputs.measure(action, files[name], f"{folder}/voices")
        worst_mb, worst_s = max(worst_mb, result["growth_mb"]), max(worst_s, result["seconds"])
        size = files[name].stat().st_size
        print(f"{name:18}{size / 1e6:9.2f}M{result['growth_mb']:11.1f}{result['seconds']:9.3f}  "
              f"{result['outcome'][:70]}")
    print(f"worst: {worst_mb:.1f} MB, {worst_s:.3f} s (targets <= 200 MB, <= 1 s)")


if __name__ == "__main__":
    main()
