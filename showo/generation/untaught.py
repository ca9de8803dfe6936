"""Warnings for planning and reasoning that a model's data never taught it.

``generation_config.json`` may ask a model to plan its prompts (``plan_prompts``) or to work its
answers out (``answer_marker``); a model whose training data held no plans or worked answers does
either wrongly and silently, so ``ShowoPipeline`` calls these on what the model wrote."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence

# Words that carry no content of a prompt (a plan restates its prompt's objects, not these).
FUNCTION_WORDS = frozenset({
    "a", "an", "the", "and", "or", "but", "of", "with", "without", "in", "on", "at", "to", "by", "for", "from",
    "into", "onto", "as", "is", "are", "be", "there", "this", "that", "these", "those", "it", "its", "some", "any",
    "picture", "image", "photo"})


def content_words(text: str) -> set[str]:
    """The words of ``text`` that name something, lower-cased, plurals folded (``squares``: ``square``)."""
    words = (w for w in re.findall(r"\w+", text.lower()) if w not in FUNCTION_WORDS)
    return {w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words}


def warn_unrelated_plans(prompts: Sequence[str], plans: Sequence[str]) -> None:
    """Warn, naming them, about plans that share none of their prompt's content words: a plan
    restates its prompt's objects ("a triangle and a circle": "a small white triangle at the top
    left and a large green circle at the bottom right"); one that does not ("a handwritten digit
    seven": "one") comes from a model never taught to plan such prompts."""
    unrelated = [(prompt, plan) for prompt, plan in zip(prompts, plans)
                 if plan != prompt and content_words(prompt) and not content_words(prompt) & content_words(plan)]
    if not unrelated:
        return
    named = "; ".join(f"{prompt!r} planned as {plan!r}" for prompt, plan in unrelated[:3])
    more = f" and {len(unrelated) - 3} more" if len(unrelated) > 3 else ""
    warnings.warn(f"{len(unrelated)} of {len(prompts)} plans share no word with their prompt ({named}{more}): "
                  "the model was not trained to plan such prompts, and a picture drawn from such a plan is not "
                  "of its prompt; set plan_prompts to false in generation_config.json (or pass plan=False)",
                  stacklevel=3)


def warn_unmarked_answers(marker: str, questions: Sequence[str], texts: Sequence[str], caption_question: str) -> None:
    """Warn when none of a batch's written ``texts`` holds ``marker`` (answers to ``caption_question``
    aside: a model that works its answers out may describe a picture directly)."""
    worked = [text for question, text in zip(questions, texts) if question != caption_question]
    if worked and not any(marker in text for text in worked):
        warnings.warn(f"generation_config.json sets answer_marker {marker!r} but the model wrote none "
                      f"(in {len(worked)} answers): it was not trained to work its answers out; "
                      "set answer_marker to null (and reasoning_tokens to 0)", stacklevel=3)
