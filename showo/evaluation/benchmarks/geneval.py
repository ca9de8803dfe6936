"""GenEval (Ghosh et al. 2023, github djghosh13/geneval): the pictures of its prompts in the folder
layout its own scorer (``evaluation/evaluate_images.py``) reads.

The scorer lists ``IMAGEDIR``, takes every sub-folder whose name is all digits, reads its
``metadata.jsonl`` with ``json.load`` (one JSON object: the prompt's line of
``evaluation_metadata.jsonl``, of which it uses ``tag``, ``prompt``, ``include`` and ``exclude``) and
scores every ``samples/<digits>.png``. So, for prompt ``i`` of the metadata file (blank lines
skipped), in the file's order::

    DIR/00000/metadata.jsonl      the prompt's metadata line, as is
    DIR/00000/samples/0000.png    sample 0 (seed SEED), ... sample N-1 (seed SEED + N - 1)
    DIR/showo_eval.json           the checkpoint, settings and seeds (``records``)

Names are zero-padded as in GenEval's README (5 digits per prompt, 4 per sample). Each prompt
folder is built under a temporary name and renamed into place once complete, so a folder that is
there is complete: a killed run is resumed by running the same command again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image

from ...model.checkpoint_io import jsonl_lines, replace_folder
from ...model.validation import shown
from ...pipeline import ShowoPipeline
from .drawing import Prompt, Sampling, check_counts, draw_prompts, seeds, shard
from .records import FORMAT, is_temporary, open_output, sha256_file, software

REQUIRED = ("tag", "prompt")  # fields the scorer reads from every line (include/exclude: when present)


def read_metadata(path: str | Path) -> list[Prompt]:
    """The prompts of a GenEval ``evaluation_metadata.jsonl``, in order; each keeps its line as is.
    A line that is not a JSON object with ``tag`` and ``prompt`` strings is refused by number."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--metadata {path}: no such file")
    prompts = []
    for where, line, record in jsonl_lines(path, lambda number: f"--metadata {path} line {number}"):
        if not isinstance(record, dict):
            raise ValueError(f"{where}: expected a JSON object (GenEval metadata), got {type(record).__name__}")
        for field in REQUIRED:
            if not isinstance(record.get(field), str) or not record[field].strip():
                raise ValueError(f'{where}: field "{field}" must be a non-empty string, got {shown(record.get(field))}')
        index = len(prompts)
        prompts.append(Prompt(index, f"{index:05d}", record["prompt"], line))
    if not prompts:
        raise ValueError(f"--metadata {path}: no metadata lines")
    return prompts


def sample_name(j: int) -> str:
    return f"{j:04d}.png"


def prompt_done(output: Path, prompt: Prompt, n_samples: int) -> bool:
    """Whether ``output/NNNNN`` holds the prompt's metadata and its ``n_samples`` samples. A folder
    there without them was not written by this run (showo publishes whole folders) and is refused,
    never replaced."""
    folder = output / prompt.name
    if not folder.exists():
        return False
    expected = ["metadata.jsonl", *(f"samples/{sample_name(j)}" for j in range(n_samples))]
    missing = [name for name in expected if not (folder / name).is_file()]
    if missing:
        raise ValueError(f"{folder}: an incomplete prompt folder that showo did not write (it lacks "
                         f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}); move it away and run again")
    return True


def publish_prompt(output: Path, prompt: Prompt, images: list[Image.Image]) -> None:
    def fill(tmp: Path) -> None:
        (tmp / "metadata.jsonl").write_text(prompt.source + "\n", encoding="utf-8")
        (tmp / "samples").mkdir()
        for j, image in enumerate(images):
            image.save(tmp / "samples" / sample_name(j), format="PNG")

    replace_folder(output / prompt.name, fill)


def remove_interrupted(output: Path, prompts: list[Prompt]) -> None:
    """Remove what a killed run of this process's prompts left: ``.NNNNN.*.tmp`` folders."""
    names = {p.name for p in prompts}
    for entry in output.iterdir():
        if is_temporary(entry.name) and entry.is_dir() and entry.name[1:].split(".")[0] in names:
            shutil.rmtree(entry, ignore_errors=True)


def geneval_record(metadata: Path, prompts: list[Prompt], checkpoint: dict, settings: dict, n_samples: int,
                   seed: int, run: dict) -> dict:
    return {
        "format": FORMAT, "benchmark": "geneval",
        "inputs": {"path": str(metadata), "sha256": sha256_file(metadata), "prompts": len(prompts)},
        "checkpoint": checkpoint,
        "settings": {**settings, "n_samples": n_samples},
        "seeds": {"seed": seed, "rule": "sample j of every prompt: torch.Generator(device).manual_seed(seed + j)",
                  "values": seeds(seed, n_samples)},
        "run": {**run, **software()},
    }


def run_geneval(pipe: ShowoPipeline, metadata: str | Path, output: str | Path, *, checkpoint: dict,
                sampling: Sampling, n_samples: int = 4, batch_size: int = 8, seed: int = 0, rank: int = 0,
                world: int = 1) -> dict:
    """Draw the GenEval prompts of this process's shard into ``output``; returns a summary
    (``skipped``: prompts already there, ``drawn``: prompts drawn now, ``prompts``: this shard's)."""
    check_counts(n_samples, batch_size, seed)
    metadata = Path(metadata)
    prompts = read_metadata(metadata)
    run = {"batch_size": batch_size, "world_size": world}
    record = geneval_record(metadata, prompts, checkpoint, sampling.record(pipe), n_samples, seed, run)
    output = open_output(output, record)
    mine = shard(prompts, rank, world)
    remove_interrupted(output, mine)
    skipped, drawn = draw_prompts(
        pipe, prompts, n_samples=n_samples, batch_size=batch_size, seed=seed, sampling=sampling,
        done=lambda p: prompt_done(output, p, n_samples), publish=lambda p, images: publish_prompt(output, p, images),
        rank=rank, world=world, desc="showo eval geneval")
    return {"skipped": skipped, "drawn": drawn, "prompts": len(mine), "output": str(output)}
