"""Speed of every sampling setting, and on the shipped world model its quality: one table per part.

    python benchmarks/inference.py                                   # both parts, CPU
    python benchmarks/inference.py --part shape --device cuda --layers 24 --output gpu.json
    python benchmarks/inference.py --part world --seeds 0 --settings exact-fp32 default
    python benchmarks/inference.py --part world --settings exact-fp32 default --batches --in-turn

Parts:
* ``shape``: random weights in the show-o-256 layout (387-token t2i rows, 8,192 codes, a 58,498-token
  vocabulary) at ``--layers`` of its 24 layers. Text-to-image runs the paper's 18 steps with
  guidance 1.75; an answer is 64 new tokens (never stopping early) after a 276-token
  ``<mmu> <soi> image <eoi> <sot> question`` prompt.
* ``world``: the shipped model of the built-in world on the quickstart's held-out items: 288
  GenEval-style prompts (48 a category) at each of ``--seeds``, every picture read back by the
  world's judge (``t2i_overall``, mean of the seeds), and 600 questions (answer accuracy; the
  world's answers are a few tokens long). Exact sampling there is 24 steps, the shipped model's
  setting before its generation_config.json named the fast default.

Rows: each setting at ``--batch`` (shape: 1, world: 16), then ``exact-fp32`` and ``default`` at each
of ``--batches`` (the world's at the first seed only: those rows are for speed). ``default`` is
what a user gets: ``dtype="auto"`` and the accelerations the shipped model's generation_config.json
names, its steps scaled from the world's exact 24 to the part's exact steps. Seconds per image
count the sampling and decoding calls only (not the judge); seconds per answer are a batch's time
divided by its size. Columns that a setting does not change are measured once per precision
(answers do not depend on the image sampler). ``--output`` writes the rows as JSON.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time
from collections.abc import Callable
from typing import Any

import torch
from common import describe_machine, synchronize
from forward import t2i_batch

import showo
from showo.evaluation import tasks
from showo.generation.generate_image import generate_image_tokens
from showo.generation.generate_text import final_answer, generate_text
from showo.generation.prompting import mmu_prompt
from showo.model.precision import resolve_dtype
from showo.world import geneval_prompts
from showo.world.heldout import category_scores, score_t2i, vqa_items

WORLD_EXACT_STEPS, SHAPE_STEPS, SHAPE_GUIDANCE = 24, 18, 1.75
NEW_TOKENS, QUESTION_TOKENS = 64, 20
PER_CATEGORY, QUESTIONS, ANSWER_TOKENS, ANSWER_BATCH = 48, 600, 16, 32  # the quickstart's


@dataclasses.dataclass(frozen=True)
class Setting:
    dtype: str  # fp32 | bf16 | auto
    fields: dict[str, Any]  # GenerationConfig fields over exact sampling; "steps" is a fraction of exact
    compile: bool = False


SETTINGS: dict[str, Setting] = {
    "exact-fp32": Setting("fp32", {}),
    "exact-bf16": Setting("bf16", {}),
    "compiled-bf16": Setting("bf16", {}, compile=True),
    "inverse-cdf": Setting("bf16", {"draw": "inverse_cdf"}),
    "kv-reuse-3": Setting("bf16", {"cache_refresh_every": 3}),
    "guidance-first-half": Setting("bf16", {"guidance_interval": (0.0, 0.5)}),
    "halton": Setting("bf16", {"order": "halton"}),
    "confidence-0.99": Setting("bf16", {"unmask": "confidence", "confidence_threshold": 0.99}),
    "entropy-2": Setting("bf16", {"unmask": "entropy", "entropy_budget": 2.0}),
    "two-thirds-steps": Setting("bf16", {"steps": 2 / 3}),
}


def default_setting() -> Setting:
    """dtype auto and the shipped model's accelerations and share of the exact steps."""
    shipped = showo.GenerationConfig.from_folder(showo.shipped_model_dir())
    changed = {k: v for k, v in shipped.accelerations().items() if v != getattr(showo.GenerationConfig(), k)}
    return Setting("auto", {**changed, "steps": shipped.steps / WORLD_EXACT_STEPS})


def sampling(exact: showo.GenerationConfig, setting: Setting) -> showo.GenerationConfig:
    fields = dict(setting.fields)
    if "steps" in fields:
        fields["steps"] = max(1, round(exact.steps * fields["steps"]))
    return dataclasses.replace(exact, **fields)


def timed(device: torch.device, fn: Callable[..., Any], *args, **kwargs) -> tuple[float, Any]:
    """(seconds, fn(*args, **kwargs))"""
    synchronize(device)
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    synchronize(device)
    return time.perf_counter() - start, out


# -- shape: random weights in the show-o-256 layout -------------------------------------------------
class ShapePart:
    def __init__(self, layers: int, device: torch.device):
        base = showo.showo_preset("show-o-256")
        self.config = dataclasses.replace(base, llm=dataclasses.replace(base.llm, num_layers=layers))
        self.device, self.models, self.answers = device, {}, {}
        torch.manual_seed(0)
        self.fp32 = showo.ShowoModel(self.config).eval()
        self.exact = showo.GenerationConfig(steps=SHAPE_STEPS, guidance_scale=SHAPE_GUIDANCE)
        self.title = f"show-o-256 layout, {layers}/24 layers, random weights"

    def model(self, dtype: torch.dtype):
        if dtype not in self.models:  # the same weights in each precision
            self.models[dtype] = copy.deepcopy(self.fp32).to(device=self.device, dtype=dtype)
        return self.models[dtype]

    def images(self, setting: Setting, batch: int, every_seed: bool = True) -> dict:
        model, config = self.model(resolve_dtype(setting.dtype, self.device)), sampling(self.exact, setting)
        layout, n = self.config.layout, self.config.max_text_length
        cond = t2i_batch(self.config, batch).to(self.device)
        uncond = cond.clone()
        uncond[:, : n + 1] = torch.tensor([layout.pad_id] * (n - 2) + [layout.t2i_id, layout.sot_id, layout.eot_id])
        generators = lambda: [torch.Generator(self.device).manual_seed(i) for i in range(batch)]
        run = lambda steps: generate_image_tokens(
            model, cond, uncond, steps=steps, guidance_scale=config.guidance_scale, schedule=config.schedule,
            generator=generators(), compile=setting.compile, **config.accelerations())
        warmup, _ = timed(self.device, run, 1)  # compiles when compiling
        seconds, _ = timed(self.device, run, config.steps)
        return {"seconds_per_image": seconds / batch, "steps": config.steps,
                **({"compile_seconds": warmup} if setting.compile else {})}

    def answer(self, setting: Setting, batch: int) -> dict:
        dtype = resolve_dtype(setting.dtype, self.device)
        key = (dtype, setting.compile, batch)
        if key not in self.answers:
            model, layout = self.model(dtype), self.config.layout
            codes = torch.randint(0, self.config.codebook_size, (1, self.config.num_image_tokens))
            question = torch.randint(0, self.config.text_vocab_size, (QUESTION_TOKENS,)).tolist()
            prompt = mmu_prompt(layout.image_ids(codes), question, layout).repeat(batch, 1).to(self.device)
            run = lambda n: generate_text(model, prompt, max_new_tokens=n, top_k=1, eot_id=-1, compile=setting.compile)
            timed(self.device, run, NEW_TOKENS)  # warm-up; compiles at the timed run's cache length
            seconds, _ = timed(self.device, run, NEW_TOKENS)
            self.answers[key] = {"answer_seconds": seconds / batch}
        return self.answers[key]


# -- world: the shipped model, judged by reading its pictures back ----------------------------------
class WorldPart:
    def __init__(self, seeds: list[int], device: torch.device):
        self.seeds, self.device, self.pipes, self.answers = seeds, device, {}, {}
        self.exact = dataclasses.replace(showo.GenerationConfig.from_folder(showo.shipped_model_dir()),
                                         steps=WORLD_EXACT_STEPS).without_accelerations()
        self.title = f"shipped world model, {6 * PER_CATEGORY} prompts x seeds {seeds}, {QUESTIONS} questions"

    def pipe(self, setting: Setting) -> showo.ShowoPipeline:
        dtype = resolve_dtype(setting.dtype, self.device)
        if dtype not in self.pipes:
            self.pipes[dtype] = showo.ShowoPipeline.from_pretrained(
                showo.shipped_model_dir(), device=self.device, torch_dtype=dtype)
        pipe = self.pipes[dtype]
        pipe.generation, pipe.compile = sampling(self.exact, setting), setting.compile
        return pipe

    def images(self, setting: Setting, batch: int, every_seed: bool = True) -> dict:
        return self.images_in_turn([setting], batch, every_seed)[0]

    def images_in_turn(self, settings: list[Setting], batch: int, every_seed: bool = True) -> list[dict]:
        """``images`` of each setting, the settings taking each batch in turn (so that the machine's
        drift over minutes hits them alike)."""
        warmups = [timed(self.device, self.pipe(s).text_to_image, ["a red circle"] * batch, seed=0)[0]
                   for s in settings]
        per_seed = [[] for _ in settings]
        for seed in self.seeds if every_seed else self.seeds[:1]:
            items = geneval_prompts(PER_CATEGORY, seed)
            images, seconds = [[] for _ in settings], [0.0] * len(settings)
            for start in range(0, len(items), batch):
                prompts = [item["prompt"] for item in items[start:start + batch]]
                for i, setting in enumerate(settings):
                    took, made = timed(self.device, self.pipe(setting).text_to_image, prompts, seed=seed + start)
                    images[i], seconds[i] = images[i] + made, seconds[i] + took
            for i in range(len(settings)):
                overall = category_scores(items, score_t2i(items, images[i]))["overall"]
                per_seed[i].append({"seed": seed, "seconds_per_image": seconds[i] / len(items), "t2i_overall": overall})
        return [{"seconds_per_image": sum(s["seconds_per_image"] for s in runs) / len(runs),
                 "t2i_overall": sum(s["t2i_overall"] for s in runs) / len(runs),
                 "steps": self.pipe(setting).generation.steps, "per_seed": runs,
                 **({"compile_seconds": warmup} if setting.compile else {})}
                for setting, runs, warmup in zip(settings, per_seed, warmups)]

    def answer(self, setting: Setting, batch: int) -> dict:
        pipe = self.pipe(setting)
        key = (pipe.dtype, setting.compile)
        if key not in self.answers:
            items, texts, seconds = vqa_items(QUESTIONS, 0, pipe.config.image_size), [], 0.0
            pipe.answer([items[0]["image"]], [items[0]["question"]], max_new_tokens=ANSWER_TOKENS)  # warm-up
            for start in range(0, len(items), ANSWER_BATCH):
                chunk = items[start:start + ANSWER_BATCH]
                images, questions = [i["image"] for i in chunk], [i["question"] for i in chunk]
                took, made = timed(self.device, pipe.answer, images, questions, max_new_tokens=ANSWER_TOKENS,
                                   reasoning=True)
                texts, seconds = texts + made, seconds + took
            predicted = [final_answer(t, pipe.generation.answer_marker) for t in texts]
            correct = tasks.score_answers(predicted, [i["expected"] for i in items])
            self.answers[key] = {"answer_seconds": seconds / len(items), "answer_accuracy": sum(correct) / len(items)}
        return self.answers[key]


# -- the table --------------------------------------------------------------------------------------
COLUMNS = [("seconds_per_image", "s / image", "{:.3f}"), ("images_per_second", "images / s", "{:.2f}"),
           ("answer_seconds", "s / answer", "{:.3f}"), ("t2i_overall", "t2i_overall", "{:.3f}"),
           ("answer_accuracy", "answer accuracy", "{:.3f}")]


def run_part(part, names: list[str], batch: int, batches: list[int], in_turn: bool = False) -> list[dict]:
    settings = {**SETTINGS, "default": default_setting()}
    # --in-turn: the settings' rows at ``batch`` timed together, batch by batch in turn
    images = dict(zip(names, part.images_in_turn([settings[n] for n in names], batch))) if in_turn else {}
    plan = [(name, batch) for name in names] + [(name, b) for name in ("exact-fp32", "default") for b in batches
                                                 if (name, b) not in {(n, batch) for n in names}]
    quality = isinstance(part, WorldPart)  # random weights have none to measure
    shown = [c for c in COLUMNS if quality or c[0] not in ("t2i_overall", "answer_accuracy")]
    print(f"\n{part.title}\n| setting | dtype | batch | steps | " + " | ".join(c[1] for c in shown) + " |")
    print("|---" * (4 + len(shown)) + "|")
    rows = []
    for name, size in plan:
        setting = settings[name]
        row = {"setting": name, "dtype": str(resolve_dtype(setting.dtype, part.device)).replace("torch.", ""),
               "batch": size, "fields": setting.fields, "compile": setting.compile,
               **(images.get(name) if size == batch and name in images else
                  part.images(setting, size, every_seed=size == batch)), **part.answer(setting, size)}
        row["images_per_second"] = 1 / row["seconds_per_image"]
        rows.append(row)
        cells = [fmt.format(row[key]) for key, _, fmt in shown]
        print(f"| {name} | {row['dtype']} | {size} | {row['steps']} | " + " | ".join(cells) + " |", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["shape", "world", "both"], default="both")
    parser.add_argument("--settings", nargs="+", choices=[*SETTINGS, "default"], default=[*SETTINGS, "default"])
    parser.add_argument("--batch", type=int, help="batch of the settings' rows (default: shape 1, world 16)")
    parser.add_argument("--batches", nargs="*", type=int, default=[1, 4, 16],
                        help="batches of the exact-fp32 and default rows")
    parser.add_argument("--layers", type=int, default=2, help="shape part: depth (show-o-256: 24)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="world part: sampling seeds")
    parser.add_argument("--in-turn", action="store_true",
                        help="world part: time the settings' images batch by batch in turn, not one setting after "
                             "another (a machine whose speed drifts over minutes then slows them alike)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output", help="write every row as JSON here")
    args = parser.parse_args()
    device = torch.device(args.device)
    default = default_setting()
    print(f"machine: {describe_machine(device)}; default: dtype {default.dtype}, {default.fields} (steps: a share "
          "of the exact steps)")
    result = {"machine": describe_machine(device), "torch": torch.__version__}
    if args.part in ("shape", "both"):
        result["shape"] = run_part(ShapePart(args.layers, device), args.settings, args.batch or 1, args.batches)
    if args.part in ("world", "both"):
        result["world"] = run_part(WorldPart(args.seeds, device), args.settings, args.batch or 16, args.batches,
                                   args.in_turn)
    if args.output:
        with open(args.output, "w") as f:
            json.dump(result, f, indent=1, default=str)


if __name__ == "__main__":
    main()
