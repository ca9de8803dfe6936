"""``showo eval vqa``: a built-in evaluation for the two simplest question-answer formats, without
lmms-eval. The data is a JSONL file of ``{"image": path, "question": ..., "answer": ...}`` rows
(image paths relative to the file's folder; ``answer`` a string, or a list of annotators' answers
for VQAv2-style scoring). Answers are greedy and batched; the metric is

- ``yesno`` (POPE): every reference answer is "yes" or "no" (``vqa_scoring.pope_scores``);
- ``exact`` (VQAv2-style): normalised exact match (``vqa_scoring.short_answer_scores``);
- ``auto`` (default): ``yesno`` when every reference is "yes" or "no", else ``exact``.

Written to the output folder, each whole or not at all: ``answers.jsonl`` (one row per question:
image, question, answer, prediction, score), ``scores.json`` and ``showo_eval.json`` (checkpoint,
settings, inputs: ``records``).
"""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from ...generation import arguments
from ...model.checkpoint_io import jsonl_records
from ...model.image_processing import write_text_file
from ...model.validation import shown
from ...pipeline import ShowoPipeline
from .records import FORMAT, open_output, sha256_file, software
from .vqa_scoring import NO, YES, pope_answer, pope_scores, short_answer_score, short_answer_scores

METRICS = ("auto", "yesno", "exact")


def read_rows(path: str | Path) -> list[dict]:
    """The rows of a VQA JSONL file, each checked: ``image`` (an existing file, relative to the
    JSONL's folder), ``question`` and ``answer`` (a string or a non-empty list of strings)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--data {path}: no such file")
    rows = []
    for where, row in jsonl_records(path, lambda number: f"--data {path} line {number}"):
        if not isinstance(row, dict):
            raise ValueError(f'{where}: expected an object with "image", "question" and "answer", '
                             f"got {type(row).__name__}")
        for field in ("image", "question"):
            if not isinstance(row.get(field), str) or not row[field].strip():
                raise ValueError(f'{where}: field "{field}" must be a non-empty string, got {shown(row.get(field))}')
        answer = row.get("answer")
        if not (isinstance(answer, str) or (isinstance(answer, list) and answer
                                            and all(isinstance(a, str) for a in answer))):
            raise ValueError(f'{where}: field "answer" must be a string or a non-empty list of strings, '
                             f"got {shown(answer)}")
        image = path.parent / row["image"]
        if not image.is_file():
            raise FileNotFoundError(f'{where}: field "image": no such file {image}')
        rows.append({"image": row["image"], "path": str(image), "question": row["question"], "answer": answer})
    if not rows:
        raise ValueError(f"--data {path}: no rows")
    return rows


def yes_no_label(answer: str | list) -> str | None:
    """"yes"/"no" when the reference is one of them (case, spaces and a final period aside), else None."""
    if not isinstance(answer, str):
        return None
    label = answer.strip().rstrip(".").strip().lower()
    return label if label in (YES, NO) else None


def pick_metric(metric: str, rows: list[dict], path: Path) -> str:
    if metric not in METRICS:
        raise ValueError(f"--metric {metric!r}: expected one of {', '.join(METRICS)}")
    labels = [yes_no_label(row["answer"]) for row in rows]
    if metric == "auto":
        return "yesno" if all(labels) else "exact"
    if metric == "yesno" and not all(labels):
        bad = next(i for i, label in enumerate(labels) if label is None)
        raise ValueError(f'--data {path}: --metric yesno needs "yes" or "no" answers; row {bad + 1} has '
                         f"{shown(rows[bad]['answer'])}")
    return metric


def run_vqa(pipe: ShowoPipeline, data: str | Path, output: str | Path, *, checkpoint: dict, metric: str = "auto",
            batch_size: int = 8, max_new_tokens: int = 16, suffix: str = "") -> dict:
    """Answer every row of ``data`` (greedy, ``batch_size`` at once; ``suffix`` appended to each
    question), score the answers and write them to ``output``; returns the scores."""
    arguments.integer("batch_size", batch_size, 1, 4096)
    arguments.integer("max_new_tokens", max_new_tokens, 1)
    data = Path(data)
    rows = read_rows(data)
    metric = pick_metric(metric, rows, data)
    record = {
        "format": FORMAT, "benchmark": "vqa",
        "inputs": {"path": str(data), "sha256": sha256_file(data), "rows": len(rows)},
        "checkpoint": checkpoint,
        "settings": {"metric": metric, "max_new_tokens": max_new_tokens, "suffix": suffix, "decoding": "greedy",
                     "resolution": pipe.config.image_size, "dtype": str(pipe.dtype).removeprefix("torch."),
                     "device_type": pipe.device.type},
        "seeds": {"seed": None, "rule": "greedy answers draw no random numbers"},
        "run": {"batch_size": batch_size, **software()},
    }
    reasoning = pipe.generation.reasoning_tokens if pipe.generation.answer_marker else 0
    pipe.processor.questions([row["question"] + suffix for row in rows], max_new_tokens, reasoning)  # all fit
    output = open_output(output, record)
    predictions = []
    with tqdm(total=len(rows), desc="showo eval vqa", unit="question", disable=None) as bar:
        for start in range(0, len(rows), batch_size):
            batch = rows[start:start + batch_size]
            predictions += pipe.answer([row["path"] for row in batch], [row["question"] + suffix for row in batch],
                                       max_new_tokens=max_new_tokens, top_k=1)
            bar.update(len(batch))
    if metric == "yesno":
        read = [pope_answer(p) for p in predictions]
        scores = pope_scores(read, [yes_no_label(row["answer"]) for row in rows])
        per_row = [float(r == yes_no_label(row["answer"])) for r, row in zip(read, rows)]
    else:
        scores = short_answer_scores(predictions, [row["answer"] for row in rows])
        per_row = [short_answer_score(p, row["answer"]) for p, row in zip(predictions, rows)]
    scores = {"metric": metric, **scores}
    answers = [{"image": row["image"], "question": row["question"], "answer": row["answer"], "prediction": p,
                "score": s} for row, p, s in zip(rows, predictions, per_row)]
    write_text_file(output / "answers.jsonl", "".join(json.dumps(a) + "\n" for a in answers))
    write_text_file(output / "scores.json", json.dumps(scores, indent=2) + "\n")
    return scores
