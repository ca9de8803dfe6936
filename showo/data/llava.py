"""Visual instruction data in LLaVA's format, as multi-turn understanding ("mmu") samples.

The file is a JSON list (or jsonl) of records like::

    {"id": "000001", "image": "coco/000001.jpg",
     "conversations": [{"from": "human", "value": "<image>\\nWhat is this?"},
                       {"from": "gpt", "value": "A cat."}, ...]}

Image paths are relative to ``image_root`` (a path leading outside it is a bad record). Human
and gpt turns are paired in order into ``turns=[(question, answer), ...]``; the ``<image>``
placeholder is removed from questions. A JSON list is split into its elements by a scan that
holds one element at a time, so a file of any size streams; an element over
``MAX_RECORD_BYTES`` is scanned past without being held, and one nested too deep is refused
before it is parsed: both are bad records, and the elements after them still come through.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from .stream import (
    MAX_RECORD_BYTES,
    BadSample,
    Record,
    StreamingSource,
    expand_paths,
    open_image,
    parse_json_object,
    resolve_image,
    too_large,
)
from .text import read_jsonl_lines

IMAGE_PLACEHOLDER = "<image>"
QUESTION_ROLES = ("human", "user")
ANSWER_ROLES = ("gpt", "assistant")
JSON_CHUNK_BYTES = 1 << 20  # a JSON list is read in pieces of this size

_OUTSIDE_STRING = re.compile(rb'[\[\]{}",]')  # what changes the scan's state between elements
_NESTED = re.compile(rb'[\[\]{}"]')  # ... inside a list or object of an element
# The rest of a string: to its closing quote (group 1), else to the chunk's end, where a lone
# backslash (group 2) escapes the next chunk's first byte. It always matches, in linear time.
_STRING_REST = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*(?:(")|(\\)?\Z)', re.DOTALL)
_NON_SPACE = re.compile(rb"[^ \t\r\n]")


class LlavaSource(StreamingSource):
    """``{"kind": "mmu", "image", "turns", "source": "file:[index]" | "file:line N"}``."""

    type_name = "llava"
    default_shuffle_buffer = 1000  # records are small dicts; images are read after shuffling

    def __init__(self, path: str | list[str], *, image_root: str | Path | None = None, **options):
        super().__init__(**options)
        self.paths = expand_paths(path, "llava")
        self.image_root = Path(image_root) if image_root is not None else self.paths[0].parent

    def files(self) -> list[Path]:
        return self.paths

    def read(self, path: Path) -> Iterator[Record]:
        if path.suffix == ".jsonl":
            yield from read_jsonl_lines(path)
            return
        following = 0  # the index of the element being read
        try:
            for index, element, size in iter_json_array(path):
                where, following = f"{path}:[{index}]", index + 1
                if element is None:
                    yield Record(where, error=too_large(size, MAX_RECORD_BYTES))
                else:
                    yield Record(where, element)  # parsed by decode, only on the rank that takes it
        except (ValueError, OSError) as e:
            yield Record(f"{path}:[{following}]", error=f"unreadable JSON list ({e}); rest of the file lost")

    def decode(self, record: Record) -> dict:
        obj = parse_json_object(record.data, record.where)
        where = record.where + (f" (id {obj['id']!r:.80})" if "id" in obj else "")
        if "image" not in obj:
            raise BadSample(where, "malformed record: no 'image' (text-only conversations are not mmu samples)")
        turns = pair_turns(obj.get("conversations"), where)
        image = open_image(resolve_image(self.image_root, obj["image"], where), where)
        return {"kind": "mmu", "image": image, "turns": turns, "source": record.where}

    def __repr__(self) -> str:
        return f"LlavaSource({len(self.paths)} files, images in {self.image_root}, rank={self.rank}/{self.world_size})"


def pair_turns(conversations: Any, where: str) -> list[tuple[str, str]]:
    """``[{"from": "human", ...}, {"from": "gpt", ...}, ...]`` -> ``[(question, answer), ...]``."""
    if not isinstance(conversations, list) or not conversations:
        raise BadSample(where, "malformed record: 'conversations' must be a non-empty list")
    if len(conversations) % 2:
        raise BadSample(where, f"malformed record: {len(conversations)} turns, expected human/gpt pairs")
    turns = []
    for k in range(0, len(conversations), 2):
        question = _turn_text(conversations[k], QUESTION_ROLES, where, k)
        answer = _turn_text(conversations[k + 1], ANSWER_ROLES, where, k + 1)
        if not answer.strip():
            raise BadSample(where, f"empty answer in turn {k + 1}")
        turns.append((question.replace(IMAGE_PLACEHOLDER, "").strip(), answer.strip()))
    return turns


def _turn_text(turn: Any, roles: tuple[str, ...], where: str, k: int) -> str:
    if not isinstance(turn, dict) or turn.get("from") not in roles or not isinstance(turn.get("value"), str):
        raise BadSample(
            where, f"malformed record: turn {k} should be {{'from': one of {roles}, 'value': str}}, got {turn!r:.120}"
        )
    return turn["value"]


def iter_json_array(
    path: Path, chunk_bytes: int = JSON_CHUNK_BYTES, max_bytes: int = MAX_RECORD_BYTES
) -> Iterator[tuple[int, bytes | None, int]]:
    """``(index, text, size)`` for each element of the JSON list in ``path``, one at a time.

    ``text`` is the element's JSON text (parsed by the caller), or ``None`` for an element of
    more than ``max_bytes`` bytes, which is scanned past without being held. Raises
    ``ValueError`` (naming the element) if the file is not a JSON list or breaks off.
    """
    with open(path, "rb") as f:
        if f.read(3) != b"\xef\xbb\xbf":  # skip a UTF-8 byte order mark
            f.seek(0)
        scan = _ArrayScan(f, chunk_bytes)
        if scan.next_non_space() != b"[":
            raise ValueError(f"{path}: expected a JSON list")
        scan.pos += 1
        if scan.next_non_space() == b"]":
            return
        index = 0
        while True:
            text, size, end = scan.element(index, max_bytes)
            yield index, text, size
            if end == b"]":
                return
            index += 1


class _ArrayScan:
    """A cursor over a JSON list read in chunks: only the current chunk and the current
    element's pieces are held (and no piece once the element is over its size limit)."""

    def __init__(self, f: BinaryIO, chunk_bytes: int):
        self.f, self.chunk_bytes = f, chunk_bytes
        self.buffer, self.pos = f.read(chunk_bytes), 0

    def fill(self) -> bool:
        """Move to the next chunk; False at the end of the file."""
        self.buffer, self.pos = self.f.read(self.chunk_bytes), 0
        return bool(self.buffer)

    def next_non_space(self) -> bytes:
        """The next byte that is not JSON whitespace, left unconsumed; b"" at the end of the file."""
        while True:
            found = _NON_SPACE.search(self.buffer, self.pos)
            if found:
                self.pos = found.start()
                return found.group()
            if not self.fill():
                return b""

    def element(self, index: int, max_bytes: int) -> tuple[bytes | None, int, bytes]:
        """Scan one element and the ``,`` or ``]`` after it: (its text or None if over
        ``max_bytes``, its size, the byte that ended it)."""
        pieces: list[bytes] | None = []
        size, depth, in_string, escaped, start = 0, 0, False, False, self.pos
        while True:
            if self.pos >= len(self.buffer):
                piece = self.buffer[start:]
                size += len(piece)
                if pieces is not None and size <= max_bytes:
                    pieces.append(piece)
                else:
                    pieces = None
                if not self.fill():
                    raise ValueError(f"element {index}: the file breaks off inside it")
                start = 0
                continue
            if escaped:  # the byte after a backslash that ended the last chunk
                self.pos, escaped = self.pos + 1, False
                continue
            if in_string:
                rest = _STRING_REST.match(self.buffer, self.pos)
                self.pos, in_string, escaped = rest.end(), rest.group(1) is None, rest.group(2) is not None
                continue
            found = (_NESTED if depth else _OUTSIDE_STRING).search(self.buffer, self.pos)
            if found is None:
                self.pos = len(self.buffer)
                continue
            self.pos, c = found.end(), found.group()
            if c == b'"':
                in_string = True
            elif c in (b"[", b"{"):
                depth += 1
            elif depth:  # inside the element: only its closing brackets matter
                if c in (b"]", b"}"):
                    depth -= 1
            elif c in (b",", b"]"):  # the end of the element, at the list's own level
                piece = self.buffer[start : found.start()]
                size += len(piece)
                if pieces is None or size > max_bytes:
                    return None, size, c
                return b"".join([*pieces, piece]), size, c
