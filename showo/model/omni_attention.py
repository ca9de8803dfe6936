"""Omni-attention: one boolean mask for a whole batch, built from the token ids.

Rules (the paper's "Omni-Attention Mechanism"; the released ``training/prompting_utils.py``),
applied to every row at once:

* text is causal;
* a token of an image segment (``<soi>`` .. ``<eoi>`` inclusive) also sees its whole segment;
* a sequence whose first non-pad token is ``<mmu>`` exposes every column up to its first
  ``<eoi>`` to all rows (the understanding prefix);
* no non-pad token attends to ``[PAD]``; pad rows stay causal so that no row is empty.
"""

from __future__ import annotations

import torch

from .layout import TokenLayout


def image_segments(input_ids: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    """(B, L) long: k > 0 for tokens of the k-th image segment (``<soi>``..``<eoi>``), 0 for text.

    A segment still open at the end of the sequence (generation in progress) runs to the end."""
    is_soi = input_ids == layout.soi_id
    is_eoi = input_ids == layout.eoi_id
    opened = is_soi.cumsum(dim=1)
    in_image = (opened > is_eoi.cumsum(dim=1)) | is_eoi
    return torch.where(in_image, opened, torch.zeros_like(opened))


def omni_attention_mask(input_ids: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    """(B, 1, L, L) bool, True = row may attend to column."""
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be (batch, length), got shape {tuple(input_ids.shape)}")
    _, length = input_ids.shape
    pos = torch.arange(length, device=input_ids.device)
    mask = (pos[None, :] <= pos[:, None])[None]  # (1, L, L) causal

    segment = image_segments(input_ids, layout)
    same_image = (segment[:, :, None] == segment[:, None, :]) & (segment[:, :, None] > 0)
    mask = mask | same_image  # (B, L, L)

    mask = mask | _understanding_prefix(input_ids, layout)[:, None, :]

    is_pad = input_ids == layout.pad_id
    mask = mask & ~(~is_pad[:, :, None] & is_pad[:, None, :])
    return mask[:, None]


def _understanding_prefix(input_ids: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    """(B, L) bool: columns visible to every row because they belong to an ``<mmu> <soi> .. <eoi>`` prefix."""
    _, length = input_ids.shape
    pos = torch.arange(length, device=input_ids.device)
    not_pad = input_ids != layout.pad_id
    first_real = torch.where(not_pad, pos, length).min(dim=1).values.clamp(max=length - 1)
    starts_mmu = input_ids.gather(1, first_real[:, None])[:, 0] == layout.mmu_id
    is_eoi = input_ids == layout.eoi_id
    first_eoi = torch.where(is_eoi, pos, length).min(dim=1).values
    has_prefix = starts_mmu & is_eoi.any(dim=1)
    return has_prefix[:, None] & (pos[None, :] <= first_eoi[:, None])
