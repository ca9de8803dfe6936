"""``showo inpaint | extrapolate``: text-guided editing of one picture.

Each run writes numbered files that never overwrite an earlier run's (``inpaint-00000.png``, then
``inpaint-00001.png``): the result, the input as the model saw it (``-input.png``), the mask of
what was regenerated (``-mask.png``, white = new) and with ``--save-steps`` the denoising strip
(``-steps.png``). The pixels outside the mask are the input's own unless ``--no-keep-unmasked``.
A picture or mask of another size than the model's is resized (shorter side) and centre cropped,
with a one-line notice.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from PIL import Image

from ..model.image_processing import grid, load_image, save_image
from ..pipeline import ShowoPipeline
from .console import output_folder, say
from .options import (
    Progress,
    add_command,
    add_model_arguments,
    add_sampling_arguments,
    load_pipeline,
    model_input,
    model_mask,
    next_number,
    sampling_kwargs,
)


def write_results(args: argparse.Namespace, output: Path, result: Image.Image, shown: Image.Image,
                  mask: Image.Image, frames: list[Image.Image] | None) -> Path:
    """``COMMAND-NNNNN.png`` and its ``-input``, ``-mask`` (and ``-steps``) files under the next free
    number (claimed by creating the first file, so two runs at once do not share it); returns it."""
    number = next_number(output, args.command)
    while True:
        stem = f"{args.command}-{number:05d}"
        try:
            os.close(os.open(output / f"{stem}.png", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            break
        except FileExistsError:
            number += 1
    files = {"-input": shown, "-mask": mask, "": result}  # the result last: it replaces the claim
    if frames:
        files["-steps"] = grid(frames, columns=len(frames))
    try:
        for suffix, picture in files.items():
            save_image(picture, output / f"{stem}{suffix}.png")
    except BaseException:
        claim = output / f"{stem}.png"
        if claim.is_file() and claim.stat().st_size == 0:  # the number is given back
            claim.unlink(missing_ok=True)
        raise
    extra = ", ".join(f"{stem}{suffix}.png" for suffix in files if suffix)
    say(f"wrote {output / stem}.png ({extra} beside it)")
    return output / f"{stem}.png"


def edit(args: argparse.Namespace, run) -> None:
    """Read the inputs, load the model, ``run(pipe, shown, mask, callback)`` -> (result, mask) and write
    the results: what inpaint and extrapolate share."""
    output = output_folder(args.output)
    picture = load_image(args.image)  # a bad file fails before the model is loaded
    mask = load_image(args.mask) if args.command == "inpaint" else None
    pipe = load_pipeline(args)
    shown = model_input(args.command, pipe, picture, args.image)
    frames: list[Image.Image] | None = [] if args.save_steps else None
    with Progress(args.command, 1) as progress:
        progress.next_image()
        result, mask = run(pipe, shown, mask, progress.callback(frames))
    write_results(args, output, result, shown, mask, frames)


def run_inpaint(args: argparse.Namespace) -> None:
    def inpaint(pipe: ShowoPipeline, shown, mask, callback):
        mask = model_mask(args.command, mask, args.mask, pipe.config.image_size)
        result = pipe.inpaint(shown, mask, args.prompt, keep_unmasked=args.keep_unmasked, seed=args.seed,
                              callback_on_step_end=callback, **sampling_kwargs(args))
        return result, mask

    edit(args, inpaint)


def run_extrapolate(args: argparse.Namespace) -> None:
    def extrapolate(pipe: ShowoPipeline, shown, mask, callback):
        result = pipe.extrapolate(shown, args.prompt, direction=args.direction, offset=args.offset,
                                  keep_unmasked=args.keep_unmasked, seed=args.seed,
                                  callback_on_step_end=callback, **sampling_kwargs(args))
        return result, grown_mask(result.size, shown.size[0], args.direction)

    edit(args, extrapolate)


def grown_mask(size: tuple[int, int], side: int, direction: str) -> Image.Image:
    """The mask of an extrapolated canvas of ``size``: white where it grew, black where the original
    (``side`` x ``side``) lies."""
    width, height = size
    left, top = {"right": (0, 0), "down": (0, 0), "left": (width - side, 0), "up": (0, height - side)}[direction]
    mask = Image.new("L", size, 255)
    mask.paste(0, (left, top, left + side, top + side))
    return mask


def add_edit_arguments(parser: argparse.ArgumentParser, kept: str) -> None:
    add_model_arguments(parser)
    add_sampling_arguments(parser)
    keep = parser.add_argument("--keep-unmasked", action=argparse.BooleanOptionalAction, default=True)
    # set here: BooleanOptionalAction would append "(default: True)" to a help given to it
    keep.help = f"{kept} (default: on; --no-keep-unmasked shows the model's re-drawing of them)"


def register(sub) -> None:
    inpaint = add_command(sub, "inpaint", help="regenerate the white region of a mask",
                          description="Regenerate where MASK is white, guided by PROMPT. Writes OUTPUT/"
                                      "inpaint-NNNNN.png (numbered, never overwritten), -input.png (the picture "
                                      "as the model saw it) and -mask.png beside it.")
    inpaint.add_argument("image", help="the picture to edit")
    inpaint.add_argument("mask", help="mask image: white = regenerate, black = keep")
    inpaint.add_argument("prompt", help="what the white region should show")
    add_edit_arguments(inpaint, "keep the input's own pixels outside the mask")
    inpaint.set_defaults(run=run_inpaint)

    extra = add_command(sub, "extrapolate", help="grow an image toward one side",
                        description="Grow the picture toward one side by half its size, guided by PROMPT. Writes "
                                    "OUTPUT/extrapolate-NNNNN.png (numbered, never overwritten), -input.png and "
                                    "-mask.png (white = grown) beside it.")
    extra.add_argument("image", help="the picture to grow")
    extra.add_argument("prompt", help="what the grown part should show")
    extra.add_argument("--direction", default="right", choices=["left", "right", "up", "down"],
                       help="the side to grow")
    extra.add_argument("--offset", type=int, default=0, help="extra tokens of shift beyond half the grid")
    add_edit_arguments(extra, "keep the input's own pixels where the original lies")
    extra.set_defaults(run=run_extrapolate)
