"""The text-to-image benchmarks' common loop: ``n_samples`` pictures of every prompt at fixed
seeds, batched, published prompt by prompt, resumable and sharded.

- Seeds: sample ``j`` of every prompt is drawn with ``torch.Generator(device).manual_seed(seed + j)``
  (the pipeline's per-picture generators: a picture does not depend on the batch it is drawn in).
- Batches: up to ``batch_size`` pictures are sampled at once, across prompts; the codes of one
  prompt are decoded together, so its pictures do not depend on how prompts were batched or
  sharded either.
- Resume: a prompt whose output is already published (``done``) is skipped; ``publish`` writes a
  prompt's output whole or not at all.
- Shards: under ``torchrun`` / ``accelerate launch`` process ``rank`` of ``world`` draws prompts
  ``rank, rank + world, ...``; no process waits for another, and one process alone draws all.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from tqdm import tqdm

from ...generation import arguments
from ...generation.maskgit import MaskGITSampler
from ...pipeline import ShowoPipeline


@dataclass(frozen=True)
class Prompt:
    """One prompt of a benchmark: its place in the benchmark's order, the name of its output
    (a folder or file stem) and its text; ``source`` is what the benchmark's file held for it."""

    index: int
    name: str
    text: str
    source: str = ""


@dataclass(frozen=True)
class Sampling:
    """The MaskGIT sampling of every picture, resolved (no None left): what the record holds."""

    steps: int
    guidance_scale: float
    schedule: str
    temperature: float
    mode: str  # maskgit | released

    @classmethod
    def resolve(cls, pipe: ShowoPipeline, steps: int | None = None, guidance_scale: float | None = None,
                schedule: str | None = None, temperature: float | None = None, released: bool = False) -> Sampling:
        """The values given, else the model's ``generation_config.json``; checked."""
        values = pipe.generation.resolve(steps=steps, guidance_scale=guidance_scale, schedule=schedule,
                                         temperature=temperature)
        sampling = cls(mode="released" if released else "maskgit", **values)
        MaskGITSampler(sampling.steps, sampling.schedule, sampling.temperature, sampling.mode)  # checks them
        arguments.guidance_scale(sampling.guidance_scale)
        return sampling

    def record(self, pipe: ShowoPipeline) -> dict:
        """The settings that decide the pictures: these, the accelerations the model's generation
        config adds (none with the released sampler), prompt planning and the resolution."""
        accelerations = {} if self.mode == "released" else pipe.generation.accelerations()
        return {"steps": self.steps, "guidance_scale": self.guidance_scale, "schedule": self.schedule,
                "temperature": self.temperature, "sampler": self.mode, "accelerations": accelerations,
                "plan_prompts": pipe.generation.plan_prompts, "resolution": pipe.config.image_size,
                "dtype": str(pipe.dtype).removeprefix("torch."), "vq_dtype": str(pipe.vq_dtype).removeprefix("torch."),
                "device_type": pipe.device.type}

    def kwargs(self) -> dict:
        return {"steps": self.steps, "guidance_scale": self.guidance_scale, "schedule": self.schedule,
                "temperature": self.temperature, "mode": self.mode}


def check_counts(n_samples: int, batch_size: int, seed: int) -> None:
    """Refuse a bad count or seed (before anything is written)."""
    arguments.integer("n_samples", n_samples, 1, 4096)
    arguments.integer("batch_size", batch_size, 1, 4096)
    arguments.seed(seed, n_samples)


def seeds(seed: int, n_samples: int) -> list[int]:
    return [seed + j for j in range(n_samples)]


def shard(prompts: Sequence[Prompt], rank: int, world: int) -> list[Prompt]:
    return [p for p in prompts if p.index % world == rank]


def draw_prompts(
    pipe: ShowoPipeline,
    prompts: Sequence[Prompt],
    *,
    n_samples: int,
    batch_size: int,
    seed: int,
    sampling: Sampling,
    done: Callable[[Prompt], bool],
    publish: Callable[[Prompt, list[Image.Image]], None],
    rank: int = 0,
    world: int = 1,
    desc: str = "showo eval",
) -> tuple[int, int]:
    """Draw and publish every prompt of this process's shard that is not ``done``; returns
    (prompts skipped as done, prompts drawn now)."""
    check_counts(n_samples, batch_size, seed)
    mine = shard(prompts, rank, world)
    todo = [p for p in mine if not done(p)]
    pictures = [(p, j) for p in todo for j in range(n_samples)]
    codes: dict[int, list[torch.Tensor]] = {}
    label = desc if world == 1 else f"{desc} (rank {rank}/{world})"
    with tqdm(total=len(todo), desc=label, unit="prompt", file=sys.stderr, disable=None) as bar:
        for start in range(0, len(pictures), batch_size):
            batch = pictures[start:start + batch_size]
            generators = [torch.Generator(pipe.device).manual_seed(seed + j) for _, j in batch]
            drawn = pipe.generate_codes([p.text for p, _ in batch], generator=generators, **sampling.kwargs())
            for (prompt, _), row in zip(batch, drawn):
                codes.setdefault(prompt.index, []).append(row)
                if len(codes[prompt.index]) == n_samples:
                    publish(prompt, pipe.decode_codes(torch.stack(codes.pop(prompt.index))))
                    bar.update(1)
    return len(mine) - len(todo), len(todo)
