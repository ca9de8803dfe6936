"""The phi-1.5 decoder block with Show-o's QK-Norm, in plain torch.

Parallel block: ``x + attn(ln(x)) + mlp(ln(x))`` with one shared LayerNorm; partial rotary
embedding (neox style) on the first ``rotary_dims`` of each head; biases everywhere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import PhiConfig
from .kv_cache import KVCache


class RotaryEmbedding(nn.Module):
    def __init__(self, dims: int, base: float) -> None:
        super().__init__()
        self.dims, self.base = dims, base
        self.register_buffer("inv_freq", torch.empty(dims // 2), persistent=False)
        self.reset_buffers()

    def reset_buffers(self) -> None:
        exponents = torch.arange(0, self.dims, 2, dtype=torch.float32, device=self.inv_freq.device)
        with torch.no_grad():
            self.inv_freq.copy_(1.0 / (self.base ** (exponents / self.dims)))

    def forward(self, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """position_ids (B, L) -> cos, sin of shape (B, 1, L, dims), in fp32."""
        freqs = position_ids.float()[..., None] * self.inv_freq.float()  # (B, L, dims/2)
        angles = torch.cat((freqs, freqs), dim=-1)[:, None]
        return angles.cos(), angles.sin()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first ``cos.shape[-1]`` features of every head of x (B, H, L, D)."""
    dims = cos.shape[-1]
    rot, rest = x[..., :dims], x[..., dims:]
    rot = (rot * cos.to(x.dtype)) + (_rotate_half(rot) * sin.to(x.dtype))
    return torch.cat((rot, rest), dim=-1)


SHORT_KEYS = 256  # bf16 CPU inference over at most this many keys: see attend


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, causal: bool) -> torch.Tensor:
    """Scaled dot-product attention. Under CPU autocast (``mixed_precision=bf16`` on a CPU) it
    runs in float32: PyTorch's bfloat16 CPU attention kernel took 4x as long as float32 in the
    backward pass of a world-model step (510 ms against 125 ms over 5 steps, torch.profiler).
    Without gradients in bfloat16 on a CPU (bf16 inference), over at most SHORT_KEYS keys, it runs
    as two bfloat16 matmuls around a float32 softmax whose result is rounded to bfloat16, as
    ``transformers``' eager attention does: there PyTorch's bfloat16 CPU attention kernel took
    twice as long (6.4 ms against 3.0 ms for 32 rows x 8 heads x 66 queries x 107 keys), and the
    world model's default sampling 10% longer; over the show-o-256 layout's 387 keys it was 8%
    faster than this (7.3 s against 8.0 s a picture at 2 layers), so longer attention keeps it."""
    if q.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask, is_causal=causal)
        return out.to(torch.get_autocast_dtype("cpu"))
    if (q.device.type == "cpu" and q.dtype == torch.bfloat16 and not torch.is_grad_enabled()
            and k.shape[-2] <= SHORT_KEYS):
        return _attend_bf16_inference(q, k, v, mask, causal)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)


def _attend_bf16_inference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                           causal: bool) -> torch.Tensor:
    scores = (q @ k.transpose(-1, -2)).float().mul_(q.shape[-1] ** -0.5)
    if causal:  # the last query sees every key, as is_causal aligns them
        queries, keys = q.shape[-2], k.shape[-2]
        mask = torch.ones(queries, keys, dtype=torch.bool, device=q.device).tril(keys - queries)
    if mask is not None:
        scores = scores.masked_fill_(~mask, float("-inf")) if mask.dtype == torch.bool else scores.add_(mask)
    return torch.softmax(scores, dim=-1).to(q.dtype) @ v


class Attention(nn.Module):
    def __init__(self, config: PhiConfig) -> None:
        super().__init__()
        d, self.num_heads, self.head_dim = config.hidden_size, config.num_heads, config.head_dim
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)
        norm = nn.LayerNorm if config.qk_norm else (lambda *a, **k: nn.Identity())
        self.q_norm = norm(self.head_dim, eps=config.layer_norm_eps)
        self.k_norm = norm(self.head_dim, eps=config.layer_norm_eps)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, length, _ = x.shape
        return x.view(b, length, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, L, Dh)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor | None,
        cache: KVCache | None,
        layer: int,
        slots: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``slots`` (L,) or (B, L), each row's own: write the new keys/values at these cache
        slots and attend over the whole cache (``KVCache.write``); None appends them after
        ``cache.length``."""
        q = apply_rotary(self.q_norm(self._heads(self.q_proj(x))), *rope)
        k = apply_rotary(self.k_norm(self._heads(self.k_proj(x))), *rope)
        v = self._heads(self.v_proj(x))
        if cache is not None and slots is not None:
            k, v = cache.write(layer, slots, k, v)
        elif cache is not None:
            k, v = cache.update(layer, cache.length, k, v)
        out = attend(q, k, v, mask, causal=mask is None and cache is None)
        b, _, length, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, length, -1))


class MLP(nn.Module):
    def __init__(self, config: PhiConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(gelu(self.fc1(x)))


def gelu(x: torch.Tensor) -> torch.Tensor:
    """phi's GELU, the tanh approximation; in bfloat16 on a CPU outside autocast (bf16 inference) the
    exact erf form, whose CPU kernel runs 4x as fast there (0.6 ms against 2.7 ms on a 2112 x 1024
    tensor). The two forms differ by under 5e-4, below bfloat16's resolution wherever the value is
    above 0.13 and far below it near 0; each is as close to the float32 tanh form (largest error
    0.0078 and 0.0082 on that tensor)."""
    if x.dtype == torch.bfloat16 and x.device.type == "cpu" and not torch.is_autocast_enabled("cpu"):
        return F.gelu(x)
    return F.gelu(x, approximate="tanh")


class Block(nn.Module):
    def __init__(self, config: PhiConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attn = Attention(config)
        self.mlp = MLP(config)

    def forward(self, x, rope, mask, cache, layer, slots=None):
        h = self.norm(x)
        return x + self.attn(h, rope, mask, cache, layer, slots) + self.mlp(h)
