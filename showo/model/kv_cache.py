"""A preallocated key/value cache for every layer of the transformer.

Shapes stay static (``max_length`` slots) so the cache works with ``torch.compile``.
``length`` counts the filled slots. Four uses:

* prefill: run the prompt with the cache, slots ``[0, L)`` are written;
* append: run new tokens, they are written after ``length`` and attend to all filled slots;
* a compiled step (``write``): new tokens go to slots given as a tensor (the same for every
  row, or one set per row) and attend over all ``max_length`` slots, the mask hiding the
  unwritten ones. No shape grows and no position is a
  Python int, so one graph (one CUDA graph) serves every step, as in gpt-fast's ``KVCache``;
* reuse of a prefix: ``truncate(n)`` rolls back to the first ``n`` slots so another
  continuation can run on the same prefix, ``repeat(k)`` copies each row for ``k``
  continuations in parallel, ``first_rows(n)`` runs only the first rows on it.
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

    def write(
        self, layer: int, slots: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write ``k, v`` (B, H, L, D) at the cache slots ``slots``; return all ``max_length``
        slots (B, H, max_length, D), written or not: the caller's mask hides the unwritten ones.
        ``length`` is left as it is.

        ``slots``: long, (L,) the same slots for every row, or (B, L) each row's own (a MaskGIT
        step that reuses keys/values runs a different subset of image positions in every row).
        Two tokens of a row written at one slot leave one of them there, unspecified which.
        The slot values are not checked here (that would read them back to the host at every
        step): they must lie in ``[0, max_length)``."""
        batch, heads, length, dims = k.shape
        if batch != self.batch_size:
            raise ValueError(f"KV cache has batch size {self.batch_size}, the input has {batch}")
        if slots.shape not in ((length,), (batch, length)) or slots.dtype != torch.long:
            raise ValueError(f"slots must be a ({length},) long tensor (or ({batch}, {length}): each row's own), "
                             f"one per new token; got {slots.dtype} of shape {tuple(slots.shape)}")
        keys, values = self.keys[layer], self.values[layer]  # (B, H, max_length, D) views
        if slots.dim() == 1:
            keys.index_copy_(2, slots, k)
            values.index_copy_(2, slots, v)
        else:
            index = slots[:, None, :, None].expand(batch, heads, length, dims)
            keys.scatter_(2, index, k)
            values.scatter_(2, index, v)
        return keys, values

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

    def first_rows(self, rows: int) -> KVCache:
        """A cache that shares storage with this one and holds its first ``rows`` rows: writes
        through it land in this cache (the conditional half of a guided batch runs alone)."""
        if not 1 <= rows <= self.batch_size:
            raise ValueError(f"first_rows: rows must lie in [1, {self.batch_size}], got {rows}")
        return self._derived(self.keys[:, :rows], self.values[:, :rows])

    def select(self, rows: torch.Tensor | list[int]) -> KVCache:
        """A new cache holding only the given rows (for example the rows still generating)."""
        rows = torch.as_tensor(rows, device=self.keys.device)
        return self._derived(self.keys[:, rows], self.values[:, rows])
