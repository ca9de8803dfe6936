"""A preallocated key/value cache for every layer of the transformer.

Shapes stay static (``max_length`` slots) so the cache works with ``torch.compile``.
``length`` counts the filled slots. Three uses:

* prefill: run the prompt with the cache, slots ``[0, L)`` are written;
* append: run new tokens, they are written after ``length`` and attend to all filled slots;
* reuse of a prefix: ``truncate(n)`` rolls back to the first ``n`` slots so another
  continuation can run on the same prefix, ``repeat(k)`` copies each row for ``k``
  continuations in parallel.
"""

from __future__ import annotations

import torch


class KVCache:
    def __init__(
        self,
        num_layers: int,
        batch_size: int,
        num_heads: int,
        head_dim: int,
        max_length: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        shape = (num_layers, batch_size, num_heads, max_length, head_dim)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)
        self.values = torch.zeros(shape, dtype=dtype, device=device)
        self.length = 0

    @property
    def batch_size(self) -> int:
        return self.keys.shape[1]

    @property
    def max_length(self) -> int:
        return self.keys.shape[3]

    def update(
        self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write ``k, v`` (B, H, L, D) at slots ``[start, start + L)``; return slots ``[0, start + L)``."""
        end = start + k.shape[2]
        if end > self.max_length:
            raise ValueError(f"KV cache holds {self.max_length} positions, {end} were asked for")
        if k.shape[0] != self.batch_size:
            raise ValueError(f"KV cache has batch size {self.batch_size}, the input has {k.shape[0]}")
        self.keys[layer, :, :, start:end] = k
        self.values[layer, :, :, start:end] = v
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]

    def truncate(self, length: int) -> None:
        """Forget every slot from ``length`` on (the prefix before it stays valid)."""
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot truncate a cache of length {self.length} to {length}")
        self.length = length

    def _derived(self, keys: torch.Tensor, values: torch.Tensor) -> KVCache:
        new = KVCache.__new__(KVCache)
        new.keys, new.values, new.length = keys, values, self.length
        return new

    def repeat(self, repeats: int) -> KVCache:
        """A new cache with each row repeated ``repeats`` times (row i -> rows i*r .. i*r+r-1)."""
        return self._derived(
            self.keys.repeat_interleave(repeats, dim=1), self.values.repeat_interleave(repeats, dim=1)
        )

    def select(self, rows: torch.Tensor | list[int]) -> KVCache:
        """A new cache holding only the given rows (for example the rows still generating)."""
        rows = torch.as_tensor(rows, device=self.keys.device)
        return self._derived(self.keys[:, rows], self.values[:, rows])
