"""Show-o checkpoints: the released folder layout and ours, through one explicit key map.

Released folder: ``config.json`` (``llm_vocab_size``, ``codebook_size``, ``num_vq_tokens``,
``w_clip_vit``, ...) and ``pytorch_model.safetensors`` or ``pytorch_model.bin`` with keys
``showo.model.layers.{i}.self_attn.q_proj.weight``, ... The LLM's own hyperparameters live in
the base LLM's ``config.json`` (phi-1.5 values when none is given).

Our folder: ``config.json`` (``"format": "showo"`` + :class:`ShowoConfig`) and ``model.safetensors``.

Either config is checked field by field when read (``showo.model.validation``): an error names
the file, the field (in that file's own names), what it must be and what it got.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from pydantic import ConfigDict
from pydantic.dataclasses import dataclass

from .checkpoint_io import find_weight_file, iter_state_dict, load_state_dict, read_json
from .config import PhiConfig, ShowoConfig
from .layout import SPECIAL_TOKENS
from .validation import Bool, Int, NonNegativeInt, Size, build

# released prefix -> our prefix, one explicit map used in both directions; {i} is a layer index.
# mm_projector.{0,2} (CLIP-ViT variant) keeps its released name.
KEY_MAP: tuple[tuple[str, str], ...] = (
    ("showo.model.embed_tokens.", "embed."),
    ("showo.model.layers.{i}.input_layernorm.", "blocks.{i}.norm."),
    ("showo.model.layers.{i}.self_attn.q_proj.", "blocks.{i}.attn.q_proj."),
    ("showo.model.layers.{i}.self_attn.k_proj.", "blocks.{i}.attn.k_proj."),
    ("showo.model.layers.{i}.self_attn.v_proj.", "blocks.{i}.attn.v_proj."),
    ("showo.model.layers.{i}.self_attn.dense.", "blocks.{i}.attn.out_proj."),
    ("showo.model.layers.{i}.self_attn.q_layernorm.", "blocks.{i}.attn.q_norm."),
    ("showo.model.layers.{i}.self_attn.k_layernorm.", "blocks.{i}.attn.k_norm."),
    ("showo.model.layers.{i}.mlp.", "blocks.{i}.mlp."),
    ("showo.model.final_layernorm.", "norm_out."),
    ("showo.lm_head.", "lm_head."),
)
# buffers some exports carry that hold no learned state (rotary frequencies are recomputed)
IGNORED_RELEASED_KEYS = re.compile(r"rotary_emb\.inv_freq$")

PHI_1_5_EOS = 50256


def _prefix_pattern(prefix: str) -> re.Pattern:
    return re.compile("^" + re.escape(prefix).replace(re.escape("{i}"), r"(?P<i>\d+)"))


def _rename(key: str, pairs: tuple[tuple[str, str], ...]) -> str:
    for source, target in pairs:
        match = _prefix_pattern(source).match(key)
        if match:
            layer = match.groupdict().get("i")
            return target.replace("{i}", layer or "") + key[match.end() :]
    return key  # unknown keys are kept, so the key check reports them


def released_to_ours(
    state: Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]],
) -> dict[str, torch.Tensor]:
    """Rename released keys to ours (dropping buffers that hold no learned state). ``state``: a dict,
    or ``(name, tensor)`` pairs as ``iter_state_dict`` streams them from a file."""
    pairs = state.items() if isinstance(state, Mapping) else state
    return {_rename(k, KEY_MAP): v for k, v in pairs if not IGNORED_RELEASED_KEYS.search(k)}


def ours_to_released(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse map, to hand weights back to the released code."""
    inverse = tuple((ours, released) for released, ours in KEY_MAP)
    return {_rename(k, inverse): v for k, v in state.items()}


@dataclass(frozen=True, config=ConfigDict(extra="ignore"))  # a diffusers config holds many other keys
class ReleasedFields:
    """The fields of a released Show-o ``config.json`` that showo reads."""

    llm_vocab_size: Size
    codebook_size: Size
    num_vq_tokens: Size
    num_new_special_tokens: Int = len(SPECIAL_TOKENS)
    w_clip_vit: Bool | None = False
    vocab_size: Int | None = None
    mask_token_id: Int | None = None


@dataclass(frozen=True, config=ConfigDict(extra="ignore"))
class HFTokenIds:
    """BOS and EOS of a Hugging Face LLM ``config.json`` (null: phi-1.5's)."""

    bos_token_id: NonNegativeInt | None = None
    eos_token_id: NonNegativeInt | None = None


def released_config(d: dict[str, Any], llm_config: str | Path | None, source: str) -> ShowoConfig:
    """ShowoConfig from a released ``config.json`` plus the base LLM's config (or phi-1.5's)."""
    if not isinstance(d, dict):
        raise ValueError(f"{source}: expected a JSON object, got {type(d).__name__}")
    for key in ("llm_vocab_size", "codebook_size", "num_vq_tokens"):
        if key not in d:
            raise ValueError(f"{source}: missing field {key!r} of a released Show-o config")
    released = build(ReleasedFields, d, source)
    if released.num_new_special_tokens != len(SPECIAL_TOKENS):
        raise ValueError(
            f"{source}: num_new_special_tokens is {released.num_new_special_tokens}, expected {len(SPECIAL_TOKENS)}"
        )
    side = math.isqrt(released.num_vq_tokens)
    if side * side != released.num_vq_tokens:
        raise ValueError(f"{source}: num_vq_tokens={released.num_vq_tokens} is not a square grid")
    llm, bos, eos = PhiConfig(), PHI_1_5_EOS, PHI_1_5_EOS
    if llm_config is not None:
        llm_path = Path(llm_config)
        llm_path = llm_path / "config.json" if llm_path.is_dir() else llm_path
        llm_dict = read_json(llm_path)
        llm = PhiConfig.from_hf_dict(llm_dict, str(llm_path))
        ids = build(HFTokenIds, llm_dict, str(llm_path))
        bos = ids.bos_token_id if ids.bos_token_id is not None else bos
        eos = ids.eos_token_id if ids.eos_token_id is not None else eos
        source = f"{source} with the LLM config {llm_path}"
    config = build(ShowoConfig, dict(
        llm=llm,
        text_vocab_size=released.llm_vocab_size,
        bos_id=bos,
        eos_id=eos,
        codebook_size=released.codebook_size,
        image_size=side * 16,
        downsample_factor=16,
        clip_vit=bool(released.w_clip_vit),
    ), source)
    for key, ours in (("vocab_size", config.vocab_size), ("mask_token_id", config.layout.mask_id)):
        theirs = getattr(released, key)
        if theirs is not None and theirs != ours:
            raise ValueError(f"{source}: {key} is {theirs}, but the token layout gives {ours}")
    return config


def read_checkpoint(
    path: str | Path, llm_config: str | Path | None = None, dtype: torch.dtype | None = None
) -> tuple[ShowoConfig, dict[str, torch.Tensor]]:
    """Config and weights (in our key names) of a released or showo folder; the config is read
    and checked before any weights. ``dtype``: floating-point weights are converted to it tensor
    by tensor as they are read (``checkpoint_io.iter_state_dict``); None keeps the stored precision."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a checkpoint folder")
    config_path = folder / "config.json"
    d = read_json(config_path)
    weights = find_weight_file(folder)
    if d.get("format") == "showo":
        return ShowoConfig.from_dict(d, str(config_path)), load_state_dict(weights, dtype)
    config = released_config(d, llm_config, str(config_path))
    return config, released_to_ours(iter_state_dict(weights, dtype))
