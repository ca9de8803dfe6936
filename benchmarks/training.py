"""Training throughput and peak memory: the tiny preset and a mid-size model, on the built-in
world, all four flows, through the real trainer (data, image tokenizer, loss, optimizer).

    .venv/bin/python benchmarks/training.py [--steps 8] [--mixed-precision bf16]

Tokens/s counts every non-padding input token of all flows, averaged over the steps after
the first (which pays for warm-up). Peak memory: the process's peak RSS on CPU, the peak of
``torch.cuda.max_memory_allocated`` on a GPU.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import describe_machine

from showo.data.world_source import world_texts
from showo.model.text_tokenizer import TextTokenizer
from showo.training.config import build_config
from showo.training.presets import train_preset
from showo.training.showo_trainer import ShowoTrainer

SETTINGS = {
    "tiny": [],  # 64 wide, 2 layers
    "world": ['model={"preset": "world"}'],  # 256 wide, 4 layers: the shipped world model
    "mid-size": [  # 512 wide, 8 layers, 8 heads (~27M parameters)
        ('model={"preset": "world", "llm": {"hidden_size": 512, "num_layers": 8, "num_heads": 8, '
        '"intermediate_size": 2048}}'),
    ],
}


def peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def measure(name: str, extra: list[str], steps: int, tokenizer: Path, precision: str) -> dict:
    overrides = [f"tokenizer={tokenizer}", f"max_steps={steps}", f"checkpoint_every={steps + 1}",
                 f"mixed_precision={precision}", *extra]
    with tempfile.TemporaryDirectory() as output:
        trainer = ShowoTrainer(build_config(train_preset("tiny"), None, overrides), output)
        parameters = sum(p.numel() for p in trainer.model.parameters())
        records, started = [], None
        for step in range(steps):
            if step == 1:
                started = time.perf_counter()
            records.append(trainer.train_step())
        elapsed = time.perf_counter() - started
        tokens = sum(r["tokens_per_s"] for r in records[1:]) / (steps - 1)
        device = trainer.accelerator.device
    return {"setting": name, "parameters": parameters, "tokens_per_s": tokens,
            "seconds_per_step": elapsed / (steps - 1), "peak_memory_gib": peak_memory_gib(device), "device": device}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--mixed-precision", default="no", choices=["no", "bf16", "fp16"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        TextTokenizer.train_bpe(world_texts(500), vocab_size=400).save(folder)
        rows = [measure(name, extra, args.steps, Path(folder), args.mixed_precision)
                for name, extra in SETTINGS.items()]
    print(f"machine: {describe_machine(rows[0]['device'])}, precision {args.mixed_precision}")
    print("| setting | parameters | tokens/s | s/step | peak memory |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['setting']} | {r['parameters'] / 1e6:.1f}M | {r['tokens_per_s']:.0f} | "
              f"{r['seconds_per_step']:.2f} | {r['peak_memory_gib']:.2f} GiB |")


if __name__ == "__main__":
    main()
