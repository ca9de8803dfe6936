"""Speed against quality of the sampling accelerations, on the shipped world model.

    python benchmarks/world_sampling.py                                  # every setting, seeds 0 1 2
    python benchmarks/world_sampling.py --settings exact-fp32 fast --seeds 0 --output world.json

Each setting draws the quickstart's 288 held-out GenEval-style prompts (48 per category) in
batches of ``--batch`` and reads every picture back (``showo.world``): seconds per picture (the
``text_to_image`` calls only: sampling and decoding, not the judge) and ``t2i_overall``, for each
seed and their mean. Prints a table and writes JSON with ``--output``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch

import showo
from showo.evaluation import tasks
from showo.world import geneval_prompts, geneval_scores

# name -> (dtype, generation-config fields over the shipped model's)
SETTINGS: dict[str, tuple[torch.dtype, dict]] = {
    "exact-fp32": (torch.float32, {}),
    "exact-bf16": (torch.bfloat16, {}),
    "inverse-cdf": (torch.bfloat16, {"draw": "inverse_cdf"}),
    "kv-reuse-3": (torch.bfloat16, {"cache_refresh_every": 3}),
    "guidance-first-half": (torch.bfloat16, {"guidance_interval": (0.0, 0.5)}),
    "halton": (torch.bfloat16, {"order": "halton"}),
    "confidence-0.99": (torch.bfloat16, {"unmask": "confidence", "confidence_threshold": 0.99}),
    "16-steps": (torch.bfloat16, {"steps": 16}),
    "fast": (torch.bfloat16, {"draw": "inverse_cdf", "cache_refresh_every": 3, "steps": 16}),
}
PER_CATEGORY = 48  # the quickstart's


def measure(pipe, seed: int, batch: int) -> tuple[float, float]:
    """(seconds per picture, t2i_overall) of the held-out prompts at ``seed``."""
    items = geneval_prompts(PER_CATEGORY, seed)
    images, seconds = [], 0.0
    for start in range(0, len(items), batch):
        prompts = [item["prompt"] for item in items[start:start + batch]]
        began = time.perf_counter()
        images += pipe.text_to_image(prompts, seed=seed + start)
        seconds += time.perf_counter() - began
    correct = tasks.score_t2i(items, images)
    scores = geneval_scores([{"category": i["category"], "correct": c} for i, c in zip(items, correct)])
    return seconds / len(items), scores["overall"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--output", help="write the rows as JSON here")
    args = parser.parse_args()
    pipes = {dtype: showo.ShowoPipeline.from_pretrained(showo.shipped_model_dir(), device="cpu", torch_dtype=dtype)
             for dtype in {SETTINGS[name][0] for name in args.settings}}
    rows = []
    print(f"shipped world model, {6 * PER_CATEGORY} prompts, batch {args.batch}, seeds {args.seeds}, "
          f"{torch.get_num_threads()} CPU threads, torch {torch.__version__}")
    print("| setting | s / picture | pictures / s | t2i_overall (mean) | per seed |\n|---|---|---|---|---|")
    for name in args.settings:
        dtype, fields = SETTINGS[name]
        pipe = pipes[dtype]
        pipe.generation = dataclasses.replace(showo.GenerationConfig.from_folder(showo.shipped_model_dir()), **fields)
        pipe.text_to_image(["a red circle"], seed=0)  # warm-up
        results = [measure(pipe, seed, args.batch) for seed in args.seeds]
        seconds = sum(r[0] for r in results) / len(results)
        overall = sum(r[1] for r in results) / len(results)
        rows.append({"setting": name, "dtype": str(dtype), "fields": fields, "seconds_per_picture": seconds,
                     "t2i_overall": overall, "per_seed": [{"seed": s, "seconds_per_picture": r[0], "t2i_overall": r[1]}
                                                          for s, r in zip(args.seeds, results)]})
        per_seed = " / ".join(f"{r[1]:.3f}" for r in results)
        print(f"| {name} | {seconds:.3f} | {1 / seconds:.1f} | {overall:.3f} | {per_seed} |", flush=True)
    if args.output:
        with open(args.output, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
