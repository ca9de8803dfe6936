"""Run ``showo ARGS`` in this process, but die at one write point as a SIGKILL would (os._exit,
no cleanup): ``python killed_at.py POINT showo-args...``. The fault-injection tests start it.

POINT: ``checkpoint`` (half of the first checkpoint's optimizer.pt written), ``publish`` (a
complete checkpoint folder, just before its rename into place), ``final`` (final/ written but
not yet published), ``after-step:N`` (step N logged, before anything else), or ``rewrite:NAME``
(the rewrite of the file NAME half written: train_config.json, generation_config.json,
metrics.jsonl), or ``eval-publish:N`` (``showo eval``'s folder of prompt N complete under its
temporary name, just before its rename into place).

With ``SHOWO_TEST_STEP_SECONDS=T`` in the environment the trainer's clock is a :class:`StepClock`:
every step takes exactly T seconds, so a ``max_minutes`` run is sized the same on any machine;
``T,U@N``: U seconds from the clock's Nth reading on (a machine that slows down).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from showo.cli.main import main
from showo.model import checkpoint_io
from showo.training import metrics, trainer


class StepClock:
    """A stand-in for the trainer's ``time``: every reading is ``tick`` seconds after the last, so a
    step (one reading at its end, one when the run starts) takes exactly ``tick`` seconds."""

    def __init__(self, tick: float, slower: tuple[int, float] | None = None):
        self.now, self.tick, self.slower, self.readings = 1000.0, tick, slower, 0

    def perf_counter(self) -> float:
        self.readings += 1
        if self.slower and self.readings >= self.slower[0]:
            self.tick = self.slower[1]
        self.now += self.tick
        return self.now

    @classmethod
    def parse(cls, text: str) -> StepClock:
        """``T`` or ``T,U@N`` (SHOWO_TEST_STEP_SECONDS)."""
        tick, _, later = text.partition(",")
        if not later:
            return cls(float(tick))
        seconds, _, reading = later.partition("@")
        return cls(float(tick), (int(reading), float(seconds)))


def die() -> None:
    os._exit(137)


def half(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def arm(point: str) -> None:
    if point == "checkpoint":
        real_save = torch.save

        def save(obj, f, *args, **kwargs):
            real_save(obj, f, *args, **kwargs)
            half(Path(f))
            die()

        torch.save = save
    elif point == "publish":
        real_rename = Path.rename

        def rename(self, target):
            if self.name.startswith(".step-"):
                die()
            return real_rename(self, target)

        Path.rename = rename
    elif point == "final":
        real_tree = checkpoint_io.fsync_tree

        def fsync_tree(folder):
            real_tree(folder)
            if Path(folder).name.startswith(".final."):
                die()

        checkpoint_io.fsync_tree = fsync_tree
    elif point.startswith("after-step:"):
        step, real_log = int(point.split(":")[1]), metrics.MetricsLog.log

        def log(self, record):
            real_log(self, record)
            if record["step"] == step:
                die()

        metrics.MetricsLog.log = log
    elif point.startswith("rewrite:"):
        name, real_fsync = point.split(":")[1], checkpoint_io.fsync

        def fsync(path):
            path = Path(path)
            if path.name.startswith(f".{name}.") and path.name.endswith(".tmp"):
                half(path)
                die()
            real_fsync(path)

        checkpoint_io.fsync = fsync
    elif point.startswith("eval-publish:"):
        prefix, real_tree = f".{int(point.split(':')[1]):05d}.", checkpoint_io.fsync_tree

        def fsync_tree(folder):
            real_tree(folder)
            if Path(folder).name.startswith(prefix):
                die()

        checkpoint_io.fsync_tree = fsync_tree
    else:
        raise SystemExit(f"unknown point {point!r}")


if __name__ == "__main__":
    if os.environ.get("SHOWO_TEST_STEP_SECONDS"):
        trainer.time = StepClock.parse(os.environ["SHOWO_TEST_STEP_SECONDS"])
    arm(sys.argv[1])
    sys.exit(main(sys.argv[2:]))
