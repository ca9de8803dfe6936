"""Run the image tokenizer once over a source and write token shards (``token_shards.py``).

Training on codes instead of pixels skips image decoding and the tokenizer at every step.
``showo pre-encode --source-type webdataset --path 'data/*.tar' --vq VQ_DIR --output tokens/``
"""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from ..model.checkpoint_io import atomic_write, save_safetensors
from ..model.image_processing import preprocess_images
from ..model.validation import build
from .token_shards import INDEX_FILE, INDEX_FORMAT, TokenShardIndex, sample_to_row, shard_name


class ShardWriter:
    """Collects samples, encodes their images in batches, writes a shard when told to."""

    def __init__(self, folder: Path, vq: torch.nn.Module, image_size: int, batch_size: int, device: str):
        self.folder, self.vq, self.image_size = folder, vq, image_size
        self.batch_size, self.device = batch_size, device
        self.tokens_per_image = (image_size // vq.config.downsample_factor) ** 2
        self.shards: list[dict] = []
        self._start_shard()

    def _start_shard(self) -> None:
        self.rows: list[dict] = []
        self.pending: list[Image.Image] = []
        self.codes: list[torch.Tensor] = []  # encoded batches, (b, N) int32 each
        self.images = 0

    def add(self, sample: dict) -> None:
        row, images = sample_to_row(sample, first_row=self.images)
        self.rows.append(row)
        self.pending.extend(images)
        self.images += len(images)
        while len(self.pending) >= self.batch_size:
            self._encode(self.batch_size)

    def _encode(self, n: int) -> None:
        batch, self.pending = self.pending[:n], self.pending[n:]
        pixels = preprocess_images(batch, self.image_size).to(self.device)  # (n, 3, S, S)
        self.codes.append(self.vq.encode(pixels).to(torch.int32).cpu())  # (n, N)

    def write_shard(self) -> None:
        if not self.rows:
            return
        if self.pending:
            self._encode(len(self.pending))
        codes = torch.cat(self.codes) if self.codes else torch.zeros(0, self.tokens_per_image, dtype=torch.int32)
        assert codes.shape[0] == self.images
        name = shard_name(len(self.shards))
        save_safetensors({"codes": codes}, self.folder / f"{name}.safetensors")
        lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in self.rows)
        atomic_write(self.folder / f"{name}.jsonl", lambda tmp: tmp.write_text(lines, encoding="utf-8"))
        self.shards.append({"name": name, "count": len(self.rows), "images": self.images})
        self._start_shard()


def pre_encode(
    source,
    vq: torch.nn.Module,
    output_dir: str | Path,
    *,
    image_size: int,
    batch_size: int = 16,
    shard_size: int = 1000,
    max_samples: int | None = None,
    device: str = "cpu",
) -> dict:
    """Encode one epoch of ``source`` (or its first ``max_samples``); returns the written index.

    Shards are written as they fill and the ``index.json`` last, each file atomically, so a
    folder with an index is complete. Build the source with ``shuffle=False`` to keep file order.
    """
    factor = vq.config.downsample_factor
    if image_size % factor:
        raise ValueError(f"pre_encode: image_size {image_size} is not a multiple of the tokenizer's factor {factor}")
    if batch_size < 1 or shard_size < 1:
        raise ValueError(f"pre_encode: batch_size and shard_size must be positive, got {batch_size}, {shard_size}")
    if hasattr(source, "iter_epoch"):
        samples = source.iter_epoch()
    elif max_samples is not None:
        samples = iter(source)
    else:
        raise ValueError(f"pre_encode: {source!r} has no epochs; pass max_samples")
    vq = vq.to(device).eval()
    writer = ShardWriter(Path(output_dir), vq, image_size, batch_size, device)
    count = 0
    for sample in tqdm(
        islice(samples, max_samples), total=max_samples, desc="pre-encoding", unit="sample", disable=None
    ):
        writer.add(sample)
        count += 1
        if len(writer.rows) == shard_size:
            writer.write_shard()
    writer.write_shard()
    if count == 0:
        raise ValueError(f"pre_encode: {source!r} gave no samples")
    images = sum(shard["images"] for shard in writer.shards)
    index = {
        "format": INDEX_FORMAT,
        "version": 1,
        "count": count,
        "images": images,
        "shape": [images, writer.tokens_per_image],
        "tokens_per_image": writer.tokens_per_image,
        "image_size": image_size,
        "codebook_size": vq.config.codebook_size,
        "skipped": getattr(source, "skipped", 0),
        "source": repr(source),
        "shards": writer.shards,
    }
    build(TokenShardIndex, index, "pre_encode: the index about to be written")  # what the reader will check
    text = json.dumps(index, indent=2) + "\n"
    atomic_write(Path(output_dir) / INDEX_FILE, lambda tmp: tmp.write_text(text))
    return index
