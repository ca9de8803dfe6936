"""The ``showo`` command line. Each sub-command is a small function; ``main`` dispatches."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def _convert(args: argparse.Namespace) -> None:
    import torch

    from .convert import convert_folder

    dtype = getattr(torch, DTYPES[args.dtype]) if args.dtype else None
    kind = convert_folder(args.source, args.destination, llm_config=args.llm_config, dtype=dtype)
    print(f"wrote {kind} checkpoint in showo format to {args.destination}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="showo", description="Show-o: understand and generate images.")
    sub = parser.add_subparsers(dest="command", required=True)

    convert = sub.add_parser("convert", help="turn a released Show-o or MAGVIT-v2 folder into showo's format")
    convert.add_argument("source", help="released folder (config.json + pytorch_model.{safetensors,bin})")
    convert.add_argument("destination", help="output folder (config.json + model.safetensors)")
    convert.add_argument("--llm-config", help="folder with the base LLM's config.json (default: phi-1.5 values)")
    convert.add_argument("--dtype", choices=sorted(DTYPES), help="store the weights in this precision")
    convert.set_defaults(run=_convert)

    from .cli_generate import register
    from .data.pre_encode import register as register_pre_encode
    from .quickstart import register as register_quickstart
    from .training.cli import register as register_train
    from .web import register as register_serve

    register(sub)
    register_train(sub)
    register_pre_encode(sub)
    register_serve(sub)
    register_quickstart(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"showo {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0
