"""The naive text generator, as the released code runs it: no cache, the whole sequence again
at every step. Kept deliberately simple: tests and benchmarks compare the fast paths with it."""

from __future__ import annotations

import torch

from showo.generation.sampling import sample_next_token
from showo.model.omni_attention import omni_attention_mask
from showo.model.transformer import ShowoModel


@torch.no_grad()
def naive_generate_text(
    model: ShowoModel,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    eot_id: int | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Generated tokens (B, T) for prompts without padding, same conventions as ``generate_text``.

    The mask grows as in the released ``mmu_generate``: the new token's row copies the last
    row and adds itself, earlier rows never see it (recomputing the omni mask from the ids
    would instead react to generated <soi>/<eoi>/[PAD] tokens)."""
    if (input_ids == model.layout.pad_id).any():
        raise ValueError("naive_generate_text takes prompts without [PAD]; run padded rows one at a time")
    eot_id = model.layout.eot_id if eot_id is None else eot_id
    ids = input_ids
    mask = omni_attention_mask(ids, model.layout)  # (B, 1, L, L)
    finished = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)  # (B,)
    for _ in range(max_new_tokens):
        logits = model(ids, attention_mask=mask)[:, -1]  # (B, V)
        token = sample_next_token(logits, temperature, top_k, top_p, generator)
        token = token.masked_fill(finished, eot_id)  # finished rows only repeat <eot>
        finished |= token == eot_id
        ids = torch.cat([ids, token[:, None]], dim=1)
        last_row = mask[:, :, -1:]  # (B, 1, 1, L)
        new_row = torch.cat([last_row, torch.ones_like(last_row[..., :1])], dim=-1)  # (B, 1, 1, L + 1)
        mask = torch.cat([torch.cat([mask, torch.zeros_like(mask[..., :1])], dim=-1), new_row], dim=2)
        if finished.all():
            break
    return ids[:, input_ids.shape[1] :]
