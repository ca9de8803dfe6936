"""Text-to-image (and inpainting / extrapolation) by MaskGIT decoding, using Show-o's structure.

In a t2i sequence no text position attends to an image position, so the text prefix
(conditional and unconditional rows together) runs once and its keys/values are reused at
every step; each step runs only ``<soi> image <eoi>`` and computes logits only for the image
positions and only over the image codes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..model.omni_attention import omni_attention_mask
from . import arguments
from .maskgit import MASKED, MaskGITSampler


def image_span(input_ids: torch.Tensor, layout) -> tuple[int, int]:
    """(start, end) of the image tokens of a batch of t2i sequences whose image ends the sequence."""
    soi = (input_ids == layout.soi_id).nonzero()
    if soi.numel() == 0:
        raise ValueError("input_ids hold no <soi>: expected t2i sequences `... <soi> image <eoi>`")
    positions = soi[:, 1].view(input_ids.shape[0], -1)[:, -1]  # last <soi> of each row
    if not (positions == positions[0]).all() or not (input_ids[:, -1] == layout.eoi_id).all():
        raise ValueError("every row must end with `<soi> image <eoi>` at the same positions")
    return int(positions[0]) + 1, input_ids.shape[1] - 1


def codes_to_ids(codes: torch.Tensor, layout) -> torch.Tensor:
    """Sampler codes (``MASKED`` where unknown) -> token ids ([MASK] where unknown)."""
    return torch.where(codes == MASKED, torch.full_like(codes, layout.mask_id), codes + layout.image_offset)


def initial_codes(input_ids: torch.Tensor, layout, start: int, end: int) -> torch.Tensor:
    """(B, N) codes of the image span, ``MASKED`` where [MASK]."""
    ids = input_ids[:, start:end]
    if not layout.is_image_slot(ids).all():
        raise ValueError("the image span may hold only image codes and [MASK]")
    return torch.where(ids == layout.mask_id, torch.full_like(ids, MASKED), ids - layout.image_offset)


def guided(cond: torch.Tensor, uncond: torch.Tensor | None, guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance: ``(1 + w) * cond - w * uncond``."""
    if uncond is None or guidance_scale == 0:
        return cond
    return (1 + guidance_scale) * cond - guidance_scale * uncond


def decoding_setup(input_ids, uncond_input_ids, guidance_scale, layout, positions: int | None = None):
    """Checks shared by every MaskGIT path; returns (start, end, codes, rows), where ``rows``
    are the sequences the model runs (cond, then uncond when guided). ``positions``: the model's
    (``max_position_embeddings``), which the sequences must fit."""
    arguments.guidance_scale(guidance_scale)
    _check_ids("input_ids", input_ids)
    if guidance_scale > 0 and uncond_input_ids is None:
        raise ValueError("guidance_scale > 0 needs uncond_input_ids (the same layout with an empty prompt)")
    if guidance_scale > 0:
        _check_ids("uncond_input_ids", uncond_input_ids)
        if uncond_input_ids.shape != input_ids.shape:
            raise ValueError(f"uncond_input_ids must have the shape of input_ids {tuple(input_ids.shape)}, "
                             f"got {tuple(uncond_input_ids.shape)}")
    if positions is not None:
        arguments.check_fits("the image sequence", [(input_ids.shape[1], "tokens")], positions,
                             "a shorter text budget or a smaller picture")
    start, end = image_span(input_ids, layout)
    codes = initial_codes(input_ids, layout, start, end)
    rows = input_ids if guidance_scale == 0 else torch.cat([input_ids, uncond_input_ids])
    layout.check_ids(rows)
    return start, end, codes, rows


def _check_ids(name: str, ids) -> None:
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.shape[0] == 0 or ids.shape[1] == 0:
        got = f"shape {tuple(ids.shape)}" if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise ValueError(f"{name} must be a non-empty (batch, length) tensor of ids, got {got}")


@torch.no_grad()
def generate_image_tokens(
    model,
    input_ids: torch.Tensor,
    uncond_input_ids: torch.Tensor | None = None,
    steps: int = 18,
    guidance_scale: float = 1.75,
    schedule: str = "cosine",
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    mode: str = "maskgit",
    callback=None,
) -> torch.Tensor:
    """(B, N) image codes. ``input_ids``: t2i sequences, image positions [MASK] or known codes.

    ``generator``: one ``torch.Generator`` for the batch, or a list with one per row (then
    each row's result does not depend on the others). ``callback(step, logits, sampled)``
    is called after every step (progress bars, denoising strips, tests).

    Refused before any forward pass: steps, schedule, temperature, mode or guidance out of
    range (``MaskGITSampler``, ``showo.generation.arguments``) and sequences longer than the
    model's positions."""
    sampler = MaskGITSampler(steps, schedule, temperature, mode)
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be callable or None, got {type(callback).__name__}")
    layout = model.layout
    start, end, codes, rows = decoding_setup(input_ids, uncond_input_ids, guidance_scale, layout,
                                             arguments.positions(model))
    step_logits = _cached_image_logits(model, rows, start - 1)
    initially_masked = (codes == MASKED).sum(dim=-1)
    sampled = codes
    for step in range(steps):
        logits = step_logits(_image_ids(codes, rows, start, end, layout))  # (R, N, C)
        batch = codes.shape[0]
        logits = guided(logits[:batch], logits[batch:] if guidance_scale else None, guidance_scale)
        sampled, codes = sampler.step(step, logits, codes, initially_masked, generator)
        if callback is not None:
            callback(step, logits, sampled)
    return sampled


def _image_ids(codes: torch.Tensor, rows: torch.Tensor, start: int, end: int, layout) -> torch.Tensor:
    """The ``<soi> image <eoi>`` segment of every row (cond and uncond share the image)."""
    ids = codes_to_ids(codes, layout).repeat(rows.shape[0] // codes.shape[0], 1)
    return torch.cat([rows[:, start - 1 : start], ids, rows[:, end:]], dim=1)


def _cached_image_logits(model, rows: torch.Tensor, prefix_length: int):
    """Run the text prefix once; return a function: segment ids -> image-code logits (R, N, C)."""
    layout = model.layout
    mask = omni_attention_mask(rows, layout)  # (R, 1, L, L)
    cache = model.new_cache(rows.shape[0], rows.shape[1])
    model.hidden_states(rows[:, :prefix_length], attention_mask=mask[:, :, :prefix_length, :prefix_length], cache=cache)
    codes = slice(layout.image_offset, layout.image_offset + layout.codebook_size)
    weight, bias = model.lm_head.weight[codes], model.lm_head.bias[codes]
    segment_mask = mask[:, :, prefix_length:, :]

    def logits(segment: torch.Tensor) -> torch.Tensor:
        hidden = model.hidden_states(segment, attention_mask=segment_mask, cache=cache)
        cache.truncate(prefix_length)
        return F.linear(hidden[:, 1:-1], weight, bias)

    return logits
