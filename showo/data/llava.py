"""Visual instruction data in LLaVA's format, as multi-turn understanding ("mmu") samples.

The file is a JSON list (or jsonl) of records like::

    {"id": "000001", "image": "coco/000001.jpg",
     "conversations": [{"from": "human", "value": "<image>\\nWhat is this?"},
                       {"from": "gpt", "value": "A cat."}, ...]}

Image paths are relative to ``image_root``. Human and gpt turns are paired in order into
``turns=[(question, answer), ...]``; the ``<image>`` placeholder is removed from questions.
A JSON list is parsed one element at a time, so a file of any size streams.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .stream import BadSample, Record, StreamingSource, expand_paths, open_image, resolve_image
from .text import parse_json_line, read_jsonl_lines

IMAGE_PLACEHOLDER = "<image>"
QUESTION_ROLES = ("human", "user")
ANSWER_ROLES = ("gpt", "assistant")


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
        index = 0
        try:
            for index, element in iter_json_array(path):
                yield Record(f"{path}:[{index}]", element)
        except (ValueError, OSError) as e:
            yield Record(f"{path}:[{index}]", error=f"unreadable JSON list ({e}); rest of the file lost")

    def decode(self, record: Record) -> dict:
        obj = record.data if isinstance(record.data, dict) else _as_object(record)
        where = record.where + (f" (id {obj['id']!r})" if "id" in obj else "")
        if "image" not in obj:
            raise BadSample(where, "malformed record: no 'image' (text-only conversations are not mmu samples)")
        turns = pair_turns(obj.get("conversations"), where)
        image = open_image(resolve_image(self.image_root, obj["image"], where), where)
        return {"kind": "mmu", "image": image, "turns": turns, "source": record.where}

    def __repr__(self) -> str:
        return f"LlavaSource({len(self.paths)} files, images in {self.image_root}, rank={self.rank}/{self.world_size})"


def _as_object(record: Record) -> dict[str, Any]:
    if isinstance(record.data, bytes):
        return parse_json_line(record.data, record.where)
    raise BadSample(record.where, f"malformed record: expected a JSON object, got {type(record.data).__name__}")


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


def iter_json_array(path: Path, chunk_chars: int = 1 << 20) -> Iterator[tuple[int, Any]]:
    """``(index, element)`` for each element of the JSON list in ``path``, one at a time.

    Raises ``ValueError`` (naming the element) if the file is not a JSON list or breaks off.
    """
    decoder = json.JSONDecoder()
    with open(path, encoding="utf-8") as f:
        buffer, pos, eof = "", 0, False

        def more() -> None:
            nonlocal buffer, pos, eof
            chunk = f.read(chunk_chars)
            eof = not chunk
            buffer, pos = buffer[pos:] + chunk, 0

        def peek() -> str:  # the next non-blank character, "" at the end of the file
            nonlocal pos
            while True:
                while pos < len(buffer) and buffer[pos].isspace():
                    pos += 1
                if pos < len(buffer) or eof:
                    return buffer[pos] if pos < len(buffer) else ""
                more()

        if peek() != "[":
            raise ValueError(f"{path}: expected a JSON list")
        pos += 1
        index = 0
        while True:
            c = peek()
            if c == "]":
                return
            if index > 0:
                if c != ",":
                    raise ValueError(f"element {index}: expected ',' or ']', found {c!r}")
                pos += 1
                peek()
            while True:
                try:
                    element, end = decoder.raw_decode(buffer, pos)
                    if end < len(buffer) or eof:  # a number at the buffer's end may continue
                        break
                except json.JSONDecodeError as e:
                    if eof:
                        raise ValueError(f"element {index}: invalid JSON ({e})") from e
                more()
            yield index, element
            pos = end
            index += 1
