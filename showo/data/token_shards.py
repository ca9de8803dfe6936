"""Pre-encoded token shards: samples whose images were turned into MAGVIT-v2 codes once.

A shard folder (written by ``showo.data.pre_encode``) holds::

    index.json               {"format": "showo-token-shards", "version": 1, "count", "images",
                              "shape": [images, N], "tokens_per_image": N, "image_size",
                              "codebook_size", "skipped", "source",
                              "shards": [{"name", "count", "images"}, ...]}
    shard-00000.safetensors  "codes": (rows, N) int32, one row per image
    shard-00000.jsonl        one record per line: the sample's other fields, each image replaced
                             by "codes_row" (the row in this shard's codes), turns as lists

``TokenShardSource`` yields the sample kinds of the original source with ``"codes"``
(LongTensor (N,)) in place of ``"image"``; interleaved segments hold code tensors. A
sample's ``"source"`` is the original record's (where the image came from).

The index is checked whole when the source is built (``TokenShardIndex``: every field's type
and range, the totals against the shards, shard names that stay inside the folder), and each
error names the file and the field. A shard's codes are checked against the index (shape,
dtype, values below ``codebook_size``) before its records are read; a shard that fails is one
bad record, and a bad line is one bad record.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image
from pydantic import field_validator
from pydantic.dataclasses import dataclass
from safetensors import SafetensorError, safe_open

from ..model.validation import STRICT, NonNegativeInt, PositiveInt, Str, build
from .stream import BadSample, Record, StreamingSource, parse_json_object
from .text import read_jsonl_lines

INDEX_FORMAT = "showo-token-shards"
INDEX_FILE = "index.json"
MAX_INDEX_BYTES = 64 * 2**20  # an index lists about 60 bytes per shard: a million shards fit
CODE_DTYPES = ("U8", "I16", "I32", "I64")  # safetensors dtypes a shard's codes may have (pre_encode writes I32)
REQUIRED_FIELDS = {
    "t2i": ("caption",),
    "class": ("label", "class_name"),
    "lm": ("text",),
    "mmu": ("turns",),
    "interleaved": ("segments",),
}
FIELD_TYPES = {"caption": str, "label": int, "class_name": str, "text": str, "turns": list, "segments": list}
IMAGE_KINDS = ("t2i", "class", "mmu")


@dataclass(frozen=True, config=STRICT)
class ShardEntry:
    """One shard of an index: its files are ``NAME.safetensors`` and ``NAME.jsonl`` in the folder."""

    name: Str
    count: PositiveInt  # records (lines of NAME.jsonl)
    images: NonNegativeInt  # rows of NAME.safetensors's codes

    @field_validator("name")
    @classmethod
    def _inside_the_folder(cls, name: str) -> str:
        parts = name.split("/")
        if "\\" in name or "\0" in name or os.path.isabs(name) or any(p in ("", ".", "..") for p in parts):
            raise ValueError(
                f"must name files inside the shard folder (a relative path without '..'), got {name!r:.200}"
            )
        return name


@dataclass(frozen=True, config=STRICT)
class TokenShardIndex:
    """``index.json`` of a token-shard folder, checked by type and range (``build`` names each field)."""

    format: Literal["showo-token-shards"]
    count: PositiveInt  # records in all shards
    images: NonNegativeInt  # code rows in all shards
    shape: tuple[NonNegativeInt, PositiveInt]  # [images, tokens_per_image]
    tokens_per_image: PositiveInt
    image_size: PositiveInt
    codebook_size: PositiveInt
    shards: tuple[ShardEntry, ...]
    version: Literal[1] = 1
    skipped: NonNegativeInt = 0  # bad records skipped while encoding
    source: Str = ""  # what was encoded

    def __post_init__(self) -> None:
        problems = []
        if not self.shards:
            problems.append("shards: the index lists no shards")
        names = [shard.name for shard in self.shards]
        twice = sorted({name for name in names if names.count(name) > 1}) if len(set(names)) < len(names) else []
        if twice:
            problems.append(f"shards: names listed more than once: {twice[:5]}")
        records, images = sum(s.count for s in self.shards), sum(s.images for s in self.shards)
        if records != self.count:
            problems.append(f"count: expected the shards' total {records}, got {self.count}")
        if images != self.images:
            problems.append(f"images: expected the shards' total {images}, got {self.images}")
        if tuple(self.shape) != (self.images, self.tokens_per_image):
            problems.append(f"shape: expected [images, tokens_per_image] = {[self.images, self.tokens_per_image]}, "
                            f"got {list(self.shape)}")
        side = math.isqrt(self.tokens_per_image)
        if side * side != self.tokens_per_image or self.image_size % side:
            problems.append(f"tokens_per_image: expected a square grid whose side divides image_size "
                            f"{self.image_size}, got {self.tokens_per_image}")
        if problems:
            raise ValueError("; ".join(problems))


def read_index(path: Path) -> TokenShardIndex:
    """The checked index of a token-shard folder; every error names ``path`` (and the field)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (a token-shard folder is written by showo pre-encode)")
    size = path.stat().st_size
    if size > MAX_INDEX_BYTES:
        raise ValueError(f"{path}: {size} bytes, over the limit of {MAX_INDEX_BYTES} bytes for an index")
    try:
        values = parse_json_object(path.read_bytes(), str(path))
    except BadSample as e:
        raise ValueError(str(e)) from None
    if values.get("format") != INDEX_FORMAT:
        raise ValueError(f"{path}: not a token-shard index (format {values.get('format')!r:.80})")
    required = {f.name: f.type for f in dataclasses.fields(TokenShardIndex) if f.default is dataclasses.MISSING}
    missing = [f"{name}: missing (expected {kind})" for name, kind in required.items() if name not in values]
    if missing:
        raise ValueError(f"{path}: " + "; ".join(missing))
    return build(TokenShardIndex, values, str(path))


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
    if not isinstance(kind, str) or kind not in REQUIRED_FIELDS:
        raise BadSample(where, f"malformed record: kind {kind!r:.40}, expected one of {sorted(REQUIRED_FIELDS)}")
    missing = [f for f in REQUIRED_FIELDS[kind] if f not in row]
    if missing:
        raise BadSample(where, f"malformed record: kind {kind!r}, missing fields {missing}")
    wrong = [f"{f} ({type(row[f]).__name__})" for f in REQUIRED_FIELDS[kind] if not _is(row[f], FIELD_TYPES[f])]
    if wrong:
        raise BadSample(where, f"malformed record: fields of the wrong type: {', '.join(wrong)}")
    if kind in IMAGE_KINDS and "codes_row" not in row:
        raise BadSample(where, f"malformed record: a {kind} record needs 'codes_row'")
    if not isinstance(row.get("source", ""), str):
        raise BadSample(where, f"malformed record: 'source' must be a string, got {type(row['source']).__name__}")
    sample = {k: v for k, v in row.items() if k != "codes_row"}
    sample.setdefault("source", where)
    if "codes_row" in row:
        sample["codes"] = _codes_row(codes, row["codes_row"], where)
    if "turns" in row:
        sample["turns"] = [_turn(turn, where) for turn in row["turns"]]
    if "segments" in row:
        sample["segments"] = [
            _codes_row(codes, s["codes_row"], where) if isinstance(s, dict) and "codes_row" in s else _text(s, where)
            for s in row["segments"]
        ]
    return sample


def _is(value: Any, kind: type) -> bool:
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def _turn(turn: Any, where: str) -> tuple[str, str]:
    if not isinstance(turn, list) or len(turn) != 2 or not all(isinstance(t, str) for t in turn):
        raise BadSample(where, f"malformed record: a turn must be [question, answer], got {turn!r:.80}")
    return turn[0], turn[1]


def _codes_row(codes: torch.Tensor | None, index: Any, where: str) -> torch.Tensor:
    rows = 0 if codes is None else codes.shape[0]
    if not _is(index, int) or not 0 <= index < rows:
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
        self.index = read_index(self.folder / INDEX_FILE)
        self.shards = list(self.index.shards)
        self.image_size = self.index.image_size
        self.codebook_size = self.index.codebook_size
        self.tokens_per_image = self.index.tokens_per_image

    def files(self) -> list[ShardEntry]:
        return self.shards

    def read(self, shard: ShardEntry) -> Iterator[Record]:
        codes_file = self.folder / f"{shard.name}.safetensors"
        try:
            codes = self.load_codes(codes_file, shard)  # (rows, N); one shard is bounded by shard_size
        except (SafetensorError, OSError, ValueError) as e:
            yield Record(f"{codes_file}", error=f"unreadable codes ({e}); the shard's records are lost")
            return
        for record in read_jsonl_lines(self.folder / f"{shard.name}.jsonl"):
            yield Record(record.where, (record.data, codes), record.error)

    def load_codes(self, path: Path, shard: ShardEntry) -> torch.Tensor:
        """A shard's codes, checked against the index before and after they are read."""
        expected = [shard.images, self.tokens_per_image]
        with safe_open(str(path), framework="pt") as f:
            names = f.keys()
            if "codes" not in names:
                raise ValueError(f"no 'codes' tensor (tensors: {sorted(names)[:10]})")
            view = f.get_slice("codes")
            shape, dtype = list(view.get_shape()), view.get_dtype()
            if shape != expected or dtype not in CODE_DTYPES:
                raise ValueError(f"'codes' is {dtype} {shape}, expected an integer tensor of {expected} (index.json)")
            codes = f.get_tensor("codes")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(
                f"codes span [{int(codes.min())}, {int(codes.max())}], outside [0, {self.codebook_size}) (index.json)"
            )
        return codes

    def decode(self, record: Record) -> dict:
        line, codes = record.data
        return row_to_sample(parse_json_object(line, record.where), codes, record.where)

    def __repr__(self) -> str:
        return (
            f"TokenShardSource({self.folder}, {self.index.count} records in {len(self.shards)} shards, "
            f"rank={self.rank}/{self.world_size})"
        )
