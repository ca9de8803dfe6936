"""Plain text for language modelling, from ``.jsonl`` lines or ``.parquet`` row groups.

jsonl: one JSON object per line, the text in ``field`` (default ``"text"``); blank lines are
not records. A line over ``MAX_RECORD_BYTES`` is a bad record, read past in pieces without being
held. parquet: the column ``field`` (default ``"content"``, else ``"text"``), read
``PARQUET_BATCH_ROWS`` rows at a time; a text over ``MAX_RECORD_BYTES`` is a bad record. pyarrow
is imported only when a parquet file is read (the ``[parquet]`` extra).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .stream import MAX_RECORD_BYTES, BadSample, Record, StreamingSource, expand_paths, parse_json_object, too_large

PARQUET_TEXT_COLUMNS = ("content", "text")
PARQUET_BATCH_ROWS = 256  # rows read at once (a row group may hold far more)
LINE_PIECE_BYTES = 1 << 20  # a line longer than this is read in pieces of this size


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
                for batch in file.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=[column]):
                    for value in batch.column(0).to_pylist():
                        yield Record(f"{path}:row {row}", {"text": value})  # already a row, not a line
                        row += 1
        except (pa.ArrowException, OSError) as e:
            yield Record(f"{path}:row {row}", error=f"unreadable parquet file ({e}); rest of the file lost")

    def decode(self, record: Record) -> dict:
        if isinstance(record.data, dict):  # a parquet row, its column already chosen
            obj, field = record.data, "text"
        else:
            obj, field = parse_json_object(record.data, record.where), self.field or "text"
        if field not in obj:
            raise BadSample(record.where, f"malformed record: no {field!r} field (fields: {sorted(obj)[:20]})")
        text = obj[field]
        if not isinstance(text, str):
            raise BadSample(record.where, f"malformed record: text must be a string, got {type(text).__name__}")
        if len(text) > MAX_RECORD_BYTES // 4:  # a character is at most 4 bytes of UTF-8
            size = len(text.encode("utf-8", "surrogatepass"))
            if size > MAX_RECORD_BYTES:
                raise BadSample(record.where, too_large(size, MAX_RECORD_BYTES, "text"))
        if not text.strip():
            raise BadSample(record.where, "empty text")
        return {"kind": "lm", "text": text, "source": record.where}

    def __repr__(self) -> str:
        return f"TextSource({len(self.paths)} files from {self.paths[0].parent}, rank={self.rank}/{self.world_size})"


def read_jsonl_lines(path: Path) -> Iterator[Record]:
    """The non-blank lines of a jsonl file as raw records ``file:line N`` (1-based).

    A line over ``MAX_RECORD_BYTES`` becomes a bad record (``Record.error``) in its place: it is
    read in pieces, and no piece is kept once the line is over the limit.
    """
    line_no = 0
    try:
        with open(path, "rb") as f:
            while (read := read_line(f)) is not None:
                line, size = read
                line_no += 1
                if line is None:
                    yield Record(f"{path}:line {line_no}", error=too_large(size, MAX_RECORD_BYTES, "line"))
                elif line.strip():
                    yield Record(f"{path}:line {line_no}", line)
    except OSError as e:
        yield Record(f"{path}:line {line_no}", error=f"unreadable file ({e}); rest of the file lost")


def read_line(f: BinaryIO) -> tuple[bytes | None, int] | None:
    """The next line of ``f`` and its size without the newline (None at the end of the file);
    the line is None when it is over ``MAX_RECORD_BYTES``."""
    piece = f.readline(LINE_PIECE_BYTES)
    if not piece:
        return None
    if len(piece) < LINE_PIECE_BYTES or piece.endswith(b"\n"):  # the whole line in one piece
        return piece, len(piece) - piece.endswith(b"\n")
    pieces: list[bytes] | None = [piece]
    size = len(piece)
    while piece and not piece.endswith(b"\n"):
        piece = f.readline(LINE_PIECE_BYTES)
        size += len(piece)
        if pieces is not None and size <= MAX_RECORD_BYTES + 1:
            pieces.append(piece)
        else:
            pieces = None  # over the limit: read on to the line's end, keeping nothing
    size -= piece.endswith(b"\n")
    return (b"".join(pieces) if pieces is not None and size <= MAX_RECORD_BYTES else None), size


def import_pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as e:
        raise ImportError(
            "reading .parquet files needs pyarrow: pip install 'showo[parquet]' (or pip install pyarrow)"
        ) from e
    return pyarrow, pyarrow.parquet
