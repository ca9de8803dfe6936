"""``showo quickstart``: every task with a model, measured on the built-in world, as a report.

By default the shipped model (``showo.shipped_model_dir()``); ``--model DIR`` takes a folder written by
``ShowoPipeline.save_pretrained``; ``--retrain`` first trains one with the world recipe
(``showo.training.runs.retrain``). ``--ci`` runs a few items of each part.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..pipeline import ShowoPipeline, shipped_model_dir
from ..training.runs import retrain
from .evaluate import Budget, evaluate
from .report import RETRAIN_TARGETS, TARGETS, write_report


def retrain_model(folder: Path) -> Path:
    """Train a pipeline with the world recipe into ``folder``; returns the pipeline's folder."""
    return Path(retrain(folder))


def run_quickstart(output: str | Path = "outputs/quickstart", model_dir: str | Path | None = None,
                   budget: Budget | None = None, retrain: bool = False, seed: int = 0,
                   dtype: str | torch.dtype | None = "auto", progress: bool = True,
                   adapter: str | Path | None = None) -> dict:
    """Measure a model on the world (``budget`` default: ``Budget()``), write ``output/report.html``
    and ``output/metrics.json``; returns the metrics. The report sets them beside the shipped
    model's targets, or with ``retrain`` the 30-minute recipe's (``report.RETRAIN_TARGETS``).
    ``dtype``: the precision the model runs in (``ShowoPipeline.from_pretrained``'s ``torch_dtype``);
    ``adapter``: a LoRA adapter folder loaded onto the model first."""
    output = Path(output)
    if retrain and model_dir is not None:
        raise ValueError("give either --model or --retrain, not both")
    if retrain:
        model_dir = retrain_model(output / "retrained")
    elif model_dir is None:
        model_dir = shipped_model_dir()
    pipe = ShowoPipeline.from_pretrained(model_dir, torch_dtype=dtype)
    if adapter is not None:
        pipe.load_adapter(adapter)
    metrics, artefacts = evaluate(pipe, budget or Budget(), seed=seed, progress=progress)
    artefacts["model"] = str(model_dir) + (f" + adapter {adapter}" if adapter is not None else "")
    targets = RETRAIN_TARGETS if retrain else TARGETS
    write_report(output, metrics, artefacts, targets)
    return metrics
