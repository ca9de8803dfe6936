"""``showo convert``: a released Show-o or MAGVIT-v2 folder rewritten in showo's format
(``config.json`` + ``model.safetensors``), through the key map of ``released_checkpoint``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .checkpoint_io import check_destination, read_json
from .magvit2 import MagvitV2
from .transformer import ShowoModel


def convert_folder(
    source: str | Path,
    destination: str | Path,
    llm_config: str | Path | None = None,
    dtype: torch.dtype | None = None,
    overwrite: bool = False,
    **magvit_overrides: Any,
) -> str:
    """Convert a released Show-o (or MAGVIT-v2) folder to ours; returns which kind it was.

    ``destination`` must be a new or empty folder, or a showo folder with ``overwrite``; never
    ``source`` or a folder inside it (checked before anything is read). ``magvit_overrides``
    change the MAGVIT-v2 architecture (the released folder names none)."""
    if not Path(source).is_dir():
        raise FileNotFoundError(f"{source}: no such checkpoint folder")
    check_destination(destination, overwrite, source=source)
    if _is_magvit_folder(Path(source)):
        vq = MagvitV2.from_pretrained(source, **magvit_overrides)
        if dtype is not None:
            vq.to(dtype)
        vq.save_pretrained(destination, overwrite)
        return "MAGVIT-v2"
    ShowoModel.from_pretrained(source, llm_config=llm_config, dtype=dtype).save_pretrained(destination, overwrite)
    return "Show-o"


def _is_magvit_folder(folder: Path) -> bool:
    config = folder / "config.json"
    if not config.is_file():
        return False
    d = read_json(config)
    return d.get("_class_name") in ("MAGVITv2", "MAGViTv2") or d.get("format") == "showo-magvit2"
