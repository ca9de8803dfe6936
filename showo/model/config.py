"""Frozen configuration dataclasses with named presets.

Every checkpoint folder written by showo carries a ``config.json`` made from these
classes, so a folder always says which shapes it holds.

Every field is checked by type and range when a config is built, and the fields that must agree
are checked together (``hidden_size`` divisible by ``num_heads``, even rotary dims,
``image_size`` a multiple of a power-of-two ``downsample_factor``, a text-to-image sequence
within ``max_position_embeddings``, ...); each error names the file (``from_dict``'s
``source``), the field, what it must be and what it got (``showo.model.validation``).
Upper bounds: sizes at most ``MAX_SIZE`` (2**31 - 1); the MAGVIT-v2 tokenizer, which is
built whole before its weights are checked, at most ``MAX_WIDTH`` channels in a level (8x the
released tokenizer's), ``MAX_LEVELS`` levels, ``MAX_BLOCKS`` blocks a level and
``MAX_Z_CHANNELS`` bits a code (its code table holds 2**z_channels rows).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, Strict

from .layout import TokenLayout
from .validation import MAX_SIZE, Bool, Fraction, NonNegativeInt, PositiveFloat, Size, build, config_dataclass

MAX_WIDTH = 4096
MAX_LEVELS = 8
MAX_BLOCKS = 32
MAX_Z_CHANNELS = 20

# Hugging Face phi ``config.json`` names of PhiConfig's fields (for errors about such a file).
HF_PHI_NAMES = {
    "hidden_size": "hidden_size", "num_layers": "num_hidden_layers", "num_heads": "num_attention_heads",
    "intermediate_size": "intermediate_size", "rotary_fraction": "partial_rotary_factor",
    "rope_base": "rope_theta", "layer_norm_eps": "layer_norm_eps", "max_position_embeddings": "max_position_embeddings",
}


@config_dataclass
class PhiConfig:
    """Hyperparameters of the phi-1.5 style decoder (Show-o adds QK-Norm)."""

    hidden_size: Size = 2048
    num_layers: Size = 24
    num_heads: Size = 32
    intermediate_size: Size = 8192
    rotary_fraction: Fraction = 0.5  # rotary on the first half of each head
    rope_base: PositiveFloat = 10000.0
    layer_norm_eps: PositiveFloat = 1e-5
    max_position_embeddings: Size = 2048
    qk_norm: Bool = True

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})"
            )
        if self.rotary_dims % 2:
            raise ValueError(
                f"rotary dims per head must be even, got {self.rotary_dims} "
                f"(head_dim {self.head_dim} x rotary_fraction {self.rotary_fraction})"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def rotary_dims(self) -> int:
        return int(self.head_dim * self.rotary_fraction)

    @classmethod
    def from_hf_dict(cls, d: dict[str, Any], source: str = "config.json") -> PhiConfig:
        """Read the LLM hyperparameters from a Hugging Face phi ``config.json``."""
        if not isinstance(d, dict):
            raise ValueError(f"{source}: expected a JSON object of phi fields, got {type(d).__name__}")
        required = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
        missing = [k for k in required if k not in d]
        if missing:
            raise ValueError(f"{source}: missing phi fields {missing}")
        rope = d.get("rope_parameters") or {}
        if not isinstance(rope, dict):
            raise ValueError(f"{source}: rope_parameters must be a JSON object, got {type(rope).__name__}")
        # The four required fields as given; an optional one given as null counts as absent (newer
        # transformers move the rotary fields into rope_parameters).
        values = {ours: d[theirs] for ours, theirs in HF_PHI_NAMES.items()
                  if theirs in required or d.get(theirs) is not None}
        values.setdefault("rotary_fraction", rope.get("partial_rotary_factor", 0.5))
        values.setdefault("rope_base", rope.get("rope_theta", 10000.0))
        # Show-o always adds QK-Norm, whatever the base LLM config says
        return build(cls, {**values, "qk_norm": True}, source, aliases=HF_PHI_NAMES)


Width = Annotated[int, Strict(), Field(ge=1, le=MAX_WIDTH)]
Levels = Annotated[tuple[Annotated[int, Strict(), Field(ge=1, le=MAX_WIDTH)], ...],
                   Field(min_length=1, max_length=MAX_LEVELS)]
Blocks = Annotated[tuple[Annotated[int, Strict(), Field(ge=1, le=MAX_BLOCKS)], ...],
                   Field(min_length=1, max_length=MAX_LEVELS)]


@config_dataclass
class MagvitConfig:
    """MAGVIT-v2 image tokenizer; the defaults are the released tokenizer's."""

    channels: Width = 128
    encoder_channel_mult: Levels = (1, 2, 2, 4, 4)
    decoder_channel_mult: Levels = (1, 1, 2, 2, 4)
    encoder_blocks: Blocks = (4, 3, 4, 3, 4)
    decoder_blocks: Blocks = (4, 4, 3, 4, 3)
    z_channels: Annotated[int, Strict(), Field(ge=1, le=MAX_Z_CHANNELS)] = 13
    image_channels: Annotated[int, Strict(), Field(ge=1, le=16)] = 3
    norm_groups: Width = 32

    def __post_init__(self) -> None:
        for mult, blocks, side in (
            (self.encoder_channel_mult, self.encoder_blocks, "encoder"),
            (self.decoder_channel_mult, self.decoder_blocks, "decoder"),
        ):
            if len(mult) != len(blocks):
                raise ValueError(
                    f"{side}_channel_mult has {len(mult)} levels but {side}_blocks has {len(blocks)}"
                )
        if len(self.encoder_channel_mult) != len(self.decoder_channel_mult):
            raise ValueError(
                f"encoder_channel_mult and decoder_channel_mult must have the same number of levels, got "
                f"{len(self.encoder_channel_mult)} and {len(self.decoder_channel_mult)}"
            )
        for m in (1, *self.encoder_channel_mult, *self.decoder_channel_mult):
            width = self.channels * m
            if width > MAX_WIDTH:
                raise ValueError(f"channels * mult = {width} is over {MAX_WIDTH} channels a level")
            if width % self.norm_groups:
                raise ValueError(f"channels*mult = {width} is not divisible by norm_groups={self.norm_groups}")

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.encoder_channel_mult) - 1)

    @property
    def codebook_size(self) -> int:
        return 2**self.z_channels


@config_dataclass
class ShowoConfig:
    """A whole Show-o model: the LLM shapes plus the token layout it was trained with."""

    llm: PhiConfig = field(default_factory=PhiConfig)
    text_vocab_size: Size = 50295  # len(text tokenizer), before Show-o's special tokens
    bos_id: NonNegativeInt = 50256
    eos_id: NonNegativeInt = 50256
    codebook_size: Size = 8192
    image_size: Size = 256
    downsample_factor: Size = 16
    # text budget of t2i prompts (the task token comes on top); <sot>, <eot> and one token at least
    max_text_length: Annotated[int, Strict(), Field(ge=3, le=MAX_SIZE)] = 128
    clip_vit: Bool = False  # the show-o-w-clip-vit variant carries an mm_projector
    clip_hidden_size: Size = 1024
    # Not in Show-o: learned row and column embeddings added to every image token (code or
    # [MASK]), so a token knows where it sits in the picture without learning it from rotary
    # phases. Off for the released checkpoints; the world's 30-minute recipe turns it on.
    image_position_embeddings: Bool = False

    def __post_init__(self) -> None:
        for name in ("bos_id", "eos_id"):
            if getattr(self, name) >= self.text_vocab_size:
                raise ValueError(f"{name} ({getattr(self, name)}) must be < text_vocab_size ({self.text_vocab_size})")
        if self.downsample_factor & (self.downsample_factor - 1):
            raise ValueError(f"downsample_factor must be a power of two, got {self.downsample_factor}")
        if self.image_size % self.downsample_factor:
            raise ValueError(
                f"image_size ({self.image_size}) must be a multiple of downsample_factor ({self.downsample_factor})"
            )
        t2i = self.max_text_length + 1 + self.num_image_tokens + 2
        if t2i > self.llm.max_position_embeddings:
            raise ValueError(
                f"a text-to-image sequence (max_text_length {self.max_text_length} + 1 + {self.num_image_tokens} "
                f"image tokens + 2 = {t2i}) must fit llm.max_position_embeddings ({self.llm.max_position_embeddings})"
            )

    @property
    def layout(self) -> TokenLayout:
        return TokenLayout(self.text_vocab_size, self.codebook_size, self.bos_id, self.eos_id)

    @property
    def vocab_size(self) -> int:
        return self.layout.vocab_size

    @property
    def image_grid_side(self) -> int:
        return self.image_size // self.downsample_factor

    @property
    def num_image_tokens(self) -> int:
        return self.image_grid_side**2

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config.json") -> ShowoConfig:
        """Build from a ``config.json`` object (its ``"format"`` key is ignored); every bad field is
        named in one ``ValueError`` that starts with ``source``."""
        if not isinstance(d, dict):
            raise ValueError(f"{source}: expected a JSON object of ShowoConfig fields, got {type(d).__name__}")
        return build(cls, {k: v for k, v in d.items() if k != "format"}, source)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"format": "showo", **self.to_dict()}, indent=2) + "\n")


def _tiny_llm() -> PhiConfig:
    return PhiConfig(
        hidden_size=64, num_layers=2, num_heads=4, intermediate_size=256, max_position_embeddings=512
    )


SHOWO_PRESETS: dict[str, ShowoConfig] = {
    "show-o-256": ShowoConfig(),
    "show-o-512": ShowoConfig(image_size=512),
    # tiny: used by the tests and the built-in world; 64x64 images, 8x8 tokens, 1024 codes
    "tiny": ShowoConfig(
        llm=_tiny_llm(),
        text_vocab_size=512,
        bos_id=0,
        eos_id=0,
        codebook_size=1024,
        image_size=64,
        downsample_factor=8,
        max_text_length=32,
    ),
    # world: the shipped model of the built-in world (showo/weights/world)
    "world": ShowoConfig(
        llm=PhiConfig(hidden_size=256, num_layers=4, num_heads=8, intermediate_size=1024,
                      max_position_embeddings=512),
        text_vocab_size=400,
        bos_id=0,
        eos_id=0,
        codebook_size=1024,
        image_size=64,
        downsample_factor=8,
        max_text_length=40,
    ),
}

MAGVIT_PRESETS: dict[str, MagvitConfig] = {
    "magvitv2": MagvitConfig(),
    # world: the shipped tokenizer of the built-in world (64x64 -> 8x8 codes of 1024)
    "world": MagvitConfig(
        channels=16,
        encoder_channel_mult=(1, 2, 2, 4),
        decoder_channel_mult=(1, 2, 2, 4),
        encoder_blocks=(1, 1, 1, 1),
        decoder_blocks=(1, 1, 1, 1),
        z_channels=10,
        norm_groups=8,
    ),
    "tiny": MagvitConfig(
        channels=32,
        encoder_channel_mult=(1, 2, 2, 4),
        decoder_channel_mult=(1, 2, 2, 4),
        encoder_blocks=(1, 1, 1, 1),
        decoder_blocks=(1, 1, 1, 1),
        z_channels=10,
    ),
}


def _lookup(presets: dict[str, Any], name: str, kind: str) -> Any:
    try:
        return presets[name]
    except KeyError:
        raise ValueError(f"unknown {kind} preset {name!r}; choose one of {sorted(presets)}") from None


def showo_preset(name: str) -> ShowoConfig:
    return _lookup(SHOWO_PRESETS, name, "Show-o")


def magvit_preset(name: str) -> MagvitConfig:
    return _lookup(MAGVIT_PRESETS, name, "MAGVIT-v2")
