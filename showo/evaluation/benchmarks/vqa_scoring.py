"""Scoring of the two simplest question-answer formats, as their benchmarks score them.

- Yes/no questions (POPE, Li et al. 2023; its ``evaluate.py``, copied by LLaVA's ``eval_pope.py``):
  an answer is cut at its first ``.``, its commas dropped and split on spaces; it counts as "no"
  when one of its words is ``No``, ``not`` or ``no``, else as "yes". "yes" is the positive class:
  precision, recall and F1 of "yes", accuracy, and the share of answers that count as yes.
- Short answers (VQAv2-style): exact match after normalisation (``normalize_answer``): lower case,
  VQAv2's punctuation removed (an apostrophe stays), number words as digits, articles dropped. A
  reference that is a list of annotators' answers scores VQAv2's ``min(1, matches / 3)``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

YES, NO = "yes", "no"


def pope_answer(text: str) -> str:
    """``"yes"`` or ``"no"``: POPE's reading of a model's answer (see the module docstring)."""
    if text.find(".") != -1:
        text = text.split(".")[0]
    words = text.replace(",", "").split(" ")
    return NO if ("No" in words or "not" in words or "no" in words) else YES


def pope_scores(predictions: Sequence[str], labels: Sequence[str]) -> dict:
    """POPE's numbers for answers already read as "yes"/"no" (``pope_answer``) against labels
    "yes"/"no": accuracy, precision, recall, f1, yes_ratio (fractions in [0, 1]) and the counts.
    A ratio whose denominator is 0 is 0.0."""
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions but {len(labels)} labels")
    if not labels:
        raise ValueError("no answers to score")
    for name, values in (("prediction", predictions), ("label", labels)):
        bad = [v for v in values if v not in (YES, NO)]
        if bad:
            raise ValueError(f'every {name} must be "yes" or "no", got {bad[0]!r}')
    tp = sum(p == YES and t == YES for p, t in zip(predictions, labels))
    fp = sum(p == YES and t == NO for p, t in zip(predictions, labels))
    tn = sum(p == NO and t == NO for p, t in zip(predictions, labels))
    fn = sum(p == NO and t == YES for p, t in zip(predictions, labels))
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    return {"accuracy": _ratio(tp + tn, len(labels)), "precision": precision, "recall": recall,
            "f1": _ratio(2 * precision * recall, precision + recall), "yes_ratio": _ratio(tp + fp, len(labels)),
            "tp": tp, "fp": fp, "tn": tn, "fn": fn, "n": len(labels)}


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


# -- short answers ---------------------------------------------------------------------------------------
NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}  # VQAv2's manualMap
ARTICLES = {"a", "an", "the"}
PUNCTUATION = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?",
               "!"]  # VQAv2's list (an apostrophe stays: "man's")
PERIOD = re.compile(r"(?<!\d)\.|\.(?!\d)")  # a period that is not a decimal point
COMMA_IN_NUMBER = re.compile(r"(\d),(\d)")


def normalize_answer(text: str) -> str:
    """A short answer as VQAv2-style scoring compares it: lower case, ``1,000`` -> ``1000``, other
    punctuation removed (a decimal point kept), number words 0-10 as digits, ``a``/``an``/``the``
    dropped, white space collapsed."""
    text = COMMA_IN_NUMBER.sub(r"\1\2", text.replace("\n", " ").replace("\t", " ").strip().lower())
    for mark in PUNCTUATION:
        text = text.replace(mark, " ")
    text = PERIOD.sub(" ", text)
    words = [NUMBER_WORDS.get(word, word) for word in text.split()]
    return " ".join(word for word in words if word not in ARTICLES)


def short_answer_score(prediction: str, reference: str | Sequence[str]) -> float:
    """1.0 or 0.0 against one reference answer; against a list of annotators' answers VQAv2's
    ``min(1, matches / 3)``."""
    mine = normalize_answer(prediction)
    if isinstance(reference, str):
        return float(mine == normalize_answer(reference))
    return min(1.0, sum(mine == normalize_answer(r) for r in reference) / 3)


def short_answer_scores(predictions: Sequence[str], references: Sequence[str | Sequence[str]]) -> dict:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not references:
        raise ValueError("no answers to score")
    scores = [short_answer_score(p, r) for p, r in zip(predictions, references)]
    return {"accuracy": sum(scores) / len(scores), "n": len(scores)}
