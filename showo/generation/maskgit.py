"""The MaskGIT parallel-decoding sampler, kept apart from the model (the paper's "Inference";
the released ``models/sampling.py`` and the loop of ``Showo.t2i_generate`` in
``models/modeling_showo.py``, github showlab/Show-o).

``MaskGITSampler.step`` takes the guided logits over the image codes for every image
position and the current codes ([MASK] = -1), samples every unknown position, and re-masks
the least confident ones for the next step.

Two modes:

* ``"maskgit"`` (default): the re-mask count is sized from the positions that started
  masked, and the Gumbel temperature anneals linearly, ``temperature * (1 - r)``;
* ``"released"``: the released sampler's arithmetic, for exact reproduction: the schedule is
  evaluated in float32 torch arithmetic with its clamps (``released_mask_ratio``), the count
  is sized from all image positions, the temperature is multiplied by ``(1 - r)`` again at
  every step (the annealing compounds), and the cut-off is the released ``mask_by_random_topk``.

Accelerations, each off by default and refused in ``"released"`` mode (they change what is
sampled, so they are not the released sampler any more):

* ``unmask="confidence"`` / ``"entropy"``: commit more positions than the schedule when the
  model is sure of them, and stop when none is left; ``steps`` becomes a maximum;
* ``order="halton"``: commit positions in a fixed, spatially spread 2D Halton order instead of
  by confidence (Besnier et al. 2025, "Halton Scheduler for Masked Generative Image Transformer");
* ``guidance_interval=(lo, hi)``: classifier-free guidance only on the steps whose progress lies
  in ``[lo, hi)`` (the generation loop runs only the conditional rows elsewhere);
* ``draw="inverse_cdf"``: each code drawn from the same distribution as ``torch.multinomial``
  draws it, by one uniform number against the cumulative probabilities, not by one exponential
  number per code (a fifth of a decoding's time on a CPU); other random numbers, so other pictures.

The sampler refuses, on construction, what would decode garbage: steps that are not an integer
in 1..1000, a temperature that is not a finite number in [0, 100], an unknown schedule or a
``pow<p>`` whose exponent is not a finite number > 0 (``showo.generation.arguments``), and any
option out of range, each error naming its argument.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from ..model.validation import is_finite_number, shown
from . import arguments

MASKED = -1  # code value of an unknown position inside the sampler
SCHEDULES = ("cosine", "linear", "sigmoid", "pow<p>")
MODES = ("maskgit", "released")
UNMASK_RULES = ("schedule", "confidence", "entropy")
ORDERS = ("confidence", "halton")
DRAWS = ("multinomial", "inverse_cdf")


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


def check_choice(name: str, value, choices: tuple[str, ...]) -> str:
    """``value`` when it is one of ``choices``, else a ValueError naming ``name``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {shown(value)}")
    return value


def check_guidance_interval(interval) -> tuple[float, float] | None:
    """None, or ``(lo, hi)`` as a tuple: fractions of the decoding with ``0 <= lo < hi <= 1``."""
    if interval is None:
        return None
    if not (isinstance(interval, (tuple, list)) and len(interval) == 2 and all(map(is_finite_number, interval))
            and 0 <= interval[0] < interval[1] <= 1):
        raise ValueError("guidance_interval must be None or (lo, hi), fractions of the decoding with "
                         f"0 <= lo < hi <= 1, got {shown(interval)}")
    return tuple(interval)


def mask_ratio(schedule: str, progress: float) -> float:
    """Fraction of positions still masked after ``progress`` in [0, 1] of the decoding (float64)."""
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


def released_mask_ratio(schedule: str, ratio: float) -> torch.Tensor:
    """The released ``noise_schedule(torch.tensor(ratio))``: a float32 0-dim tensor.

    Computed as the released ``models/sampling.py`` does, in float32 with its clamps (cosine has
    none, so its last value is a hair below 0): float64 gives other re-mask counts (18 cosine
    steps over 256 positions: 128 where the released code re-masks 127 at step 11)."""
    check_schedule(schedule)
    t = torch.tensor(ratio, dtype=torch.float32)
    if schedule == "cosine":
        return torch.cos(t * math.pi * 0.5)
    if schedule == "linear":
        return (1 - t).clamp(min=1e-6, max=1.0)
    if schedule == "sigmoid":
        start, end, tau = -3, 3, 1.0
        v_start = torch.sigmoid(torch.tensor(start / tau, dtype=torch.float32))
        v_end = torch.sigmoid(torch.tensor(end / tau, dtype=torch.float32))
        value = torch.sigmoid((t * (end - start) + start) / tau)
        return torch.clip((v_end - value) / (v_end - v_start), 1e-6, 1.0)
    return (1.0 - t ** float(schedule[3:])).clamp(min=1e-6, max=1.0)  # pow<p>


@functools.lru_cache(maxsize=8)
def halton_order(side: int) -> tuple[int, ...]:
    """The positions of a ``side`` x ``side`` grid (row-major) in the order the 2D Halton sequence
    first visits them: point i >= 1 is (radical inverse of i in base 2, in base 3), its cell
    (row, column) = floor(side * point), and a cell already visited is skipped (as
    ``build_halton_mask`` of github valeoai/Halton-MaskGIT builds it)."""
    seen: set[int] = set()
    order: list[int] = []
    index = 0
    while len(order) < side * side:  # every cell is reached by index 2**a * 3**b >= side**2
        index += 1
        position = _halton_cell(index, 2, side) * side + _halton_cell(index, 3, side)
        if position not in seen:
            seen.add(position)
            order.append(position)
    return tuple(order)


def _halton_cell(index: int, base: int, side: int) -> int:
    """floor(side * radical inverse of ``index`` in ``base``), in exact integer arithmetic."""
    numerator, denominator = 0, 1
    while index:
        index, digit = divmod(index, base)
        numerator, denominator = numerator * base + digit, denominator * base
    return numerator * side // denominator


def refuse_in_released_mode(given: list[str]) -> None:
    """A ValueError naming the accelerations ``given`` (``"name=value"``), if any: ``mode="released"``
    reproduces the released sampler and takes none."""
    if given:
        raise ValueError(f"mode='released' reproduces the released sampler and takes no acceleration, "
                         f"got {', '.join(given)}; use mode='maskgit'")


@dataclass(frozen=True)
class MaskGITSampler:
    """One MaskGIT decoding: its schedule and the options of ``step``.

    ``unmask``: which positions a step commits (keeps unmasked for good).
      ``"schedule"`` commits the schedule's count, the most confident first. ``"confidence"``
      also commits every unknown position whose sampled code has probability >=
      ``confidence_threshold``; ``"entropy"`` also commits the unknown positions of lowest
      predictive entropy, lowest first, as long as their summed entropy stays <= ``entropy_budget``
      nats. Both commit at least the schedule's count (the rest in ``order``), so they never
      decode slower than the schedule, and decoding ends once no position is unknown (``steps``
      is then the most model calls). They trade quality for model calls: a committed token is
      never revisited, and tokens committed together may disagree with each other. The
      threshold and the budget are read only by their own rule.
    ``order``: ``"confidence"`` ranks positions by Gumbel-noised confidence; ``"halton"`` commits
      them in ``halton_order`` (spread over the grid, so neighbours, which are correlated, are
      rarely decided in the same step); it ignores the model's confidence and the temperature.
    ``guidance_interval``: ``(lo, hi)``, guide only the steps with ``lo <= step / steps < hi``;
      each unguided step runs half the rows, at the cost of weaker prompt adherence there.
    ``draw``: how a code is drawn from its probabilities: ``"multinomial"`` (``torch.multinomial``,
      as the released code) or ``"inverse_cdf"`` (the same distribution, several times cheaper
      on a CPU, from other random numbers).
    """

    steps: int = 18
    schedule: str = "cosine"
    temperature: float = 1.0
    mode: str = "maskgit"
    unmask: str = "schedule"
    confidence_threshold: float | None = None
    entropy_budget: float | None = None
    order: str = "confidence"
    guidance_interval: tuple[float, float] | None = None
    draw: str = "multinomial"

    def __post_init__(self) -> None:
        arguments.steps(self.steps)
        arguments.number("temperature", self.temperature, 0, arguments.MAX_TEMPERATURE, " (hotter is uniform noise)")
        if not isinstance(self.mode, str) or self.mode not in MODES:
            raise ValueError(f"unknown sampler mode {shown(self.mode)}; choose one of {MODES}")
        check_schedule(self.schedule)
        check_choice("unmask", self.unmask, UNMASK_RULES)
        check_choice("order", self.order, ORDERS)
        check_choice("draw", self.draw, DRAWS)
        object.__setattr__(self, "guidance_interval", check_guidance_interval(self.guidance_interval))
        self._check_adaptive()
        if self.mode == "released":
            self._refuse_options_in_released_mode()

    def _check_adaptive(self) -> None:
        threshold, budget = self.confidence_threshold, self.entropy_budget
        if threshold is not None and not (is_finite_number(threshold) and 0 < threshold <= 1):
            raise ValueError(f"confidence_threshold must be None or a probability in (0, 1], got {shown(threshold)}")
        if budget is not None:
            arguments.number("entropy_budget", budget, 0)
        if self.unmask == "confidence" and threshold is None:
            raise ValueError("unmask='confidence' needs confidence_threshold, a probability in (0, 1], got None")
        if self.unmask == "entropy" and budget is None:
            raise ValueError("unmask='entropy' needs entropy_budget, a number of nats >= 0, got None")

    def _refuse_options_in_released_mode(self) -> None:
        options = (("unmask", self.unmask, "schedule"), ("order", self.order, "confidence"),
                   ("guidance_interval", self.guidance_interval, None), ("draw", self.draw, "multinomial"))
        refuse_in_released_mode([f"{name}={value!r}" for name, value, default in options if value != default])

    @property
    def adaptive(self) -> bool:
        """Whether a step may commit more than the schedule says (then decoding may end early)."""
        return self.unmask != "schedule"

    def guided_at(self, step: int) -> bool:
        """Whether step ``step`` applies classifier-free guidance (``guidance_interval``)."""
        if self.guidance_interval is None:
            return True
        lo, hi = self.guidance_interval
        return lo <= step / self.steps < hi

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
        draw = _draw_codes if self.draw == "multinomial" else _draw_codes_inverse_cdf
        sampled = torch.where(unknown, _per_row(draw, probs, generator), codes)
        chosen = probs.gather(-1, sampled[..., None].clamp(min=0))[..., 0]  # (B, N)
        noise = _per_row(_uniform, chosen, generator)
        if self.mode == "released":
            remask = self._released_remask(step, chosen, unknown, noise)
        else:
            remask = self._remask(step, probs, chosen, unknown, noise, initially_masked)
        return sampled, torch.where(remask, torch.full_like(sampled, MASKED), sampled)

    def _released_remask(self, step: int, chosen: torch.Tensor, unknown: torch.Tensor,
                         noise: torch.Tensor) -> torch.Tensor:
        """The released ``mask_len`` and ``mask_by_random_topk``, operation for operation."""
        ratio = 1.0 * (step + 1) / self.steps
        mask_len = (unknown.shape[1] * released_mask_ratio(self.schedule, ratio)).floor().unsqueeze(0)
        one = torch.ones(1, dtype=torch.long, device=unknown.device)
        mask_len = torch.max(one, torch.min(unknown.sum(dim=-1, keepdim=True) - 1, mask_len.to(unknown.device)))
        chosen = torch.where(unknown, chosen, torch.finfo(chosen.dtype).max)
        gumbel = -torch.log((-torch.log(noise.clamp(min=1e-20))).clamp(min=1e-20))
        confidence = torch.log(chosen.clamp(min=1e-20)) + self.gumbel_temperature(step) * gumbel
        cut_off = confidence.sort(dim=-1).values.gather(1, mask_len.long())  # (B, 1)
        return confidence < cut_off

    def _remask(self, step: int, probs: torch.Tensor, chosen: torch.Tensor, unknown: torch.Tensor,
                noise: torch.Tensor, initially_masked: torch.Tensor) -> torch.Tensor:
        """(B, N) the positions to re-mask: the schedule's count of the lowest-ranked unknown ones,
        fewer when the adaptive rule commits more."""
        score = self._commit_score(step, chosen, unknown, noise)  # (B, N), known positions +inf
        count = self._remask_count(step, unknown, initially_masked)
        if self.adaptive:
            early = self._committed_early(probs, chosen, unknown)
            count = torch.minimum(count, unknown.sum(dim=-1) - early.sum(dim=-1))
            score = torch.where(early, math.inf, score)
        ranks = score.argsort(dim=-1).argsort(dim=-1)  # 0 = least confident
        return (ranks < count[:, None]) & unknown

    def _commit_score(self, step: int, chosen: torch.Tensor, unknown: torch.Tensor,
                      noise: torch.Tensor) -> torch.Tensor:
        """(B, N): the higher, the sooner a position is committed; known positions +inf."""
        if self.order == "halton":
            score = -_halton_ranks(unknown.shape[1]).to(chosen).expand_as(chosen)
        else:
            score = torch.log(chosen.clamp_min(1e-30))
            score = score + self.gumbel_temperature(step) * -torch.log(-torch.log(noise.clamp(1e-20, 1.0)))
        return torch.where(unknown, score, torch.full_like(score, math.inf))

    def _committed_early(self, probs: torch.Tensor, chosen: torch.Tensor, unknown: torch.Tensor) -> torch.Tensor:
        """(B, N) the unknown positions the adaptive rule commits now, whatever the schedule says."""
        if self.unmask == "confidence":
            return unknown & (chosen >= self.confidence_threshold)
        entropy = torch.special.entr(probs).sum(dim=-1)  # (B, N) nats
        entropy = torch.where(unknown, entropy, torch.full_like(entropy, math.inf))
        lowest, order = entropy.sort(dim=-1)
        fits = lowest.cumsum(dim=-1) <= self.entropy_budget  # a prefix of the sorted positions
        return torch.zeros_like(fits).scatter(-1, order, fits)

    def _remask_count(self, step: int, unknown: torch.Tensor, initially_masked: torch.Tensor) -> torch.Tensor:
        """(B,) the schedule's re-mask count, sized from the positions that started masked."""
        ratio = mask_ratio(self.schedule, (step + 1) / self.steps)
        count = torch.floor(initially_masked.double() * ratio).long()
        still_unknown = unknown.sum(dim=-1)
        return torch.maximum(torch.ones_like(count), torch.minimum(still_unknown - 1, count))


Generators = torch.Generator | list[torch.Generator] | None


def _halton_ranks(n: int) -> torch.Tensor:
    """(N,) each position's place in ``halton_order`` of the square grid of ``n`` positions."""
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f"order='halton' needs a square grid of image positions, got {n} positions")
    ranks = torch.empty(n, dtype=torch.long)
    ranks[list(halton_order(side))] = torch.arange(n)
    return ranks


def _draw_codes(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """(B, N, C) probabilities -> (B, N) sampled codes."""
    flat = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator)
    return flat.view(probs.shape[:-1])


def _draw_codes_inverse_cdf(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """(B, N, C) probabilities -> (B, N) codes: the first code whose cumulative probability exceeds a
    uniform number scaled by the row's total (the distribution ``torch.multinomial`` samples)."""
    cumulative = probs.cumsum(dim=-1)  # (B, N, C), float32
    u = torch.rand(probs.shape[:-1] + (1,), generator=generator, device=probs.device) * cumulative[..., -1:]
    return torch.searchsorted(cumulative, u, right=True).clamp(max=probs.shape[-1] - 1)[..., 0]


def _uniform(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(like.shape, generator=generator, device=like.device)


def _per_row(draw, tensor: torch.Tensor, generator: Generators) -> torch.Tensor:
    """Apply ``draw`` to the whole batch with one generator, or row by row with a list of them."""
    if not isinstance(generator, (list, tuple)):
        return draw(tensor, generator)
    if len(generator) != tensor.shape[0]:
        raise ValueError(f"{len(generator)} generators for a batch of {tensor.shape[0]}")
    return torch.cat([draw(tensor[i : i + 1], g) for i, g in enumerate(generator)])
