"""The Show-o transformer: phi-1.5 with QK-Norm over the unified text+image vocabulary.

``forward(ids, attention_mask, position_ids=None, cache=None) -> logits`` is pure: losses
live in the training step and sampling in the generators.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from .adapters import base_state_dict
from .checkpoint_io import atomic_write, check_state_dict, find_weight_file, replace_folder, save_safetensors
from .config import ShowoConfig
from .hub import LLM_CONFIG_FILES, MODEL_FILES, resolve_folder
from .kv_cache import KVCache
from .layout import TokenLayout
from .phi import Block, RotaryEmbedding
from .precision import resolve_dtype
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
    cached; the ``<soi> image <eoi>`` segment runs together), or its cells must be given."""

    def __init__(self, grid_side: int, hidden_size: int, layout: TokenLayout) -> None:
        super().__init__()
        self.grid_side, self.layout = grid_side, layout
        self.rows = nn.Embedding(grid_side, hidden_size)
        self.cols = nn.Embedding(grid_side, hidden_size)
        for table in (self.rows, self.cols):  # row + column together have the token embeddings' scale
            nn.init.normal_(table.weight, std=2**-0.5)

    def forward(self, ids: torch.Tensor, cells: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) ids -> (B, L, D): the row + column embedding of image tokens, zero elsewhere.

        ``cells`` (B, L) long: each token's index in its image (row-major), for ids that are not
        a contiguous block, such as the positions of an image gathered for a MaskGIT step that
        reuses the others' keys/values; read only where the id is an image slot."""
        if cells is None:
            index = image_token_index(ids, self.layout)
        else:
            if not isinstance(cells, torch.Tensor) or cells.shape != ids.shape or cells.dtype != torch.long:
                got = f"{cells.dtype} of shape {tuple(cells.shape)}" if isinstance(cells, torch.Tensor) else cells
                raise ValueError(f"image_cells must be a long tensor of the ids' shape {tuple(ids.shape)}, got {got}")
            index = torch.where(self.layout.is_image_slot(ids), cells, torch.full_like(cells, -1))
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
        cache_slots: torch.Tensor | None = None,
        image_cells: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Final-normalised hidden states (B, L, D); pass ``input_ids`` or ``inputs_embeds``.

        With a ``cache`` the new tokens are appended after ``cache.length`` and attend to slots
        ``[0, cache.length + L)``. With ``cache_slots`` (L,) long as well, they are written at
        those slots instead and attend over all ``cache.max_length`` slots (``attention_mask``
        (B, 1, L, max_length) hides the unwritten ones; by default a token sees the slots up to
        its own), ``cache.length`` untouched: a decoding step then keeps its shapes from step to
        step and reads no position back to the host, so a compiled step is one graph.
        ``cache_slots`` (B, L) gives each row its own slots (and, by default, rotary positions).

        ``image_cells`` (B, L): each image token's cell in its picture, for the learned image
        positions (``ImagePositionEmbedding``) when the image tokens are not one contiguous block."""
        x = self._embed(input_ids, inputs_embeds, image_cells)
        batch, length, _ = x.shape
        position_ids, attention_mask = self._positions_and_mask(
            cache, cache_slots, position_ids, attention_mask, batch, length, x.device
        )
        rope = self.rotary(position_ids)
        for i, block in enumerate(self.blocks):
            if self.gradient_checkpointing and self.training:
                x = torch.utils.checkpoint.checkpoint(
                    block, x, rope, attention_mask, cache, i, cache_slots, use_reentrant=False
                )
            else:
                x = block(x, rope, attention_mask, cache, i, cache_slots)
        if cache is not None and cache_slots is None:
            cache.length += length
        return self.norm_out(x)

    def _positions_and_mask(
        self,
        cache: KVCache | None,
        slots: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        mask: torch.Tensor | None,
        batch: int,
        length: int,
        device: torch.device,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The rotary positions (default: the new tokens' cache slots) and the checked mask
        (default with a cache: causal over the slots) of ``hidden_states``."""
        if slots is not None:
            if cache is None:
                raise ValueError("cache_slots needs a cache to write into")
            if not isinstance(slots, torch.Tensor) or slots.shape not in ((length,), (batch, length)):
                got = tuple(slots.shape) if isinstance(slots, torch.Tensor) else type(slots).__name__
                raise ValueError(f"cache_slots must be a ({length},) tensor (or ({batch}, {length}): each row's own), "
                                 f"one slot per new token, got {got}")
            new, columns = slots, cache.max_length
        else:
            start = cache.length if cache is not None else 0
            new, columns = torch.arange(start, start + length, device=device), start + length
        if position_ids is None:
            position_ids = new.expand(batch, length)
        if mask is None and cache is not None:
            visible = torch.arange(columns, device=device) <= new[..., None]  # ([B,] L, columns)
            mask = visible.view(-1, 1, length, columns)  # (1 or B, 1, L, columns)
        return position_ids, self._check_mask(mask, batch, length, columns)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        cache_slots: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (B, L, vocab_size). ``attention_mask``: bool (B, 1, L, start + L), True = may attend;
        None means causal. ``cache_slots``: see ``hidden_states``."""
        hidden = self.hidden_states(input_ids, attention_mask, position_ids, cache, inputs_embeds, cache_slots)
        return self.lm_head(hidden)

    def _embed(
        self,
        input_ids: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
        image_cells: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        if inputs_embeds is not None:
            return inputs_embeds
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (batch, length), got shape {tuple(input_ids.shape)}")
        # The id range is checked where ids enter (generators, training rows), not here: a check
        # in the forward pass would read the ids back to the host at every decoding step.
        x = self.embed(input_ids)
        return x if self.image_position is None else x + self.image_position(input_ids, image_cells)

    @staticmethod
    def _check_mask(mask: torch.Tensor | None, batch: int, length: int, columns: int) -> torch.Tensor | None:
        if mask is None:
            return None
        if mask.dtype != torch.bool:
            raise ValueError(f"attention_mask must be boolean (True = may attend), got {mask.dtype}")
        expected = (batch, 1, length, columns)
        if mask.dim() != 4 or mask.shape[0] not in (1, batch) or tuple(mask.shape[1:]) != expected[1:]:
            raise ValueError(f"attention_mask must have shape {expected}, got {tuple(mask.shape)}")
        return mask

    # -- checkpoints --------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        llm_config: str | Path | None = None,
        dtype: torch.dtype | str | None = None,
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
        the phi-1.5 values are used.

        ``dtype``: None keeps the precision the weights are stored in; a ``torch.dtype`` or a name
        (``"bf16"``, ``"fp32"``, ``"fp16"``; ``"auto"`` as ``showo.model.precision.resolve_dtype``
        picks it for the CPU, where the model loads) converts them tensor by tensor as they are
        read, so the stored precision is never held whole (``checkpoint_io.iter_state_dict``)."""
        dtype = resolve_dtype(dtype, "cpu")  # a bad value is refused before anything is read
        hub = dict(cache_dir=cache_dir, local_files_only=local_files_only, token=token)
        path = resolve_folder(path, revision=revision, allow_patterns=MODEL_FILES, **hub)
        if llm_config is not None:
            llm_config = resolve_folder(llm_config, allow_patterns=LLM_CONFIG_FILES, **hub)
        config, state = read_checkpoint(path, llm_config, dtype)
        with torch.device("meta"):  # shapes only: every parameter is replaced by a loaded tensor
            model = cls(config)
        expected = {k: v.shape for k, v in model.state_dict().items()}
        check_state_dict(state, expected, str(find_weight_file(path)))
        model.load_state_dict(state, strict=True, assign=True)
        model.rotary.to_empty(device="cpu")
        model.rotary.reset_buffers()  # not part of the state dict
        if dtype is not None:
            model.to(dtype)  # the buffers that are not in the file; the weights already are
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
        save_safetensors(base_state_dict(self), folder / "model.safetensors")  # an adapter only merged


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
