"""DPG-Bench (ELLA, github TencentQQGYLab/ELLA, ``dpg_bench/``): the pictures of its prompts in
the layout its scorer (``dpg_bench/compute_dpg_bench.py``) reads.

The prompts are a folder of ``<name>.txt`` files, one prompt each. The scorer takes every file of
``--image-root-path``, looks its questions up by the name before the first dot, and crops
``--pic-num`` tiles of ``--resolution`` pixels from it, in the order (0, 0), (R, 0), (0, R),
(R, R): a 2x2 grid read row by row. So, for every prompt file (sorted by name)::

    DIR/<name>.png           2x2 grid: tile j = sample j, drawn with seed SEED + j, each tile at
                             the generation resolution (score with --resolution R --pic-num 4)
    DIR/showo_eval.json      the checkpoint, settings and seeds (``records``)

The scorer also lists ``showo_eval.json`` and skips it (``Failed filename: showo_eval.json``).
Each grid is written under a temporary name and renamed once complete; a killed run is resumed
by running the same command again.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from ...model.image_processing import grid, save_image
from ...pipeline import ShowoPipeline
from .drawing import Prompt, Sampling, check_counts, draw_prompts, seeds, shard
from .records import FORMAT, is_temporary, open_output, sha256_text, software

TILES = 4  # the scorer's 2x2 grid (its --pic-num at most 4)


def read_prompts(folder: str | Path) -> list[Prompt]:
    """The prompts of a DPG-Bench prompt folder: one per ``<name>.txt``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"--prompts {folder}: no such folder (DPG-Bench's dpg_bench/prompts)")
    files = sorted((p for p in folder.iterdir() if p.suffix == ".txt" and p.is_file()), key=lambda p: p.name)
    if not files:
        raise ValueError(f"--prompts {folder}: no <name>.txt prompt files")
    prompts = []
    for index, path in enumerate(files):
        try:
            text = path.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
        if not text:
            raise ValueError(f"{path}: the prompt file is empty")
        if "." in path.stem:
            raise ValueError(f"{path}: the scorer names a picture by what precedes its first dot; "
                             f"rename the prompt file without dots in its stem")
        prompts.append(Prompt(index, path.stem, text, text))
    return prompts


def picture_path(output: Path, prompt: Prompt) -> Path:
    return output / f"{prompt.name}.png"


def publish_grid(output: Path, prompt: Prompt, images: list[Image.Image]) -> None:
    save_image(grid(images, columns=2), picture_path(output, prompt))  # atomic: whole or not at all


def remove_interrupted(output: Path, prompts: list[Prompt]) -> None:
    """Remove what a killed run of these prompts left: ``.<name>.png.*.tmp`` files."""
    names = {f"{p.name}.png" for p in prompts}
    for entry in output.iterdir():
        if is_temporary(entry.name) and entry.is_file() and entry.name[1:].rsplit(".", 2)[0] in names:
            entry.unlink(missing_ok=True)


def dpg_record(folder: Path, prompts: list[Prompt], checkpoint: dict, settings: dict, seed: int, run: dict) -> dict:
    listing = "".join(f"{p.name}\t{p.text}\n" for p in prompts)
    return {
        "format": FORMAT, "benchmark": "dpg",
        "inputs": {"path": str(folder), "sha256": sha256_text(listing), "prompts": len(prompts)},
        "checkpoint": checkpoint,
        "settings": {**settings, "tiles": TILES, "layout": "2x2 grid, tile j = sample j, row by row"},
        "seeds": {"seed": seed, "rule": "tile j of every prompt: torch.Generator(device).manual_seed(seed + j)",
                  "values": seeds(seed, TILES)},
        "run": {**run, **software()},
    }


def run_dpg(pipe: ShowoPipeline, prompts_folder: str | Path, output: str | Path, *, checkpoint: dict,
            sampling: Sampling, batch_size: int = 8, seed: int = 0, rank: int = 0, world: int = 1) -> dict:
    """Draw the DPG-Bench prompts of this process's shard into ``output``; returns a summary as
    ``run_geneval`` does."""
    check_counts(TILES, batch_size, seed)
    prompts = read_prompts(prompts_folder)
    run = {"batch_size": batch_size, "world_size": world}
    record = dpg_record(Path(prompts_folder), prompts, checkpoint, sampling.record(pipe), seed, run)
    output = open_output(output, record)
    mine = shard(prompts, rank, world)
    remove_interrupted(output, mine)
    skipped, drawn = draw_prompts(
        pipe, prompts, n_samples=TILES, batch_size=batch_size, seed=seed, sampling=sampling,
        done=lambda p: picture_path(output, p).is_file(), publish=lambda p, images: publish_grid(output, p, images),
        rank=rank, world=world, desc="showo eval dpg")
    return {"skipped": skipped, "drawn": drawn, "prompts": len(mine), "output": str(output)}
