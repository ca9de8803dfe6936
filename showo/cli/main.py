"""The ``showo`` command line: ``main`` dispatches to each sub-command. ``convert``, ``serve`` and
``quickstart`` are here; ``generate`` in ``generate``, ``inpaint`` and ``extrapolate`` in ``edit``,
``answer`` and ``caption`` in ``understand``, ``train`` and ``pre-encode`` in ``train``, ``eval``
(public benchmarks) in ``benchmarks``; the options they share in ``options``. Every command that
loads a model defaults ``--model`` to the shipped one and says on stderr which model it loaded."""

from __future__ import annotations

import argparse
import functools
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
from .benchmarks import register as register_eval
from .console import check_device, check_dtype, debugging, run_command, say, set_threads
from .edit import register as register_edit
from .generate import register as register_generate
from .options import (
    DefaultsHelpFormatter,
    add_adapter_argument,
    add_command,
    add_device_argument,
    add_dtype_argument,
    model_folder,
    say_adapter,
    say_dtype,
    say_model,
)
from .train import register_pre_encode, register_train
from .understand import register as register_understand

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def _convert(args: argparse.Namespace) -> None:
    dtype = getattr(torch, DTYPES[args.dtype]) if args.dtype else None
    kind = convert_folder(args.source, args.destination, llm_config=args.llm_config, dtype=dtype,
                          overwrite=args.overwrite)
    say(f"wrote {kind} checkpoint in showo format to {args.destination}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="showo", description="Show-o: understand and generate images.",
                                     formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--version", action="version", version=f"showo {version('showo')}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error instead of one line (or set SHOWO_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)

    convert = add_command(sub, "convert", help="turn a released Show-o or MAGVIT-v2 folder into showo's format")
    convert.add_argument("source", help="released folder (config.json + pytorch_model.{safetensors,bin})")
    convert.add_argument("destination", help="output folder (config.json + model.safetensors)")
    convert.add_argument("--llm-config", help="folder with the base LLM's config.json (default: phi-1.5 values)")
    convert.add_argument("--dtype", choices=sorted(DTYPES),
                         help="store the weights in this precision (default: as they are stored in SOURCE)")
    convert.add_argument("--overwrite", action="store_true",
                         help="replace a showo folder already at DESTINATION (never a folder showo did not write)")
    convert.set_defaults(run=_convert)

    register_generate(sub)
    register_edit(sub)
    register_understand(sub)
    register_train(sub)
    register_pre_encode(sub)
    register_serve(sub)
    register_quickstart(sub)
    register_eval(sub)
    return parser


def run_serve(args: argparse.Namespace) -> None:
    limits = Limits(max_steps=args.max_steps, max_new_tokens=args.max_new_tokens,
                    max_upload_bytes=int(args.max_upload_mb * MB), concurrency=args.concurrency,
                    queue_size=args.queue_size)
    if importlib.util.find_spec("gradio") is None:  # not imported here: build_app sets its temp dir first
        raise SystemExit("showo serve: the web demo needs gradio: pip install 'showo[demo]'")
    device = check_device(args.device)
    precision = check_dtype(args.dtype, device)
    folder, described = model_folder(args.model)
    say_model(args.command, described)
    say_adapter(args.command, args.adapter)
    say_dtype(args.command, precision)
    serve(folder, args.host, args.port, limits, str(device), args.dtype, adapter=args.adapter)


def register_serve(sub) -> None:
    defaults = Limits()
    parser = add_command(sub, "serve", help="the web demo in the browser (gradio)")
    parser.add_argument("--model", help="pipeline folder from ShowoPipeline.save_pretrained (default: the shipped "
                                        "model of the built-in world)")
    add_adapter_argument(parser)
    add_device_argument(parser)
    add_dtype_argument(parser)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 for every "
                             "network interface)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on")
    parser.add_argument("--max-steps", type=int, default=defaults.max_steps,
                        help="the most MaskGIT steps a visitor may ask for per image")
    parser.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens,
                        help="the most text tokens a visitor may ask for per answer")
    parser.add_argument("--max-upload-mb", type=float, default=defaults.max_upload_bytes / MB,
                        help="the largest upload, in megabytes")
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency, help="model calls at once")
    parser.add_argument("--queue-size", type=int, default=defaults.queue_size,
                        help="requests that may wait for a model call")
    parser.set_defaults(run=run_serve)


def _quickstart(args: argparse.Namespace) -> None:
    model = args.model  # with --retrain: the model it trains (and --model is refused)
    precision = check_dtype(args.dtype, check_device(None))  # the quickstart runs where from_pretrained puts it
    if not args.retrain:
        model, described = model_folder(args.model)
        say_model(args.command, described)
        say_adapter(args.command, args.adapter)
    elif args.adapter is not None:
        raise ValueError("give --adapter with --model (or the shipped model), not with --retrain")
    say_dtype(args.command, precision)
    metrics = run_quickstart(args.output, model, Budget.ci() if args.ci else Budget(), args.retrain, args.seed,
                             args.dtype, adapter=args.adapter)
    print(metric_table(metrics, RETRAIN_TARGETS if args.retrain else TARGETS))
    say(f"report: {Path(args.output) / 'report.html'}")


def register_quickstart(sub) -> None:
    p = add_command(sub, "quickstart", help="run every task with a model and measure it on the built-in world",
                    description="Measure a Show-o model (default: the shipped one) on the held-out split of "
                                "the built-in world and write OUTPUT/report.html and OUTPUT/metrics.json.")
    p.add_argument("--output", type=Path, default=Path("outputs/quickstart"), help="folder for the report")
    p.add_argument("--model", help="pipeline folder from ShowoPipeline.save_pretrained (default: the shipped model)")
    add_adapter_argument(p)
    p.add_argument("--ci", action="store_true", help="a few items of each part: checks that everything runs")
    p.add_argument("--retrain", action="store_true",
                   help="train the tokenizer and a model from scratch first (the world recipe cut to 24 to 28 min "
                        "on 2 CPU cores)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the evaluation")
    add_dtype_argument(p)
    p.set_defaults(run=_quickstart)


@functools.cache
def _parser() -> argparse.ArgumentParser:
    return build_parser()  # built once per process: parsing does not change it


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``showo ARGV``; returns the exit code (see ``console``: 2 for a user error, one line)."""
    args = _parser().parse_args(argv)

    def run() -> None:
        set_threads(args.threads)
        args.run(args)

    return run_command(args.command, run, debugging(args))
