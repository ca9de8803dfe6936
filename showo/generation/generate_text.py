"""Text generation (understanding answers) with a KV cache.

The prompt is run once (prefill) and each new token is then a single-position step that
reads the cached keys and values. Prompts of a batch are left-padded with [PAD]: padding is
invisible to every real token and does not advance the rotary positions, so a padded row
produces exactly the tokens it would produce alone.

A step has fixed shapes and reads nothing back to the host: it attends over every slot of the
cache, the unwritten ones masked, and writes its token at a slot given as a tensor (gpt-fast's
``decode_one_token``). So it compiles to one graph, a CUDA graph with ``compile=True`` on CUDA
(``compiled_step``), and the host stays ahead of the device: whether every row has stopped is
asked only every ``STOP_CHECK_EVERY`` tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..model.kv_cache import KVCache
from ..model.omni_attention import omni_attention_mask
from ..model.transformer import ShowoModel
from ..model.validation import shown
from . import arguments
from .compiled_step import compiled_step, static_cache
from .sampling import check_sampling_args, sample_next_token

STOP_CHECK_EVERY = 8  # tokens between the host reads of "has every row stopped?"
CACHE_SLOTS_MULTIPLE = 64  # cache lengths are rounded up to this: fewer shapes for a compiled step


@torch.no_grad()
def generate_text(
    model: ShowoModel,
    input_ids: torch.Tensor | None = None,
    max_new_tokens: int = 100,
    top_k: int | None = None,
    top_p: float | None = None,
    temperature: float = 1.0,
    eot_id: int | None = None,
    generator: torch.Generator | None = None,
    *,
    inputs_embeds: torch.Tensor | None = None,
    prefill_mask: torch.Tensor | None = None,
    compile: bool = False,
) -> torch.Tensor:
    """Generated tokens (B, T), T <= max_new_tokens.

    ``input_ids`` (B, L): whole prompts (``<mmu> <soi> image <eoi> <sot> question``),
    left-padded; or ``inputs_embeds`` (B, L, D) with ``prefill_mask`` (B, 1, L, L), no padding
    (the CLIP-ViT variant). A row stops at its first ``eot_id`` (default: the layout's <eot>)
    and is filled with ``eot_id`` until every row has stopped.

    ``compile``: run each token's step through ``torch.compile`` (on CUDA in ``reduce-overhead``
    mode, which replays the step as a CUDA graph); the first call per model, batch size and
    cache length (prompt + answer, rounded up to ``CACHE_SLOTS_MULTIPLE``) pays the compile,
    later calls reuse it. The logits equal the eager ones up to float rounding.

    Refused before the prompt runs: bad sampling arguments, and a prompt of L columns whose
    ``L + max_new_tokens`` exceeds the model's positions (``max_position_embeddings``)."""
    check_sampling_args(temperature, top_k, top_p)
    if eot_id is not None:
        arguments.integer("eot_id", eot_id)
    arguments.flag("compile", compile)
    _check_inputs(model, input_ids, inputs_embeds, prefill_mask, max_new_tokens)
    eot_id = model.layout.eot_id if eot_id is None else eot_id
    cache, logits, columns, next_position = _prefill(
        model, input_ids, inputs_embeds, prefill_mask, max_new_tokens
    )
    step_logits = _answer_step
    if compile:
        step_logits = compiled_step(_answer_step, logits.device)
        static_cache(cache)
    slots = torch.arange(cache.length, cache.length + max_new_tokens, device=logits.device)  # one per new token
    finished = torch.zeros(logits.shape[0], dtype=torch.bool, device=logits.device)  # (B,)
    tokens = []
    for step in range(max_new_tokens):
        token = sample_next_token(logits, temperature, top_k, top_p, generator)  # (B,)
        token = token.masked_fill(finished, eot_id)
        tokens.append(token)
        finished |= token == eot_id
        if step == max_new_tokens - 1 or ((step + 1) % STOP_CHECK_EVERY == 0 and finished.all()):
            break
        logits = step_logits(model, cache, token, next_position + step, slots[step : step + 1], columns)
    return _cut_after_last_stop(torch.stack(tokens, dim=1), eot_id)


def _answer_step(
    model: ShowoModel,
    cache: KVCache,
    token: torch.Tensor,
    position: torch.Tensor,
    slot: torch.Tensor,
    columns: torch.Tensor,
) -> torch.Tensor:
    """Logits (B, V) after ``token`` (B,), which is written at cache slot ``slot`` (1,) with rotary
    ``position`` (B, 1). It sees the ``columns`` (B, S) a generated token may see that are
    written by now (slots up to its own). Pure tensor work of fixed shapes: one graph."""
    written = torch.arange(columns.shape[1], device=columns.device) <= slot  # (S,)
    mask = (columns & written)[:, None, None, :]  # (B, 1, 1, S)
    hidden = model.hidden_states(token[:, None], mask, position, cache, cache_slots=slot)
    return model.lm_head(hidden[:, -1])


def _cut_after_last_stop(tokens: torch.Tensor, eot_id: int) -> torch.Tensor:
    """(B, T) -> (B, T'): the tokens up to the step at which the last row stopped, as a loop that
    asked after every token would have ended (rows are filled with ``eot_id`` once stopped)."""
    stopped = tokens == eot_id
    if not stopped.any(dim=1).all():
        return tokens
    return tokens[:, : int(stopped.int().argmax(dim=1).max()) + 1]


def _prefill(
    model: ShowoModel,
    input_ids: torch.Tensor | None,
    inputs_embeds: torch.Tensor | None,
    prefill_mask: torch.Tensor | None,
    max_new_tokens: int,
) -> tuple[KVCache, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the prompt into a fresh cache sized for the answer (rounded up to a multiple of
    ``CACHE_SLOTS_MULTIPLE``, so that prompts of nearby lengths share one compiled step).

    Returns the cache, the last position's logits (B, V), the columns a new token may attend
    to (B, S) bool (real prompt tokens, then every later slot) and each row's next rotary
    position (B, 1)."""
    visible, positions = _prompt_columns(model, input_ids, inputs_embeds)  # (B, L), (B, L)
    batch, length = visible.shape
    if prefill_mask is None:
        prefill_mask = omni_attention_mask(input_ids, model.layout)  # (B, 1, L, L)
    cache = model.new_cache(batch, -(-(length + max_new_tokens) // CACHE_SLOTS_MULTIPLE) * CACHE_SLOTS_MULTIPLE)
    hidden = model.hidden_states(input_ids, prefill_mask, positions, cache, inputs_embeds)  # (B, L, D)
    logits = model.lm_head(hidden[:, -1])  # (B, V): no L x V logits for the prompt
    columns = torch.ones(batch, cache.max_length, dtype=torch.bool, device=visible.device)
    columns[:, :length] = visible
    return cache, logits, columns, positions[:, -1:] + 1


def _check_inputs(
    model: ShowoModel,
    input_ids: torch.Tensor | None,
    inputs_embeds: torch.Tensor | None,
    prefill_mask: torch.Tensor | None,
    max_new_tokens: int,
) -> None:
    arguments.integer("max_new_tokens", max_new_tokens, 1)
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("pass exactly one of input_ids and inputs_embeds")
    if inputs_embeds is not None:
        if not isinstance(inputs_embeds, torch.Tensor) or inputs_embeds.dim() != 3 or inputs_embeds.shape[1] == 0:
            raise ValueError(f"inputs_embeds must be a (batch, length, dim) tensor, got {_described(inputs_embeds)}")
        if prefill_mask is None:
            raise ValueError("inputs_embeds needs a prefill_mask (B, 1, L, L); there are no ids to build one")
        _check_positions(model, inputs_embeds.shape[1], max_new_tokens)
        return
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.shape[1] == 0:
        raise ValueError(f"input_ids must be a (batch, length) tensor with length > 0, got {_described(input_ids)}")
    _check_positions(model, input_ids.shape[1], max_new_tokens)
    model.layout.check_ids(input_ids)
    ends_with_pad = (input_ids[:, -1] == model.layout.pad_id).nonzero()[:, 0]
    if ends_with_pad.numel():
        raise ValueError(
            f"prompts must be left-padded, but rows {ends_with_pad.tolist()} end with [PAD] "
            f"(id {model.layout.pad_id})"
        )


def _check_positions(model: ShowoModel, length: int, max_new_tokens: int) -> None:
    """The prompt and every new token must have a position of the model (and a slot of the cache,
    which is sized for them) before the prompt runs."""
    arguments.check_fits("the prompt and its answer", [(length, "prompt tokens"), (max_new_tokens, "new tokens")],
                         arguments.positions(model), "shorten the prompt or ask for fewer new tokens")


def _described(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"{type(value).__name__} {shown(value)}"


def _prompt_columns(
    model: ShowoModel, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Real (non-pad) prompt columns (B, L) bool and rotary positions (B, L) long.

    Positions count from each row's first real token, as if the row had no padding."""
    if input_ids is None:
        batch, length = inputs_embeds.shape[:2]
        visible = torch.ones(batch, length, dtype=torch.bool, device=inputs_embeds.device)
        return visible, torch.arange(length, device=inputs_embeds.device).expand(batch, length)
    visible = input_ids != model.layout.pad_id  # (B, L)
    positions = (visible.long().cumsum(dim=1) - 1).clamp(min=0)
    return visible, positions


def left_pad(sequences: Sequence[Sequence[int]] | Sequence[torch.Tensor], pad_id: int) -> torch.Tensor:
    """(B, L) long: each sequence right-aligned, [PAD] (``pad_id``) in front of the shorter ones."""
    if len(sequences) == 0:
        raise ValueError("left_pad needs at least one sequence")
    rows = [torch.as_tensor(s, dtype=torch.long) for s in sequences]
    for i, row in enumerate(rows):
        if row.dim() != 1 or row.numel() == 0:
            raise ValueError(
                f"sequence {i} must be a non-empty 1-D list of ids, got shape {tuple(row.shape)}"
            )
    length = max(row.numel() for row in rows)
    out = torch.full((len(rows), length), pad_id, dtype=torch.long, device=rows[0].device)
    for i, row in enumerate(rows):
        out[i, length - row.numel() :] = row.to(out.device)
    return out


def decode_answers(tokenizer, new_ids: torch.Tensor | Sequence[Sequence[int]], eot_id: int) -> list[str]:
    """Cut each row of generated ids at its first ``eot_id`` and decode it with ``tokenizer.decode``."""
    answers = []
    for row in new_ids:
        ids = row.tolist() if isinstance(row, torch.Tensor) else list(row)
        if eot_id in ids:
            ids = ids[: ids.index(eot_id)]
        answers.append(tokenizer.decode(ids))
    return answers


def final_answer(text: str, marker: str | None) -> str:
    """What follows the last ``marker`` in ``text``: the answer of a model that reasons before
    it answers (``GenerationConfig.answer_marker``); all of ``text`` when the marker is None or
    absent. Stripped."""
    if marker:
        _, found, tail = text.rpartition(marker)
        text = tail if found else text
    return text.strip()
