"""The MaskGIT parallel-decoding sampler, kept apart from the model (the paper's "Inference";
the released ``models/sampling.py``).

``MaskGITSampler.step`` takes the guided logits over the image codes for every image
position and the current codes ([MASK] = -1), samples every unknown position, and re-masks
the least confident ones for the next step.

Two modes:

* ``"maskgit"`` (default): the re-mask count is sized from the positions that started
  masked, and the Gumbel temperature anneals linearly, ``temperature * (1 - r)``;
* ``"released"``: the released sampler's two quirks, for exact reproduction: the count is
  sized from all image positions, and the temperature is multiplied by ``(1 - r)`` again at
  every step (the annealing compounds).

The sampler refuses, on construction, what would decode garbage: steps that are not an integer
in 1..1000, a temperature that is not a finite number in [0, 100], an unknown schedule or a
``pow<p>`` whose exponent is not a finite number > 0 (``showo.generation.arguments``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..model.validation import shown
from . import arguments

MASKED = -1  # code value of an unknown position inside the sampler
SCHEDULES = ("cosine", "linear", "sigmoid", "pow<p>")
MODES = ("maskgit", "released")


def check_schedule(schedule) -> str:
    """``schedule`` when it names a schedule (``pow<p>``: a finite exponent p > 0), else a ValueError."""
    if not isinstance(schedule, str):
        raise ValueError(f"schedule must be a string, one of {SCHEDULES}, got {type(schedule).__name__} "
                         f"{shown(schedule)}")
    if schedule.startswith("pow"):
        try:
            exponent = float(schedule[3:])
        except ValueError:
            raise ValueError(f"schedule {shown(schedule)}: expected 'pow' followed by a number, e.g. 'pow2'") from None
        if not (math.isfinite(exponent) and exponent > 0):
            raise ValueError(f"schedule {shown(schedule)}: the exponent must be a finite number > 0, got {exponent}")
    elif schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {shown(schedule)}; choose one of {SCHEDULES}")
    return schedule


def mask_ratio(schedule: str, progress: float) -> float:
    """Fraction of positions still masked after ``progress`` in [0, 1] of the decoding."""
    check_schedule(schedule)
    r = min(max(progress, 0.0), 1.0)
    if schedule == "cosine":
        return math.cos(math.pi / 2 * r)
    if schedule == "linear":
        return 1.0 - r
    if schedule == "sigmoid":  # released: start -3, end 3, tau 1
        start, end = 1 / (1 + math.exp(3)), 1 / (1 + math.exp(-3))
        value = 1 / (1 + math.exp(-(r * 6 - 3)))
        return min(max((end - value) / (end - start), 0.0), 1.0)
    return 1.0 - r ** float(schedule[3:])  # pow<p>


@dataclass(frozen=True)
class MaskGITSampler:
    steps: int = 18
    schedule: str = "cosine"
    temperature: float = 1.0
    mode: str = "maskgit"

    def __post_init__(self) -> None:
        arguments.steps(self.steps)
        arguments.number("temperature", self.temperature, 0, arguments.MAX_TEMPERATURE, " (hotter is uniform noise)")
        if not isinstance(self.mode, str) or self.mode not in MODES:
            raise ValueError(f"unknown sampler mode {shown(self.mode)}; choose one of {MODES}")
        check_schedule(self.schedule)

    def gumbel_temperature(self, step: int) -> float:
        if self.mode == "released":
            t = self.temperature
            for s in range(step + 1):
                t *= 1.0 - (s + 1) / self.steps
            return t
        return self.temperature * (1.0 - (step + 1) / self.steps)

    def step(
        self,
        step: int,
        logits: torch.Tensor,
        codes: torch.Tensor,
        initially_masked: torch.Tensor,
        generator: Generators = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One decoding step.

        logits (B, N, C) over image codes; codes (B, N) long with ``MASKED`` where unknown;
        initially_masked (B,) how many positions were unknown at the start.
        Returns (sampled (B, N): a code everywhere, next_codes (B, N): with re-masked positions).
        """
        probs = logits.float().softmax(dim=-1)  # (B, N, C)
        unknown = codes == MASKED
        sampled = torch.where(unknown, _per_row(_draw_codes, probs, generator), codes)
        chosen = probs.gather(-1, sampled[..., None].clamp(min=0))[..., 0]
        confidence = torch.log(chosen.clamp_min(1e-30))
        noise = _per_row(_uniform, chosen, generator)
        confidence = confidence + self.gumbel_temperature(step) * -torch.log(-torch.log(noise.clamp(1e-20, 1.0)))
        confidence = torch.where(unknown, confidence, torch.full_like(confidence, math.inf))
        count = self._remask_count(step, unknown, initially_masked, codes.shape[1])
        ranks = confidence.argsort(dim=-1).argsort(dim=-1)  # 0 = least confident
        remask = (ranks < count[:, None]) & unknown
        return sampled, torch.where(remask, torch.full_like(sampled, MASKED), sampled)

    def _remask_count(self, step: int, unknown: torch.Tensor, initially_masked: torch.Tensor, n: int) -> torch.Tensor:
        ratio = mask_ratio(self.schedule, (step + 1) / self.steps)
        base = torch.full_like(initially_masked, n) if self.mode == "released" else initially_masked
        count = torch.floor(base.double() * ratio).long()
        still_unknown = unknown.sum(dim=-1)
        return torch.maximum(torch.ones_like(count), torch.minimum(still_unknown - 1, count))


Generators = torch.Generator | list[torch.Generator] | None


def _draw_codes(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """(B, N, C) probabilities -> (B, N) sampled codes."""
    flat = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator)
    return flat.view(probs.shape[:-1])


def _uniform(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(like.shape, generator=generator, device=like.device)


def _per_row(draw, tensor: torch.Tensor, generator: Generators) -> torch.Tensor:
    """Apply ``draw`` to the whole batch with one generator, or row by row with a list of them."""
    if not isinstance(generator, (list, tuple)):
        return draw(tensor, generator)
    if len(generator) != tensor.shape[0]:
        raise ValueError(f"{len(generator)} generators for a batch of {tensor.shape[0]}")
    return torch.cat([draw(tensor[i : i + 1], g) for i, g in enumerate(generator)])
