"""``showo eval geneval | dpg | vqa``: public benchmarks, one command each
(``showo.evaluation.benchmarks``; the protocol of each number in docs/evaluation.md).

``geneval`` and ``dpg`` write the pictures of the benchmark's prompts in the layout the benchmark's
own scorer reads, resumable (run the same command again) and sharded under ``torchrun`` /
``accelerate launch`` (process r of W draws prompts r, r + W, ...). ``vqa`` answers and scores a
JSONL of yes/no or short-answer questions. Each writes ``showo_eval.json`` beside its outputs:
the checkpoint's sha256, the settings and the seeds. The understanding benchmarks of the paper
run through lmms-eval (``lmms-eval --model showo``), not through this command.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from ..evaluation.benchmarks.dpg import read_prompts, run_dpg
from ..evaluation.benchmarks.drawing import Sampling
from ..evaluation.benchmarks.geneval import read_metadata, run_geneval
from ..evaluation.benchmarks.records import check_output, checkpoint_record, distributed_rank
from ..evaluation.benchmarks.vqa import pick_metric, read_rows, run_vqa
from .console import say
from .options import (
    DefaultsHelpFormatter,
    add_command,
    add_model_arguments,
    add_sampler_arguments,
    load_pipeline,
    model_folder,
)


def checked(name: str, value: int, low: int, high: int = 4096) -> int:
    if not low <= value <= high:
        raise ValueError(f"{name} must lie in {low}..{high}, got {value}")
    return value


def checkpoint_of(args: argparse.Namespace) -> dict:
    folder, _ = model_folder(args.model)
    return checkpoint_record(folder, args.vq, args.adapter)


def shard_device(args: argparse.Namespace, world: int) -> None:
    """Under a launcher with several processes on a GPU machine, each process takes the GPU of its
    ``LOCAL_RANK`` unless ``--device`` names one."""
    if args.device is None and world > 1 and torch.cuda.is_available():
        args.device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"


def sampling_of(args: argparse.Namespace, pipe) -> Sampling:
    return Sampling.resolve(pipe, args.steps, args.guidance_scale, args.schedule, args.temperature,
                            args.released_sampler)


def report(command: str, summary: dict, rank: int, world: int, scorer: str) -> None:
    where = "" if world == 1 else f" (shard {rank} of {world}: {summary['prompts']} prompts)"
    say(f"showo {command}: {summary['drawn']} prompts drawn, {summary['skipped']} already there{where}, "
        f"in {summary['output']}")
    if rank == 0:
        say(f"showo {command}: score them with {scorer}", error=True)


def run_geneval_command(args: argparse.Namespace) -> None:
    checked("--n-samples", args.n_samples, 1)
    checked("--batch-size", args.batch_size, 1)
    rank, world = distributed_rank()
    read_metadata(args.metadata)  # a bad file or output folder is refused before the model loads
    check_output(args.output)
    shard_device(args, world)
    pipe = load_pipeline(args)
    summary = run_geneval(pipe, args.metadata, args.output, checkpoint=checkpoint_of(args),
                          sampling=sampling_of(args, pipe), n_samples=args.n_samples, batch_size=args.batch_size,
                          seed=args.seed, rank=rank, world=world)
    report(args.command, summary, rank, world,
           f"GenEval's scorer: python evaluation/evaluate_images.py {args.output} --outfile results.jsonl "
           "--model-path <detector folder>; then python evaluation/summary_scores.py results.jsonl")


def run_dpg_command(args: argparse.Namespace) -> None:
    checked("--batch-size", args.batch_size, 1)
    rank, world = distributed_rank()
    read_prompts(args.prompts)
    check_output(args.output)
    shard_device(args, world)
    pipe = load_pipeline(args)
    summary = run_dpg(pipe, args.prompts, args.output, checkpoint=checkpoint_of(args),
                      sampling=sampling_of(args, pipe), batch_size=args.batch_size, seed=args.seed, rank=rank,
                      world=world)
    size = pipe.config.image_size
    report(args.command, summary, rank, world,
           f"DPG-Bench's scorer: accelerate launch dpg_bench/compute_dpg_bench.py --image-root-path {args.output} "
           f"--resolution {size} --pic-num 4")


def run_vqa_command(args: argparse.Namespace) -> None:
    checked("--batch-size", args.batch_size, 1)
    checked("--max-new-tokens", args.max_new_tokens, 1, 100_000)
    _, world = distributed_rank()
    if world > 1:
        raise ValueError(f"showo eval vqa runs in one process (WORLD_SIZE={world}); run it without a launcher")
    pick_metric(args.metric, read_rows(args.data), args.data)  # refused before the model loads
    check_output(args.output)
    pipe = load_pipeline(args)
    scores = run_vqa(pipe, args.data, args.output, checkpoint=checkpoint_of(args), metric=args.metric,
                     batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, suffix=args.suffix or "")
    shown = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in scores.items())
    say(f"showo {args.command}: {shown}")
    say(f"showo {args.command}: wrote answers.jsonl and scores.json to {args.output}", error=True)


# -- the parsers -------------------------------------------------------------------------------------------
OUTPUT_HELP = ("results folder: new, empty, or one an earlier run of the same command wrote (resumed with the same "
               "settings; a folder with other files is refused)")


def add_picture_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="sample j of every prompt is drawn with seed SEED + j")
    parser.add_argument("--batch-size", type=int, default=8, help="pictures sampled at once (across prompts)")
    add_sampler_arguments(parser, released="the released sampler, without the generation config's accelerations")


def add_picture_command(benchmarks, name: str, run, help: str, description: str, inputs) -> None:
    """``showo eval NAME``: its input options (``inputs(parser)``), --output, the sampler and the model."""
    parser = add_command(benchmarks, name, help=help, description=description)
    inputs(parser)
    parser.add_argument("--output", type=Path, required=True, help=OUTPUT_HELP)
    add_picture_options(parser)
    add_model_arguments(parser, output=False)
    parser.set_defaults(run=run, command=f"eval {name}")


def _geneval_inputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metadata", type=Path, required=True,
                        help="GenEval's prompts/evaluation_metadata.jsonl (one JSON object per prompt)")
    parser.add_argument("--n-samples", type=int, default=4, help="pictures per prompt")


def _dpg_inputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prompts", type=Path, required=True, help="DPG-Bench's dpg_bench/prompts folder")


def register(sub) -> None:
    parser = sub.add_parser(
        "eval", formatter_class=DefaultsHelpFormatter, help="public benchmarks: GenEval, DPG-Bench, VQA",
        description="Run Show-o on a public benchmark. geneval and dpg write the pictures of the benchmark's "
                    "prompts in the layout its own scorer reads (resumable, sharded under torchrun or accelerate "
                    "launch); vqa answers and scores yes/no or short-answer questions. Understanding benchmarks "
                    "run through lmms-eval: lmms-eval --model showo --model_args pretrained=DIR --tasks pope,mme. "
                    "See docs/evaluation.md.")
    benchmarks = parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK",
                                       help="geneval | dpg | vqa")

    add_picture_command(
        benchmarks, "geneval", run_geneval_command, help="the pictures of GenEval's prompts, for GenEval's scorer",
        description="Draw N pictures of every prompt of GenEval's evaluation_metadata.jsonl into OUTPUT/NNNNN/ "
                    "(metadata.jsonl + samples/NNNN.png), as GenEval's evaluate_images.py reads them, and "
                    "OUTPUT/showo_eval.json (checkpoint sha256, settings, seeds).",
        inputs=_geneval_inputs)
    add_picture_command(
        benchmarks, "dpg", run_dpg_command, help="the pictures of DPG-Bench's prompts, for its scorer",
        description="Draw every prompt of DPG-Bench's prompt folder (<name>.txt, one prompt each) as "
                    "OUTPUT/<name>.png, a 2x2 grid of 4 seeds at the model's resolution, as DPG-Bench's "
                    "compute_dpg_bench.py reads them (--pic-num 4 --resolution R), and OUTPUT/showo_eval.json.",
        inputs=_dpg_inputs)

    vqa = add_command(
        benchmarks, "vqa", help="answer and score yes/no or short-answer questions (no lmms-eval needed)",
        description='Answer every {"image", "question", "answer"} row of a JSONL file (greedy, batched) and score '
                    "the answers: yes/no as POPE does (accuracy, precision, recall, F1 of yes, yes ratio), short "
                    "answers by VQAv2-style normalised exact match. Writes OUTPUT/answers.jsonl, scores.json and "
                    "showo_eval.json.")
    vqa.add_argument("--data", type=Path, required=True,
                     help='a JSONL file of {"image": path relative to the file, "question": ..., "answer": ...} rows')
    vqa.add_argument("--output", type=Path, required=True, help=OUTPUT_HELP)
    vqa.add_argument("--metric", default="auto", help="yesno (POPE) | exact (VQAv2-style) | auto: yesno when every "
                                                      "answer is yes or no, else exact")
    vqa.add_argument("--batch-size", type=int, default=8, help="questions answered at once")
    vqa.add_argument("--max-new-tokens", type=int, default=16, help="the longest answer, in tokens")
    vqa.add_argument("--suffix", help="text appended to every question, e.g. ' Answer the question using a single "
                                      "word or phrase.' (default: none)")
    add_model_arguments(vqa, output=False)
    vqa.set_defaults(run=run_vqa_command, command="eval vqa")
