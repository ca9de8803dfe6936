"""Image loading and pre/post-processing, as the released Show-o prepares images.

Images become (3, size, size) float tensors in [-1, 1]: the shorter side is resized to
``size`` with PIL's bicubic filter, then the centre is cropped (the torchvision
``Resize`` + ``CenterCrop`` + ``Normalize(0.5, 0.5)`` pipeline of the released code).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .checkpoint_io import atomic_write

ImageLike = str | Path | Image.Image


def load_image(image: ImageLike) -> Image.Image:
    """Open ``image`` (a path or a PIL image) as an 8-bit RGB PIL image."""
    if isinstance(image, Image.Image):
        return to_rgb(image)
    path = Path(image)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image file")
    try:
        with Image.open(path) as opened:
            opened.load()  # decode now, so truncated files fail here with the file's name
            return to_rgb(opened)
    except Image.DecompressionBombError as e:
        raise ValueError(f"{path}: refused to decode: {e}") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"{path}: not a readable image file ({e})") from e


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB; transparent pixels are composited over white."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = _to_8bit_gray(image)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _to_8bit_gray(image: Image.Image) -> Image.Image:
    # PIL's own convert clips 16-bit values at 255, which turns most such images white.
    values = np.asarray(image, dtype=np.float64)
    scale = 1.0 if image.mode == "F" else 257.0  # 65535 / 257 = 255
    return Image.fromarray(np.clip(values / scale, 0, 255).round().astype(np.uint8))


def resize_and_crop(image: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` (bicubic), then crop the centre ``size`` x ``size``."""
    w, h = image.size
    # Like torchvision: the short side becomes exactly ``size``, the long side is truncated.
    if w <= h:
        new_w, new_h = size, max(size, int(size * h / w))
    else:
        new_w, new_h = max(size, int(size * w / h)), size
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), resample=Image.BICUBIC)
    left = round((new_w - size) / 2.0)
    top = round((new_h - size) / 2.0)
    return image.crop((left, top, left + size, top + size))


def preprocess_image(image: ImageLike, size: int) -> torch.Tensor:
    """One image -> (3, size, size) float32 tensor in [-1, 1]."""
    if not isinstance(size, int) or size <= 0:
        raise ValueError(f"preprocess_image: size must be a positive int, got {size!r}")
    rgb = resize_and_crop(load_image(image), size)
    array = torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy())  # (size, size, 3)
    return array.permute(2, 0, 1).float() / 255.0 * 2.0 - 1.0


def preprocess_images(images: Sequence[ImageLike], size: int) -> torch.Tensor:
    """Several images -> (B, 3, size, size) float32 tensor in [-1, 1]."""
    if len(images) == 0:
        raise ValueError("preprocess_images: got no images")
    return torch.stack([preprocess_image(image, size) for image in images])


def postprocess_images(pixels: torch.Tensor) -> list[Image.Image]:
    """(B, 3, H, W) pixels in [-1, 1] (values outside are clamped) -> RGB PIL images."""
    if pixels.dim() == 3:
        pixels = pixels.unsqueeze(0)
    if pixels.dim() != 4 or pixels.shape[1] != 3:
        raise ValueError(f"postprocess_images: expected pixels of shape (B, 3, H, W), got {tuple(pixels.shape)}")
    scaled = ((pixels.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    arrays = scaled.permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, 3)
    return [Image.fromarray(a) for a in arrays]


def check_image_size(pixels: torch.Tensor, expected_size: int, factor: int) -> None:
    """Raise a clear ``ValueError`` unless ``pixels`` is (B, 3, S, S) with S = expected_size."""
    if expected_size % factor:
        raise ValueError(f"image size {expected_size} is not a multiple of the tokenizer's downsample factor {factor}")
    if pixels.dim() != 4 or pixels.shape[1] != 3:
        raise ValueError(
            f"expected pixels of shape (B, 3, {expected_size}, {expected_size}), got {tuple(pixels.shape)}"
        )
    h, w = pixels.shape[-2:]
    if (h, w) != (expected_size, expected_size):
        raise ValueError(
            f"expected {expected_size}x{expected_size} images ({expected_size // factor}x"
            f"{expected_size // factor} tokens), got {h}x{w}; preprocess them with preprocess_images"
        )


def grid(images: list[Image.Image], columns: int = 4) -> Image.Image:
    """Paste equally sized images into rows of ``columns`` on a white canvas."""
    w, h = images[0].size
    rows = (len(images) + columns - 1) // columns
    canvas = Image.new("RGB", (w * min(columns, len(images)), h * rows), "white")
    for i, image in enumerate(images):
        canvas.paste(image, ((i % columns) * w, (i // columns) * h))
    return canvas


def save_image(image: Image.Image, path: str | Path) -> Path:
    """Write ``image`` as a PNG at ``path`` atomically (whole or not at all); returns the path."""
    path = Path(path)
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))
    return path


def write_text_file(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) at ``path`` atomically; returns the path."""
    path = Path(path)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path
