"""Token-grid operations for text-guided inpainting and extrapolation (the paper's "Text-guided
Inpainting and Extrapolation"): a pixel mask becomes a token mask, a grid shifts to grow a side."""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..model.validation import is_integer, shown
from .maskgit import MASKED

DIRECTIONS = ("left", "right", "up", "down")


def mask_to_grid(mask: Image.Image | torch.Tensor, image_size: int, grid: int) -> torch.Tensor:
    """A pixel mask (white / nonzero = regenerate) -> (grid * grid,) bool over the token grid.

    The mask is resized to the image size first (with a warning when it differs), then each
    token's patch is averaged and thresholded at 0.5."""
    check_mask(mask)
    if isinstance(mask, Image.Image):
        if mask.size != (image_size, image_size):
            warnings.warn(f"mask of size {mask.size[0]}x{mask.size[1]} resized to the image's "
                          f"{image_size}x{image_size}", stacklevel=3)
            mask = mask.resize((image_size, image_size), Image.NEAREST)
        values = torch.from_numpy(np.asarray(mask.convert("L"), dtype=np.float32) / 255.0)
    else:
        values = mask.float()
        if tuple(values.shape) != (image_size, image_size):
            warnings.warn(f"mask of size {tuple(values.shape)} resized to {image_size}x{image_size}", stacklevel=3)
            values = F.interpolate(values[None, None], size=(image_size, image_size), mode="nearest")[0, 0]
    pooled = F.adaptive_avg_pool2d(values[None, None], grid)[0, 0]  # (grid, grid)
    return (pooled >= 0.5).flatten()


def check_mask(mask) -> None:
    """A mask is a PIL image or a 2-D tensor of finite values, at least 1x1 (a ValueError that
    says what it got otherwise)."""
    if isinstance(mask, Image.Image):
        width, height = mask.size
    elif isinstance(mask, torch.Tensor):
        if mask.dim() != 2:
            raise ValueError(f"mask tensor must be (H, W), got shape {tuple(mask.shape)}")
        height, width = mask.shape
        if mask.is_floating_point() and mask.numel() and not mask.isfinite().all():
            raise ValueError(f"mask tensor holds {int((~mask.isfinite()).sum())} NaN or infinite values")
    else:
        raise ValueError(f"mask must be a path, a PIL image, an (H, W) array or an (H, W) tensor, got "
                         f"{type(mask).__name__} {shown(mask)}")
    if width < 1 or height < 1:
        raise ValueError(f"mask is {width}x{height} pixels; it must be at least 1x1")


def check_shift(grid: int, direction: str, offset: int = 0) -> int:
    """The shift in tokens of :func:`shift_grid`, or a ValueError naming the bad argument."""
    if not isinstance(direction, str) or direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {shown(direction)}; choose one of {DIRECTIONS}")
    if not is_integer(offset):
        raise ValueError(f"offset must be an integer, got {shown(offset)}")
    shift = grid // 2 + offset
    if not 0 < shift < grid:
        raise ValueError(f"offset {offset} gives a shift of {shift} tokens; it must lie in 1..{grid - 1}")
    return shift


def shift_grid(codes: torch.Tensor, grid: int, direction: str, offset: int = 0) -> tuple[torch.Tensor, int]:
    """Move the token grid toward ``direction`` by half (plus ``offset``) so new content can
    grow on that side. Returns ((grid * grid,) codes with ``MASKED`` where new, shift in tokens)."""
    shift = check_shift(grid, direction, offset)
    square = codes.view(grid, grid)
    out = torch.full_like(square, MASKED)
    keep = grid - shift
    if direction == "right":  # the right part of the old image moves to the left edge
        out[:, :keep] = square[:, shift:]
    elif direction == "left":
        out[:, shift:] = square[:, :keep]
    elif direction == "down":
        out[:keep] = square[shift:]
    else:
        out[shift:] = square[:keep]
    return out.flatten(), shift


def stitch(original: Image.Image, new: Image.Image, direction: str, shift_pixels: int,
           keep_original: bool = False) -> Image.Image:
    """The wider (or taller) canvas: the original plus the part of ``new`` that extends it. Where
    the two overlap, ``new`` is shown, or with ``keep_original`` the original's own pixels."""
    w, h = original.size
    horizontal = direction in ("left", "right")
    canvas = Image.new("RGB", (w + shift_pixels, h) if horizontal else (w, h + shift_pixels))
    at_original = {"right": (0, 0), "left": (shift_pixels, 0), "down": (0, 0), "up": (0, shift_pixels)}[direction]
    at_new = {"right": (shift_pixels, 0), "left": (0, 0), "down": (0, shift_pixels), "up": (0, 0)}[direction]
    for picture, where in ((new, at_new), (original, at_original)) if keep_original else \
            ((original, at_original), (new, at_new)):
        canvas.paste(picture, where)
    return canvas
