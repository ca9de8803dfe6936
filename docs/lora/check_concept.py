"""Measure the shipped world model, with or without a LoRA adapter, on a concept it never saw
(``showo.world.concepts``) and on everything the quickstart measures.

    python docs/lora/check_concept.py --concept dot --output before.json
    python docs/lora/check_concept.py --concept dot --adapter runs/teach-dot/replay/final --output replay.json
    python docs/lora/check_concept.py --table before.json replay.json no-replay.json

Concept text-to-image: 20 prompts in each of GenEval's six categories, each naming the concept, one
picture each, read back with the concept known to the judge. Concept answers: 20 questions of each
kind about pictures holding it (``concept_question_kinds``: a dot is never asked its shape; always
giving the common answer scores 0.5). Then the quickstart at its full budget, seed 0.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import showo
from showo.evaluation.quickstart import run_quickstart
from showo.generation.generate_text import final_answer
from showo.world import CONCEPTS, concept_prompts, concept_questions, score_concept_answers
from showo.world.heldout import category_scores, score_t2i

BATCH = 16
KEPT = ("t2i_overall", "vqa_accuracy", "caption_accuracy", "inpaint_accuracy", "extrapolation_accuracy",
        "mixed_modality_consistency")


def concept_scores(pipe: showo.ShowoPipeline, concept: str) -> dict[str, float]:
    prompts, images = concept_prompts(concept, 20, seed=0), []
    for start in range(0, len(prompts), BATCH):
        images += pipe.text_to_image([p["prompt"] for p in prompts[start:start + BATCH]], seed=start)
    t2i = category_scores(prompts, score_t2i(prompts, images))
    questions, texts = concept_questions(concept, 20, seed=0), []
    for start in range(0, len(questions), BATCH):
        batch = questions[start:start + BATCH]
        texts += pipe.answer([q["image"] for q in batch], [q["question"] for q in batch], max_new_tokens=16)
    answers = [final_answer(t, pipe.generation.answer_marker) for t in texts]
    return {"concept_t2i": t2i["overall"], "concept_answers": sum(score_concept_answers(questions, answers)) /
            len(questions), **{f"concept_t2i_{k}": v for k, v in t2i.items() if k != "overall"}}


def measure(adapter: str | None, concept: str) -> dict:
    started = time.perf_counter()
    pipe = showo.ShowoPipeline.from_pretrained(showo.shipped_model_dir())
    if adapter:
        pipe.load_adapter(adapter)
    scores = concept_scores(pipe, concept)
    with tempfile.TemporaryDirectory() as folder:
        metrics = run_quickstart(folder, adapter=adapter, progress=False)
    scores.update({k: metrics[k] for k in KEPT})
    return {"adapter": adapter, "concept": concept, **scores, "seconds": time.perf_counter() - started}


def table(paths: list[str]) -> str:
    rows = [json.loads(Path(p).read_text()) for p in paths]
    keys = ["concept_t2i", "concept_answers", *KEPT]
    lines = ["| model | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for path, row in zip(paths, rows):
        lines.append(f"| {Path(path).stem} | " + " | ".join(f"{row[k]:.3f}" for k in keys) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", help="a LoRA adapter folder (default: the shipped model alone)")
    parser.add_argument("--concept", default="dot", choices=CONCEPTS,
                        help="the concept to measure (showo.world.concepts; default: dot)")
    parser.add_argument("--output", help="write the scores here as JSON")
    parser.add_argument("--table", nargs="+", help="print the scores of these JSON files as one table")
    args = parser.parse_args()
    if args.table:
        print(table(args.table))
        return
    scores = measure(args.adapter, args.concept)
    print(json.dumps(scores, indent=1))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(scores, indent=1))


if __name__ == "__main__":
    main()
