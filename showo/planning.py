"""Prompt planning: the model rewrites a short prompt as a full description, then draws that.

A model trained on ``plan_text`` rows (language-modelling rows that pair a prompt with a
complete description of a picture that fits it) continues ``plan_request(prompt)`` with such
a description; ``ShowoPipeline.plan`` asks for it and ``text_to_image`` draws it when the
model's ``generation_config.json`` says ``plan_prompts: true``. It is the model's own prompt
rewriting (DALL-E 3 does the same with a separate language model): a prompt that leaves the
places, sizes or colours open is drawn from a description that settles them.
"""

from __future__ import annotations


def plan_request(prompt: str) -> str:
    """The text the model continues with its plan for ``prompt``."""
    return f"Plan for {prompt.strip()}:"


def plan_text(prompt: str, plan: str) -> str:
    """A training row: the request and a plan that fits it."""
    return f"{plan_request(prompt)} {plan.strip()}"
