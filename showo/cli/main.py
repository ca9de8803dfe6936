"""The ``showo`` command line: ``main`` dispatches to each sub-command. ``convert``, ``serve`` and
``quickstart`` are here; ``generate`` and its siblings in ``generate``, ``train`` and
``pre-encode`` in ``train``."""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

import torch

from ..evaluation.evaluate import Budget
from ..evaluation.quickstart import run_quickstart
from ..evaluation.report import RETRAIN_TARGETS, TARGETS, metric_table
from ..model.convert import convert_folder
from ..web.limits import MB, Limits
from ..web.server import serve
from .console import check_device, debugging, run_command, say
from .generate import register as register_generate
from .train import register_pre_encode, register_train

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def _convert(args: argparse.Namespace) -> None:
    dtype = getattr(torch, DTYPES[args.dtype]) if args.dtype else None
    kind = convert_folder(args.source, args.destination, llm_config=args.llm_config, dtype=dtype,
                          overwrite=args.overwrite)
    say(f"wrote {kind} checkpoint in showo format to {args.destination}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="showo", description="Show-o: understand and generate images.")
    parser.add_argument("--version", action="version", version=f"showo {version('showo')}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error instead of one line (or set SHOWO_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)

    convert = sub.add_parser("convert", help="turn a released Show-o or MAGVIT-v2 folder into showo's format")
    convert.add_argument("source", help="released folder (config.json + pytorch_model.{safetensors,bin})")
    convert.add_argument("destination", help="output folder (config.json + model.safetensors)")
    convert.add_argument("--llm-config", help="folder with the base LLM's config.json (default: phi-1.5 values)")
    convert.add_argument("--dtype", choices=sorted(DTYPES), help="store the weights in this precision")
    convert.add_argument("--overwrite", action="store_true",
                         help="replace a showo folder already at DESTINATION (never a folder showo did not write)")
    convert.set_defaults(run=_convert)

    register_generate(sub)
    register_train(sub)
    register_pre_encode(sub)
    register_serve(sub)
    register_quickstart(sub)
    return parser


def run_serve(args: argparse.Namespace) -> None:
    limits = Limits(max_steps=args.max_steps, max_new_tokens=args.max_new_tokens,
                    max_upload_bytes=int(args.max_upload_mb * MB), concurrency=args.concurrency,
                    queue_size=args.queue_size)
    if importlib.util.find_spec("gradio") is None:  # not imported here: build_app sets its temp dir first
        raise SystemExit("showo serve: the web demo needs gradio: pip install 'showo[demo]'")
    serve(args.model, args.host, args.port, limits, str(check_device(args.device)))


def register_serve(sub) -> None:
    defaults = Limits()
    parser = sub.add_parser("serve", help="the web demo in the browser (gradio)")
    parser.add_argument("--model", help="folder from ShowoPipeline.save_pretrained (default: the shipped model)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--max-steps", type=int, default=defaults.max_steps, help="MaskGIT steps per image")
    parser.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens, help="text tokens per answer")
    parser.add_argument("--max-upload-mb", type=float, default=defaults.max_upload_bytes / MB)
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency, help="model calls at once")
    parser.add_argument("--queue-size", type=int, default=defaults.queue_size, help="requests that may wait")
    parser.set_defaults(run=run_serve)


def _quickstart(args: argparse.Namespace) -> None:
    metrics = run_quickstart(args.output, args.model, Budget.ci() if args.ci else Budget(), args.retrain, args.seed)
    print(metric_table(metrics, RETRAIN_TARGETS if args.retrain else TARGETS))
    say(f"report: {Path(args.output) / 'report.html'}")


def register_quickstart(sub) -> None:
    p = sub.add_parser("quickstart", help="run every task with a model and measure it on the built-in world",
                       description="Measure a Show-o model (default: the shipped one) on the held-out split of "
                                   "the built-in world and write OUTPUT/report.html and OUTPUT/metrics.json.")
    p.add_argument("--output", type=Path, default=Path("outputs/quickstart"), help="folder for the report")
    p.add_argument("--model", help="pipeline folder (save_pretrained); default: the shipped model")
    p.add_argument("--ci", action="store_true", help="a few items of each part: checks that everything runs")
    p.add_argument("--retrain", action="store_true",
                   help="train the tokenizer and a model from scratch first (the world recipe cut to 24 to 28 min "
                        "on 2 CPU cores)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_quickstart)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``showo ARGV``; returns the exit code (see ``console``: 2 for a user error, one line)."""
    args = build_parser().parse_args(argv)
    return run_command(args.command, lambda: args.run(args), debugging(args))
