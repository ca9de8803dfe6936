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

One iterator per source object at a time: the iterator advances the object's own state.
"""

from __future__ import annotations

import glob
import io
import random
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from PIL import Image, UnidentifiedImageError

from ..model.image_processing import to_rgb

BAD_DATA_POLICIES = ("skip", "stop")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


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
    error: str | None = None  # the file could not be read past this point


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


def open_image(data: bytes | Path, where: str) -> Image.Image:
    """Decode image bytes or a file into RGB; missing or corrupt images raise ``BadSample``."""
    if isinstance(data, Path) and not data.is_file():
        raise BadSample(where, f"missing image file {data}")
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as opened:
            opened.load()
            return to_rgb(opened)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise BadSample(where, f"corrupt image ({e})") from e


def resolve_image(root: Path, relative: Any, where: str) -> Path:
    """``root / relative`` for an image path named in a record."""
    if not isinstance(relative, str) or not relative.strip():
        raise BadSample(where, f"malformed record: image path must be a non-empty string, got {relative!r}")
    return root / relative
