"""Hugging Face Hub ids wherever showo takes a folder: ``resolve_folder("showlab/show-o")``.

A name that is a local path (it exists, is absolute, or starts with ``.`` or ``~``) is returned
as it is, so a local folder always wins and every local error stays what it was. A string of
the form ``org/name`` (checked with huggingface_hub's own rules) is resolved with
``huggingface_hub.snapshot_download`` to a folder of the Hugging Face cache, fetching only the
files showo reads. A ``pathlib.Path`` is always a local path, never an id.

Offline resolution: with ``HF_HUB_OFFLINE=1`` (read here at every call, not only when
huggingface_hub was imported) or ``local_files_only=True`` nothing is downloaded and nothing is
written: the revision is looked up in the cache's ``refs/`` (or taken as a commit hash) and the
folder ``snapshots/<commit>/`` is returned. Whatever cannot be resolved is one error naming the
id and what to do about it.
"""

from __future__ import annotations

import os
import posixpath
import shlex
from collections.abc import Sequence
from fnmatch import fnmatch
from pathlib import Path

from .checkpoint_io import WEIGHT_FILE_NAMES

# What each loader reads from a folder (relative to it). ``*.bin`` files are fetched only for a
# folder whose safetensors weights the repo does not have (see ``resolve_folder``).
MODEL_FILES = ("config.json", *WEIGHT_FILE_NAMES)  # ShowoModel, MagvitV2
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")  # TextTokenizer
LLM_CONFIG_FILES = ("config.json",)  # the base LLM's config of a released Show-o
PIPELINE_FILES = (  # ShowoPipeline: the model, its text tokenizer, sampling defaults and vq/
    *MODEL_FILES, *TOKENIZER_FILES, "generation_config.json", *(f"vq/{name}" for name in MODEL_FILES)
)

FILE_SUFFIXES = (".json", ".safetensors", ".bin", ".pt", ".pth")  # a name ending so is a file path, not an id
TRUE_VALUES = {"1", "ON", "YES", "TRUE"}  # huggingface_hub's reading of boolean variables


def resolve_folder(
    name_or_path: str | os.PathLike,
    *,
    subfolder: str | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    allow_patterns: Sequence[str] | None = None,
) -> Path:
    """The local folder that ``name_or_path`` names: a local path, or a Hub repo id.

    - A local path is returned as is (joined with ``subfolder``), whether it exists or not:
      the caller's own checks report a missing one.
    - A Hub id ``org/name`` that is not a local path: its files at ``revision`` (a branch, tag or
      commit hash; default ``main``) in the Hugging Face cache (``cache_dir``, default
      ``HF_HUB_CACHE``), downloaded first unless ``local_files_only`` or ``HF_HUB_OFFLINE=1``.
      Only the files matching ``allow_patterns`` (relative to ``subfolder``; default: what a showo
      pipeline folder holds, ``PIPELINE_FILES``) are fetched, and a ``.bin`` among them only when
      its folder has no safetensors weights in the repo (its file list, as huggingface_hub caches
      it, where known; else the downloaded folder). ``token``: for private or gated repos.

    Raises ``FileNotFoundError`` (not cached while downloads are off, no such repo or revision,
    the Hub unreachable), ``PermissionError`` (a gated or disabled repo) or ``ConnectionError``
    (another Hub error), each one line that names the id.
    """
    local = _local_path(name_or_path)
    if local is not None:
        return local / subfolder if subfolder else local
    return _from_hub(str(name_or_path), subfolder, revision, cache_dir, local_files_only, token, allow_patterns)


def is_hub_id(name: str) -> bool:
    """True for ``org/name`` as huggingface_hub validates repo ids (a bare ``name`` is taken as a path)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if name.count("/") != 1 or name.lower().endswith(FILE_SUFFIXES):
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _local_path(name: str | os.PathLike) -> Path | None:
    """``name`` as a local path, or None when it is to be looked up on the Hub."""
    if not isinstance(name, str):
        return Path(name)  # a Path (or another os.PathLike) is a path; anything else raises TypeError here
    path = Path(name)
    if path.is_absolute() or name.startswith((".", "~")) or path.exists() or not is_hub_id(name):
        return path
    return None


def _downloads_off(local_files_only: bool) -> str | None:
    """Why nothing may be downloaded, or None when downloads are on."""
    from huggingface_hub import constants

    if local_files_only:
        return "local_files_only=True"
    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in TRUE_VALUES:
        return "HF_HUB_OFFLINE=1"
    return None


def _from_hub(
    repo_id: str,
    subfolder: str | None,
    revision: str | None,
    cache_dir: str | os.PathLike | None,
    local_files_only: bool,
    token: str | bool | None,
    allow_patterns: Sequence[str] | None,
) -> Path:
    import huggingface_hub
    from huggingface_hub import utils as errors  # the error classes, exported there by every version

    prefix = f"{subfolder.strip('/')}/" if subfolder else ""
    patterns = [prefix + p for p in (PIPELINE_FILES if allow_patterns is None else allow_patterns)]
    bins = [p for p in patterns if p.endswith(".bin")]
    first = [p for p in patterns if p not in bins]
    off = _downloads_off(local_files_only)
    options = dict(cache_dir=cache_dir, token=token, local_files_only=off is not None)
    try:
        snapshot = Path(huggingface_hub.snapshot_download(repo_id, revision=revision, allow_patterns=first,
                                                          **options))
        fallbacks = _bin_fallbacks(repo_id, snapshot, bins, first, cache_dir)
        if fallbacks:  # by the commit just resolved: no second look-up of the revision
            snapshot = Path(huggingface_hub.snapshot_download(repo_id, revision=snapshot.name,
                                                              allow_patterns=fallbacks, **options))
    except (errors.HfHubHTTPError, errors.LocalEntryNotFoundError) as e:
        raise _hub_error(e, repo_id, revision, cache_dir, off) from e
    folder = snapshot / prefix if prefix else snapshot
    if not folder.is_dir():
        where = f"{repo_id} (subfolder {subfolder})" if subfolder else repo_id
        raise FileNotFoundError(f"{where} on the Hugging Face Hub holds none of the files showo reads there "
                                f"({', '.join(patterns)})")
    return folder


def _bin_fallbacks(repo_id: str, snapshot: Path, bins: list[str], first: list[str],
                   cache_dir: str | os.PathLike | None) -> list[str]:
    """The ``.bin`` patterns to fetch: those whose folder has no safetensors weights in the repo."""
    if not bins:
        return []
    listing = _cached_listing(repo_id, snapshot.name, cache_dir)
    wanted = []
    for pattern in bins:
        folder = posixpath.dirname(pattern)
        safetensors = [p for p in first if p.endswith(".safetensors") and posixpath.dirname(p) == folder]
        if listing is not None:
            if not any(fnmatch(f, pattern) for f in listing):
                continue  # the repo has no such file
            has_safetensors = any(fnmatch(f, p) for f in listing for p in safetensors)
        else:
            has_safetensors = any(next(snapshot.glob(p), None) is not None for p in safetensors)
        if not has_safetensors:
            wanted.append(pattern)
    return wanted


def _cached_listing(repo_id: str, commit: str, cache_dir: str | os.PathLike | None) -> set[str] | None:
    """The repo's files at ``commit`` as huggingface_hub cached them (it does so on download), or None."""
    try:
        from huggingface_hub import get_cached_repo_tree
    except ImportError:  # older huggingface_hub: no cached listings
        return None
    try:
        return {f.path for f in get_cached_repo_tree(repo_id, revision=commit, cache_dir=cache_dir)}
    except Exception:  # not cached, or unreadable: decide from the downloaded folder instead
        return None


def _hub_error(error: Exception, repo_id: str, revision: str | None, cache_dir: str | os.PathLike | None,
               off: str | None) -> OSError:
    """One line naming ``repo_id`` for an error of huggingface_hub."""
    from huggingface_hub import constants
    from huggingface_hub import utils as errors

    name = f"{repo_id} (revision {revision})" if revision else repo_id
    cache = os.fspath(cache_dir) if cache_dir is not None else constants.HF_HUB_CACHE
    options = (f" --revision {shlex.quote(revision)}" if revision else "") + (
        f" --cache-dir {shlex.quote(os.fspath(cache_dir))}" if cache_dir is not None else "")
    command = f"`hf download {repo_id}{options}` (or `huggingface-cli download {repo_id}{options}`)"
    cause = _first_line(error.__cause__ or error)  # a connection error under huggingface_hub's own
    if isinstance(error, errors.LocalEntryNotFoundError):
        partly = type(error).__name__ == "IncompleteSnapshotError"  # huggingface_hub >= 2: files missing
        state = "only partly in" if partly else "not in"
        undo = "local_files_only=False" if off == "local_files_only=True" else "unset HF_HUB_OFFLINE"
        if off is not None:
            return FileNotFoundError(
                f"{name} is not a local folder, and {state} the Hugging Face cache ({cache}) while downloads "
                f"are off ({off}): run {command} on a machine with network (or turn downloads on: {undo}), "
                "or pass a local folder")
        return FileNotFoundError(
            f"{name} is not a local folder, and {state} the Hugging Face cache ({cache}), and the Hugging Face "
            f"Hub could not be reached ({cause}): check the network, or run {command} on a machine with network, "
            "or pass a local folder")
    if isinstance(error, errors.GatedRepoError):
        return PermissionError(
            f"{repo_id} is gated on the Hugging Face Hub: accept its conditions at https://huggingface.co/{repo_id} "
            "and log in (`hf auth login`) or pass token=")
    if isinstance(error, errors.RepositoryNotFoundError):
        return FileNotFoundError(
            f"{repo_id} is neither a local folder nor a model on the Hugging Face Hub (a private one needs "
            "`hf auth login` or token=)")
    if isinstance(error, errors.RevisionNotFoundError):
        return FileNotFoundError(f"{repo_id} has no revision {revision!r} on the Hugging Face Hub")
    if isinstance(error, errors.DisabledRepoError):
        return PermissionError(f"{repo_id} is disabled on the Hugging Face Hub ({cause})")
    return ConnectionError(f"{name}: the Hugging Face Hub refused the download ({cause})")


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    line = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {line}" if line else type(error).__name__
