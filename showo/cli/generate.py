"""``showo generate``: text-to-image.

Images land in ``--output`` as PNG files plus a grid and ``prompts.jsonl``; ``--save-steps`` adds
the denoising progression of each image as a strip. ``--prompts-file`` takes one prompt per line
(blank lines and ``#`` comments skipped); under ``accelerate launch`` or ``torchrun`` the prompts
are sharded over the processes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

from PIL import Image

from ..model.image_processing import grid, save_image, write_text_file
from .console import output_folder, say
from .options import Progress, add_command, add_model_arguments, add_sampling_arguments, load_pipeline, sampling_kwargs


def read_prompts(args: argparse.Namespace) -> list[str]:
    """The positional prompts, then the lines of ``--prompts-file`` (blank and ``#`` lines skipped)."""
    prompts = list(args.prompt or [])
    if args.prompts_file:
        path = Path(args.prompts_file)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: prompts file not found")
        lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
        prompts += [line for line in lines if line and not line.startswith("#")]
    if not prompts:
        raise ValueError("give at least one prompt (positional) or --prompts-file")
    return prompts


def shard(items: list, rank: int, world: int) -> list[tuple[int, object]]:
    """This process's share: every ``world``-th item starting at ``rank``, with its index."""
    return [(i, item) for i, item in enumerate(items) if i % world == rank]


def pictures_to_draw(index: int, prompt: str, seed: int, per_prompt: int) -> list[tuple[int, str]]:
    """(seed, file stem) of each picture of prompt ``index``: one picture, seed ``seed + index``, named
    ``NNNNN``; or ``per_prompt`` pictures, seeds ``seed .. seed + per_prompt - 1``, named by prompt and seed."""
    if per_prompt == 1:
        return [(seed + index, f"{index:05d}")]
    slug = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:40] or "empty"
    return [(seed + j, f"{index:05d}-{slug}-seed{seed + j}") for j in range(per_prompt)]


def run_generate(args: argparse.Namespace) -> None:
    if not 1 <= args.images_per_prompt <= 4096:
        raise ValueError(f"--images-per-prompt must lie in 1..4096, got {args.images_per_prompt}")
    prompts, output = read_prompts(args), output_folder(args.output)
    pipe = load_pipeline(args)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    mine = shard(prompts, rank, world)
    images, records = [], []
    with Progress(args.command, len(mine) * args.images_per_prompt) as progress:
        for index, prompt in mine:
            for seed, stem in pictures_to_draw(index, prompt, args.seed, args.images_per_prompt):
                progress.next_image()
                frames: list[Image.Image] | None = [] if args.save_steps else None
                result = pipe(prompt, seed=seed, callback_on_step_end=progress.callback(frames),
                              **sampling_kwargs(args))
                image, drawn = result.images[0], result.prompts[0]
                save_image(image, output / f"{stem}.png")
                if frames:
                    save_image(grid(frames, columns=len(frames)), output / f"{stem}_steps.png")
                images.append(image)
                records.append({"index": index, "prompt": prompt, "file": f"{stem}.png", "seed": seed,
                                **({"plan": drawn} if drawn != prompt else {})})
    suffix = "" if world == 1 else f"_rank{rank}"
    if images:
        save_image(grid(images), output / f"grid{suffix}.png")
    write_text_file(output / f"prompts{suffix}.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    say(f"wrote {len(images)} images and grid{suffix}.png to {output}")


def register(sub) -> None:
    gen = add_command(sub, "generate", help="text-to-image",
                      description="Draw one image per prompt: OUTPUT/NNNNN.png, grid.png and prompts.jsonl "
                                  "(prompt, file, seed, and the plan drawn when the model plans prompts).")
    gen.add_argument("prompt", nargs="*", help="prompts (or --prompts-file)")
    gen.add_argument("--prompts-file", help="a text file of prompts, one per line; blank lines and lines that "
                                            "start with # are skipped (default: only the positional prompts)")
    gen.add_argument("--images-per-prompt", type=int, default=1,
                     help="pictures of each prompt, drawn with seeds SEED .. SEED+N-1 and named "
                          "NNNNN-<prompt>-seedS.png (1: prompt i drawn with SEED+i, named NNNNN.png)")
    add_model_arguments(gen)
    add_sampling_arguments(gen)
    gen.set_defaults(run=run_generate)
