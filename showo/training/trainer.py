"""Optimiser, schedule, accelerator, and the save/restore of everything a run needs to go on."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..checkpoint import read_json, save_safetensors
from .checkpoints import (
    checkpoint_root,
    latest_checkpoint,
    load_optimizer_state,
    publish,
    read_trainer_state,
    restore_rng,
    save_rng,
    staging_dir,
    step_dir_name,
    write_json,
)
from .config import TrainConfig
from .metrics import MetricsLog


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


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases, norms and embeddings (1-D or embedding tables)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or name.startswith("embed") else decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=cfg.betas)


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to 1, then cosine down to ``min_lr_ratio`` at ``max_steps``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_scheduler(optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg))


class RunState:
    """Writes and reads ``OUTPUT/checkpoints/step-*``; every process takes part."""

    def __init__(self, output: Path, accelerator, keep_last: int) -> None:
        self.output, self.acc, self.keep_last = output, accelerator, keep_last

    def save(self, step: int, model, head, optimizer, scheduler, feeders: dict[str, Any]) -> Path:
        """``model`` is the bare model, ``head`` what accelerate prepared (for FSDP's gather)."""
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
        state = None
        if acc.distributed_type.value == "FSDP":  # gather the shards; keys lose the LossHead prefix
            state = {k.removeprefix("model."): v for k, v in acc.get_state_dict(head).items()}
        acc.wait_for_everyone()
        final = checkpoint_root(self.output) / step_dir_name(step)
        if acc.is_main_process:
            if state is None:
                model.save_pretrained(staging / "model")
            else:
                _save_model_state(model, state, staging / "model")
            torch.save(optimizer.state_dict(), staging / "optimizer.pt")
            write_json(staging / "trainer_state.json", {
                "step": step, "scheduler": scheduler.state_dict(), "world_size": acc.num_processes,
            })
            publish(staging, self.keep_last)
        acc.wait_for_everyone()
        return final

    def restore(self, folder: Path, optimizer, scheduler, feeders: dict[str, Any]) -> int:
        """Model weights were loaded when the model was built; this restores the rest."""
        state = read_trainer_state(folder)
        if state["world_size"] != self.acc.num_processes:
            raise ValueError(f"{folder} was written by {state['world_size']} processes; resuming with "
                             f"{self.acc.num_processes} would change the data order. Use the same number.")
        optimizer.load_state_dict(load_optimizer_state(folder))
        scheduler.load_state_dict(state["scheduler"])
        rank = self.acc.process_index
        data = read_json(folder / f"data_rank{rank}.json")
        for flow, feeder in feeders.items():
            feeder.load_state_dict(data["feeders"][flow])
        restore_rng(folder, rank, data["rng"])
        return int(state["step"])


def _save_model_state(model, state: dict, folder: Path) -> None:
    folder.mkdir()
    model.config.save(folder / "config.json")
    save_safetensors({k: v.contiguous() for k, v in state.items()}, folder / "model.safetensors")


class TrainerBase:
    """The loop both trainers share; a subclass sets ``config, output, accelerator, step, state,
    model, head, optimizer, scheduler, feeders`` and defines ``train_step`` and ``save_final``."""

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
        cfg, acc = self.config, self.accelerator
        max_steps = max_steps or cfg.max_steps
        log = MetricsLog(self.output, self.step, cfg.tensorboard, cfg.wandb, cfg.to_dict()) if acc.is_main_process else None
        records = []
        bar = tqdm(total=max_steps, initial=self.step, desc="train", disable=not acc.is_main_process, dynamic_ncols=True)
        try:
            while self.step < max_steps:
                record = self.train_step()
                records.append(record)
                if log is not None and (self.step % cfg.log_every == 0 or self.step == max_steps):
                    log.log(record)
                bar.update(1)
                bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}")
                if self.step % cfg.checkpoint_every == 0 or self.step == max_steps:
                    self.state.save(self.step, self.model, self.head, self.optimizer, self.scheduler, self.feeders)
                if cfg.sample_every and self.step % cfg.sample_every == 0 and acc.is_main_process:
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

