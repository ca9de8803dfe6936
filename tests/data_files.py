"""Files in the data formats showo reads, written by the data tests, and samples made comparable."""

import io
import json
import tarfile
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def random_image(seed: int, size=(12, 10)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def save_png(image: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def write_lines(path: Path, rows: list) -> Path:
    """A jsonl file: strings as they are, anything else as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


class Zeros(io.RawIOBase):
    """``size`` zero bytes, read in pieces (a member too large to build in memory)."""

    def __init__(self, size: int):
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def write_tar(path: Path, members: list[tuple[str, bytes | int]], mode: str = "w") -> Path:
    """Members as (name, bytes), or (name, size) for a member of ``size`` zero bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = data if isinstance(data, int) else len(data)
            tar.addfile(info, Zeros(data) if isinstance(data, int) else io.BytesIO(data))
    return path


def canon(value):
    """Samples as plain comparable values (images by pixels, tensors by values and dtype)."""
    if isinstance(value, Image.Image):
        return ("image", value.mode, value.size, value.tobytes())
    if isinstance(value, torch.Tensor):
        return ("tensor", str(value.dtype), value.tolist())
    if isinstance(value, dict):
        return {k: canon(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [canon(v) for v in value])
    return value


def take(source, n: int) -> list:
    return [canon(s) for s in islice(iter(source), n)]
