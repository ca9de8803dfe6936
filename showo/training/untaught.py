"""Sampling settings that only some data teaches (planning prompts, working answers out).

A preset is a recipe, not a world: ``world-quick`` plans its prompts and works its answers out
because its data holds plan rows and worked answers. The same recipe on other data must not ask
a model to do what it never saw (it would rewrite every prompt into whatever it learned to say):
:func:`untaught_left_off` leaves those settings off, and says so."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from ..data.text import read_jsonl_lines
from ..data.token_shards import INDEX_FILE, read_index
from ..generation.generation_config import GenerationConfig
from ..world.reasoning import ANSWER_MARKER

PEEKED_RECORDS = 1000  # the records of a token-shard folder read to see what it holds


def untaught_left_off(inherited: GenerationConfig, asked: GenerationConfig,
                      data: dict[str, dict[str, Any]]) -> tuple[GenerationConfig, str | None]:
    """``asked`` less the planning and reasoning settings that neither the run's ``data``
    (:func:`data_teaches`) nor the model it started from (``inherited``: then it was taught
    before) taught: those keep ``inherited``'s values. Also the line that says which were left
    off and why (None when none were)."""
    taught = data_teaches(data, asked.answer_marker or ANSWER_MARKER)
    changes: dict[str, Any] = {}
    reasons = []
    if asked.plan_prompts and not inherited.plan_prompts and "plan" not in taught:
        changes["plan_prompts"] = inherited.plan_prompts
        reasons.append("plan_prompts left off: this run's data has no plan rows "
                       "(world sources of kind \"plan\" in data.lm)")
    reasoning = asked.answer_marker is not None or asked.reasoning_tokens > 0
    if reasoning and inherited.answer_marker is None and "reasoned" not in taught:
        fields = {name: getattr(inherited, name) for name in ("answer_marker", "reasoning_tokens")
                  if getattr(asked, name) != getattr(inherited, name)}
        changes.update(fields)
        settings = " and ".join(f"{name} {getattr(asked, name)!r}" for name in fields)
        reasons.append(f"{settings} left off: this run's data has no worked answers "
                       "(world mmu sources with \"reasoned\": true in data.mmu)")
    if not changes:
        return asked, None
    line = ("transformer.generation's " + "; ".join(reasons)
            + " (a model asked to do what its data never taught it does it wrongly, and says nothing)")
    return dataclasses.replace(asked, **changes), line


def data_teaches(data: dict[str, dict[str, Any]], marker: str = ANSWER_MARKER) -> set[str]:
    """What the run's data specs (one per flow) teach of what only some data teaches: ``"plan"``
    when the lm flow holds plan rows (world sources of kind ``"plan"``, or token shards of such
    rows), ``"reasoned"`` when the mmu flow holds worked answers (world ``mmu`` sources with
    ``"reasoned": true``, or token shards whose answers hold ``marker``). Mixtures are opened;
    a source of weight 0 is never drawn and teaches nothing."""
    taught = set()
    if any(_holds_plans(spec) for spec in source_specs(data.get("lm"))):
        taught.add("plan")
    if any(_holds_worked_answers(spec, marker) for spec in source_specs(data.get("mmu"))):
        taught.add("reasoned")
    return taught


def source_specs(spec: Any) -> Iterator[dict[str, Any]]:
    """The sources of a flow's spec, mixtures (nested too) opened, those of weight 0 left out."""
    if not isinstance(spec, dict):
        return
    if spec.get("type") != "mixture":
        yield spec
        return
    for child in spec.get("sources") or ():
        if isinstance(child, dict) and child.get("weight", 1.0) != 0:
            yield from source_specs(child)


def _holds_plans(spec: dict[str, Any]) -> bool:
    if spec.get("type") == "world":
        return spec.get("kind") == "plan"
    return spec.get("type") == "token_shards" and any(r.get("kind") == "plan" for r in shard_records(spec))


def _holds_worked_answers(spec: dict[str, Any], marker: str) -> bool:
    if spec.get("type") == "world":
        return spec.get("kind") == "mmu" and bool(spec.get("reasoned"))
    if spec.get("type") != "token_shards":
        return False
    return any(isinstance(turn, list) and len(turn) == 2 and isinstance(turn[1], str) and marker in turn[1]
               for r in shard_records(spec) if r.get("kind") == "mmu" for turn in r.get("turns") or ())


def shard_records(spec: dict[str, Any], limit: int = PEEKED_RECORDS) -> Iterator[dict[str, Any]]:
    """The first ``limit`` readable records of a token-shard folder, as JSON objects; none when
    its index cannot be read (building the source reports that)."""
    if not isinstance(spec.get("path"), (str, Path)):
        return iter(())
    folder = Path(spec["path"])
    try:
        index = read_index(folder / INDEX_FILE)
    except (OSError, ValueError):
        return iter(())
    lines = (record for shard in index.shards for record in read_jsonl_lines(folder / f"{shard.name}.jsonl"))
    return islice(filter(None, map(_json_object, lines)), limit)


def _json_object(record) -> dict[str, Any] | None:
    if record.error is not None:
        return None
    try:
        value = json.loads(record.data)
    except ValueError:  # not JSON, or not UTF-8
        return None
    return value if isinstance(value, dict) else None
