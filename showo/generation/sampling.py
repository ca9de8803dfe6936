"""Pick the next text token from a batch of logits: greedy, temperature, top-k, top-p.

Pure functions, no model: the text generators (cached and naive) share them, so a fixed
``torch.Generator`` seed gives the same tokens on both paths.
"""

from __future__ import annotations

import torch

from ..model.validation import is_finite_number, shown
from . import arguments


def check_sampling_args(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """Raise ``ValueError`` naming the first bad sampling argument: ``temperature`` a finite number,
    0 (greedy) or in [1e-4, 100]; ``top_k`` None or an integer >= 1; ``top_p`` None or a finite
    number in (0, 1] (``showo.generation.arguments``)."""
    arguments.text_temperature(temperature)
    if top_k is not None:
        arguments.integer("top_k", top_k, 1)
    if top_p is not None and not (is_finite_number(top_p) and 0 < top_p <= 1):
        raise ValueError(f"top_p must lie in (0, 1] (or be None), got {shown(top_p)}")


def sample_next_token(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """logits (B, V) -> token ids (B,) long.

    ``temperature == 0`` or ``top_k == 1`` is greedy and draws no random numbers; otherwise
    the logits are divided by the temperature, cut to the top-k, then to the top-p nucleus,
    and one token per row is drawn with ``generator``."""
    check_sampling_args(temperature, top_k, top_p)
    if logits.dim() != 2:
        raise ValueError(f"logits must be (batch, vocab), got shape {tuple(logits.shape)}")
    if temperature == 0 or top_k == 1:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature  # (B, V)
    if top_k is not None and top_k < logits.shape[-1]:
        logits = keep_top_k(logits, top_k)
    if top_p is not None and top_p < 1:
        logits = keep_top_p(logits, top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)[:, 0]


def keep_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Set every logit below the row's k-th largest to -inf (ties with the k-th stay)."""
    kth = logits.topk(k, dim=-1).values[:, -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def keep_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probability reaches ``p`` (never empty)."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)  # (B, V)
    probs = torch.softmax(sorted_logits, dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # 0 for the most likely token, so it always stays
    drop_sorted = mass_before >= p
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))
