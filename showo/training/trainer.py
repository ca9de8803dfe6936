"""The loop both trainers share (``TrainerBase``), the accelerator it runs under, and the error
that stops a diverged run."""

from __future__ import annotations

import contextlib
import copy
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from .checkpoints import (
    TIME_BUDGET_FILE,
    RunState,
    latest_checkpoint,
    model_folder,
    read_time_budget,
    write_time_budget,
)
from .config import TrainConfig
from .metrics import MetricsLog
from .monitor import summary
from .optimization import make_optimizer, make_scheduler
from .sharding import is_sharded, no_gradient_sync, shard, whole_state
from .time_budget import TimeBudget, length_at, recorded_lengths


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
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, cpu=not torch.cuda.is_available())
    kind = accelerator.distributed_type.value
    if accelerate_shards(accelerator) and (cfg.sharding or cfg.task != "showo" or cfg.lora):
        raise ValueError("accelerate's FSDP (its config, or --use_fsdp) shards a whole Show-o model (task = \"showo\", "
                         "no lora) with sharding unset; sharding = \"fsdp\" shards it by itself: launch it with "
                         "torchrun or accelerate launch --multi_gpu")
    if kind == "DEEPSPEED":
        _fit_deepspeed(accelerator, cfg)
    if fsdp_asked() and not accelerate_shards(accelerator) and not cfg.sharding and accelerator.is_main_process:
        say(f"FSDP was asked for (ACCELERATE_USE_FSDP), but accelerate runs this job as "
            f"{kind} ({accelerator.num_processes} process(es), "
            f"{accelerator.device.type}): accelerate shards with FSDP on GPUs only, so every process holds the "
            "whole model here; sharding=fsdp shards it on CPUs too")
    return accelerator


def _fit_deepspeed(accelerator, cfg: TrainConfig) -> None:
    """Under accelerate's DeepSpeed (its config file): the engine steps inside ``accelerator.backward``, at
    every call, and its batch size is only bookkeeping here (the loop feeds its own batches)."""
    if cfg.grad_accum > 1 or cfg.sharding or cfg.task != "showo":
        raise ValueError(f"DeepSpeed (accelerate's config) trains a Show-o model (task = \"showo\") with "
                         f"grad_accum = 1 and sharding unset, got task={cfg.task!r}, grad_accum={cfg.grad_accum}, "
                         f"sharding={cfg.sharding!r}")
    plugin = accelerator.state.deepspeed_plugin
    if plugin.is_auto("train_micro_batch_size_per_gpu"):
        plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = 1


def accelerate_shards(accelerator) -> bool:
    """Whether accelerate itself shards the model (its FSDP, on GPUs)."""
    return accelerator.distributed_type.value == "FSDP"


def fsdp_asked() -> bool:
    """Whether the launch asked accelerate for FSDP (``accelerate launch --use_fsdp`` or its config file
    set ``ACCELERATE_USE_FSDP``)."""
    return os.environ.get("ACCELERATE_USE_FSDP", "").strip().lower() in ("1", "true", "yes", "y", "on")


class TrainerBase:
    """The loop both trainers share; a subclass sets ``config, output, accelerator, step, state,
    model, head, optimizer, scheduler, feeders`` and defines ``train_step`` and ``save_final``.

    ``total_steps`` is the run's length, from which the schedule is built: ``max_steps``, or with
    ``max_minutes`` the steps that fit in that many minutes (``max_steps`` still caps them), sized
    at the end of warm-up from the measured pace and shortened later where the pace slows
    (``showo.training.time_budget``; building the model before the loop and writing ``final/``
    come on top). Each length is printed in one line and kept in ``OUTPUT/time_budget.json``
    (atomically, before any checkpoint that depends on it); a resumed run reads the lengths back
    instead of measuring again, so it continues exactly as the first run did. A run stopped before
    it was sized measures again over the warm-up steps left, its minutes counted from the restart."""

    sample_every = 0  # write_samples every this many steps (0: never)
    # Under sharding (``sharding = "fsdp"`` over several processes, or accelerate's FSDP) each process holds
    # part of ``model``; the main process keeps a whole copy, ``whole``, for what it alone runs (the monitor,
    # samples, ``final/``), filled by ``gather_whole`` (every process calls it). Unsharded, ``whole`` is ``model``.
    sharded = False
    # A CapabilityMonitor (``showo.training.monitor``), run on ``self.pipeline()`` before the first step and
    # every ``monitor.every`` steps; None: never.
    monitor = None

    def write_samples(self) -> None:
        """Optional: pictures of the model's progress every ``sample_every`` steps."""

    def shard_units(self) -> list[nn.Module]:
        """The modules that ``sharding = "fsdp"`` shards one by one (each gathered whole only while it runs),
        before the root takes the rest."""
        return []

    def measure(self, record: dict) -> dict:
        """The monitor's numbers of the model as it is now, added to ``record`` (the main process only:
        it runs the whole model, so the other processes wait for it at their next collective)."""
        numbers = self.monitor(self.pipeline())
        say(summary(record["step"], numbers))
        record.update(numbers)
        return record

    def _measure_between_steps(self, record: dict) -> None:
        """``measure`` on the main process; under max_minutes every process waits for it, and the budget
        counts its time apart from the steps' pace."""
        self.gather_whole()
        if self.accelerator.is_main_process:
            self.measure(record)
        if self.budget is not None:
            self.accelerator.wait_for_everyone()
            self.budget.monitor_ran()

    def prepare(self, module: nn.Module, resume: Path | None) -> None:
        """Wrap ``module`` and its optimiser (through accelerate, or sharded: ``_wrap``), make the schedule, and
        restore optimiser, schedule, data position and RNG from ``resume`` (``self.feeders`` set first)."""
        cfg, acc = self.config, self.accelerator
        self.sharded = accelerate_shards(acc) or (cfg.sharding == "fsdp" and acc.num_processes > 1)
        self._keep_whole(module)
        self.head, self.optimizer = self._wrap(module)
        self.total_steps, self.budget = self._recorded_length(), None
        self.scheduler = make_scheduler(self.optimizer, cfg, self._schedule_length)
        # One process reads a sharded checkpoint too: a run that asks for sharding always writes them.
        sharded_checkpoints = cfg.sharding == "fsdp" or accelerate_shards(acc)
        self.state = RunState(self.output, acc, cfg.keep_last, sharded=sharded_checkpoints)
        self.step = self._restore(resume) if resume else 0
        if self.total_steps is None and self.step > cfg.warmup_steps:
            raise ValueError(f"max_minutes: this run is at step {self.step}, past its warm-up ({cfg.warmup_steps} "
                             f"steps), with no {TIME_BUDGET_FILE}: the step time is measured in warm-up; set "
                             "max_steps instead, or start the run in a new --output")

    def _restore(self, resume: Path) -> int:
        if self.accelerator.distributed_type.value == "DEEPSPEED":
            raise ValueError(f"{resume}: a run under DeepSpeed does not resume (its optimiser state is split over the "
                             f"processes, and not kept); start a new --output with init_from={model_folder(resume)}")
        return self.state.restore(resume, self.head, self.optimizer, self.scheduler, self.feeders)

    def _keep_whole(self, module: nn.Module) -> None:
        """``whole``: the model; under sharding, on the main process, a copy made while it is still whole."""
        if not self.sharded:
            self.whole = self.model
            return
        self.whole = copy.deepcopy(self.model).to(self.accelerator.device) if self.accelerator.is_main_process else None
        name = next(name for name, m in module.named_modules() if m is self.model)
        self._whole_prefix, self._gathered_at = f"{name}." if name else "", None

    def _wrap(self, module: nn.Module) -> tuple[nn.Module, torch.optim.Optimizer]:
        """(what runs the forward, its optimiser): accelerate's (DDP, or what its config asks for on GPUs), or
        under ``sharding = "fsdp"`` FSDP2 applied here, accelerate adding only mixed precision; the optimiser
        is built after sharding."""
        cfg, acc = self.config, self.accelerator
        if not self.sharded or accelerate_shards(acc):
            return acc.prepare(module, make_optimizer(self.model, cfg))
        head = acc.prepare_model(shard(module, self.shard_units(), acc.device), evaluation_mode=True)  # no DDP
        return head, make_optimizer(self.model, cfg)

    def no_sync(self):
        """Gradients of the micro-batches run in it are not reduced over processes (until one runs outside)."""
        return no_gradient_sync(self.head) if is_sharded(self.head) else self.accelerator.no_sync(self.head)

    def gather_whole(self) -> None:
        """Every process calls it before the main process alone runs ``whole`` (the monitor, samples,
        ``final/``): under sharding, the shards are gathered into that copy (once a step)."""
        if not self.sharded or self._gathered_at == self.step:
            return
        state = whole_state(self.head, self._whole_prefix)
        if self.accelerator.is_main_process:
            self.whole.load_state_dict(state)
        self._gathered_at = self.step

    # -- the run's length ------------------------------------------------------------------------
    def _recorded_length(self) -> int | None:
        """``max_steps``; under ``max_minutes``, the last length ``time_budget.json`` holds (capped by
        ``max_steps``), or None while the run has not measured its pace."""
        cfg = self.config
        self._lengths = [(0, cfg.max_steps)]
        if cfg.max_minutes is None:
            return cfg.max_steps
        record = read_time_budget(self.output)
        if record is None:
            return None
        self._lengths = recorded_lengths(record, cfg.max_minutes, cfg.max_steps)
        steps = self._lengths[-1][1]
        if self.accelerator.is_main_process:
            shortened = f", shortened {len(self._lengths) - 1} time(s) as it ran" if len(self._lengths) > 1 else ""
            say(f"max_minutes={cfg.max_minutes:g}: {steps} steps, as sized when this run began{shortened} "
                f"({record['seconds_per_step']:.3g} s a step, {self.output / TIME_BUDGET_FILE})")
        return steps

    def _schedule_length(self, step: int) -> int:
        """The length the schedule reads when it computes the rate of ``step`` (counted from 0)."""
        if self.total_steps is not None:
            return length_at(self._lengths, step)
        if step > self.config.warmup_steps:
            raise RuntimeError(f"the learning rate of step {step + 1} depends on the run's length, "
                               "which max_minutes has not fixed yet")
        return self.config.max_steps  # not read: the rates up to here do not depend on it

    def _start_budget(self) -> None:
        """A fresh run under ``max_minutes``: its clock starts (before the monitor's first run)."""
        cfg, acc = self.config, self.accelerator

        def slowest(numbers: list[float]) -> list[float]:
            if acc.num_processes == 1:
                return numbers
            return acc.reduce(torch.tensor(numbers, dtype=torch.float64, device=acc.device), "max").tolist()

        every = self.monitor.every if self.monitor is not None else None
        self.budget = TimeBudget(cfg.max_minutes, cfg.warmup_steps, cfg.max_steps, every,
                                 now=lambda: time.perf_counter(), slowest=slowest)

    def _time_step(self) -> None:
        """Under ``max_minutes``, at the end of each step (before the next rate is computed): size the run
        after warm-up, shorten it where it runs slow, and write each length down before it is used."""
        line = self.budget.step_ended(self.step + 1)
        if line is None:
            return
        self._lengths, self.total_steps = list(self.budget.lengths), self.budget.total_steps
        if self.accelerator.is_main_process:
            write_time_budget(self.output, self.budget.record)
            say(line)

    def apply_gradients(self, record: dict, losses: list[float]) -> None:
        """After the backward pass: stop on a non-finite loss, else clip, step and count the step."""
        if not all(math.isfinite(v) for v in losses):
            raise TrainingDiverged(self.step + 1, record["loss"], latest_checkpoint(self.output))
        norm = self.accelerator.clip_grad_norm_(self.head.parameters(), self.config.grad_clip)
        record["grad_norm"] = None if norm is None else float(norm)  # DeepSpeed clips in its own step, may give None
        record["lr"] = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        if self.budget is not None:  # max_minutes: size the run before the schedule needs its length
            self._time_step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1

    # -- the whole run --------------------------------------------------------------------------
    def _stop_at(self, max_steps: int | None) -> int:
        """The step the run stops at: ``max_steps`` if given, else its length (under max_minutes,
        ``config.max_steps`` caps it until it is sized)."""
        return max_steps or self.total_steps or self.config.max_steps

    def run(self, max_steps: int | None = None, on_step=None) -> list[dict[str, float]]:
        """Train to ``max_steps`` (default: the run's length, ``total_steps``), then write ``final/``.

        SIGINT (Ctrl-C) or SIGTERM lets the step under way finish, writes a checkpoint at it and
        raises :class:`TrainingInterrupted`; a second signal stops at once."""
        cfg, acc = self.config, self.accelerator
        main = acc.is_main_process
        # A run at step 0 starts from nothing: every row of an earlier try goes, the monitor's step-0 row too.
        kept = self.step if self.step else -1
        log = MetricsLog(self.output, kept, cfg.tensorboard, cfg.wandb, cfg.to_dict()) if main else None
        records = []
        stop = self._stop_at(max_steps)
        if self.total_steps is None and stop <= cfg.warmup_steps and main:
            say(f"max_minutes={cfg.max_minutes:g}: the run ends at step {stop}, in its warm-up, before its "
                "pace is measured")
        bar = tqdm(total=stop, initial=self.step, desc="train", disable=not main, dynamic_ncols=True)
        if self.total_steps is None:
            self._start_budget()
        try:
            monitored = self.monitor is not None and self.step == 0
            if monitored:
                self.gather_whole()
                if main:
                    log.log(self.measure({"step": 0}))  # the numbers before training
            if self.budget is not None:
                self.budget.loop_began(monitored)
            with stop_requests() as requested:
                while self.step < stop:
                    record = self.train_step()
                    stop = self._stop_at(max_steps)  # max_minutes sizes the run in a step
                    if bar.total != stop:
                        bar.total = stop
                        bar.refresh()
                    records.append(record)
                    measured = self.monitor is not None and self.step % self.monitor.every == 0
                    if measured:
                        self._measure_between_steps(record)
                    if log is not None and (measured or self.step % cfg.log_every == 0 or self.step == stop):
                        log.log(record)
                    bar.update(1)
                    bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}")
                    signum = self._agreed_stop(requested)
                    if signum or self.step % cfg.checkpoint_every == 0 or self.step == stop:
                        if log is not None:
                            log.sync()  # every row up to the checkpoint is on disk before it is
                        self.state.save(self.step, self.model, self.head, self.optimizer, self.scheduler,
                                        self.feeders)
                    if signum and self.step < stop:
                        raise TrainingInterrupted(self.step, signum)
                    if self.sample_every and self.step % self.sample_every == 0:
                        self.gather_whole()
                        if main:
                            self.write_samples()
                    if on_step is not None:
                        on_step(self, record)
        finally:
            bar.close()
            if log is not None:
                log.close()
        self.gather_whole()
        if main:
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


def say(line: str) -> None:
    """One line on stderr, above the progress bar."""
    tqdm.write(line, file=sys.stderr)


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

