"""``showo train`` (the transformer or the image tokenizer, resumable) and ``showo pre-encode``
(a data source's images as token shards, once)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..data.pre_encode import pre_encode
from ..data.sources import build_source
from ..model.magvit2 import MagvitV2
from ..training.config import build_config
from ..training.presets import PRESETS, train_preset
from ..training.runs import open_run
from .console import check_device, output_folder, say
from .options import add_command, add_device_argument


def run_train(args: argparse.Namespace) -> None:
    overrides = list(args.overrides)
    if args.max_steps is not None:
        overrides.append(f"max_steps={args.max_steps}")
    if args.max_minutes is not None:
        overrides.append(f"max_minutes={args.max_minutes}")
    if args.checkpoint_every is not None:
        overrides.append(f"checkpoint_every={args.checkpoint_every}")
    if args.threads is not None:
        overrides.append(f"torch_threads={args.threads}")  # recorded with the run
    config = build_config(train_preset(args.preset), args.config, overrides)
    output = Path(args.output)
    trainer = open_run(config, output, allow_config_change=args.allow_config_change)
    if trainer.step:
        say(f"resuming from step {trainer.step} in {output / 'checkpoints'}")
    trainer.run()
    if trainer.accelerator.is_main_process:
        say(f"done: {trainer.step} steps; model in {output / 'final'}, metrics in {output / 'metrics.jsonl'}")


def register_train(sub) -> None:
    p = add_command(sub, "train", help="train Show-o (or its image tokenizer); run again to resume",
                       description="Train from a named preset; a file and key=value pairs override it. "
                                   "Running the same command again resumes from OUTPUT's last complete checkpoint.")
    p.add_argument("--preset", required=True, choices=sorted(PRESETS), help="the recipe to start from")
    p.add_argument("--output", required=True, help="folder for checkpoints, metrics.jsonl, samples and final/")
    p.add_argument("--max-steps", type=int, help="stop after this many optimizer steps (default: the preset's)")
    p.add_argument("--max-minutes", type=float,
                   help="train for about this many minutes: the step count is sized from the step time measured "
                        "in warm-up (--max-steps still caps it) and kept in OUTPUT/time_budget.json (default: none)")
    p.add_argument("--checkpoint-every", type=int, help="write a checkpoint every K steps (default: the preset's)")
    p.add_argument("--config", help="a JSON or TOML file of config fields over the preset (default: none)")
    p.add_argument("--allow-config-change", action="store_true",
                   help="go on with a run in OUTPUT although the config differs (the changes are recorded in "
                        "OUTPUT/config_changes.jsonl)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config fields, dotted for nested ones: learning_rate=3e-4 data.t2i.path=shards/*.tar")
    p.set_defaults(run=run_train)


ENCODABLE_TYPES = ("webdataset", "image_folder", "llava", "interleaved")
RELEASED_IMAGE_SIZE = 256


def default_image_size(vq: str) -> int:
    """The image size of the model whose ``vq/`` folder ``vq`` is (its parent's config.json), else the
    released Show-o's 256; says which on stderr."""
    config = Path(vq).parent / "config.json"
    if Path(vq).name == "vq" and config.is_file():
        try:
            size = json.loads(config.read_text(encoding="utf-8")).get("image_size")
        except (OSError, ValueError, AttributeError):
            size = None
        if isinstance(size, int) and not isinstance(size, bool) and size > 0:
            say(f"showo pre-encode: --image-size {size}, the size of the model in {config.parent}", error=True)
            return size
    say(f"showo pre-encode: --image-size {RELEASED_IMAGE_SIZE} (the released Show-o's): --vq is not the vq/ folder "
        "of a pipeline whose config.json names its image size; pass --image-size for another", error=True)
    return RELEASED_IMAGE_SIZE


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
        image_size=args.image_size if args.image_size is not None else default_image_size(args.vq),
        batch_size=args.batch_size,
        shard_size=args.shard_size,
        max_samples=args.max_samples,
        device=str(device),
    )
    say(f"wrote {index['count']} records ({index['images']} images, {index['skipped']} bad records skipped) "
        f"in {len(index['shards'])} shards to {output}")


def register_pre_encode(subparsers) -> None:
    p = add_command(subparsers, "pre-encode", help="turn a data source's images into token shards once")
    p.add_argument("--source-type", required=True, choices=ENCODABLE_TYPES, help="the kind of data source")
    p.add_argument("--path", required=True, help="files or a glob ('data/*.tar'); the root folder for image_folder")
    p.add_argument("--image-root", help="folder that image paths in llava / interleaved records are relative to "
                                        "(default: the folder of the first record file)")
    p.add_argument("--vq", required=True, help="MAGVIT-v2 folder (showo's, a pipeline's vq/, or the released one)")
    p.add_argument("--output", required=True, help="folder for shard-*.safetensors, shard-*.jsonl and index.json")
    p.add_argument("--image-size", type=int,
                   help="pixels per side the images are resized and cropped to (default: the image size of the "
                        f"model when --vq is a pipeline's vq/ folder, else {RELEASED_IMAGE_SIZE})")
    p.add_argument("--max-samples", type=int, help="encode at most this many records (default: all)")
    p.add_argument("--batch-size", type=int, default=16, help="images encoded at once")
    p.add_argument("--shard-size", type=int, default=1000, help="records per shard")
    add_device_argument(p)
    p.add_argument("--on-bad-data", choices=["skip", "stop"], default="skip",
                   help="a record whose image cannot be read: skip it (counted in index.json) or stop")
    p.set_defaults(run=run_pre_encode)
