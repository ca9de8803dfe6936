"""Training checkpoints: everything needed to continue exactly, written so none is half-read.

``OUTPUT/checkpoints/step-00000100/`` holds ``model/`` (``config.json`` + ``model.safetensors``,
loadable by ``ShowoModel.from_pretrained`` / ``MagvitV2.from_pretrained``; a LoRA run's adapter
alone, ``adapter_config.json`` + ``adapter_model.safetensors``, its base being ``init_from``),
``optimizer.pt`` (plain tensors, read with ``weights_only=True``), ``trainer_state.json``
(step, scheduler, per-rank data positions and Python/NumPy RNG states) and
``rng_rank{R}.safetensors`` (torch RNG states). Every process writes into
``.step-00000100.tmp``; the main process renames it when all are done. Only folders named
``step-*`` with a ``trainer_state.json`` are ever resumed.

A sharded run (``sharding = "fsdp"``, or accelerate's FSDP) keeps ``sharded/`` instead of ``model/`` and
``optimizer.pt``: model and optimiser in ``torch.distributed.checkpoint``'s format (each process writes
its shards; ``showo.training.sharding``), beside ``model_config.json``. It resumes on any number of
processes: model, optimiser, schedule and step exactly; on the number that wrote it, the data positions
and random states too; on another number the data streams start again from their beginning and the
random states are not restored (they are per process).

A run given ``max_minutes`` also keeps ``OUTPUT/time_budget.json``: the step time it measured, the
step count it chose and each shortening (``resized``), written (atomically) before any checkpoint
that depends on them, and read back on resume instead of measuring again.
"""

from __future__ import annotations

import json
import math
import random
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from ..model.adapters import adapter_names, write_adapter
from ..model.checkpoint_io import atomic_write, fsync, fsync_tree, read_json, save_safetensors
from ..model.config import ShowoConfig
from .sharding import load_sharded, save_sharded

STEP_DIR = re.compile(r"^step-(\d{8})$")
STATE_FILE = "trainer_state.json"
SHARDED_DIR = "sharded"  # a sharded checkpoint's model and optimiser (DCP)
MODEL_CONFIG_FILE = "model_config.json"  # beside it: the model to build before reading the shards into it
TIME_BUDGET_FILE = "time_budget.json"


def checkpoint_root(output: str | Path) -> Path:
    return Path(output) / "checkpoints"


def step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


def complete_checkpoints(output: str | Path) -> list[Path]:
    """Complete checkpoint folders, oldest first."""
    root = checkpoint_root(output)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if STEP_DIR.match(p.name) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)))


def model_folder(checkpoint: Path) -> Path:
    return checkpoint / "model"


def checkpoint_model(checkpoint: Path) -> Path | ShowoConfig:
    """What to build a resumed run's model from: the folder of its weights, or for a sharded checkpoint
    its config (random weights, which :meth:`RunState.restore` replaces by the shards')."""
    path = checkpoint / MODEL_CONFIG_FILE
    if not path.is_file():
        return model_folder(checkpoint)
    return ShowoConfig.from_dict(read_json(path), source=str(path))


def latest_checkpoint(output: str | Path) -> Path | None:
    done = complete_checkpoints(output)
    return done[-1] if done else None


def staging_dir(output: str | Path, step: int) -> Path:
    return checkpoint_root(output) / f".{step_dir_name(step)}.tmp"


def publish(staging: Path, keep_last: int) -> Path:
    """Rename a fully written staging folder to its final name; keep only the last ``keep_last``."""
    final = staging.parent / staging.name[1:].removesuffix(".tmp")
    fsync_tree(staging)
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    fsync(staging.parent)
    for old in complete_checkpoints(staging.parent.parent)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1) + "\n"))


def write_time_budget(output: str | Path, record: dict[str, Any]) -> None:
    write_json(Path(output) / TIME_BUDGET_FILE, record)


def read_time_budget(output: str | Path) -> dict[str, Any] | None:
    """The time-budget record of the run in ``output`` (None if it has none), checked for the
    numbers that size the run."""
    path = Path(output) / TIME_BUDGET_FILE
    if not path.is_file():
        return None
    record = read_json(path)
    checks = {"seconds_per_step": (lambda v: v > 0, "> 0"), "elapsed_seconds": (lambda v: v >= 0, ">= 0"),
              "sized_at_step": (lambda v: v >= 1 and v == int(v), "a whole number >= 1")}
    for key, (test, expected) in checks.items():
        value = record.get(key)
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not number or not test(value):
            raise ValueError(f"{path}: {key} should be {expected}, got {value!r}")
    for i, entry in enumerate(record.get("resized", [])):
        for key in ("at_step", "steps"):
            value = entry.get(key) if isinstance(entry, dict) else None
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{path}: resized[{i}].{key} should be a whole number >= 1, got {value!r}")
    return record


# -- random number generators ------------------------------------------------------------------
def rng_tensors() -> dict[str, torch.Tensor]:
    states = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states.update({f"cuda{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return states


def rng_json() -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
    }


def save_rng(folder: Path, rank: int) -> dict[str, Any]:
    save_safetensors(rng_tensors(), folder / f"rng_rank{rank}.safetensors")
    return rng_json()


def restore_rng(folder: Path, rank: int, saved: dict[str, Any]) -> None:
    tensors = load_file(str(folder / f"rng_rank{rank}.safetensors"))
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("cuda")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = saved["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = saved["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


# -- reading -------------------------------------------------------------------------------------
def read_trainer_state(folder: Path) -> dict[str, Any]:
    return read_json(folder / STATE_FILE)


def load_optimizer_state(folder: Path) -> dict[str, Any]:
    return torch.load(folder / "optimizer.pt", map_location="cpu", weights_only=True)


class RunState:
    """Writes and reads ``OUTPUT/checkpoints/step-*``; every process takes part. ``sharded``: the
    checkpoints are sharded (DCP), as the model is."""

    def __init__(self, output: Path, accelerator, keep_last: int, sharded: bool = False) -> None:
        self.output, self.acc, self.keep_last, self.sharded = output, accelerator, keep_last, sharded

    def save(self, step: int, model, head, optimizer, scheduler, feeders: dict[str, Any]) -> Path:
        """``model`` is the bare model, ``head`` what runs it (its shards are saved, when sharded)."""
        acc, staging = self.acc, staging_dir(self.output, step)
        if acc.is_main_process:
            staging.parent.mkdir(parents=True, exist_ok=True)
            if staging.exists():
                shutil.rmtree(staging)  # left by a run that was killed while writing
            staging.mkdir()
        acc.wait_for_everyone()
        rank = acc.process_index
        data = {flow: feeder.state_dict() for flow, feeder in feeders.items()}
        write_json(staging / f"data_rank{rank}.json", {"feeders": data, "rng": save_rng(staging, rank)})
        if self.sharded:
            save_sharded(staging / SHARDED_DIR, head, optimizer)
        acc.wait_for_everyone()
        final = checkpoint_root(self.output) / step_dir_name(step)
        if acc.is_main_process:
            try:
                self._write_main(staging, step, model, optimizer, scheduler)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)  # the last complete checkpoint stays the latest
                raise
        acc.wait_for_everyone()
        return final

    def _write_main(self, staging: Path, step: int, model, optimizer, scheduler) -> None:
        """The main process's part of a checkpoint: model, optimiser, schedule; then publish it."""
        if self.sharded:
            atomic_write(staging / MODEL_CONFIG_FILE, model.config.save)
        elif adapter_names(model):
            write_adapter(model, staging / "model")
        else:
            model.save_pretrained(staging / "model")
        if not self.sharded:
            optimizer_state = optimizer.state_dict()
            atomic_write(staging / "optimizer.pt", lambda tmp: torch.save(optimizer_state, tmp))
        write_json(staging / "trainer_state.json", {
            "step": step, "scheduler": scheduler.state_dict(), "world_size": self.acc.num_processes,
            "sharded": self.sharded,
        })
        publish(staging, self.keep_last)

    def restore(self, folder: Path, head, optimizer, scheduler, feeders: dict[str, Any]) -> int:
        """Model weights were loaded when the model was built (a sharded checkpoint's are read here, into
        ``head``); this restores the rest."""
        state = read_trainer_state(folder)
        same_count = self._check_resumable(folder, state)
        if self.sharded:
            load_sharded(folder / SHARDED_DIR, head, optimizer)
        else:
            optimizer.load_state_dict(load_optimizer_state(folder))
        scheduler.load_state_dict(state["scheduler"])
        if same_count:
            rank = self.acc.process_index
            data = read_json(folder / f"data_rank{rank}.json")
            for flow, feeder in feeders.items():
                feeder.load_state_dict(data["feeders"][flow])
            restore_rng(folder, rank, data["rng"])
        elif self.acc.is_main_process:
            print(f"{folder} was written by {state['world_size']} processes, this run has {self.acc.num_processes}: "
                  "model, optimiser and schedule go on from it; the data streams start again from their "
                  "beginning, and the random states afresh", file=sys.stderr, flush=True)
        return int(state["step"])

    def _check_resumable(self, folder: Path, state: dict[str, Any]) -> bool:
        """Refuse a checkpoint this run cannot go on from; whether it was written by as many processes."""
        was_sharded = bool(state.get("sharded", False))
        if was_sharded != self.sharded:
            raise ValueError(f"{folder} was written by a {'sharded' if was_sharded else 'whole-model'} run, this "
                             f"one is {'sharded' if self.sharded else 'not'}: resume with the sharding it was "
                             "written with (sharding = \"fsdp\", or accelerate's FSDP)")
        same_count = state["world_size"] == self.acc.num_processes
        if not same_count and not self.sharded:
            raise ValueError(f"{folder} was written by {state['world_size']} processes; resuming with "
                             f"{self.acc.num_processes} would change the data order. Use the same number, or "
                             "train with sharding = \"fsdp\", whose checkpoints resume on any number.")
        return same_count
