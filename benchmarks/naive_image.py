"""The naive MaskGIT path, as the released code runs it: every step recomputes the whole
sequence (text prefix included) and the logits over the whole vocabulary.

Kept as the reference that tests and benchmarks check the fast path against."""

from __future__ import annotations

import torch

from showo.generation.generate_image import codes_to_ids, decoding_setup, guided
from showo.generation.maskgit import MASKED, MaskGITSampler
from showo.model.omni_attention import omni_attention_mask


@torch.no_grad()
def naive_generate_image_tokens(
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
    sampler = MaskGITSampler(steps, schedule, temperature, mode)
    layout = model.layout
    start, end, codes, rows = decoding_setup(input_ids, uncond_input_ids, guidance_scale, layout)
    initially_masked = (codes == MASKED).sum(dim=-1)
    mask = omni_attention_mask(rows, layout)
    batch, sampled = codes.shape[0], codes
    for step in range(steps):
        rows = rows.clone()
        rows[:, start:end] = codes_to_ids(codes, layout).repeat(rows.shape[0] // batch, 1)
        full = model(rows, attention_mask=mask)  # (R, L, V)
        logits = full[:, start:end, layout.image_offset : layout.image_offset + layout.codebook_size]
        logits = guided(logits[:batch], logits[batch:] if guidance_scale else None, guidance_scale)
        sampled, codes = sampler.step(step, logits, codes, initially_masked, generator)
        if callback is not None:
            callback(step, logits, sampled)
    return sampled
