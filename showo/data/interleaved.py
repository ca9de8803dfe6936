"""Interleaved text-and-image documents from jsonl.

Each line is ``{"segments": [{"text": "..."}, {"image": "relative/path.png"}, ...]}`` with
image paths relative to ``image_root`` (a path leading outside it is a bad record); a sample
keeps the segments in order, texts as ``str`` and images as RGB PIL images. A document of more
than ``MAX_SEGMENTS`` segments is a bad record (one short line could otherwise name the same
image a million times).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from .stream import BadSample, Record, StreamingSource, expand_paths, open_image, parse_json_object, resolve_image
from .text import read_jsonl_lines

MAX_SEGMENTS = 4096  # segments of one document; real ones have tens to hundreds


class InterleavedSource(StreamingSource):
    """``{"kind": "interleaved", "segments": [str | PIL.Image, ...], "source": "file:line N"}``."""

    type_name = "interleaved"
    default_shuffle_buffer = 1000

    def __init__(self, path: str | list[str], *, image_root: str | Path | None = None, **options):
        super().__init__(**options)
        self.paths = expand_paths(path, "interleaved")
        self.image_root = Path(image_root) if image_root is not None else self.paths[0].parent

    def files(self) -> list[Path]:
        return self.paths

    def read(self, path: Path) -> Iterator[Record]:
        return read_jsonl_lines(path)

    def decode(self, record: Record) -> dict:
        segments = parse_json_object(record.data, record.where).get("segments")
        if not isinstance(segments, list) or not segments:
            raise BadSample(record.where, "malformed record: 'segments' must be a non-empty list")
        if len(segments) > MAX_SEGMENTS:
            reason = f"record too large: {len(segments)} segments, over the limit of {MAX_SEGMENTS}"
            raise BadSample(record.where, reason)
        decoded = [self._segment(segment, f"{record.where} segment {k}") for k, segment in enumerate(segments)]
        return {"kind": "interleaved", "segments": decoded, "source": record.where}

    def _segment(self, segment: Any, where: str) -> str | Image.Image:
        if not isinstance(segment, dict) or len(segment) != 1 or not {"text", "image"} >= segment.keys():
            raise BadSample(
                where, f"malformed record: expected {{'text': str}} or {{'image': path}}, got {segment!r:.120}"
            )
        if "image" in segment:
            return open_image(resolve_image(self.image_root, segment["image"], where), where)
        text = segment["text"]
        if not isinstance(text, str) or not text.strip():
            raise BadSample(where, f"empty text segment ({text!r:.40})")
        return text

    def __repr__(self) -> str:
        where = f"{len(self.paths)} files, images in {self.image_root}"
        return f"InterleavedSource({where}, rank={self.rank}/{self.world_size})"
