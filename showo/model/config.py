"""Frozen configuration dataclasses with named presets.

Every checkpoint folder written by showo carries a ``config.json`` made from these
classes, so a folder always says which shapes it holds.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .layout import TokenLayout


@dataclass(frozen=True)
class PhiConfig:
    """Hyperparameters of the phi-1.5 style decoder (Show-o adds QK-Norm)."""

    hidden_size: int = 2048
    num_layers: int = 24
    num_heads: int = 32
    intermediate_size: int = 8192
    rotary_fraction: float = 0.5  # rotary on the first half of each head
    rope_base: float = 10000.0
    layer_norm_eps: float = 1e-5
    max_position_embeddings: int = 2048
    qk_norm: bool = True

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})"
            )
        rotary_dims = int(self.head_dim * self.rotary_fraction)
        if rotary_dims % 2:
            raise ValueError(f"rotary dims per head must be even, got {rotary_dims}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def rotary_dims(self) -> int:
        return int(self.head_dim * self.rotary_fraction)

    @classmethod
    def from_hf_dict(cls, d: dict[str, Any], source: str = "config.json") -> PhiConfig:
        """Read the LLM hyperparameters from a Hugging Face phi ``config.json``."""
        required = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
        missing = [k for k in required if k not in d]
        if missing:
            raise ValueError(f"{source}: missing phi fields {missing}")
        rope = d.get("rope_parameters") or {}
        return cls(
            hidden_size=d["hidden_size"],
            num_layers=d["num_hidden_layers"],
            num_heads=d["num_attention_heads"],
            intermediate_size=d["intermediate_size"],
            rotary_fraction=d.get("partial_rotary_factor", rope.get("partial_rotary_factor", 0.5)),
            rope_base=d.get("rope_theta", rope.get("rope_theta", 10000.0)),
            layer_norm_eps=d.get("layer_norm_eps", 1e-5),
            max_position_embeddings=d.get("max_position_embeddings", 2048),
            qk_norm=True,  # Show-o always adds QK-Norm, whatever the base LLM config says
        )


@dataclass(frozen=True)
class MagvitConfig:
    """MAGVIT-v2 image tokenizer; the defaults are the released tokenizer's."""

    channels: int = 128
    encoder_channel_mult: tuple[int, ...] = (1, 2, 2, 4, 4)
    decoder_channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    encoder_blocks: tuple[int, ...] = (4, 3, 4, 3, 4)
    decoder_blocks: tuple[int, ...] = (4, 4, 3, 4, 3)
    z_channels: int = 13
    image_channels: int = 3
    norm_groups: int = 32

    def __post_init__(self) -> None:
        for mult, blocks, side in (
            (self.encoder_channel_mult, self.encoder_blocks, "encoder"),
            (self.decoder_channel_mult, self.decoder_blocks, "decoder"),
        ):
            if len(mult) != len(blocks):
                raise ValueError(
                    f"{side}: {len(mult)} channel multipliers but {len(blocks)} block counts"
                )
        if len(self.encoder_channel_mult) != len(self.decoder_channel_mult):
            raise ValueError("encoder and decoder must have the same number of levels")
        for m in self.encoder_channel_mult + self.decoder_channel_mult:
            if (self.channels * m) % self.norm_groups:
                raise ValueError(
                    f"channels*mult = {self.channels * m} is not divisible by norm_groups={self.norm_groups}"
                )

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.encoder_channel_mult) - 1)

    @property
    def codebook_size(self) -> int:
        return 2**self.z_channels


@dataclass(frozen=True)
class ShowoConfig:
    """A whole Show-o model: the LLM shapes plus the token layout it was trained with."""

    llm: PhiConfig = field(default_factory=PhiConfig)
    text_vocab_size: int = 50295  # len(text tokenizer), before Show-o's special tokens
    bos_id: int = 50256
    eos_id: int = 50256
    codebook_size: int = 8192
    image_size: int = 256
    downsample_factor: int = 16
    max_text_length: int = 128  # text budget of t2i prompts (the task token comes on top)
    clip_vit: bool = False  # the show-o-w-clip-vit variant carries an mm_projector
    clip_hidden_size: int = 1024
    # Not in Show-o: learned row and column embeddings added to every image token (code or
    # [MASK]), so a token knows where it sits in the picture without learning it from rotary
    # phases. Off for the released checkpoints; the world's 30-minute recipe turns it on.
    image_position_embeddings: bool = False

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
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known - {"format"})
        if unknown:
            raise ValueError(f"{source}: unknown ShowoConfig fields {unknown}")
        kwargs = {k: v for k, v in d.items() if k in known}
        if "llm" in kwargs:
            llm_known = {f.name for f in dataclasses.fields(PhiConfig)}
            bad = sorted(set(kwargs["llm"]) - llm_known)
            if bad:
                raise ValueError(f"{source}: unknown llm fields {bad}")
            kwargs["llm"] = PhiConfig(**kwargs["llm"])
        return cls(**kwargs)

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
