"""The Show-o transformer: phi-1.5 with QK-Norm over the unified text+image vocabulary.

``forward(ids, attention_mask, position_ids=None, cache=None) -> logits`` is pure: losses
live in the training step and sampling in the generators.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from .config import ShowoConfig
from .image_position import ImagePositionEmbedding
from .kv_cache import KVCache
from .layout import TokenLayout
from .phi import Block, RotaryEmbedding


class ShowoModel(nn.Module):
    def __init__(self, config: ShowoConfig) -> None:
        super().__init__()
        self.config = config
        llm = config.llm
        self.embed = nn.Embedding(config.vocab_size, llm.hidden_size)
        self.image_position = (
            ImagePositionEmbedding(config.image_grid_side, llm.hidden_size, config.layout)
            if config.image_position_embeddings else None
        )
        self.rotary = RotaryEmbedding(llm.rotary_dims, llm.rope_base)
        self.blocks = nn.ModuleList(Block(llm) for _ in range(llm.num_layers))
        self.norm_out = nn.LayerNorm(llm.hidden_size, eps=llm.layer_norm_eps)
        self.lm_head = nn.Linear(llm.hidden_size, config.vocab_size)
        if config.clip_vit:
            # continuous CLIP features -> token embeddings (show-o-w-clip-vit)
            self.mm_projector = nn.Sequential(
                nn.Linear(config.clip_hidden_size, llm.hidden_size),
                nn.GELU(),
                nn.Linear(llm.hidden_size, llm.hidden_size),
            )
        self.gradient_checkpointing = False

    def grow_layers(self, num_layers: int) -> list[int]:
        """Deepen the model to ``num_layers`` blocks without changing what it computes.

        New blocks are spread evenly between the old ones (4 -> 8: after each old block),
        with their attention and MLP output projections at zero, so each adds nothing to the
        residual stream until training moves them. Returns the new blocks' indices."""
        old = len(self.blocks)
        if num_layers <= old:
            raise ValueError(f"grow_layers: the model has {old} layers; asked for {num_layers}, which is not more")
        llm = dataclasses.replace(self.config.llm, num_layers=num_layers)
        kept = {k * num_layers // old: block for k, block in enumerate(self.blocks)}
        added = [i for i in range(num_layers) if i not in kept]
        for i in added:
            block = Block(llm).to(device=self.device, dtype=self.dtype)
            for projection in (block.attn.out_proj, block.mlp.fc2):
                nn.init.zeros_(projection.weight)
                nn.init.zeros_(projection.bias)
            kept[i] = block
        self.blocks = nn.ModuleList(kept[i] for i in range(num_layers))
        self.config = dataclasses.replace(self.config, llm=llm)
        return added

    @property
    def layout(self) -> TokenLayout:
        return self.config.layout

    @property
    def device(self) -> torch.device:
        return self.embed.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.embed.weight.dtype

    def new_cache(self, batch_size: int, max_length: int) -> KVCache:
        llm = self.config.llm
        return KVCache(
            llm.num_layers, batch_size, llm.num_heads, llm.head_dim, max_length, self.dtype, self.device
        )

    def hidden_states(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Final-normalised hidden states (B, L, D); pass ``input_ids`` or ``inputs_embeds``."""
        x = self._embed(input_ids, inputs_embeds)
        batch, length, _ = x.shape
        start = cache.length if cache is not None else 0
        if position_ids is None:
            position_ids = torch.arange(start, start + length, device=x.device).expand(batch, length)
        if attention_mask is None and cache is not None:
            attention_mask = _causal_mask(length, start, x.device)
        attention_mask = self._check_mask(attention_mask, batch, length, start)
        rope = self.rotary(position_ids)
        for i, block in enumerate(self.blocks):
            if self.gradient_checkpointing and self.training:
                x = torch.utils.checkpoint.checkpoint(
                    block, x, rope, attention_mask, cache, i, use_reentrant=False
                )
            else:
                x = block(x, rope, attention_mask, cache, i)
        if cache is not None:
            cache.length = start + length
        return self.norm_out(x)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (B, L, vocab_size). ``attention_mask``: bool (B, 1, L, start + L), True = may attend;
        None means causal."""
        return self.lm_head(self.hidden_states(input_ids, attention_mask, position_ids, cache, inputs_embeds))

    def _embed(self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None) -> torch.Tensor:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        if inputs_embeds is not None:
            return inputs_embeds
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (batch, length), got shape {tuple(input_ids.shape)}")
        self.layout.check_ids(input_ids)
        x = self.embed(input_ids)
        return x if self.image_position is None else x + self.image_position(input_ids)

    @staticmethod
    def _check_mask(mask: torch.Tensor | None, batch: int, length: int, start: int) -> torch.Tensor | None:
        if mask is None:
            return None
        if mask.dtype != torch.bool:
            raise ValueError(f"attention_mask must be boolean (True = may attend), got {mask.dtype}")
        expected = (batch, 1, length, start + length)
        if mask.dim() != 4 or mask.shape[0] not in (1, batch) or tuple(mask.shape[1:]) != expected[1:]:
            raise ValueError(f"attention_mask must have shape {expected}, got {tuple(mask.shape)}")
        return mask

    # -- checkpoints --------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls, path: str | Path, llm_config: str | Path | None = None, dtype: torch.dtype | None = None
    ) -> "ShowoModel":
        """Load a released Show-o folder or one written by :meth:`save_pretrained`.

        ``llm_config``: a folder (or file) with the base LLM's ``config.json`` for released
        folders; without it the phi-1.5 values are used."""
        from .convert import load_showo

        return load_showo(path, llm_config=llm_config, dtype=dtype)

    def save_pretrained(self, path: str | Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` atomically."""
        from .convert import save_showo

        save_showo(self, path)


def _causal_mask(length: int, start: int, device: torch.device) -> torch.Tensor:
    """(1, 1, L, start + L): new token i sees every cached slot and new tokens up to i."""
    rows = torch.arange(length, device=device)[:, None] + start
    cols = torch.arange(start + length, device=device)[None, :]
    return (cols <= rows)[None, None]
