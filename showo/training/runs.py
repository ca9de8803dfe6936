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
from typing import Any

import torch

from ..model.checkpoint_io import atomic_write, read_json
from .checkpoints import latest_checkpoint, read_trainer_state
from .config import TrainConfig, build_config
from .presets import train_preset
from .showo_trainer import ShowoTrainer
from .tokenizer_trainer import TokenizerTrainer

CONFIG_FILE = "train_config.json"
CHANGES_FILE = "config_changes.jsonl"
# Settings of the machine, not of the recipe: a resumed run may change them without being told.
MACHINE_FIELDS = frozenset({"torch_threads"})


def open_run(config: TrainConfig, output: str | Path, allow_config_change: bool = False):
    """The trainer of ``config.task`` on ``output`` (resuming what is there), with the config
    written beside it as ``train_config.json``.

    A folder that already holds a run with another config is refused, naming the fields that
    differ, unless ``allow_config_change``; the changes are then appended to
    ``config_changes.jsonl`` with the step they start from."""
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise ValueError(f"{output}: is a file; the run's output must be a folder")
    output.mkdir(parents=True, exist_ok=True)
    new = json.loads(json.dumps(config.to_dict()))  # tuples as lists, as the file holds them
    if (output / CONFIG_FILE).is_file():
        changes = {k: v for k, v in config_changes(read_json(output / CONFIG_FILE), new).items()
                   if k not in MACHINE_FIELDS}
        if changes and not allow_config_change:
            names = sorted(changes, key=lambda k: (k.count("."), k))  # top-level fields first
            shown = "; ".join(f"{k}: {json.dumps(changes[k][0])} -> {json.dumps(changes[k][1])}" for k in names[:12])
            more = f" and {len(names) - 12} more" if len(names) > 12 else ""
            raise ValueError(f"{output} holds a run with another config ({CONFIG_FILE}): {shown}{more}; pass "
                             "--allow-config-change to go on with the new values, or choose another --output")
        if changes:
            latest = latest_checkpoint(output)
            step = read_trainer_state(latest)["step"] if latest else 0
            with open(output / CHANGES_FILE, "a") as f:
                f.write(json.dumps({"step": step, "changes": changes}) + "\n")
    atomic_write(output / CONFIG_FILE, lambda tmp: tmp.write_text(json.dumps(new, indent=1) + "\n"))
    if config.torch_threads is not None:
        torch.set_num_threads(config.torch_threads)
    if config.task == "tokenizer":
        return TokenizerTrainer(config, output)
    return ShowoTrainer(config, output)


def config_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> dict[str, list]:
    """Dotted field -> [old value, new value] for every field that differs (tables compared field by field)."""
    changes = {}
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changes.update(config_changes(a, b, f"{prefix}{key}."))
        elif a != b:
            changes[f"{prefix}{key}"] = [a, b]
    return changes


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
