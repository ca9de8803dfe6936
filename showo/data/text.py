"""Plain text for language modelling, from ``.jsonl`` lines or ``.parquet`` row groups.

jsonl: one JSON object per line, the text in ``field`` (default ``"text"``); blank lines are
not records. parquet: the column ``field`` (default ``"content"``, else ``"text"``), read one
row group at a time; pyarrow is imported only when a parquet file is read (the ``[parquet]``
extra).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .stream import BadSample, Record, StreamingSource, expand_paths

PARQUET_TEXT_COLUMNS = ("content", "text")


class TextSource(StreamingSource):
    """``{"kind": "lm", "text", "source": "file:line N" | "file:row N"}``."""

    type_name = "text"

    def __init__(self, path: str | list[str], *, field: str | None = None, **options):
        super().__init__(**options)
        self.paths = expand_paths(path, "text")
        unknown = [p for p in self.paths if p.suffix not in (".jsonl", ".parquet")]
        if unknown:
            raise ValueError(f"text: expected .jsonl or .parquet files, got {[str(p) for p in unknown]}")
        self.field = field

    def files(self) -> list[Path]:
        return self.paths

    def read(self, path: Path) -> Iterator[Record]:
        return read_jsonl_lines(path) if path.suffix == ".jsonl" else self._read_parquet(path)

    def _read_parquet(self, path: Path) -> Iterator[Record]:
        pa, pq = import_pyarrow()
        row = 0
        try:
            with pq.ParquetFile(path) as file:
                names = file.schema_arrow.names
                column = self.field or next((c for c in PARQUET_TEXT_COLUMNS if c in names), None)
                if column not in names:
                    wanted = repr(self.field) if self.field else f"one of {PARQUET_TEXT_COLUMNS}"
                    yield Record(f"{path}:row 0", error=f"no text column {wanted} (columns: {names})")
                    return
                for group in range(file.num_row_groups):
                    for value in file.read_row_group(group, columns=[column]).column(0).to_pylist():
                        yield Record(f"{path}:row {row}", {"text": value})  # already a row, not a line
                        row += 1
        except (pa.ArrowException, OSError) as e:
            yield Record(f"{path}:row {row}", error=f"unreadable parquet file ({e}); rest of the file lost")

    def decode(self, record: Record) -> dict:
        if isinstance(record.data, dict):  # a parquet row, its column already chosen
            obj, field = record.data, "text"
        else:
            obj, field = parse_json_line(record.data, record.where), self.field or "text"
        if field not in obj:
            raise BadSample(record.where, f"malformed record: no {field!r} field (fields: {sorted(obj)})")
        text = obj[field]
        if not isinstance(text, str):
            raise BadSample(record.where, f"malformed record: text must be a string, got {type(text).__name__}")
        if not text.strip():
            raise BadSample(record.where, "empty text")
        return {"kind": "lm", "text": text, "source": record.where}

    def __repr__(self) -> str:
        return f"TextSource({len(self.paths)} files from {self.paths[0].parent}, rank={self.rank}/{self.world_size})"


def read_jsonl_lines(path: Path) -> Iterator[Record]:
    """The non-blank lines of a jsonl file as raw records ``file:line N`` (1-based)."""
    line_no = 0
    try:
        with open(path, "rb") as f:
            for line_no, line in enumerate(f, start=1):
                if line.strip():
                    yield Record(f"{path}:line {line_no}", line)
    except OSError as e:
        yield Record(f"{path}:line {line_no}", error=f"unreadable file ({e}); rest of the file lost")


def parse_json_line(line: bytes, where: str) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadSample(where, f"malformed record: invalid JSON ({e})") from e
    if not isinstance(obj, dict):
        raise BadSample(where, f"malformed record: expected a JSON object, got {type(obj).__name__}")
    return obj


def import_pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as e:
        raise ImportError(
            "reading .parquet files needs pyarrow: pip install 'showo[parquet]' (or pip install pyarrow)"
        ) from e
    return pyarrow, pyarrow.parquet
