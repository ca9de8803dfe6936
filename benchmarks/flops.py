"""Analytic FLOP counts, for reporting achieved GFLOP/s in benchmarks and training logs."""

from __future__ import annotations

from showo.model.config import ShowoConfig


def forward_flops(config: ShowoConfig, batch: int, new_tokens: int, context: int | None = None,
                  logit_rows: int | None = None, logit_cols: int | None = None) -> int:
    """Matmul FLOPs (2 per multiply-add) of one forward pass.

    ``new_tokens`` are computed, attending to ``context`` positions in all (cached + new;
    default: ``new_tokens``); the LM head runs on ``logit_rows`` rows (default all new
    tokens) over ``logit_cols`` vocabulary entries (default the whole vocabulary)."""
    llm = config.llm
    d, n = llm.hidden_size, new_tokens
    context = n if context is None else context
    logit_rows = n if logit_rows is None else logit_rows
    logit_cols = config.vocab_size if logit_cols is None else logit_cols
    projections = 4 * 2 * n * d * d  # q, k, v, out
    mlp = 2 * 2 * n * d * llm.intermediate_size
    attention = 2 * 2 * n * context * d  # scores and weighted sum, all heads
    per_layer = projections + mlp + attention
    return batch * (llm.num_layers * per_layer + 2 * logit_rows * d * logit_cols)
