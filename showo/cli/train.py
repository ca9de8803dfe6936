"""``showo train``: one command for the transformer and the image tokenizer, resumable."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .config import TrainConfig, build_config
from .presets import PRESETS, train_preset


def open_run(config: TrainConfig, output: Path):
    """The trainer of ``config.task`` on ``output`` (resuming what is there), with the config
    written beside it as ``train_config.json``."""
    output.mkdir(parents=True, exist_ok=True)
    (output / "train_config.json").write_text(json.dumps(config.to_dict(), indent=1) + "\n")
    if config.task == "tokenizer":
        from .tokenizer_loop import TokenizerTrainer as Trainer
    else:
        from .loop import ShowoTrainer as Trainer
    return Trainer(config, output)


def run_train(args: argparse.Namespace) -> None:
    overrides = list(args.overrides)
    if args.max_steps is not None:
        overrides.append(f"max_steps={args.max_steps}")
    if args.checkpoint_every is not None:
        overrides.append(f"checkpoint_every={args.checkpoint_every}")
    config = build_config(train_preset(args.preset), args.config, overrides)
    output = Path(args.output)
    trainer = open_run(config, output)
    if trainer.step:
        print(f"resuming from step {trainer.step} in {output / 'checkpoints'}")
    trainer.run()
    if trainer.accelerator.is_main_process:
        print(f"done: {trainer.step} steps; model in {output / 'final'}, metrics in {output / 'metrics.jsonl'}")


def register(sub) -> None:
    p = sub.add_parser("train", help="train Show-o (or its image tokenizer); run again to resume",
                       description="Train from a named preset; a file and key=value pairs override it. "
                                   "Running the same command again resumes from OUTPUT's last complete checkpoint.")
    p.add_argument("--preset", required=True, choices=sorted(PRESETS), help="the recipe to start from")
    p.add_argument("--output", required=True, help="folder for checkpoints, metrics.jsonl, samples and final/")
    p.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    p.add_argument("--checkpoint-every", type=int, help="write a checkpoint every K steps")
    p.add_argument("--config", help="a JSON or TOML file of config fields (over the preset)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config fields, dotted for nested ones: learning_rate=3e-4 data.t2i.path=shards/*.tar")
    p.set_defaults(run=run_train)
