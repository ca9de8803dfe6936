"""``showo train`` (the transformer or the image tokenizer, resumable) and ``showo pre-encode``
(a data source's images as token shards, once)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data.pre_encode import pre_encode
from ..data.sources import build_source
from ..model.magvit2 import MagvitV2
from ..training.config import build_config
from ..training.presets import PRESETS, train_preset
from ..training.runs import open_run
from .console import check_device, output_folder, say


def run_train(args: argparse.Namespace) -> None:
    overrides = list(args.overrides)
    if args.max_steps is not None:
        overrides.append(f"max_steps={args.max_steps}")
    if args.checkpoint_every is not None:
        overrides.append(f"checkpoint_every={args.checkpoint_every}")
    config = build_config(train_preset(args.preset), args.config, overrides)
    output = Path(args.output)
    trainer = open_run(config, output, allow_config_change=args.allow_config_change)
    if trainer.step:
        say(f"resuming from step {trainer.step} in {output / 'checkpoints'}")
    trainer.run()
    if trainer.accelerator.is_main_process:
        say(f"done: {trainer.step} steps; model in {output / 'final'}, metrics in {output / 'metrics.jsonl'}")


def register_train(sub) -> None:
    p = sub.add_parser("train", help="train Show-o (or its image tokenizer); run again to resume",
                       description="Train from a named preset; a file and key=value pairs override it. "
                                   "Running the same command again resumes from OUTPUT's last complete checkpoint.")
    p.add_argument("--preset", required=True, choices=sorted(PRESETS), help="the recipe to start from")
    p.add_argument("--output", required=True, help="folder for checkpoints, metrics.jsonl, samples and final/")
    p.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    p.add_argument("--checkpoint-every", type=int, help="write a checkpoint every K steps")
    p.add_argument("--config", help="a JSON or TOML file of config fields (over the preset)")
    p.add_argument("--allow-config-change", action="store_true",
                   help="go on with a run in OUTPUT although the config differs (the changes are recorded in "
                        "OUTPUT/config_changes.jsonl)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config fields, dotted for nested ones: learning_rate=3e-4 data.t2i.path=shards/*.tar")
    p.set_defaults(run=run_train)


ENCODABLE_TYPES = ("webdataset", "image_folder", "llava", "interleaved")


def run_pre_encode(args: argparse.Namespace) -> None:
    device = check_device(args.device)
    output = output_folder(args.output)
    if any(output.iterdir()):
        raise ValueError(f"--output {output}: not empty; pre-encode writes its shards into a new or empty folder")
    spec = {"type": args.source_type, ("root" if args.source_type == "image_folder" else "path"): args.path}
    if args.image_root:
        spec["image_root"] = args.image_root
    spec["shuffle"] = False
    source = build_source(spec, on_bad_data=args.on_bad_data)
    vq = MagvitV2.from_pretrained(args.vq)
    index = pre_encode(
        source,
        vq,
        args.output,
        image_size=args.image_size,
        batch_size=args.batch_size,
        shard_size=args.shard_size,
        max_samples=args.max_samples,
        device=str(device),
    )
    say(f"wrote {index['count']} records ({index['images']} images, {index['skipped']} bad records skipped) "
        f"in {len(index['shards'])} shards to {output}")


def register_pre_encode(subparsers) -> None:
    p = subparsers.add_parser("pre-encode", help="turn a data source's images into token shards once")
    p.add_argument("--source-type", required=True, choices=ENCODABLE_TYPES)
    p.add_argument("--path", required=True, help="files or a glob ('data/*.tar'); the root folder for image_folder")
    p.add_argument("--image-root", help="folder that image paths in llava / interleaved records are relative to")
    p.add_argument("--vq", required=True, help="MAGVIT-v2 folder (showo's or the released one)")
    p.add_argument("--output", required=True, help="folder for shard-*.safetensors, shard-*.jsonl and index.json")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--max-samples", type=int)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--shard-size", type=int, default=1000, help="records per shard")
    p.add_argument("--device", default="cpu")
    p.add_argument("--on-bad-data", choices=["skip", "stop"], default="skip")
    p.set_defaults(run=run_pre_encode)
