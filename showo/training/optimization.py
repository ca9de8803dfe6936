"""The optimiser and the learning-rate schedule of both trainers."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from .config import TrainConfig


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases, norms and embeddings (1-D or embedding tables)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or name.startswith("embed") else decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=cfg.betas)


def lr_factor(step: int, cfg: TrainConfig, max_steps: int | None = None) -> float:
    """Linear warm-up to 1, then cosine down to ``min_lr_ratio`` at ``max_steps`` (the run's step
    count: the config's unless given; a time-budgeted run gives the count it chose). Steps
    ``0 .. warmup_steps`` (the warm-up and the first step at the peak) do not depend on it."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    total = cfg.max_steps if max_steps is None else max_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_scheduler(optimizer, cfg: TrainConfig,
                   max_steps: int | Callable[[int], int] | None = None) -> torch.optim.lr_scheduler.LambdaLR:
    """``max_steps``: the run's step count (default: the config's), or a function of the step that
    gives it, asked each time a step's rate is computed: so a count fixed after warm-up still
    shapes every later step."""
    length = max_steps if callable(max_steps) else (lambda step: max_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg, length(step)))
