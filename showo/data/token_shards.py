"""Pre-encoded token shards: samples whose images were turned into MAGVIT-v2 codes once.

A shard folder (written by ``showo.data.pre_encode``) holds::

    index.json               {"format": "showo-token-shards", "count", "images", "shape": [images, N],
                              "tokens_per_image": N, "image_size", "codebook_size", "shards": [...]}
    shard-00000.safetensors  "codes": (rows, N) int32, one row per image
    shard-00000.jsonl        one record per line: the sample's other fields, each image replaced
                             by "codes_row" (the row in this shard's codes), turns as lists

``TokenShardSource`` yields the sample kinds of the original source with ``"codes"``
(LongTensor (N,)) in place of ``"image"``; interleaved segments hold code tensors. A
sample's ``"source"`` is the original record's (where the image came from).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..model.checkpoint_io import read_json
from .stream import BadSample, Record, StreamingSource
from .text import parse_json_line, read_jsonl_lines

INDEX_FORMAT = "showo-token-shards"
REQUIRED_FIELDS = {
    "t2i": ("caption",),
    "class": ("label", "class_name"),
    "lm": ("text",),
    "mmu": ("turns",),
    "interleaved": ("segments",),
}
IMAGE_KINDS = ("t2i", "class", "mmu")


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def sample_to_row(sample: dict, first_row: int) -> tuple[dict, list[Image.Image]]:
    """A sample -> (its JSON line with images replaced by code rows from ``first_row``, its images)."""
    kind = sample.get("kind")
    if kind not in REQUIRED_FIELDS:
        raise ValueError(
            f"{sample.get('source')}: unknown sample kind {kind!r}; expected one of {sorted(REQUIRED_FIELDS)}"
        )
    if "codes" in sample or any(isinstance(s, torch.Tensor) for s in sample.get("segments", ())):
        raise ValueError(f"{sample.get('source')}: sample is already encoded")
    row = {k: v for k, v in sample.items() if k not in ("image", "turns", "segments")}
    images: list[Image.Image] = []
    if "image" in sample:
        row["codes_row"] = first_row
        images.append(sample["image"])
    if "turns" in sample:
        row["turns"] = [list(turn) for turn in sample["turns"]]
    if "segments" in sample:
        row["segments"] = []
        for segment in sample["segments"]:
            if isinstance(segment, str):
                row["segments"].append({"text": segment})
            elif isinstance(segment, Image.Image):
                row["segments"].append({"codes_row": first_row + len(images)})
                images.append(segment)
            else:
                kind = type(segment).__name__
                raise TypeError(f"{sample.get('source')}: segment of type {kind} is neither text nor image")
    return row, images


def row_to_sample(row: dict, codes: torch.Tensor | None, where: str) -> dict:
    """Inverse of ``sample_to_row``: code rows become (N,) long tensors taken from ``codes``."""
    kind = row.get("kind")
    missing = [f for f in REQUIRED_FIELDS.get(kind, ()) if f not in row]
    if kind not in REQUIRED_FIELDS or missing:
        raise BadSample(where, f"malformed record: kind {kind!r}, missing fields {missing}")
    if kind in IMAGE_KINDS and "codes_row" not in row:
        raise BadSample(where, f"malformed record: a {kind} record needs 'codes_row'")
    sample = {k: v for k, v in row.items() if k != "codes_row"}
    sample.setdefault("source", where)
    if "codes_row" in row:
        sample["codes"] = _codes_row(codes, row["codes_row"], where)
    if "turns" in row:
        sample["turns"] = [tuple(turn) for turn in row["turns"]]
    if "segments" in row:
        sample["segments"] = [
            _codes_row(codes, s["codes_row"], where) if isinstance(s, dict) and "codes_row" in s else _text(s, where)
            for s in row["segments"]
        ]
    return sample


def _codes_row(codes: torch.Tensor | None, index: Any, where: str) -> torch.Tensor:
    rows = 0 if codes is None else codes.shape[0]
    if not isinstance(index, int) or not 0 <= index < rows:
        raise BadSample(where, f"malformed record: codes_row {index!r} outside the shard's {rows} rows")
    return codes[index].long()


def _text(segment: Any, where: str) -> str:
    if not isinstance(segment, dict) or not isinstance(segment.get("text"), str):
        raise BadSample(where, f"malformed record: segment {segment!r:.80} is neither text nor codes")
    return segment["text"]


class TokenShardSource(StreamingSource):
    """The samples of a pre-encoded folder, with ``"codes"`` instead of images."""

    type_name = "token_shards"

    def __init__(self, path: str | Path, **options):
        super().__init__(**options)
        self.folder = Path(path)
        self.index = read_json(self.folder / "index.json")
        if self.index.get("format") != INDEX_FORMAT:
            raise ValueError(
                f"{self.folder / 'index.json'}: not a token-shard index (format {self.index.get('format')!r})"
            )
        self.shards = [shard["name"] for shard in self.index["shards"]]
        if not self.shards:
            raise ValueError(f"{self.folder}: the index lists no shards")
        self.image_size = self.index["image_size"]
        self.codebook_size = self.index["codebook_size"]
        self.tokens_per_image = self.index["tokens_per_image"]

    def files(self) -> list[str]:
        return self.shards

    def read(self, name: str) -> Iterator[Record]:
        codes_file = self.folder / f"{name}.safetensors"
        try:
            codes = load_file(str(codes_file))["codes"]  # (rows, N) int32; one shard is bounded by shard_size
        except (SafetensorError, OSError, KeyError) as e:
            yield Record(f"{codes_file}", error=f"unreadable codes ({e!r}); the shard's records are lost")
            return
        for record in read_jsonl_lines(self.folder / f"{name}.jsonl"):
            yield Record(record.where, (record.data, codes), record.error)

    def decode(self, record: Record) -> dict:
        line, codes = record.data
        return row_to_sample(parse_json_line(line, record.where), codes, record.where)

    def __repr__(self) -> str:
        return (
            f"TokenShardSource({self.folder}, {self.index.get('count')} records in {len(self.shards)} shards, "
            f"rank={self.rank}/{self.world_size})"
        )
