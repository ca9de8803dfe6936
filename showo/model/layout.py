"""The one place that knows where every kind of token lives in Show-o's vocabulary.

Layout: text tokens ``[0, text_vocab_size)``, then the ten special tokens in the released
order, then ``codebook_size`` image codes, then ``[MASK]`` last.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Released order; the first one follows the text vocabulary directly.
SPECIAL_TOKENS: tuple[str, ...] = (
    "[PAD]",
    "<|soi|>",
    "<|eoi|>",
    "<|sov|>",
    "<|eov|>",
    "<|t2i|>",
    "<|mmu|>",
    "<|t2v|>",
    "<|v2v|>",
    "<|lvg|>",
)
MASK_TOKEN = "[MASK]"


@dataclass(frozen=True)
class TokenLayout:
    text_vocab_size: int
    codebook_size: int
    bos_id: int  # <|sot|>: the text tokenizer's BOS
    eos_id: int  # <|eot|>: the text tokenizer's EOS

    def __post_init__(self) -> None:
        for name in ("text_vocab_size", "codebook_size", "bos_id", "eos_id"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
        if self.text_vocab_size <= 0 or self.codebook_size <= 0:
            raise ValueError(
                f"text_vocab_size and codebook_size must be positive, got "
                f"{self.text_vocab_size} and {self.codebook_size}"
            )
        for name in ("bos_id", "eos_id"):
            value = getattr(self, name)
            if not 0 <= value < self.text_vocab_size:
                raise ValueError(f"{name}={value} is outside the text vocabulary [0, {self.text_vocab_size})")

    def special_id(self, token: str) -> int:
        try:
            return self.text_vocab_size + SPECIAL_TOKENS.index(token)
        except ValueError:
            raise ValueError(f"unknown special token {token!r}; known: {SPECIAL_TOKENS}") from None

    @property
    def pad_id(self) -> int:
        return self.text_vocab_size

    @property
    def soi_id(self) -> int:
        return self.special_id("<|soi|>")

    @property
    def eoi_id(self) -> int:
        return self.special_id("<|eoi|>")

    @property
    def t2i_id(self) -> int:
        return self.special_id("<|t2i|>")

    @property
    def mmu_id(self) -> int:
        return self.special_id("<|mmu|>")

    @property
    def lvg_id(self) -> int:
        return self.special_id("<|lvg|>")

    @property
    def sot_id(self) -> int:
        return self.bos_id

    @property
    def eot_id(self) -> int:
        return self.eos_id

    @property
    def image_offset(self) -> int:
        """Id of image code 0."""
        return self.text_vocab_size + len(SPECIAL_TOKENS)

    @property
    def mask_id(self) -> int:
        return self.image_offset + self.codebook_size

    @property
    def vocab_size(self) -> int:
        return self.mask_id + 1

    def image_ids(self, codes: torch.Tensor) -> torch.Tensor:
        """Image codes -> token ids."""
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise ValueError(
                f"image codes must lie in [0, {self.codebook_size}), got "
                f"[{int(codes.min())}, {int(codes.max())}]"
            )
        return codes + self.image_offset

    def image_codes(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids of image codes -> codes (ids outside the code range raise)."""
        if ids.numel() and not self.is_image_code(ids).all():
            raise ValueError(
                f"expected image-code ids in [{self.image_offset}, {self.mask_id}), got "
                f"[{int(ids.min())}, {int(ids.max())}]"
            )
        return ids - self.image_offset

    def is_image_code(self, ids: torch.Tensor) -> torch.Tensor:
        return (ids >= self.image_offset) & (ids < self.mask_id)

    def is_image_slot(self, ids: torch.Tensor) -> torch.Tensor:
        """Image codes and [MASK]: every id that may stand in a picture's place."""
        return (ids >= self.image_offset) & (ids <= self.mask_id)

    def check_ids(self, ids: torch.Tensor) -> None:
        """Raise a clear error for ids outside the vocabulary."""
        if ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"input ids must be an integer tensor, got {ids.dtype}")
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.vocab_size):
            bad = ids[(ids < 0) | (ids >= self.vocab_size)]
            raise ValueError(
                f"input ids outside the vocabulary [0, {self.vocab_size}): "
                f"{bad[:8].tolist()}{' ...' if bad.numel() > 8 else ''}"
            )
