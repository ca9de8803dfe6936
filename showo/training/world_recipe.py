"""The world recipe: the image tokenizer (preset ``world-tokenizer``), then the transformer on
all four flows (preset ``world``), both from scratch on the built-in world.

``showo quickstart --retrain`` runs ``retrain``: the two presets cut to fit 30 minutes on 2 CPU
cores (1,200 tokenizer steps, 5 min; 1,150 transformer steps learning every question of a
picture, 19 to 23 min). The same by hand:

    showo train --preset world-tokenizer --output runs/world-tokenizer max_steps=1200
    showo train --preset world --output runs/world max_steps=1150 mmu_turns=all   # finds runs/world-tokenizer by name

The shipped model had the presets' full length (4,000 and 3,000 steps, ~75 min) and then more
runs; ``showo/weights/world/training/README.md`` lists every command.
"""

from __future__ import annotations

from pathlib import Path

from .cli import open_run
from .config import build_config
from .presets import train_preset

# What ``retrain`` changes in each preset, in run order.
RETRAIN_OVERRIDES = {
    "world-tokenizer": ["max_steps=1200"],
    "world": ["max_steps=1150", "mmu_turns=all"],
}


def retrain(output: str | Path, tokenizer_steps: int | None = None, model_steps: int | None = None) -> Path:
    """Train both into ``output/world-tokenizer`` and ``output/world``; returns the pipeline folder.
    ``tokenizer_steps`` / ``model_steps`` replace the recipe's step counts. Each part resumes if it
    was interrupted."""
    output = Path(output)
    for name, steps in (("world-tokenizer", tokenizer_steps), ("world", model_steps)):
        overrides = RETRAIN_OVERRIDES[name] + ([] if steps is None else [f"max_steps={steps}"])
        config = build_config(train_preset(name), None, overrides)
        if not (output / name / "final" / "config.json").is_file():
            open_run(config, output / name).run()
    return output / "world" / "final"
