"""Image loading and pre/post-processing, as the released Show-o prepares images.

Images become (3, size, size) float tensors in [-1, 1]: the shorter side is resized to
``size`` with PIL's bicubic filter, then the centre is cropped (the torchvision
``Resize`` + ``CenterCrop`` + ``Normalize(0.5, 0.5)`` pipeline of the released code).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from .checkpoint_io import atomic_write

# A picture as users hold one: a file path, a PIL image, an (H, W[, C]) array or an (C, H, W) tensor.
ImageLike = str | Path | Image.Image | np.ndarray | torch.Tensor


def load_image(image: ImageLike) -> Image.Image:
    """``image`` as an 8-bit RGB PIL image.

    Paths are opened (and decoded now, so a broken file fails here with its name); arrays are
    (H, W) or (H, W, 1 | 3 | 4), tensors (H, W) or (1 | 3 | 4, H, W): floats in [0, 1],
    integers in [0, 255]."""
    if isinstance(image, Image.Image):
        return to_rgb(image)
    if isinstance(image, (np.ndarray, torch.Tensor)):
        return to_rgb(_array_to_image(image))
    if not isinstance(image, (str, Path)):
        raise ValueError(f"an image must be a path, a PIL image, an array or a tensor, got {type(image).__name__}")
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


def load_mask(mask: ImageLike) -> Image.Image:
    """A mask (white / nonzero = regenerate) as an 8-bit grayscale PIL image, from any image type
    ``load_image`` takes; colour masks count their brightness."""
    if isinstance(mask, Image.Image):
        return mask.convert("L")
    return load_image(mask).convert("L")


def _array_to_image(array: np.ndarray | torch.Tensor) -> Image.Image:
    """An (H, W[, C]) array or (C, H, W) tensor, floats in [0, 1] or integers in [0, 255], as PIL."""
    if isinstance(array, torch.Tensor):
        tensor = array.detach().cpu()
        if tensor.dim() == 3:
            if tensor.shape[0] not in (1, 3, 4):
                raise ValueError(f"an image tensor must be (C, H, W) with C = 1, 3 or 4, got {tuple(tensor.shape)}")
            tensor = tensor.permute(1, 2, 0)
        array = tensor.float().numpy() if tensor.is_floating_point() else tensor.numpy()
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)) or 0 in array.shape:
        raise ValueError(f"an image array must be (H, W) or (H, W, 3 | 4), got shape {array.shape}")
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise ValueError("the image array holds NaN or infinite values")
        array = np.clip(array, 0.0, 1.0) * 255.0
    elif array.dtype.kind not in "ui" and array.dtype != np.bool_:
        raise ValueError(f"an image array must hold numbers, got dtype {array.dtype}")
    elif array.dtype == np.bool_:
        array = array * 255
    return Image.fromarray(np.clip(array, 0, 255).round().astype(np.uint8))


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


def labelled_grid(images: list[Image.Image], labels: Sequence[str], columns: int = 4,
                  min_side: int = 128) -> Image.Image:
    """A grid of ``images``, each enlarged (sharp) to at least ``min_side`` pixels wide, with its
    label written under it in up to three lines."""
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    w, h = images[0].size
    scale = max(1, -(-min_side // w))  # ceil
    font = ImageFont.load_default()
    chars = max(8, w * scale // 7)
    band = 3 * 13 + 6
    cells = []
    for image, label in zip(images, labels):
        cell = Image.new("RGB", (w * scale, h * scale + band), "white")
        cell.paste(image.convert("RGB").resize((w * scale, h * scale), Image.NEAREST), (0, 0))
        lines = textwrap.wrap(label or "(empty prompt)", chars)[:3]
        ImageDraw.Draw(cell).multiline_text((3, h * scale + 3), "\n".join(lines), fill="black", font=font,
                                            spacing=2)
        cells.append(cell)
    return grid(cells, columns)


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
