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
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

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


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a flat ``{name: tensor}`` dict from safetensors or a weights-only pickle."""
    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise ValueError(f"{path}: not a readable safetensors file ({e})") from e
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
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
                         "tokenizer_config.json", "discriminator.safetensors", "vq"})
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
    """True when ``folder/config.json`` says showo wrote the folder."""
    config = Path(folder) / "config.json"
    try:
        return json.loads(config.read_text()).get("format") in SHOWO_FORMATS
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
