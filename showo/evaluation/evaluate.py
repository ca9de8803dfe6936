"""Run every Show-o task on the held-out split of the built-in world and measure it.

``evaluate(pipe, budget)`` returns ``(metrics, artefacts)``: ``metrics`` is a flat dict of
numbers (see ``METRICS``; fractions in [0, 1] unless named otherwise, plus ``seconds`` per
part and ``seconds_total``), ``artefacts`` holds examples for the report (pictures with
their prompts and verdicts, inputs and outputs, the denoising progression of one picture).
The items and the checks live in ``evaluation_tasks``; this module only feeds the items
through the pipeline, in batches where the pipeline takes batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields

import torch
from PIL import Image
from tqdm import tqdm

from ..generation.generate_mixed import generate_mixed
from ..generation.generate_text import final_answer
from ..model.image_processing import postprocess_images, preprocess_images
from ..world import GENEVAL_CATEGORIES, canonical_caption, evaluator_accuracy, geneval_prompts
from ..world.heldout import category_scores, score_t2i, vqa_items
from . import tasks as tasks

METRICS = (
    "t2i_overall", *(f"t2i_{c}" for c in GENEVAL_CATEGORIES), "vqa_accuracy", "caption_accuracy", "recon_psnr",
    "codebook_usage", "inpaint_accuracy", "extrapolation_accuracy", "mixed_modality_consistency",
    "evaluator_accuracy",
)


@dataclass(frozen=True)
class Budget:
    """How many items each part uses, and how images and text are sampled.

    The defaults take under three minutes on 2 CPU cores with the shipped model (~5M
    parameters, 64x64 pictures, 64 image tokens); ``Budget.ci()`` is a smoke test."""

    # Sizes: at 32 prompts one category of the same model scored from 0.09 to 0.47 over nine
    # sampling seeds; 48 still leaves a standard error of ~0.07 per category, ~0.03 overall.
    t2i_per_category: int = 48  # GenEval-style prompts per category (six categories)
    vqa: int = 600  # held-out pictures, one question each
    captions: int = 96
    reconstructions: int = 64
    inpaints: int = 24
    extrapolations: int = 24
    mixed: int = 12  # mixed-modality prompts, up to two pictures each
    evaluator_scenes: int = 300  # rendered and degraded scenes for the judge's own accuracy
    # Sampling of every generated picture; None: the model's generation_config.json (the
    # shipped model's: 16 steps, guidance 1.5 and its accelerations), so the numbers are what users get
    # by default.
    steps: int | None = None
    guidance_scale: float | None = None
    temperature: float | None = None
    answer_tokens: int = 16
    caption_tokens: int = 48
    mixed_text_tokens: int = 32  # per text segment
    batch_size: int = 32
    shown: int = 6  # examples of each task kept for the report (per category for t2i)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and value < (0 if f.name in ("guidance_scale", "temperature") else 1):
                raise ValueError(f"Budget.{f.name} must be positive, got {value}")

    @classmethod
    def ci(cls) -> Budget:
        """A few items of each part, a few steps: checks that everything runs, in seconds."""
        return cls(t2i_per_category=1, vqa=2, captions=2, reconstructions=2, inpaints=1, extrapolations=1, mixed=1,
                   evaluator_scenes=10, steps=2, answer_tokens=4, caption_tokens=8, mixed_text_tokens=6,
                   batch_size=8, shown=2)


def _batches(items: list, size: int, desc: str, progress: bool) -> Iterator[tuple[int, list]]:
    """(start index, batch) pairs, with a progress bar over the items."""
    with tqdm(total=len(items), desc=desc, disable=None if progress else True) as bar:
        for start in range(0, len(items), size):
            batch = items[start:start + size]
            yield start, batch
            bar.update(len(batch))


def _sampling(budget: Budget) -> dict:
    """The budget's sampling arguments; the pipeline fills each None from its ``generation``."""
    return {"steps": budget.steps, "guidance_scale": budget.guidance_scale, "temperature": budget.temperature}


def run_t2i(pipe, budget: Budget, seed: int, progress: bool) -> tuple[dict, dict]:
    """GenEval-style prompts, one picture each (prompt i is sampled with seed + i)."""
    items = geneval_prompts(budget.t2i_per_category, seed)
    frames: list[Image.Image] = []

    def record(pipe, step, steps, outputs):  # the first picture's full prediction after every step
        frames.append(pipe.decode_codes(outputs["codes"][:1])[0])

    images: list[Image.Image] = []
    drawn: list[str] = []  # what each picture was drawn from: the prompt, or the model's plan of it
    for start, batch in _batches(items, budget.batch_size, "text-to-image", progress):
        drawn += pipe.prompts_to_draw([i["prompt"] for i in batch])
        images += pipe.text_to_image(drawn[start:], plan=False, seed=seed + start,
                                     callback_on_step_end=record if start == 0 else None, **_sampling(budget))
    correct = score_t2i(items, images)
    scores = category_scores(items, correct)
    examples = [
        {"prompt": i["prompt"], "category": i["category"], "image": image, "correct": c,
         "read": tasks.scene_summary(image), **({"plan": plan} if plan != i["prompt"] else {})}
        for k, (i, image, c, plan) in enumerate(zip(items, images, correct, drawn))
        if k % budget.t2i_per_category < budget.shown
    ]
    progression = {"prompt": items[0]["prompt"], "frames": frames}
    return {f"t2i_{name}": value for name, value in scores.items()}, {"examples": examples,
                                                                     "progression": progression}


def run_vqa(pipe, budget: Budget, seed: int, progress: bool) -> tuple[dict, dict]:
    items = vqa_items(budget.vqa, seed, pipe.config.image_size)
    texts: list[str] = []  # whole answers: a reasoning model's work and its answer
    for _, batch in _batches(items, budget.batch_size, "answers", progress):
        texts += pipe.answer([i["image"] for i in batch], [i["question"] for i in batch],
                             max_new_tokens=budget.answer_tokens, reasoning=True)
    predicted = [final_answer(t, pipe.generation.answer_marker) for t in texts]
    correct = tasks.score_answers(predicted, [i["expected"] for i in items])
    examples = [{"image": i["image"], "question": i["question"], "expected": i["expected"], "predicted": p,
                 "correct": c, **({"reasoning": t} if t != p else {})}
                for i, t, p, c in list(zip(items, texts, predicted, correct))[:budget.shown]]
    return {"vqa_accuracy": tasks.mean(correct)}, {"examples": examples}


def run_captions(pipe, budget: Budget, seed: int, progress: bool) -> tuple[dict, dict]:
    items = tasks.caption_items(budget.captions, seed, pipe.config.image_size)
    captions: list[str] = []
    for _, batch in _batches(items, budget.batch_size, "captions", progress):
        captions += pipe.caption([i["image"] for i in batch], max_new_tokens=budget.caption_tokens)
    correct = tasks.score_captions(captions, [i["scene"] for i in items])
    examples = [{"image": i["image"], "caption": text, "truth": canonical_caption(i["scene"]), "correct": c}
                for i, text, c in list(zip(items, captions, correct))[:budget.shown]]
    return {"caption_accuracy": tasks.mean(correct)}, {"examples": examples}


def run_reconstruction(pipe, budget: Budget, seed: int, progress: bool) -> tuple[dict, dict]:
    """The image tokenizer alone: encode, decode, PSNR on [0, 1] pixels, codes used."""
    items = tasks.caption_items(budget.reconstructions, seed, pipe.config.image_size)
    values, used, examples = [], set(), []
    for _, batch in _batches(items, budget.batch_size, "reconstruction", progress):
        images = [i["image"] for i in batch]
        codes = pipe.encode_images(images)  # (B, N)
        decoded = pipe.vq.decode(codes).float().cpu().clamp(-1, 1)
        original = preprocess_images(images, pipe.config.image_size)
        scores = tasks.psnr((original + 1) / 2, (decoded + 1) / 2)
        values += scores.tolist()
        used.update(codes.flatten().tolist())
        for image, recon, score in zip(images, postprocess_images(decoded), scores.tolist()):
            if len(examples) < budget.shown:
                examples.append({"original": image, "reconstruction": recon, "psnr": score})
    usage = len(used) / pipe.vq.config.codebook_size
    return {"recon_psnr": tasks.mean(values), "codebook_usage": usage}, {"examples": examples}


def run_inpainting(pipe, budget: Budget, seed: int, progress: bool) -> tuple[dict, dict]:
    cases = tasks.inpaint_cases(budget.inpaints, seed, pipe.config.image_size)
    correct, examples = [], []
    for k, case in enumerate(tqdm(cases, desc="inpainting", disable=None if progress else True)):
        result = pipe.inpaint(case["image"], case["mask"], case["prompt"], seed=seed + k, **_sampling(budget))
        correct.append(tasks.inpaint_success(case, result))
        if k < budget.shown:
            examples.append({**case, "result": result, "correct": correct[-1], "read": tasks.scene_summary(result)})
    return {"inpaint_accuracy": tasks.mean(correct)}, {"examples": examples}


def run_extrapolation(pipe, budget: Budget, seed: int, progress: bool) -> tuple[dict, dict]:
    cases = tasks.extrapolation_cases(budget.extrapolations, seed, pipe.config.image_size)
    correct, examples = [], []
    for k, case in enumerate(tqdm(cases, desc="extrapolation", disable=None if progress else True)):
        result = pipe.extrapolate(case["image"], case["prompt"], direction="right", offset=0, seed=seed + k,
                                  **_sampling(budget))
        correct.append(tasks.extrapolation_success(case, result))
        if k < budget.shown:
            examples.append({**case, "source": case["scene"].render(), "result": result, "correct": correct[-1]})
    return {"extrapolation_accuracy": tasks.mean(correct)}, {"examples": examples}


def run_mixed(pipe, budget: Budget, seed: int, progress: bool) -> tuple[dict, dict]:
    prompts = tasks.mixed_prompts(budget.mixed, seed, pipe.config.image_size)
    verdicts, examples = [], []
    for k, prompt in enumerate(tqdm(prompts, desc="mixed modality", disable=None if progress else True)):
        segments = generate_mixed(pipe, prompt, max_images=2, max_text_tokens=budget.mixed_text_tokens,
                                  steps=budget.steps, seed=seed + k)
        consistent = tasks.mixed_consistency(prompt, segments)
        verdicts += consistent
        if k < budget.shown:
            examples.append({"prompt": prompt, "segments": segments, "consistent": consistent})
    return {"mixed_modality_consistency": tasks.mean(verdicts)}, {"examples": examples}


def run_evaluator(pipe, budget: Budget, seed: int, progress: bool) -> tuple[dict, dict]:
    """The judge itself: exact scene recovery from rendered, degraded pictures."""
    accuracy = evaluator_accuracy(n=budget.evaluator_scenes, seed=seed, image_size=pipe.config.image_size)
    return {"evaluator_accuracy": accuracy}, {}


PARTS: dict[str, Callable] = {
    "t2i": run_t2i, "vqa": run_vqa, "captions": run_captions, "reconstruction": run_reconstruction,
    "inpainting": run_inpainting, "extrapolation": run_extrapolation, "mixed": run_mixed,
    "evaluator": run_evaluator,
}


@torch.no_grad()
def evaluate(pipe, budget: Budget = Budget(), seed: int = 0, progress: bool = True) -> tuple[dict, dict]:
    """``(metrics, artefacts)``: every part of ``PARTS`` on ``pipe``, timed."""
    metrics: dict = {}
    artefacts: dict = {"budget": {**asdict(budget), **pipe.generation.resolve(**_sampling(budget))}, "seed": seed}
    seconds: dict[str, float] = {}
    for name, run in PARTS.items():
        start = time.perf_counter()
        part_metrics, artefacts[name] = run(pipe, budget, seed, progress)
        seconds[name] = round(time.perf_counter() - start, 3)
        metrics.update(part_metrics)
    assert set(metrics) == set(METRICS), set(metrics) ^ set(METRICS)
    metrics = {name: float(metrics[name]) for name in METRICS}
    metrics["seconds"] = seconds
    metrics["seconds_total"] = round(sum(seconds.values()), 3)
    return metrics, artefacts
