"""The Show-o transformer: phi-1.5 with QK-Norm over the unified text+image vocabulary.

``forward(ids, attention_mask, position_ids=None, cache=None) -> logits`` is pure: losses
live in the training step and sampling in the generators.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from .checkpoint_io import atomic_write, check_state_dict, find_weight_file, replace_folder, save_safetensors
from .config import ShowoConfig
from .hub import LLM_CONFIG_FILES, MODEL_FILES, resolve_folder
from .kv_cache import KVCache
from .layout import TokenLayout
from .phi import Block, RotaryEmbedding
from .released_checkpoint import read_checkpoint

# -- learned image positions (not in Show-o; ShowoConfig.image_position_embeddings) ------------

def image_token_index(ids: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    """(B, L) -> index of each token in its image block (0 .. N-1), -1 outside images."""
    in_image = layout.is_image_slot(ids)
    positions = torch.arange(ids.shape[-1], device=ids.device).expand_as(ids)
    last_outside = torch.where(in_image, torch.full_like(positions, -1), positions).cummax(dim=-1).values
    return torch.where(in_image, positions - last_outside - 1, torch.full_like(positions, -1))


class ImagePositionEmbedding(nn.Module):
    """A learned row and a learned column embedding added to every token of an image block.

    Show-o's image tokens know their place in the picture only through 1-D rotary phases,
    which a model learns to read slowly. An image block is a run of image-code or ``[MASK]``
    ids; its k-th token sits at row ``k // side``, column ``k % side``. The block must come
    whole in one forward call, as it does in every Show-o layout (the text prefix may be
    cached; the ``<soi> image <eoi>`` segment always runs together)."""

    def __init__(self, grid_side: int, hidden_size: int, layout: TokenLayout) -> None:
        super().__init__()
        self.grid_side, self.layout = grid_side, layout
        self.rows = nn.Embedding(grid_side, hidden_size)
        self.cols = nn.Embedding(grid_side, hidden_size)
        for table in (self.rows, self.cols):  # row + column together have the token embeddings' scale
            nn.init.normal_(table.weight, std=2**-0.5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, L) ids -> (B, L, D): the row + column embedding of image tokens, zero elsewhere."""
        index = image_token_index(ids, self.layout)
        in_image = index >= 0
        cell = index.clamp(min=0) % (self.grid_side**2)
        added = self.rows(cell // self.grid_side) + self.cols(cell % self.grid_side)
        return added * in_image[..., None].to(added.dtype)


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
        # The id range is checked where ids enter (generators, training rows), not here: a check
        # in the forward pass would read the ids back to the host at every decoding step.
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
        cls,
        path: str | Path,
        llm_config: str | Path | None = None,
        dtype: torch.dtype | None = None,
        *,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
    ) -> ShowoModel:
        """Load a released Show-o folder or one written by :meth:`save_pretrained`.

        ``path``: a local folder, or a Hugging Face Hub id (``"showlab/show-o"``) resolved through
        the Hugging Face cache (``showo.model.hub.resolve_folder``: a local folder of that name
        wins; only ``config.json`` and the weights are fetched). ``revision`` (branch, tag or
        commit hash of ``path``), ``cache_dir`` (default ``HF_HUB_CACHE``), ``local_files_only``
        (no download; ``HF_HUB_OFFLINE=1`` does the same) and ``token`` apply to Hub ids.

        ``llm_config``: a folder (or file) with the base LLM's ``config.json`` for released
        folders, or its Hub id (``"microsoft/phi-1_5"``, read at its default branch); without it
        the phi-1.5 values are used."""
        hub = dict(cache_dir=cache_dir, local_files_only=local_files_only, token=token)
        path = resolve_folder(path, revision=revision, allow_patterns=MODEL_FILES, **hub)
        if llm_config is not None:
            llm_config = resolve_folder(llm_config, allow_patterns=LLM_CONFIG_FILES, **hub)
        config, state = read_checkpoint(path, llm_config)
        with torch.device("meta"):  # shapes only: every parameter is replaced by a loaded tensor
            model = cls(config)
        expected = {k: v.shape for k, v in model.state_dict().items()}
        check_state_dict(state, expected, str(find_weight_file(path)))
        model.load_state_dict(state, strict=True, assign=True)
        model.rotary.to_empty(device="cpu")
        model.rotary.reset_buffers()  # not part of the state dict
        if dtype is not None:
            model.to(dtype)
        return model.eval()

    def save_pretrained(self, path: str | Path, overwrite: bool = False) -> None:
        """Write ``config.json`` and ``model.safetensors`` as a new folder, published whole.

        ``path`` must be new or empty, or a folder showo wrote with ``overwrite=True``."""
        replace_folder(path, self.write_to, overwrite)

    def write_to(self, folder: str | Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` into ``folder``, each file atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / "config.json", self.config.save)
        save_safetensors(self.state_dict(), folder / "model.safetensors")


def _causal_mask(length: int, start: int, device: torch.device) -> torch.Tensor:
    """(1, 1, L, start + L): new token i sees every cached slot and new tokens up to i."""
    rows = torch.arange(length, device=device)[:, None] + start
    cols = torch.arange(start + length, device=device)[None, :]
    return (cols <= rows)[None, None]


def check_compatible(model: ShowoModel, vq, tokenizer) -> None:
    """The checkpoint, the image tokenizer (``MagvitV2``) and the text tokenizer must share one
    vocabulary."""
    config = model.config
    problems = []
    if tokenizer.text_vocab_size != config.text_vocab_size:
        problems.append(f"text tokenizer has {tokenizer.text_vocab_size} ids, the checkpoint {config.text_vocab_size}")
    if (tokenizer.bos_id, tokenizer.eos_id) != (config.bos_id, config.eos_id):
        problems.append(f"BOS/EOS ids {tokenizer.bos_id}/{tokenizer.eos_id} differ from the checkpoint's "
                        f"{config.bos_id}/{config.eos_id}")
    if vq.config.codebook_size != config.codebook_size:
        problems.append(f"image tokenizer has {vq.config.codebook_size} codes, the checkpoint {config.codebook_size}")
    if vq.config.downsample_factor != config.downsample_factor:
        problems.append(f"image tokenizer downsamples by {vq.config.downsample_factor}, "
                        f"the checkpoint expects {config.downsample_factor}")
    if problems:
        raise ValueError("the model, image tokenizer and text tokenizer do not fit together: " + "; ".join(problems))
