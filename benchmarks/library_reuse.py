"""Using a saved voice vs rebuilding its prompt from the reference, on the same model.

    python benchmarks/library_reuse.py [--repeats 5] [--checkpoint DIR]

A saved voice keeps its prompt tensors (safetensors, keyed by model fingerprint),
so using it needs no speaker-encoder or speech-tokenizer pass. Prints both times
and their ratio, measured side by side.
"""

from __future__ import annotations

import argparse
import tempfile

from common import FIXTURE, FIXTURE_TEXT, interleaved, median, real_size_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--checkpoint", default=None)
    args = parser.parse_args()

    from studio import Studio, audio
    from studio.config import Settings
    from studio.engines import create_engine
    from studio.library import Library

    settings = Settings(model=str(real_size_checkpoint(args.checkpoint)), quantize="none")
    engine = create_engine(settings)
    clip = audio.load(FIXTURE)
    library = Library(tempfile.mkdtemp(prefix="voices-bench-"))
    studio = Studio(settings, engine=engine, library=library)
    made = engine.make_prompt(clip, FIXTURE_TEXT)
    library.save("Bench", clip, FIXTURE_TEXT, "Japanese", "icl", prompt=(made.fingerprint, engine.prompt_bytes(made)))
    voice = library.get("Bench")
    assert library.prompt(voice, engine.fingerprint) is not None  # so `saved` reads it, never rebuilds it

    def saved():
        studio.voice_prompt(voice, engine)  # the stored bytes, read and checked against the model

    def rebuilt():
        engine._prompt_cache.clear()  # the in-memory cache would hide the cost
        engine.make_prompt(clip, FIXTURE_TEXT, "icl")

    times = interleaved({"saved": saved, "rebuilt": rebuilt}, args.repeats)
    t_saved, t_rebuilt = median(times["saved"]), median(times["rebuilt"])
    print(f"\n== {engine.runtime.describe()} | reference {clip.duration:.1f} s | {args.repeats} repeats (medians)")
    print(f"prompt from the library      {1000 * t_saved:8.1f} ms")
    print(f"prompt rebuilt from audio    {1000 * t_rebuilt:8.1f} ms")
    print(f"ratio library / rebuild      {t_saved / t_rebuilt:8.3f}")


if __name__ == "__main__":
    main()
