"""What every data source shares: epochs, shuffling, sharding over ranks, exact resume, bad data.

A source lists its *files* once, reads each file into raw *records* lazily (bytes, a line, a
row), and *decodes* one record into a sample dict. This module turns those three methods into
an endless, deterministic, shardable, resumable stream:

- Epoch order: file order is shuffled with ``Random(f"{seed}:{epoch}:files")``, then records
  pass through a bounded shuffle buffer seeded with ``Random(f"{seed}:{epoch}:records")``.
  Nothing depends on wall time, ranks or the process.
- Sharding: every rank reads the same epoch order and decodes only the records whose *global*
  index ``g`` (records of all earlier epochs + the position in this epoch) has
  ``g % world_size == rank``. Counting across epochs keeps the ranks' streams interleaving
  exactly to the one-process stream forever, not only within the first epoch.
- Resume: the state is (epoch, position in the epoch, records before the epoch, skipped).
  Loading it replays the epoch order up to the position without decoding, so the next sample
  is exactly the one the interrupted stream would have given.
- Bad data: ``decode`` raises ``BadSample``; under ``on_bad_data="skip"`` the record is
  counted in ``skipped`` and in the position (so resume stays exact) and a
  ``BadSampleWarning`` names it; under ``"stop"`` the error propagates.
- Limits: a record too large (``MAX_RECORD_BYTES`` for a line, a JSON element or a text
  member, ``MAX_IMAGE_BYTES`` for an image) or nested too deep (``MAX_JSON_DEPTH``) is a bad
  record like any other; it is measured before it is parsed, and skipped over without being
  held whole. A path named in a record must stay inside its root folder (``resolve_image``).
  No real record comes near these limits; they keep one hostile record from stopping a run.

One iterator per source object at a time: the iterator advances the object's own state.
"""

from __future__ import annotations

import glob
import io
import json
import os
import random
import re
import stat
import struct
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..model.image_processing import to_rgb

BAD_DATA_POLICIES = ("skip", "stop")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")

# Limits on one record, far above any real one (a LLaVA record is a few KiB, a long document a
# few MiB, a photo a few MiB): a record over them is bad data, named and skipped (or stopping
# the run under on_bad_data="stop"), never a crash or a whole file held in memory.
MAX_RECORD_BYTES = 16 * 2**20  # a jsonl line, an element of a JSON list, a text or JSON member, a parquet text
MAX_IMAGE_BYTES = 64 * 2**20  # an image file or an image member of a tar shard (and PIL's MAX_IMAGE_PIXELS)
MAX_JSON_DEPTH = 100  # nested lists and objects in one JSON record (json.loads recurses once per level)

# A JSON string; one left open runs to the end (so a search never restarts inside it: linear time).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))


class BadSample(ValueError):
    """A record that cannot become a sample: ``where`` names the file and the record."""

    def __init__(self, where: str, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


class BadSampleWarning(UserWarning):
    """Issued for each record skipped under ``on_bad_data="skip"``."""


@runtime_checkable
class Source(Protocol):
    """What the trainer relies on; ``StreamingSource`` and ``Mixture`` both provide it."""

    skipped: int

    def __iter__(self) -> Iterator[dict]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


@dataclass(frozen=True)
class Record:
    """One raw record, decoded only by the rank that takes it."""

    where: str  # "file:record", used in errors and as the sample's "source"
    data: Any = None
    error: str | None = None  # this record (too large), or the file from here on, could not be read


class StreamingSource:
    """Base class: subclasses set ``type_name`` and define ``files``, ``read`` and ``decode``."""

    type_name = "streaming"
    default_shuffle_buffer = 1000

    def __init__(
        self,
        *,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        on_bad_data: str = "skip",
        shuffle: bool = True,
        shuffle_buffer: int | None = None,
    ):
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(
                f"{type(self).__name__}: need 0 <= rank < world_size, got rank={rank}, world_size={world_size}"
            )
        if on_bad_data not in BAD_DATA_POLICIES:
            raise ValueError(
                f"{type(self).__name__}: on_bad_data must be one of {BAD_DATA_POLICIES}, got {on_bad_data!r}"
            )
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.on_bad_data = on_bad_data
        self.shuffle = shuffle
        self.shuffle_buffer = self.default_shuffle_buffer if shuffle_buffer is None else shuffle_buffer
        self.epoch = 0
        self.position = 0  # records of this epoch (all ranks') already passed
        self.records_before_epoch = 0  # records of all earlier epochs
        self.skipped = 0

    # ---- what a subclass provides --------------------------------------------------------

    def files(self) -> list:
        """The units of reading (shard paths, image paths ...), in a fixed order."""
        raise NotImplementedError

    def read(self, file: Any) -> Iterator[Record]:
        """The raw records of one file, streamed; a read failure ends in ``Record(error=...)``."""
        raise NotImplementedError

    def decode(self, record: Record) -> dict:
        """One raw record -> a sample dict; raises ``BadSample`` for bad data."""
        raise NotImplementedError

    # ---- the stream ----------------------------------------------------------------------

    def epoch_records(self, epoch: int) -> Iterator[Record]:
        """All ranks' records of ``epoch`` in their deterministic order."""
        files = list(self.files())
        if self.shuffle:
            random.Random(f"{self.seed}:{epoch}:files").shuffle(files)
        records: Iterator[Record] = (record for file in files for record in self.read(file))
        if self.shuffle and self.shuffle_buffer > 1:
            records = buffered_shuffle(records, self.shuffle_buffer, random.Random(f"{self.seed}:{epoch}:records"))
        return records

    def iter_epoch(self) -> Iterator[dict]:
        """This rank's samples from the current position to the end of the epoch, then the
        state moves to the start of the next epoch."""
        count = 0
        for count, record in enumerate(self.epoch_records(self.epoch), start=1):
            p = count - 1
            if p < self.position:
                continue  # replaying up to a loaded position
            self.position = count
            if (self.records_before_epoch + p) % self.world_size != self.rank:
                continue
            sample = self._decode_or_skip(record)
            if sample is not None:
                yield sample
        if count == 0:
            raise ValueError(f"{self!r}: no records found")
        self.epoch += 1
        self.records_before_epoch += count
        self.position = 0

    def __iter__(self) -> Iterator[dict]:
        empty_epochs = 0  # whole epochs with no sample; every rank owns a record within world_size epochs
        while True:
            fresh = self.position == 0
            produced = False
            for sample in self.iter_epoch():
                produced = True
                yield sample
            empty_epochs = 0 if produced or not fresh else empty_epochs + 1
            if empty_epochs >= self.world_size:
                raise ValueError(
                    f"{self!r}: rank {self.rank} found no usable record in {empty_epochs} whole epochs "
                    f"({self.skipped} bad records skipped)"
                )

    def _decode_or_skip(self, record: Record) -> dict | None:
        try:
            if record.error is not None:
                raise BadSample(record.where, record.error)
            return self.decode(record)
        except BadSample as e:
            if self.on_bad_data == "stop":
                raise
            self.skipped += 1
            warnings.warn(f"skipping bad record: {e}", BadSampleWarning, stacklevel=3)
            return None

    # ---- resume --------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {
            "type": self.type_name,
            "epoch": self.epoch,
            "position": self.position,
            "records_before_epoch": self.records_before_epoch,
            "skipped": self.skipped,
            "seed": self.seed,
            "rank": self.rank,
            "world_size": self.world_size,
        }

    def load_state_dict(self, state: dict) -> None:
        check_state(state, self.type_name, seed=self.seed, rank=self.rank, world_size=self.world_size)
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self.records_before_epoch = int(state["records_before_epoch"])
        self.skipped = int(state["skipped"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}/{self.world_size}, seed={self.seed})"


def check_state(state: dict, type_name: str, **expected: Any) -> None:
    """Refuse a state saved by another kind of source, or under another seed or sharding."""
    if not isinstance(state, dict) or state.get("type") != type_name:
        found = state.get("type") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"state is not a {type_name!r} source's state (found {found!r})")
    for key, value in expected.items():
        if state.get(key) != value:
            raise ValueError(
                f"{type_name} state was saved with {key}={state.get(key)!r}, this source has {key}={value!r}"
            )


def buffered_shuffle(items: Iterable, size: int, rng: random.Random) -> Iterator:
    """Shuffle a stream through a buffer of ``size`` items (memory bounded by ``size``)."""
    buffer: list = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        j = rng.randrange(size)
        yield buffer[j]
        buffer[j] = item
    rng.shuffle(buffer)
    yield from buffer


def expand_paths(pattern: str | Path | Iterable[str | Path], what: str) -> list[Path]:
    """A glob (``data/*.tar``), a file, or a list of either -> sorted, de-duplicated paths."""
    patterns = [pattern] if isinstance(pattern, (str, Path)) else list(pattern)
    paths: set[Path] = set()
    for p in patterns:
        p = str(p)
        matched = glob.glob(p, recursive=True) if glob.has_magic(p) else ([p] if Path(p).exists() else [])
        if not matched:
            raise FileNotFoundError(f"{what}: nothing matches {p!r}")
        paths.update(Path(m) for m in matched)
    return sorted(paths)


def too_large(size: int, limit: int, what: str = "record") -> str:
    """The reason given for a record over a size limit."""
    return f"{what} too large: {size} bytes, over the limit of {limit} bytes"


def json_depth(data: bytes) -> int:
    """How deeply the lists and objects of a JSON text nest, counted without recursion.

    Cheap for ordinary records: when the text holds no more opening brackets than
    ``MAX_JSON_DEPTH`` (strings included) it cannot nest deeper, and that count is returned as
    a bound; otherwise strings are cut out and the brackets summed up.
    """
    opening = data.count(b"[") + data.count(b"{")
    if opening <= MAX_JSON_DEPTH:
        return opening
    brackets = np.frombuffer(_JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKETS), dtype=np.uint8)
    if not brackets.size:
        return 0
    steps = np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def parse_json_object(data: bytes | str, where: str) -> dict[str, Any]:
    """One JSON object record -> a dict; too large, too deep or invalid JSON raises ``BadSample``."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > MAX_RECORD_BYTES:
        raise BadSample(where, too_large(len(raw), MAX_RECORD_BYTES))
    depth = json_depth(raw)
    if depth > MAX_JSON_DEPTH:
        raise BadSample(where, f"record too deep: JSON nested {depth} levels, over the limit of {MAX_JSON_DEPTH}")
    try:
        obj = json.loads(raw)
    except RecursionError as e:  # the depth count above is exact for valid JSON; this is a backstop
        raise BadSample(where, f"record too deep: JSON nested over the limit of {MAX_JSON_DEPTH}") from e
    except ValueError as e:  # invalid JSON or UTF-8, an integer of more than 4300 digits
        raise BadSample(where, f"malformed record: invalid JSON ({e})") from e
    if not isinstance(obj, dict):
        raise BadSample(where, f"malformed record: expected a JSON object, got {type(obj).__name__}")
    return obj


def open_image(data: bytes | Path, where: str) -> Image.Image:
    """Decode image bytes or a file into RGB; missing, unreadable, too large or corrupt images
    raise ``BadSample``."""
    if isinstance(data, Path):
        try:
            info = data.stat()
        except FileNotFoundError:
            raise BadSample(where, f"missing image file {data}") from None
        except (OSError, ValueError) as e:  # no permission, a name too long, a NUL byte
            raise BadSample(where, f"unreadable image file {str(data)!r:.300} ({e})") from e
        if not stat.S_ISREG(info.st_mode):
            raise BadSample(where, f"missing image file {data} (not a regular file)")
        size = info.st_size
    else:
        size = len(data)
    if size > MAX_IMAGE_BYTES:
        raise BadSample(where, too_large(size, MAX_IMAGE_BYTES, "image"))
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as opened:
            width, height = opened.size  # read from the header: refuse a decompression bomb before decoding
            if not Image.MAX_IMAGE_PIXELS or width * height <= Image.MAX_IMAGE_PIXELS:
                opened.load()
                return to_rgb(opened)
    except Image.DecompressionBombError as e:
        raise BadSample(where, f"image too large ({e})") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error) as e:
        raise BadSample(where, f"corrupt image ({e})") from e
    limit = Image.MAX_IMAGE_PIXELS
    raise BadSample(where, f"image too large: {width}x{height} pixels, over PIL's Image.MAX_IMAGE_PIXELS {limit}")


def resolve_image(root: Path, relative: Any, where: str) -> Path:
    """``root / relative`` for an image path named in a record, which must stay inside ``root``.

    The check is on the path as written (absolute paths and ``..`` that climb out of ``root``
    are refused), so a root that links to another disk still works.
    """
    if not isinstance(relative, str) or not relative.strip():
        raise BadSample(where, f"malformed record: image path must be a non-empty string, got {relative!r:.120}")
    normal = os.path.normpath(relative)
    if os.path.isabs(relative) or normal == os.pardir or normal.startswith(os.pardir + os.sep):
        raise BadSample(where, f"malformed record: image path {relative!r:.200} leads outside the image root {root}")
    return root / relative
