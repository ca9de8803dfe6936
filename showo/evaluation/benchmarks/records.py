"""What every benchmark run writes beside its outputs, so that two runs can be compared: the
checkpoint (sha256 of each weights file), the settings, the seeds and the inputs, in
``DIR/showo_eval.json``; and the rules of an output folder.

An output folder is new, empty, or one an earlier ``showo eval`` of the same benchmark wrote
(it holds ``showo_eval.json``). Resuming into it is allowed only with the same record: the same
checkpoint files, inputs and settings (``COMPARED``); anything else is refused with the fields
that differ. A non-empty folder without the record is refused: showo never writes into, or
deletes from, a folder it did not write.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from ...model.checkpoint_io import find_weight_file, read_json
from ...model.hub import resolve_folder
from ...model.image_processing import write_text_file
from ...model.validation import shown

RECORD = "showo_eval.json"
FORMAT = 1
COMPARED = ("benchmark", "inputs", "checkpoint", "settings", "seeds")  # must match to resume into a folder
CHUNK = 8 * 2**20


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def checkpoint_record(model: str | Path, vq: str | Path | None = None, adapter: str | Path | None = None) -> dict:
    """The weights files of a pipeline as it was loaded (``model``: a folder or Hub id, already
    resolved once by the loader; ``vq`` default ``model/vq``; an optional LoRA ``adapter``), each
    with its sha256, and one sha256 over all of them (``sha256``): the checkpoint's fingerprint.
    The text tokenizer and the configs are not weights and are not hashed."""
    model_dir = resolve_folder(model, local_files_only=True)
    parts = {"model": find_weight_file(model_dir),
             "vq": find_weight_file(resolve_folder(vq, local_files_only=True) if vq else model_dir / "vq")}
    if adapter is not None:
        parts["adapter"] = find_weight_file(resolve_folder(adapter, local_files_only=True))
    files = {f"{part}/{path.name}": sha256_file(path) for part, path in parts.items()}
    combined = sha256_text("".join(f"{name} {digest}\n" for name, digest in sorted(files.items())))
    return {"model": str(model), "vq": None if vq is None else str(vq),
            "adapter": None if adapter is None else str(adapter), "files": files, "sha256": combined}


def software() -> dict:
    try:
        showo_version = version("showo")
    except PackageNotFoundError:  # run from a source tree that was not installed
        showo_version = "unknown"
    return {"showo": showo_version, "torch": torch.__version__}


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) of this process under ``torchrun`` / ``accelerate launch`` (``RANK`` and
    ``WORLD_SIZE`` in the environment); (0, 1) alone. Refuses values that cannot be a rank."""
    try:
        rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ValueError(f"RANK={os.environ.get('RANK')!r} and WORLD_SIZE={os.environ.get('WORLD_SIZE')!r} must be "
                         "integers (as torchrun and accelerate launch set them)") from None
    if not 0 <= rank < world:
        raise ValueError(f"RANK={rank} must lie in 0..WORLD_SIZE-1 (WORLD_SIZE={world})")
    return rank, world


# -- the output folder ----------------------------------------------------------------------------------
TEMPORARY = re.compile(r"\..+\.tmp")  # what an interrupted atomic write of showo leaves (hidden, .tmp)


def is_temporary(name: str) -> bool:
    return TEMPORARY.fullmatch(name) is not None


def check_output(folder: str | Path) -> None:
    """Refuse, before any work, an output that can never be taken: a file, or a non-empty folder
    without a record (whether a record matches is known once the model is loaded: ``open_output``)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--output {folder}: is a file; give a folder for the results")
    if folder.is_dir() and not (folder / RECORD).is_file():
        _refuse_foreign(folder)


def _refuse_foreign(folder: Path) -> None:
    foreign = sorted(entry.name for entry in folder.iterdir() if not is_temporary(entry.name))
    if foreign:
        listed = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ValueError(f"--output {folder}: the folder holds files showo did not write ({listed}) and no {RECORD}; "
                         "choose a new or empty folder")


def open_output(folder: str | Path, record: dict) -> Path:
    """Make ``folder`` ready for a run described by ``record`` and return it: created when missing,
    the record written when the folder is new or empty; an earlier run's folder is taken only when
    its record matches (``COMPARED``), so a resumed run never mixes settings or checkpoints. Several
    processes of one sharded run may call this at once: they write the same record."""
    folder = Path(folder)
    check_output(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / RECORD
    if path.is_file():
        check_same_run(read_json(path), record, path)
        return folder
    write_text_file(path, json.dumps(record, indent=2) + "\n")
    return folder


def check_same_run(earlier: dict, record: dict, path: Path) -> None:
    """A ValueError naming every compared field whose value differs between ``earlier`` (read from
    ``path``) and ``record``."""
    if earlier.get("format") != FORMAT or earlier.get("benchmark") != record["benchmark"]:
        raise ValueError(f"{path}: written by another kind of run ({earlier.get('benchmark')!r}, format "
                         f"{earlier.get('format')!r}), not showo eval {record['benchmark']}; choose a new folder")
    record = json.loads(json.dumps(record))  # as it would be read back (tuples become lists)
    differences = []
    for key in COMPARED:
        differences += _differences(key, earlier.get(key), record[key])
    if differences:
        shown_ = "; ".join(differences[:6]) + (f"; and {len(differences) - 6} more" if len(differences) > 6 else "")
        raise ValueError(f"{path}: the results there were made with other settings ({shown_}); resume only with "
                         "the same model, inputs and settings, or choose a new folder")


def _differences(name: str, there: Any, here: Any) -> list[str]:
    if isinstance(there, dict) and isinstance(here, dict):
        return [d for key in sorted(set(there) | set(here)) for d in _differences(f"{name}.{key}", there.get(key),
                                                                                   here.get(key))]
    if name in ("checkpoint.model", "checkpoint.vq", "checkpoint.adapter", "inputs.path"):
        return []  # where the files were found: the same files may be loaded from another place
    return [] if there == here else [f"{name}: {shown(there)} there, {shown(here)} now"]
