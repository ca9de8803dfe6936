"""Image-caption pairs from WebDataset tar shards (the released pre-training format).

Members that share a key (the name up to the first dot of the file name: ``000123.jpg``,
``000123.txt``, ``000123.json``) form one record. The caption is the ``.txt`` member, or the
``caption`` field of the ``.json`` member. Shards are streamed with ``tarfile`` mode
``"r|*"`` (any compression), one member at a time; only a record's bytes are held, and only
those of the members a sample is made of (images, ``.txt``, ``.json``). A member over its limit
(``MAX_IMAGE_BYTES`` for an image, ``MAX_RECORD_BYTES`` for ``.txt`` and ``.json``) makes its
record bad; the tar header gives the size, so the member is passed over unread.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path

from .stream import (
    IMAGE_EXTENSIONS,
    MAX_IMAGE_BYTES,
    MAX_RECORD_BYTES,
    BadSample,
    Record,
    StreamingSource,
    expand_paths,
    open_image,
    parse_json_object,
    too_large,
)

TEXT_MEMBERS = ("txt", "json")


class WebDatasetSource(StreamingSource):
    """``{"kind": "t2i", "caption", "image", "source": "shard.tar:key"}`` from tar shards."""

    type_name = "webdataset"
    default_shuffle_buffer = 256  # records hold image bytes

    def __init__(self, path: str | list[str], *, caption_key: str = "caption", **options):
        super().__init__(**options)
        self.shards = expand_paths(path, "webdataset")
        self.caption_key = caption_key

    def files(self) -> list[Path]:
        return self.shards

    def read(self, shard: Path) -> Iterator[Record]:
        key, members, oversized = None, {}, []
        try:
            with tarfile.open(shard, mode="r|*") as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    member_key, ext = split_member_name(member.name)
                    if member_key != key:
                        if members:
                            yield _record(shard, key, members, oversized)
                        key, members, oversized = member_key, {}, []
                    limit = member_limit(ext)
                    if limit is None:
                        members[ext] = None  # not part of a sample: named in errors, never read
                    elif member.size > limit:
                        members[ext] = None
                        oversized.append((member.name, member.size, limit))
                    else:
                        members[ext] = tar.extractfile(member).read()
        except (tarfile.TarError, OSError, EOFError) as e:
            where = f"{shard}:{key}" if key is not None else f"{shard}:start"
            yield Record(where, error=f"unreadable tar shard ({e}); this record and the rest of the shard lost")
            return
        if members:
            yield _record(shard, key, members, oversized)

    def decode(self, record: Record) -> dict:
        members: dict[str, bytes | None] = record.data
        image_ext = next((e for e in members if is_image(e)), None)
        if image_ext is None:
            raise BadSample(record.where, f"malformed record: no image member (members: {sorted(members)})")
        caption = self._caption(record.where, members)
        image = open_image(members[image_ext], f"{record.where}.{image_ext}")
        return {"kind": "t2i", "caption": caption, "image": image, "source": record.where}

    def _caption(self, where: str, members: dict[str, bytes | None]) -> str:
        if "txt" in members:
            caption, member = _utf8(members["txt"], f"{where}.txt"), "txt"
        elif "json" in members:
            meta = parse_json_object(members["json"], f"{where}.json")
            if not isinstance(meta.get(self.caption_key), str):
                raise BadSample(f"{where}.json", f"malformed record: no string {self.caption_key!r} field")
            caption, member = meta[self.caption_key], "json"
        else:
            raise BadSample(where, f"malformed record: no caption member (.txt or .json) among {sorted(members)}")
        if not caption.strip():
            raise BadSample(f"{where}.{member}", "empty caption")
        return caption.strip()

    def __repr__(self) -> str:
        where = f"{len(self.shards)} shards from {self.shards[0].parent}"
        return f"WebDatasetSource({where}, rank={self.rank}/{self.world_size})"


def is_image(ext: str) -> bool:
    return "." + ext.lower() in IMAGE_EXTENSIONS


def member_limit(ext: str) -> int | None:
    """The most bytes a member with this extension may have; None for a member no sample uses."""
    if is_image(ext):
        return MAX_IMAGE_BYTES
    return MAX_RECORD_BYTES if ext in TEXT_MEMBERS else None


def _record(shard: Path, key: str, members: dict[str, bytes | None], oversized: list[tuple[str, int, int]]) -> Record:
    """One record, or a bad one naming the first member over its size limit."""
    if oversized:
        name, size, limit = oversized[0]
        return Record(f"{shard}:{name}", error=too_large(size, limit, "member"))
    return Record(f"{shard}:{key}", members)


def split_member_name(name: str) -> tuple[str, str]:
    """``"dir/000123.jpg"`` -> ``("dir/000123", "jpg")``: the key ends at the file name's first dot."""
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext


def _utf8(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadSample(where, f"malformed record: not UTF-8 text ({e})") from e
