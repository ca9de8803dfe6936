"""``torch.compile`` for the per-step functions of the decoders (one token of an answer, one
MaskGIT step), behind ``compile=True`` of ``generate_text`` and ``generate_image_tokens``.

A step is a pure tensor function of fixed shapes (the KV cache is written at slots given as a
tensor, ``KVCache.write``), so it compiles to one graph: ``fullgraph=True`` makes a graph break or
a host sync an error rather than a silent slowdown, and ``dynamic=False`` keeps one graph per
model and shape. torch.compile keeps the graphs per step function behind its guards, so a second
call with the same model and shapes does not recompile.

On CUDA the mode is ``"reduce-overhead"``: the step is captured as a CUDA graph and replayed, so
a step of a small batch of answers costs one launch instead of hundreds of small kernels (as in
gpt-fast). Two rules follow, kept here so that the CPU path runs the same code:

* the cache tensors are mutated by the step, which CUDA graphs allow only for inputs of fixed
  address: ``static_cache`` marks them (a new cache per call re-records the graph, it does not
  recompile);
* a CUDA graph's outputs live in its memory pool and the next replay overwrites them: each call
  starts a new step (``cudagraph_mark_step_begin``) and hands back a clone, so a caller may keep
  the logits (callbacks do).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from ..model.kv_cache import KVCache


def compiled_step(step: Callable[..., torch.Tensor], device: torch.device) -> Callable[..., torch.Tensor]:
    """``step`` compiled for ``device``: ``"reduce-overhead"`` (CUDA graphs) on CUDA, the default
    mode elsewhere."""
    if device.type == "cuda":
        return _replayed(_compiled(step, "reduce-overhead"))
    return _compiled(step, None)


@functools.cache
def _compiled(step: Callable[..., torch.Tensor], mode: str | None) -> Callable[..., torch.Tensor]:
    return torch.compile(step, fullgraph=True, dynamic=False, mode=mode)


def _replayed(graph_step: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    def run(*args) -> torch.Tensor:
        torch.compiler.cudagraph_mark_step_begin()
        return graph_step(*args).clone()

    return run


def static_cache(cache: KVCache) -> KVCache:
    """Mark the cache tensors as fixed-address inputs of a compiled step (see the module note);
    returns the cache."""
    for tensor in (cache.keys, cache.values):
        torch._dynamo.mark_static_address(tensor, guard=False)
    return cache
