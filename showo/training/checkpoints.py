"""Training checkpoints: everything needed to continue exactly, written so none is half-read.

``OUTPUT/checkpoints/step-00000100/`` holds ``model/`` (``config.json`` + ``model.safetensors``,
loadable by ``ShowoModel.from_pretrained`` / ``MagvitV2.from_pretrained``),
``optimizer.pt`` (plain tensors, read with ``weights_only=True``), ``trainer_state.json``
(step, scheduler, per-rank data positions and Python/NumPy RNG states) and
``rng_rank{R}.safetensors`` (torch RNG states). Every process writes into
``.step-00000100.tmp``; the main process renames it when all are done. Only folders named
``step-*`` with a ``trainer_state.json`` are ever resumed.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from ..checkpoint import atomic_write, read_json, save_safetensors

STEP_DIR = re.compile(r"^step-(\d{8})$")
STATE_FILE = "trainer_state.json"


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


def latest_checkpoint(output: str | Path) -> Path | None:
    done = complete_checkpoints(output)
    return done[-1] if done else None


def staging_dir(output: str | Path, step: int) -> Path:
    return checkpoint_root(output) / f".{step_dir_name(step)}.tmp"


def publish(staging: Path, keep_last: int) -> Path:
    """Rename a fully written staging folder to its final name; keep only the last ``keep_last``."""
    final = staging.parent / staging.name[1:].removesuffix(".tmp")
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    for old in complete_checkpoints(staging.parent.parent)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1) + "\n"))


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
