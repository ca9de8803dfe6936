"""Prompts: the text templates and the token sequences of every task, in the released layouts.

Sequences (the paper's "unified prompting"; the released ``prompting_utils.py``), built from
token ids:

* t2i:  ``[PAD]* <t2i> <sot> text <eot> <soi> image <eoi>``; text left-padded to
  ``max_text_length + 1`` tokens including the task token, so the image always starts at
  position ``max_text_length + 2``;
* mmu:  ``<mmu> <soi> image <eoi> <sot> text``;
* lm:   ``<sot> text <eot>`` then right padding.

Text templates: the released understanding prompt, the caption question, and prompt planning
(a model trained on ``plan_text`` rows, language-modelling rows that pair a prompt with a
complete description of a picture that fits it, continues ``plan_request(prompt)`` with such
a description; ``ShowoPipeline.plan`` asks for it, and the pipeline draws it when the model's
``generation_config.json`` says ``plan_prompts: true``: the model's own prompt rewriting, as
DALL-E 3 does with a separate language model).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

from ..model.layout import TokenLayout

CAPTION_QUESTION = "Please describe this image in detail."


def understanding_text(question: str) -> str:
    """The released inference prompt of the plain (non-CLIP) model."""
    return "USER: \n" + question + " ASSISTANT:"


def plan_request(prompt: str) -> str:
    """The text the model continues with its plan for ``prompt``."""
    return f"Plan for {prompt.strip()}:"


def plan_text(prompt: str, plan: str) -> str:
    """A training row: the request and a plan that fits it."""
    return f"{plan_request(prompt)} {plan.strip()}"


def t2i_text_block(text_ids: Sequence[int], layout: TokenLayout, max_text_length: int) -> list[int]:
    """``[PAD]* <t2i> <sot> text <eot>``: exactly ``max_text_length + 1`` ids."""
    budget = max_text_length + 1
    ids = [layout.t2i_id, layout.sot_id, *text_ids, layout.eot_id]
    if len(ids) > budget:
        warnings.warn(
            f"prompt of {len(text_ids)} tokens is over the budget of {budget - 3}; "
            f"cut by {len(ids) - budget} tokens",
            stacklevel=3,
        )
        ids = ids[: budget - 1] + [layout.eot_id]
    return [layout.pad_id] * (budget - len(ids)) + ids


def t2i_prompt(
    text_ids: Sequence[Sequence[int]], image_ids: torch.Tensor, layout: TokenLayout, max_text_length: int
) -> torch.Tensor:
    """(B, max_text_length + 1 + 1 + N + 1) ids; ``image_ids`` (B, N) are image-code ids or [MASK]."""
    if len(text_ids) != image_ids.shape[0]:
        raise ValueError(f"{len(text_ids)} prompts but {image_ids.shape[0]} images")
    text = torch.tensor([t2i_text_block(t, layout, max_text_length) for t in text_ids], dtype=torch.long)
    return torch.cat([text.to(image_ids.device), wrap_image(image_ids, layout)], dim=1)


def mmu_sequence(image_ids: Sequence[int], text_ids: Sequence[int], layout: TokenLayout) -> list[int]:
    """``<mmu> <soi> image <eoi> <sot> text`` for one image and its question."""
    return [layout.mmu_id, layout.soi_id, *image_ids, layout.eoi_id, layout.sot_id, *text_ids]


def mmu_prompt(image_ids: torch.Tensor, text_ids: Sequence[int], layout: TokenLayout) -> torch.Tensor:
    """(B, 1 + N + 2 + 1 + T): one question for every image of the batch. ``image_ids`` are token ids
    of image codes (``layout.image_ids(codes)``), not the codes ``MagvitV2.encode`` returns."""
    check_image_ids(image_ids, layout, allow_mask=False)
    rows = [mmu_sequence(row, text_ids, layout) for row in image_ids.tolist()]
    return torch.tensor(rows, dtype=torch.long, device=image_ids.device)


def lm_prompt(text_ids: Sequence[Sequence[int]], layout: TokenLayout, max_length: int) -> torch.Tensor:
    """(B, max_length): ``<sot> text <eot>`` right-padded (cut, without <eot>, when too long)."""
    rows = []
    for t in text_ids:
        ids = [layout.sot_id, *t, layout.eot_id][:max_length]
        rows.append(ids + [layout.pad_id] * (max_length - len(ids)))
    return torch.tensor(rows, dtype=torch.long)


def check_image_ids(image_ids: torch.Tensor, layout: TokenLayout, allow_mask: bool = True) -> None:
    """Refuse ids that are not image-code ids (or [MASK] where allowed): most often the raw codes of
    ``MagvitV2.encode``, which are text ids in the model's vocabulary and would read as nonsense."""
    ok = layout.is_image_slot(image_ids) if allow_mask else layout.is_image_code(image_ids)
    if image_ids.numel() and not bool(ok.all()):
        low, high = int(image_ids.min()), int(image_ids.max())
        hint = " (raw image codes? pass layout.image_ids(codes))" if low >= 0 and high < layout.codebook_size else ""
        raise ValueError(f"image ids must lie in [{layout.image_offset}, {layout.mask_id}"
                         f"{']' if allow_mask else ')'}, got values in [{low}, {high}]{hint}")


def wrap_image(image_ids: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    check_image_ids(image_ids, layout)
    batch = image_ids.shape[0]
    soi = torch.full((batch, 1), layout.soi_id, dtype=torch.long, device=image_ids.device)
    eoi = torch.full((batch, 1), layout.eoi_id, dtype=torch.long, device=image_ids.device)
    return torch.cat([soi, image_ids.long(), eoi], dim=1)
