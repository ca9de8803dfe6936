"""The loop both trainers share (``TrainerBase``), the accelerator it runs under, and the error
that stops a diverged run."""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from .checkpoints import RunState, latest_checkpoint
from .config import TrainConfig
from .metrics import MetricsLog
from .optimization import make_optimizer, make_scheduler


class TrainingDiverged(RuntimeError):
    def __init__(self, step: int, loss: float, last_good: Path | None) -> None:
        kept = f"the last good checkpoint is {last_good}" if last_good else "no checkpoint was written yet"
        super().__init__(f"loss is {loss} at step {step}: training stopped; {kept}")
        self.step, self.loss, self.last_good = step, loss, last_good


def make_accelerator(cfg: TrainConfig):
    try:
        from accelerate import Accelerator
    except ImportError as e:
        raise ImportError("training needs accelerate: pip install 'showo[train]'") from e
    # Without a GPU, accelerate sets up multi-process (gloo) training only when told cpu=True.
    return Accelerator(mixed_precision=cfg.mixed_precision, cpu=not torch.cuda.is_available())


class TrainerBase:
    """The loop both trainers share; a subclass sets ``config, output, accelerator, step, state,
    model, head, optimizer, scheduler, feeders`` and defines ``train_step`` and ``save_final``."""

    sample_every = 0  # write_samples every this many steps (0: never)

    def write_samples(self) -> None:
        """Optional: pictures of the model's progress every ``sample_every`` steps."""

    def prepare(self, module: nn.Module, resume: Path | None) -> None:
        """Wrap ``module`` and its optimiser through accelerate, make the schedule, and restore
        optimiser, schedule, data position and RNG from ``resume`` (``self.feeders`` set first)."""
        cfg, acc = self.config, self.accelerator
        self.head, self.optimizer = acc.prepare(module, make_optimizer(self.model, cfg))
        self.scheduler = make_scheduler(self.optimizer, cfg)
        self.state = RunState(self.output, acc, cfg.keep_last)
        self.step = self.state.restore(resume, self.optimizer, self.scheduler, self.feeders) if resume else 0

    def apply_gradients(self, record: dict, losses: list[float]) -> None:
        """After the backward pass: stop on a non-finite loss, else clip, step and count the step."""
        if not all(math.isfinite(v) for v in losses):
            raise TrainingDiverged(self.step + 1, record["loss"], latest_checkpoint(self.output))
        record["grad_norm"] = float(self.accelerator.clip_grad_norm_(self.head.parameters(), self.config.grad_clip))
        record["lr"] = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1

    # -- the whole run --------------------------------------------------------------------------
    def run(self, max_steps: int | None = None, on_step=None) -> list[dict[str, float]]:
        """Train to ``max_steps`` (default: the config's), then write ``final/``.

        SIGINT (Ctrl-C) or SIGTERM lets the step under way finish, writes a checkpoint at it and
        raises :class:`TrainingInterrupted`; a second signal stops at once."""
        cfg, acc = self.config, self.accelerator
        max_steps = max_steps or cfg.max_steps
        main = acc.is_main_process
        log = MetricsLog(self.output, self.step, cfg.tensorboard, cfg.wandb, cfg.to_dict()) if main else None
        records = []
        bar = tqdm(total=max_steps, initial=self.step, desc="train", disable=not main, dynamic_ncols=True)
        try:
            with stop_requests() as requested:
                while self.step < max_steps:
                    record = self.train_step()
                    records.append(record)
                    if log is not None and (self.step % cfg.log_every == 0 or self.step == max_steps):
                        log.log(record)
                    bar.update(1)
                    bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}")
                    signum = self._agreed_stop(requested)
                    if signum or self.step % cfg.checkpoint_every == 0 or self.step == max_steps:
                        if log is not None:
                            log.sync()  # every row up to the checkpoint is on disk before it is
                        self.state.save(self.step, self.model, self.head, self.optimizer, self.scheduler,
                                        self.feeders)
                    if signum and self.step < max_steps:
                        raise TrainingInterrupted(self.step, signum)
                    if self.sample_every and self.step % self.sample_every == 0 and acc.is_main_process:
                        self.write_samples()
                    if on_step is not None:
                        on_step(self, record)
        finally:
            bar.close()
            if log is not None:
                log.close()
        if acc.is_main_process:
            self.save_final()
        acc.wait_for_everyone()
        return records

    def _agreed_stop(self, requested: list[int]) -> int:
        """The signal that asks this run to stop (0: none); every process stops at the same step."""
        signum = requested[0] if requested else 0
        if self.accelerator.num_processes == 1:
            return signum
        flags = torch.tensor([float(signum)], device=self.accelerator.device)
        return int(self.accelerator.reduce(flags, "max").item())


class TrainingInterrupted(Exception):
    """Raised after a signal once the step under way is checkpointed: the run can go on later."""

    def __init__(self, step: int, signum: int) -> None:
        super().__init__(f"stopped at step {step}; run the same command to resume")
        self.step, self.signum, self.exit_code = step, signum, 128 + signum


@contextlib.contextmanager
def stop_requests():
    """Collect SIGINT and SIGTERM into a list instead of stopping at once (the main thread only);
    a second signal raises ``KeyboardInterrupt`` at once. The handlers are restored after."""
    requested: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def handle(signum, frame) -> None:
        if requested:
            raise KeyboardInterrupt
        requested.append(signum)
        print(f"\nsignal {signal.Signals(signum).name}: stopping after this step (again to stop at once)",
              file=sys.stderr, flush=True)

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield requested
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)

