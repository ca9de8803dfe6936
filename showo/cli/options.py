"""What the inference sub-commands share: the help formatter, the model and sampling options, the
model they load (the shipped one by default) and its precision (both said on stderr), per-step
progress, numbered result files and the notice for a resized input."""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from ..model.image_processing import resize_and_crop
from ..pipeline import ShowoPipeline, shipped_model_dir
from .console import check_device, check_dtype, say

GENERATION_CONFIG = "default: the model's generation_config.json, else {}"


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Shows an option's default after its help where the default says something: not for flags
    (off unless given), required options, options without one (None) or help that names its
    default itself (``default: ...``)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or action.required or action.nargs == 0 or "default" in text
                or action.default is None or action.default is argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


def add_command(sub, name: str, **kwargs) -> argparse.ArgumentParser:
    """A sub-command whose help shows the defaults (``DefaultsHelpFormatter``), with ``--threads``."""
    parser = sub.add_parser(name, formatter_class=DefaultsHelpFormatter, **kwargs)
    parser.add_argument("--threads", type=int, help=THREADS_HELP)
    return parser


THREADS_HELP = ("CPU threads torch may use (default: torch's choice, one per core); lower it when other work "
                "holds cores: a busy core stalls every step")


# -- the model --------------------------------------------------------------------------------------
MODEL_HELP = ("pipeline folder from ShowoPipeline.save_pretrained, or a released Show-o folder with --vq, "
              "--tokenizer and --llm-config (default: the shipped model of the built-in world, showo/weights/world)")


def add_model_arguments(parser: argparse.ArgumentParser, output: bool = True) -> None:
    """``--model`` and what loads with it; ``--output`` (default: outputs) unless ``output`` is False."""
    parser.add_argument("--model", help=MODEL_HELP)
    parser.add_argument("--vq", help="MAGVIT-v2 image tokenizer folder (default: MODEL/vq)")
    parser.add_argument("--tokenizer", help="text tokenizer folder with tokenizer.json (default: MODEL)")
    parser.add_argument("--llm-config", help="folder with the base LLM's config.json, for released checkpoints "
                                             "(default: the config inside MODEL)")
    add_adapter_argument(parser)
    add_device_argument(parser)
    add_dtype_argument(parser)
    if output:
        parser.add_argument("--output", type=Path, default=Path("outputs"), help="folder for the results")


def add_adapter_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--adapter", help=ADAPTER_HELP)


ADAPTER_HELP = ("a LoRA adapter folder (adapter_config.json + adapter_model.safetensors, as a LoRA training run "
                "writes to OUTPUT/final) or Hub id, loaded onto --model (default: none); needs peft: "
                "pip install 'showo[lora]'")


def say_adapter(command: str, adapter: str | None) -> None:
    if adapter is not None:
        say(f"showo {command}: adapter {adapter}", error=True)


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", help="where to run: cpu, cuda, cuda:1 or mps (default: cuda when torch sees a GPU, "
                                         "else cpu)")


def add_dtype_argument(parser: argparse.ArgumentParser, default: str = "auto", why: str = "") -> None:
    """``--dtype``, checked by ``console.check_dtype`` when the command runs (a bad value is one line)."""
    parser.add_argument("--dtype", default=default, help=DTYPE_HELP + why)


DTYPE_HELP = ("precision to run the model in: auto, fp32, bf16 or fp16; auto is bf16 where the device runs it fast "
              "(a GPU with bf16, a CPU with AMX or AVX512-BF16), else fp32, and keeps the image tokenizer fp32")


def model_folder(model: str | Path | None) -> tuple[str | Path, str]:
    """The folder ``--model`` names (the shipped model when None), and how to name it to the user."""
    if model is None:
        folder = shipped_model_dir()
        return folder, f"{folder} (the shipped model of the built-in world)"
    return model, str(model)


def say_model(command: str, described: str) -> None:
    say(f"showo {command}: model {described}", error=True)


def say_dtype(command: str, described: str) -> None:
    say(f"showo {command}: dtype {described}", error=True)


def load_pipeline(args: argparse.Namespace) -> ShowoPipeline:
    """The pipeline of ``--model`` (default: the shipped model) on ``--device`` in ``--dtype``, both
    checked first; says on stderr which model it loaded and in what precision."""
    device = check_device(args.device)  # before anything is loaded
    precision = check_dtype(args.dtype, device)
    folder, described = model_folder(args.model)
    pipe = ShowoPipeline.from_pretrained(folder, vq=args.vq, tokenizer=args.tokenizer,
                                         llm_config=args.llm_config, device=device, torch_dtype=args.dtype)
    if args.adapter is not None:
        pipe.load_adapter(args.adapter)
    say_model(args.command, described)
    say_adapter(args.command, args.adapter)
    say_dtype(args.command, precision)
    return pipe


# -- image sampling ---------------------------------------------------------------------------------
def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="random seed; image i of a run is drawn with SEED + i")
    add_sampler_arguments(parser, released="reproduce the released sampler's quirks")
    parser.add_argument("--save-steps", action="store_true",
                        help="also write the denoising progression of each image as a strip (one frame per step)")


def add_sampler_arguments(parser: argparse.ArgumentParser, released: str) -> None:
    """The MaskGIT sampler's flags, each defaulting to the model's generation_config.json."""
    parser.add_argument("--steps", type=int, help="MaskGIT denoising steps per image; " + GENERATION_CONFIG.format(18))
    parser.add_argument("--guidance-scale", type=float,
                        help="classifier-free guidance w; " + GENERATION_CONFIG.format(1.75))
    parser.add_argument("--schedule", help="how many codes stay masked after each step: cosine | linear | sigmoid "
                                           "| pow<p>; " + GENERATION_CONFIG.format("cosine"))
    parser.add_argument("--temperature", type=float,
                        help="of the Gumbel noise that picks which codes are re-masked; " +
                             GENERATION_CONFIG.format(1.0))
    parser.add_argument("--released-sampler", action="store_true", help=released)


def sampling_kwargs(args: argparse.Namespace) -> dict:
    return {"steps": args.steps, "guidance_scale": args.guidance_scale, "schedule": args.schedule,
            "temperature": args.temperature, "mode": "released" if args.released_sampler else "maskgit"}


class Progress:
    """Progress per denoising step over ``images`` x steps: a tqdm bar on a terminal, else a few
    plain lines per image on stderr (``showo generate: image 2/3, step 12/24``)."""

    def __init__(self, command: str, images: int, lines_per_image: int = 4) -> None:
        self.command, self.images, self.lines = command, images, lines_per_image
        self.terminal = bool(getattr(sys.stderr, "isatty", lambda: False)())
        self.bar: tqdm | None = None
        self.image = 0

    def next_image(self) -> None:
        self.image += 1

    def step(self, step: int, steps: int) -> None:
        """After step ``step`` (from 0) of ``steps``."""
        done = step + 1
        if self.terminal:
            if self.bar is None:
                self.bar = tqdm(total=self.images * steps, desc=f"showo {self.command}", unit="step",
                                file=sys.stderr, dynamic_ncols=True)
            self.bar.update(1)
        elif done in {math.ceil(steps * k / self.lines) for k in range(1, self.lines + 1)}:
            say(f"showo {self.command}: image {self.image}/{self.images}, step {done}/{steps}", error=True)

    def callback(self, frames: list[Image.Image] | None = None) -> Callable:
        """A ``callback_on_step_end`` that moves the progress on and, with ``frames``, keeps the decoded
        image after every step (``--save-steps``)."""

        def on_step_end(pipe: ShowoPipeline, step: int, steps: int, tensors: dict) -> None:
            if frames is not None:
                frames.append(pipe.decode_codes(tensors["codes"][:1])[0])
            self.step(step, steps)

        return on_step_end

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


# -- files ------------------------------------------------------------------------------------------
def next_number(folder: Path, prefix: str) -> int:
    """One more than the largest NNNNN of the ``PREFIX-NNNNN*.png`` files in ``folder`` (0 when none):
    a new run's results never overwrite an earlier run's."""
    pattern = re.compile(rf"{re.escape(prefix)}-(\d{{5,}})(?:-[\w-]*)?\.png")
    numbers = [int(m.group(1)) for p in folder.iterdir() if (m := pattern.fullmatch(p.name))]
    return max(numbers, default=-1) + 1


def model_input(command: str, pipe: ShowoPipeline, picture: Image.Image, path: str | Path) -> Image.Image:
    """``picture`` (read from ``path``) as the model sees it, with a one-line notice when it had to be
    resized."""
    size = pipe.config.image_size
    if picture.size != (size, size):
        say(resized_notice(command, "image", path, picture.size, size), error=True)
    return pipe.processor.resized(picture)


def model_mask(command: str, mask: Image.Image, path: str | Path, size: int) -> Image.Image:
    """``mask`` (white = regenerate; read from ``path``) resized and cropped as its picture is, to
    ``size`` x ``size`` pixels of 0 or 255, with a one-line notice when it was resized."""
    mask = mask.convert("L")
    if mask.size != (size, size):
        say(resized_notice(command, "mask", path, mask.size, size), error=True)
        mask = resize_and_crop(mask, size)
    return mask.point(lambda v: 255 if v > 127 else 0)


def resized_notice(command: str, what: str, path: str | Path, given: tuple[int, int], size: int) -> str:
    return (f"showo {command}: {what} {path} resized from {given[0]}x{given[1]} to the model's {size}x{size} "
            "(shorter side resized, centre cropped)")
