"""Reading and writing weight files safely.

Pickled files are read with ``torch.load(weights_only=True)`` so they can never run code;
every write goes to a temporary name first, is fsynced and renamed when complete, and never
replaces what showo did not write.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import struct
import sys
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

# Names looked for in a checkpoint folder, in order of preference.
WEIGHT_FILE_NAMES = ("model.safetensors", "pytorch_model.safetensors", "pytorch_model.bin")


MAX_JSON_BYTES = 16 * 2**20  # no config, index or state file showo reads comes near this


def read_json(path: str | Path) -> dict:
    """The JSON object in a file, or one error that names the file: missing (``FileNotFoundError``),
    too large, not JSON, nested too deeply to read, numbers too long to convert, or not an object."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise ValueError(f"{path}: {path.stat().st_size:,} bytes, too large for a config file "
                         f"(at most {MAX_JSON_BYTES:,})")
    try:
        value = json.loads(path.read_text())
    except RecursionError:
        raise ValueError(f"{path}: not valid JSON (nested too deeply to read)") from None
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError, and ints past Python's digit limit
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def jsonl_records(path: str | Path, where: Callable[[int], str]) -> Iterator[tuple[str, Any]]:
    """``(where(n), value)`` for each non-blank line ``n`` (counted from 1) of a JSON-lines file; a
    line that is not JSON is a ``ValueError`` that starts with ``where(n)``."""
    for place, _, value in jsonl_lines(path, where):
        yield place, value


def jsonl_lines(path: str | Path, where: Callable[[int], str]) -> Iterator[tuple[str, str, Any]]:
    """``jsonl_records`` with each line's own text too: ``(where(n), line, value)``, the line stripped."""
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except RecursionError:
            raise ValueError(f"{where(number)}: not valid JSON (nested too deeply to read)") from None
        except ValueError as e:  # JSONDecodeError, and ints past Python's digit limit
            raise ValueError(f"{where(number)}: not valid JSON ({getattr(e, 'msg', e)})") from None
        yield where(number), line.strip(), value


def find_weight_file(folder: str | Path) -> Path:
    """The weight file of a checkpoint folder (or the path itself when it is a file)."""
    path = Path(folder)
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such checkpoint folder or file")
    for name in WEIGHT_FILE_NAMES:
        if (path / name).is_file():
            return path / name
    present = sorted(p.name for p in path.iterdir())
    raise FileNotFoundError(
        f"{path}: no weights found; expected one of {list(WEIGHT_FILE_NAMES)}, folder holds {present}"
    )


def load_state_dict(path: str | Path, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Load a flat ``{name: tensor}`` dict from safetensors or a weights-only pickle.

    ``dtype``: floating-point tensors are converted to it as they are read (integer and bool
    tensors keep their type, as ``Module.to(dtype)`` leaves them); None keeps the stored precision.
    See ``iter_state_dict``: the file's own precision is never held whole."""
    return dict(iter_state_dict(path, dtype))


def iter_state_dict(path: str | Path, dtype: torch.dtype | None = None) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, tensor)`` of a weight file one tensor at a time, each read with plain file reads and
    converted to ``dtype`` at most ``CHUNK_BYTES`` of the stored precision at a time.

    Memory-mapped loading (``safe_open``, ``torch.load(mmap=True)``) would keep every page it
    touched resident until the whole file is closed, so converting a fp32 file to bf16 would peak
    at the fp32 size plus the bf16 size; read this way the peak is the loaded size plus one chunk.
    Old (non-zip) pickles, which name no offsets, are loaded whole and converted one by one."""
    path = Path(path)
    if path.suffix == ".safetensors":
        yield from _iter_safetensors(path, dtype)
    else:
        yield from _iter_torch_file(path, dtype)


CHUNK_BYTES = 64 * 2**20  # of the stored precision read and converted at a time
SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}


def _iter_safetensors(path: Path, dtype: torch.dtype | None) -> Iterator[tuple[str, torch.Tensor]]:
    try:
        data_start, header = _safetensors_header(path)
        with open(path, "rb") as file:
            reader = _Reader(file, dtype)
            for name, entry in header.items():
                stored = SAFETENSORS_DTYPES.get(entry["dtype"])
                if stored is None:
                    raise ValueError(f"tensor {name!r} has dtype {entry['dtype']}, which showo does not read")
                yield name, reader.tensor(data_start + entry["data_offsets"][0], entry["shape"], stored)
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable safetensors file ({e})") from e


def _safetensors_header(path: Path) -> tuple[int, dict]:
    """Where the data starts, and each tensor's dtype, shape and byte range after it.

    ``safe_open`` checks the header first (offsets, sizes and the file's length agree; it reads no
    tensor data); the header is then read as the format defines it (github huggingface/safetensors,
    README "Format"): an 8-byte little-endian length, then that many bytes of JSON."""
    with safe_open(str(path), framework="pt"):
        pass
    with open(path, "rb") as file:
        (length,) = struct.unpack("<Q", file.read(8))
        header = json.loads(file.read(length))
    header.pop("__metadata__", None)
    return 8 + length, header


def _iter_torch_file(path: Path, dtype: torch.dtype | None) -> Iterator[tuple[str, torch.Tensor]]:
    """A ``torch.save`` zip: ``torch.load(map_location="meta")`` gives every tensor's dtype, shape,
    strides and (``_checkpoint_offset``) where its storage lies in the file, without reading data."""
    layout = _load_torch_file(path, map_location="meta")
    offsets = {name: getattr(t.untyped_storage(), "_checkpoint_offset", None) for name, t in layout.items()}
    if None in offsets.values() or not _stored_little_endian(path):  # an old pickle, or a foreign byte order
        yield from _converted_one_by_one(_load_torch_file(path, map_location="cpu"), dtype)
        return
    keys = {name: (offsets[name], t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
            for name, t in layout.items()}
    shared = {key for key, count in Counter(keys.values()).items() if count > 1}
    read: dict[tuple, torch.Tensor] = {}  # tensors saved as one (tied weights) stay one
    try:
        with open(path, "rb") as file:
            reader = _Reader(file, dtype)
            for name, t in layout.items():
                tensor = read.get(keys[name])
                if tensor is None:
                    tensor = reader.view(offsets[name], t)
                    if keys[name] in shared:
                        read[keys[name]] = tensor
                yield name, tensor
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable PyTorch weights file ({e})") from e


def _load_torch_file(path: Path, map_location: str) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(
            f"{path}: refused to unpickle: the file holds objects other than tensors "
            f"(loading with weights_only=True, so no code is run). Details: {e}"
        ) from e
    except (RuntimeError, EOFError, OSError) as e:
        raise ValueError(f"{path}: not a readable PyTorch weights file ({e})") from e
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a flat dict of tensors, got {type(state).__name__}")
    return dict(state)


def _stored_little_endian(path: Path) -> bool:
    """True when the zip's tensors are little-endian, as this machine's (torch writes a ``byteorder``
    record; files from before it are little-endian)."""
    if sys.byteorder != "little":
        return False
    with zipfile.ZipFile(path) as archive:
        records = [name for name in archive.namelist() if name.endswith("/byteorder")]
        return not records or archive.read(records[0]).decode() == "little"


def _converted_one_by_one(
    state: dict[str, torch.Tensor], dtype: torch.dtype | None
) -> Iterator[tuple[str, torch.Tensor]]:
    for name in list(state):
        tensor = state.pop(name)
        yield name, tensor.to(dtype) if dtype is not None and tensor.is_floating_point() else tensor


class _Reader:
    """Reads the tensors of one open weight file, floating-point ones converted to ``dtype``.

    A conversion goes through one scratch buffer of at most ``CHUNK_BYTES``, made when first needed
    and reused for every tensor of the file: a buffer per tensor, freed between the tensors kept,
    would leave holes in the heap that the allocator cannot hand back."""

    def __init__(self, file: BinaryIO, dtype: torch.dtype | None) -> None:
        self.file, self.dtype = file, dtype
        self.scratch: torch.Tensor | None = None

    def tensor(self, offset: int, shape, stored: torch.dtype) -> torch.Tensor:
        """The tensor of ``shape`` stored contiguously at byte ``offset`` in ``stored`` precision."""
        target = self.dtype if self.dtype is not None and stored.is_floating_point else stored
        out = torch.empty(tuple(shape), dtype=target)
        flat = out.view(-1)
        self.file.seek(offset)
        if target == stored:
            _read_into(self.file, flat)  # straight into place
            return out
        buffer = self._buffer(stored)
        for start in range(0, flat.numel(), buffer.numel()):
            piece = buffer[: min(buffer.numel(), flat.numel() - start)]
            _read_into(self.file, piece)
            flat[start : start + piece.numel()].copy_(piece)
        return out

    def view(self, storage_at: int, layout: torch.Tensor) -> torch.Tensor:
        """The tensor ``layout`` (a meta tensor) describes, its storage starting at byte ``storage_at``."""
        size = layout.element_size()
        if layout.is_contiguous():
            return self.tensor(storage_at + layout.storage_offset() * size, layout.shape, layout.dtype)
        storage = self.tensor(storage_at, [layout.untyped_storage().nbytes() // size], layout.dtype)
        return storage.as_strided(layout.shape, layout.stride(), layout.storage_offset()).clone()

    def _buffer(self, stored: torch.dtype) -> torch.Tensor:
        if self.scratch is None:
            self.scratch = _source_buffer(min(CHUNK_BYTES, os.fstat(self.file.fileno()).st_size))
        return self.scratch[: self.scratch.numel() // stored.itemsize * stored.itemsize].view(stored)


def _source_buffer(nbytes: int) -> torch.Tensor:
    """The scratch bytes that stored-precision data is read into before it is converted."""
    return torch.empty(max(nbytes, 8), dtype=torch.uint8)


def _read_into(file: BinaryIO, tensor: torch.Tensor) -> None:
    """Fill the contiguous ``tensor`` with the next bytes of ``file``."""
    if tensor.numel() == 0:
        return
    view = memoryview(tensor.view(torch.uint8).numpy()).cast("B")
    done = 0
    while done < len(view):
        got = file.readinto(view[done:])
        if not got:
            raise ValueError(f"the file ends early: {len(view) - done:,} bytes of a tensor are missing")
        done += got


def check_state_dict(
    state: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Size],
    source: str,
) -> None:
    """Raise one ``ValueError`` that lists every missing, unexpected and mis-shaped key."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(
        f"{k}: expected {tuple(expected[k])}, got {tuple(state[k].shape)}"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != tuple(expected[k])
    )
    problems = []
    for title, items in (("missing keys", missing), ("unexpected keys", unexpected), ("mis-shaped keys", misshaped)):
        if items:
            shown = items[:20] + ([f"... and {len(items) - 20} more"] if len(items) > 20 else [])
            problems.append(f"{title} ({len(items)}): " + ", ".join(shown))
    if problems:
        raise ValueError(f"{source}: weights do not fit the model:\n  " + "\n  ".join(problems))


# What showo writes into a model folder; a folder holding anything else is not replaced.
SHOWO_FILES = frozenset({"config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
                         "tokenizer_config.json", "discriminator.safetensors", "vq",
                         "adapter_config.json", "adapter_model.safetensors"})  # the last two: a LoRA adapter
SHOWO_FORMATS = ("showo", "showo-magvit2")


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` and move the result to ``path`` only once it is complete and on disk.

    The temporary file sits beside ``path``; it is fsynced, given the mode a new file gets under
    the umask, renamed over ``path``, and the folder is fsynced. On any failure it is removed
    and ``path`` keeps what it held; a full disk is reported as such."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        fsync(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        _raise_if_disk_full(e, path)
        raise
    fsync(path.parent)


def save_safetensors(state: Mapping[str, torch.Tensor], path: str | Path) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))


def replace_folder(target: str | Path, fill: Callable[[Path], None], overwrite: bool = False) -> None:
    """Build a folder under a temporary name with ``fill(tmp)``, fsync it, then move it into place.

    ``target`` may be new or an empty folder; a folder showo wrote (``is_showo_folder``) is
    replaced only with ``overwrite``; anything else is refused before any work (``check_destination``).
    On any failure the temporary folder is removed and ``target`` is left as it was."""
    target = Path(os.path.abspath(target))
    check_destination(target, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700
    try:
        fill(tmp)
        fsync_tree(tmp)
        _swap_into_place(tmp, target)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        _raise_if_disk_full(e, target)
        raise
    fsync(target.parent)


def check_destination(target: str | Path, overwrite: bool = False, source: str | Path | None = None) -> None:
    """Refuse, with a ValueError that says why, any destination showo must not replace: a file,
    a non-empty folder showo did not write, a showo folder without ``overwrite``, and ``source``
    itself or a folder inside it."""
    target = Path(os.path.abspath(target))
    if source is not None:
        source = Path(os.path.abspath(source))
        if target == source or source in target.parents:
            raise ValueError(f"{target}: the destination is the source folder {source} or inside it; "
                             "choose a folder elsewhere")
    if target.exists() and not target.is_dir():
        raise ValueError(f"{target}: is a file; the destination must be a new or empty folder")
    if not target.is_dir() or not any(target.iterdir()):
        return
    if not is_showo_folder(target):
        raise ValueError(f"{target}: the folder holds files showo did not write; choose a new or empty folder")
    foreign = sorted(entry.name for entry in target.iterdir() if entry.name not in SHOWO_FILES)
    if foreign:
        raise ValueError(f"{target}: besides a showo model the folder holds {foreign}, which replacing it would "
                         "delete; move them away or choose another folder")
    if not overwrite:
        raise ValueError(f"{target}: a showo model is already there; pass overwrite=True (--overwrite) to replace it")


def is_showo_folder(folder: str | Path) -> bool:
    """True when ``folder/config.json`` says showo wrote the folder, or it is a LoRA adapter folder
    (``adapter_config.json`` of peft_type LORA, as ``showo.model.adapters.save_adapter`` writes)."""
    folder = Path(folder)
    try:
        if (folder / "config.json").is_file():
            return json.loads((folder / "config.json").read_text()).get("format") in SHOWO_FORMATS
        return json.loads((folder / "adapter_config.json").read_text()).get("peft_type") == "LORA"
    except (OSError, ValueError, AttributeError, RecursionError):
        return False


def _swap_into_place(tmp: Path, target: Path) -> None:
    if not target.exists():
        os.replace(tmp, target)
        return
    if not any(target.iterdir()):
        os.rmdir(target)
        os.replace(tmp, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.replace(target, old)  # onto the empty folder just made
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


class DiskFullError(OSError):
    """A write failed for want of space; the message names the file and the space left."""

    def __str__(self) -> str:
        return str(self.strerror)


def _raise_if_disk_full(error: BaseException, path: Path) -> None:
    """Re-raise a write failure caused by a full disk as a ``DiskFullError`` that says so."""
    if isinstance(error, DiskFullError):
        return
    full = (isinstance(error, OSError) and error.errno == errno.ENOSPC) or (
        isinstance(error, RuntimeError) and ("No space left" in str(error) or "file write failed" in str(error)))
    if not full:
        return
    try:
        free = f"{shutil.disk_usage(path.parent).free / 2**20:.1f} MiB free there"
    except OSError:
        free = "free space unknown"
    raise DiskFullError(errno.ENOSPC, f"disk full while writing {path} ({free}); nothing was written there and the "
                  "temporary files were removed") from error


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync(path: Path) -> None:
    """Flush a file or a folder entry to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """Flush every file and folder under ``folder`` to disk."""
    for root, _, files in os.walk(folder):
        for name in files:
            fsync(Path(root) / name)
        fsync(Path(root))
