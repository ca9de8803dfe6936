"""Per-step metrics: ``OUTPUT/metrics.jsonl`` (one JSON object per step), optionally
TensorBoard and wandb (never required: each is imported only when asked for)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from ..model.checkpoint_io import atomic_write


class MetricsLog:
    def __init__(self, output: str | Path, resume_step: int = 0, tensorboard: bool = False,
                 wandb: bool = False, config: dict | None = None) -> None:
        self.path = Path(output) / "metrics.jsonl"
        self._drop_after(resume_step)
        self._file = self.path.open("a")
        self._tb = _tensorboard_writer(Path(output) / "tensorboard") if tensorboard else None
        self._wandb = _wandb_run(Path(output), config) if wandb else None

    def _drop_after(self, step: int) -> None:
        """A run killed after its last checkpoint logged steps that will run again: drop them."""
        if not self.path.exists():
            return
        text = self.path.read_text()
        kept = "".join(line + "\n" for line in text.splitlines()
                       if (logged := _step_of(line)) is not None and logged <= step)
        if kept != text:  # rewritten whole or not at all: a kill here loses no row
            atomic_write(self.path, lambda tmp: tmp.write_text(kept))

    def log(self, record: dict[str, Any]) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        self._file.write(json.dumps(clean) + "\n")
        self._file.flush()
        numbers = {k: v for k, v in record.items() if isinstance(v, (int, float)) and k != "step"}
        if self._tb is not None:
            for key, value in numbers.items():
                self._tb.add_scalar(key, value, record["step"])
        if self._wandb is not None:
            self._wandb.log(numbers, step=record["step"])

    def sync(self) -> None:
        """Flush the rows logged so far to disk."""
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def read_metrics(output: str | Path) -> list[dict[str, Any]]:
    path = Path(output) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _step_of(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None  # a line cut short by a kill


def _tensorboard_writer(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise ImportError("tensorboard=true needs the `tensorboard` package: pip install tensorboard") from e
    return SummaryWriter(str(folder))


def _wandb_run(output: Path, config: dict | None):
    try:
        import wandb
    except ImportError as e:
        raise ImportError("wandb=true needs the `wandb` package: pip install wandb") from e
    return wandb.init(dir=str(output), config=config)
