"""``showo quickstart``: every task with a model, measured on the built-in world, as a report.

By default the shipped model (``showo.shipped``); ``--model DIR`` takes a folder written by
``ShowoPipeline.save_pretrained``; ``--retrain`` first trains one with the world recipe
(``showo.training.world_recipe.retrain``). ``--ci`` runs a few items of each part.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .evaluation import Budget, evaluate
from .report import RETRAIN_TARGETS, TARGETS, metric_table, write_report


def retrain_model(folder: Path) -> Path:
    """Train a pipeline with the world recipe into ``folder``; returns the pipeline's folder."""
    try:
        from .training.world_recipe import retrain
    except ImportError as e:
        raise ValueError(f"--retrain needs showo.training.world_recipe.retrain, which cannot be imported ({e}); "
                         "pass --model DIR to measure a model you trained") from e
    return Path(retrain(folder))


def run_quickstart(output: str | Path = "outputs/quickstart", model_dir: str | Path | None = None,
                   budget: Budget | None = None, retrain: bool = False, seed: int = 0, progress: bool = True) -> dict:
    """Measure a model on the world (``budget`` default: ``Budget()``), write ``output/report.html``;
    returns the metrics. They are set beside the shipped model's targets, or with ``retrain`` the
    30-minute recipe's (``report.RETRAIN_TARGETS``)."""
    from .pipeline import ShowoPipeline
    from .shipped import shipped_model_dir

    output = Path(output)
    if retrain and model_dir is not None:
        raise ValueError("give either --model or --retrain, not both")
    if retrain:
        model_dir = retrain_model(output / "retrained")
    elif model_dir is None:
        model_dir = shipped_model_dir()
    pipe = ShowoPipeline.from_pretrained(model_dir)
    metrics, artefacts = evaluate(pipe, budget or Budget(), seed=seed, progress=progress)
    artefacts["model"] = str(model_dir)
    targets = RETRAIN_TARGETS if retrain else TARGETS
    report = write_report(output, metrics, artefacts, targets)
    print(metric_table(metrics, targets))
    print(f"report: {report}")
    return metrics


def _run(args: argparse.Namespace) -> None:
    run_quickstart(args.output, args.model, Budget.ci() if args.ci else Budget(), args.retrain, args.seed)


def register(sub) -> None:
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
    p.set_defaults(run=_run)
