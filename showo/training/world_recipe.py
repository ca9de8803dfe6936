"""The first two runs of the shipped model (``showo/weights/world``): the image tokenizer
(preset ``world-tokenizer``, 4,000 steps, ~19 min on 2 CPU cores), then the transformer on
all four flows (preset ``world``, 3,000 steps, ~54 min), both on the built-in world.
``showo quickstart --retrain`` runs it; so do

    showo train --preset world-tokenizer --output runs/world-tokenizer
    showo train --preset world --output runs/world          # finds runs/world-tokenizer by name

The shipped model then had more runs (a decoder-only tokenizer run and continuations of the
transformer that learn every question of a picture, the last on pictures with centred
objects); ``showo/weights/world/training/README.md`` lists every command.
"""

from __future__ import annotations

from pathlib import Path

from .cli import open_run
from .config import build_config
from .presets import train_preset


def retrain(output: str | Path, tokenizer_steps: int | None = None, model_steps: int | None = None) -> Path:
    """Train both into ``output/world-tokenizer`` and ``output/world``; returns the pipeline folder.
    Each part resumes if it was interrupted."""
    output = Path(output)
    for name, steps in (("world-tokenizer", tokenizer_steps), ("world", model_steps)):
        overrides = [] if steps is None else [f"max_steps={steps}"]
        config = build_config(train_preset(name), None, overrides)
        if not (output / name / "final" / "config.json").is_file():
            open_run(config, output / name).run()
    return output / "world" / "final"
