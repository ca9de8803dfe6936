"""The world recipe: the image tokenizer (preset ``world-tokenizer``), then the transformer on
all four flows, both from scratch on the built-in world.

``showo quickstart --retrain`` runs ``retrain``, cut to fit 30 minutes on 2 CPU cores: 1,200
tokenizer steps (~4 min), then preset ``world-quick`` (6,000 steps of a transformer half as wide as
the shipped one, on half batches, ~22 min, image tokens with learned row and column
embeddings; its pictures are sampled without guidance, each from the model's own plan of its
prompt, ``showo.generation.prompting``, and it works its answers out object by object,
``showo.world.reasoning``). The same by hand:

    showo train --preset world-tokenizer --output runs/world-tokenizer max_steps=1200
    showo train --preset world-quick --output runs/world   # finds runs/world-tokenizer by name

The shipped model began with the ``world-tokenizer`` and ``world`` presets at full length (4,000
and 3,000 steps, ~75 min) and then had more runs; ``docs/world-model.md``
lists every command.
"""

from __future__ import annotations

import json
from pathlib import Path

from .config import TrainConfig, build_config
from .presets import train_preset
from .showo_trainer import ShowoTrainer
from .tokenizer_trainer import TokenizerTrainer


def open_run(config: TrainConfig, output: Path):
    """The trainer of ``config.task`` on ``output`` (resuming what is there), with the config
    written beside it as ``train_config.json``."""
    output.mkdir(parents=True, exist_ok=True)
    (output / "train_config.json").write_text(json.dumps(config.to_dict(), indent=1) + "\n")
    if config.task == "tokenizer":
        return TokenizerTrainer(config, output)
    return ShowoTrainer(config, output)


# Each run of ``retrain``, in order: its folder, its preset, and what ``retrain`` changes in it.
RETRAIN_RUNS = (
    ("world-tokenizer", "world-tokenizer", ["max_steps=1200"]),
    ("world", "world-quick", []),
)


def retrain(output: str | Path, tokenizer_steps: int | None = None, model_steps: int | None = None) -> Path:
    """Train both into ``output/world-tokenizer`` and ``output/world``; returns the pipeline folder.
    ``tokenizer_steps`` / ``model_steps`` replace the recipe's step counts. Each part resumes if it
    was interrupted."""
    output = Path(output)
    for (folder, preset, overrides), steps in zip(RETRAIN_RUNS, (tokenizer_steps, model_steps)):
        overrides = overrides + ([] if steps is None else [f"max_steps={steps}"])
        config = build_config(train_preset(preset), None, overrides)
        if not (output / folder / "final" / "config.json").is_file():
            open_run(config, output / folder).run()
    return output / RETRAIN_RUNS[-1][0] / "final"
