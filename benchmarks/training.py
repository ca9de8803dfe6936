"""Training throughput and peak memory through the real trainer (data, image tokenizer, loss,
optimizer) on the built-in world, all four flows: the tiny preset, the shipped world model's size,
a mid-size model, and the show-o-256 width (2048 wide, 32 heads, 8192 MLP; 2 of its 24 layers on a
CPU) as a full fine-tune, with LoRA (rank 16), LoRA with gradient checkpointing, and each with bf16
autocast.

    .venv/bin/python benchmarks/training.py [--steps 8] [--rows tiny world lora lora-checkpointing]

Every row runs in a process of its own, so its peak memory is its own: the process's peak RSS on
a CPU, ``torch.cuda.max_memory_allocated`` on a GPU. Tokens/s counts every non-padding input token
of all flows, averaged over the steps after the first (which pays for warm-up). LoRA rows adapt a
random model of the same shape, written once before the rows (``init_from``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
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

SHOW_O_WIDTH = ('model={"preset": "world", "llm": {"hidden_size": 2048, "num_heads": 32, '
                '"intermediate_size": 8192, "num_layers": 2}}')
LORA = ["init_from={base}", "lora.rank=16"]
ROWS = {
    "tiny": [],  # 64 wide, 2 layers
    "world": ['model={"preset": "world"}'],  # 256 wide, 4 layers: the shipped world model
    "mid-size": [  # 512 wide, 8 layers, 8 heads (~27M parameters)
        ('model={"preset": "world", "llm": {"hidden_size": 512, "num_layers": 8, "num_heads": 8, '
         '"intermediate_size": 2048}}'),
    ],
    "full": [SHOW_O_WIDTH],
    "full-bf16": [SHOW_O_WIDTH, "mixed_precision=bf16"],
    "lora": [SHOW_O_WIDTH, *LORA],
    "lora-checkpointing": [SHOW_O_WIDTH, *LORA, "gradient_checkpointing=true"],
    "lora-bf16": [SHOW_O_WIDTH, *LORA, "mixed_precision=bf16"],
}


def peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def trainer(overrides: list[str], output: str) -> ShowoTrainer:
    return ShowoTrainer(build_config(train_preset("tiny"), None, overrides), output)


def measure(name: str, steps: int, tokenizer: Path, base: Path) -> dict:
    """One row, in this process."""
    overrides = [f"tokenizer={tokenizer}", f"max_steps={steps}", f"checkpoint_every={steps + 1}",
                 *(o.replace("{base}", str(base)) for o in ROWS[name])]
    with tempfile.TemporaryDirectory() as output:
        run = trainer(overrides, output)
        trained = sum(p.numel() for p in run.model.parameters() if p.requires_grad)
        parameters = sum(p.numel() for p in run.model.parameters())
        records, started = [], None
        for step in range(steps):
            if step == 1:
                started = time.perf_counter()
            records.append(run.train_step())
        elapsed = time.perf_counter() - started
        tokens = sum(r["tokens_per_s"] for r in records[1:]) / (steps - 1)
        device = run.accelerator.device
    return {"setting": name, "parameters": parameters, "trained": trained, "tokens_per_s": tokens,
            "seconds_per_step": elapsed / (steps - 1), "peak_memory_gib": peak_memory_gib(device),
            "device": describe_machine(device)}


def write_base(folder: Path, tokenizer: Path) -> Path:
    """A random model of the show-o-256 width, as a pipeline folder: what the LoRA rows adapt."""
    run = trainer([f"tokenizer={tokenizer}", SHOW_O_WIDTH], str(folder))
    run.save_final()
    return folder / "final"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    parser.add_argument("--output", help="write the rows as JSON here")
    parser.add_argument("--row", help=argparse.SUPPRESS)  # internal: measure one row, print it as JSON
    parser.add_argument("--tokenizer", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--base", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        print(json.dumps(measure(args.row, args.steps, args.tokenizer, args.base)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        tokenizer, base = Path(folder) / "tokenizer", Path(folder) / "base"
        TextTokenizer.train_bpe(world_texts(500), vocab_size=400).save(tokenizer)
        if any("init_from={base}" in ROWS[name] for name in args.rows):
            write_base(base, tokenizer)
        print("| setting | parameters (trained) | tokens/s | s/step | peak memory |\n|---|---|---|---|---|")
        for name in args.rows:
            command = [sys.executable, __file__, "--row", name, "--steps", str(args.steps),
                       "--tokenizer", str(tokenizer), "--base", str(base / "final")]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"row {name} failed:\n{done.stderr[-3000:]}")
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"| {name} | {row['parameters'] / 1e6:.1f}M ({row['trained'] / 1e6:.2f}M) | "
                  f"{row['tokens_per_s']:.0f} | {row['seconds_per_step']:.2f} | {row['peak_memory_gib']:.2f} GiB |",
                  flush=True)
    print(f"machine: {rows[0]['device']}")
    if args.output:
        Path(args.output).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
