"""Held-out test items that both the quickstart's evaluation (``showo.evaluation``) and the training
monitor (``showo.training.monitor``) draw, and the check of generated pictures against GenEval-style
prompts, so that both measure the same thing."""

from __future__ import annotations

from PIL import Image

from .dataset import WorldDataset
from .evaluator import read_scene
from .geneval import check_prompt, geneval_scores


def vqa_items(n: int, seed: int, image_size: int = 64) -> list[dict]:
    """``n`` held-out pictures with one short-answer question each (captions are scored apart):
    ``{"image", "question", "expected", "kind", "scene"}``."""
    data = WorldDataset("heldout", seed, image_size)
    items, index = [], 0
    while len(items) < n:
        sample = data.mmu(index)
        index += 1
        turns = [(q, a, k) for (q, a), k in zip(sample["turns"], sample["kinds"]) if k != "caption"]
        if turns:
            question, expected, kind = turns[0]
            items.append({"image": sample["image"], "question": question, "expected": expected, "kind": kind,
                          "scene": sample["scene"]})
    return items


def score_t2i(items: list[dict], images: list[Image.Image]) -> list[bool]:
    """Whether each picture satisfies its item's spec (``geneval_prompts``, ``concept_prompts``: read
    with the item's ``concepts``, when it names any)."""
    return [check_prompt(item["spec"], read_scene(image, item.get("concepts", ())))
            for item, image in zip(items, images, strict=True)]


def category_scores(items: list[dict], correct: list[bool]) -> dict[str, float]:
    """``geneval_scores`` of the items' categories and the verdict beside each (``score_t2i``'s)."""
    return geneval_scores([{"category": i["category"], "correct": c} for i, c in zip(items, correct, strict=True)])
