"""What the web demo accepts: the ``Limits`` of one server and the checks of every input.

Nothing here imports gradio. Each check returns the cleaned value or raises ``ValueError``
with a message meant for the page; the demo turns those into ``gr.Error``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..model.image_processing import to_rgb

MB = 1024 * 1024
FORM_FRAMING = 64 * 1024  # an upload's multipart framing: boundaries, part headers, the form's other fields


@dataclass(frozen=True)
class Limits:
    """Bounds for one shared server; every request is checked against them."""

    max_steps: int = 50  # MaskGIT steps per image
    max_batch: int = 4  # images per text-to-image request
    max_new_tokens: int = 128  # answer / caption / mixed text tokens
    max_images: int = 3  # images per mixed-modality request
    max_prompt_chars: int = 500
    max_upload_bytes: int = 8 * MB  # enforced by gradio on upload and again here
    max_request_bytes: int = 1 * MB  # any other request body (JSON: the inputs, a chat history)
    max_image_side: int = 4096
    max_image_pixels: int = 4096 * 4096
    concurrency: int = 1  # model calls that run at once (all tabs share one model)
    queue_size: int = 64  # requests that may wait; more are refused with "queue is full"
    cache_seconds: int = 3600  # uploads and results older than this are deleted

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Limits.{name} must be a positive int, got {value!r}")

    def max_body_bytes(self, upload: bool) -> int:
        """The longest request body the server reads: one file and its form for an upload route,
        ``max_request_bytes`` for any other."""
        return self.max_upload_bytes + FORM_FRAMING if upload else self.max_request_bytes


def check_body_size(size: int, limit: int, declared: bool = True) -> None:
    """Refuse a request body of ``size`` bytes (its Content-Length, or what arrived of a body
    sent without one when ``declared`` is false) over ``limit``."""
    if size > limit:
        told = _size(size) if declared else f"over {_size(limit)} and still coming"
        raise ValueError(f"the request body is {told}; this server takes at most {_size(limit)} here")


def _size(n: int) -> str:
    return f"{n / MB:.1f} MB" if n >= MB else f"{n / 1024:.0f} kB" if n >= 1024 else f"{n} bytes"


def check_int(name: str, value, low: int, high: int) -> int:
    """``value`` as an int in ``[low, high]``; a float must be whole (sliders send 18.0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value != int(value):
        raise ValueError(f"{name} must be a whole number, got {value}")
    if not low <= value <= high:
        raise ValueError(f"{name} must lie in {low}..{high} on this server, got {int(value)}")
    return int(value)


def check_float(name: str, value, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must lie in {low}..{high}, got {value}")
    return float(value)


def check_seed(value) -> int:
    return check_int("seed", value, 0, 2**31 - 1)


def check_text(name: str, value, limits: Limits, required: bool = True) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text, got {type(value).__name__}")
    value = value.strip()
    if required and not value:
        raise ValueError(f"please enter a {name}")
    if len(value) > limits.max_prompt_chars:
        raise ValueError(f"the {name} is {len(value)} characters long; this server takes at most "
                         f"{limits.max_prompt_chars}")
    return value


def check_uploaded(path: str | Path, folder: str | Path) -> Path:
    """``path`` when it lies in ``folder`` (where the server keeps uploads); a request may name any
    path, and gradio checks only those of files it tagged as its own."""
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(Path(folder).resolve()):
        raise ValueError("the image was not uploaded to this server; upload it, then send the path the upload "
                         "returned")
    return resolved


def check_image_header(source: str | Path | bytes, limits: Limits) -> tuple[int, int]:
    """Read only the header of an image file (or its bytes) and refuse it when it is too big,
    too large in pixels, not an image, or a decompression bomb. Returns (width, height)."""
    if isinstance(source, (bytes, bytearray)):
        size, opener = len(source), lambda: Image.open(BytesIO(source))
    else:
        path = Path(source)
        if not path.is_file():
            raise ValueError("the uploaded image could not be found; please upload it again")
        size, opener = os.path.getsize(path), lambda: Image.open(path)
    if size > limits.max_upload_bytes:
        raise ValueError(f"the image file is {size / MB:.1f} MB; this server takes at most "
                         f"{limits.max_upload_bytes / MB:.1f} MB")
    try:
        with opener() as image:  # PIL reads the header here and nothing more
            width, height = image.size
    except Image.DecompressionBombError:  # more than twice PIL's MAX_IMAGE_PIXELS
        raise ValueError("the image declares far more pixels than its file size suggests "
                         "(a decompression bomb); refused") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ValueError("the upload is not an image this server can read (PNG, JPEG, WebP, ...)") from None
    check_dimensions(width, height, limits)
    return width, height


def check_dimensions(width: int, height: int, limits: Limits) -> None:
    if max(width, height) > limits.max_image_side or width * height > limits.max_image_pixels:
        raise ValueError(f"the image is {width}x{height} pixels; this server takes at most "
                         f"{limits.max_image_side} pixels a side and {limits.max_image_pixels:,} in all")


def open_checked_image(source: str | Path | Image.Image, limits: Limits) -> Image.Image:
    """An RGB image from an upload: the header is checked before any pixel is decoded."""
    if source is None:
        raise ValueError("please upload an image")
    if isinstance(source, Image.Image):
        check_dimensions(*source.size, limits)
        return to_rgb(source)
    check_image_header(source, limits)
    try:
        with Image.open(source) as image:
            image.load()
            return to_rgb(image)
    except (OSError, SyntaxError, ValueError):
        raise ValueError("the image file is damaged or truncated") from None
