"""GenEval-style text-to-image prompts for the built-in world, checked on scenes read from pixels.

The six GenEval categories, with shapes as the object classes and colours as attributes:

* ``single_object``: "a circle": exactly one object, of that shape (any colour);
* ``two_objects``: "a circle and a triangle": exactly two objects, of those two shapes;
* ``counting``: "three green squares": exactly that many objects, all of that class;
* ``colors``: "a purple triangle": such an object is there;
* ``position``: "a red circle to the left of a blue square": both there, in that relation;
* ``attribute_binding``: "a red triangle and a white circle": both there, colours bound right.

Counting, position and attribute binding are drawn from the held-out combinations of
``scene.HELDOUT_PAIRS`` (a counted class that training never repeats; a pair of classes
that training never shows together), so they measure composition. The other three name at
most one colour-shape class, and every class is seen in training, so they cannot be new.
Unlike GenEval, extra objects also fail ``single_object`` and ``two_objects`` (the world
has no background clutter to excuse them); ``colors``, ``position`` and
``attribute_binding`` allow them, as GenEval does.

A spec is plain JSON: ``{"objects": [{"shape", "colour" (or None), "count"}], "relation":
None or one of ``scene.RELATIONS`` (objects[0] relation objects[1]), "exact": bool}``.
"""

from __future__ import annotations

import numpy as np

from .language import RELATION_PHRASES, ObjSpec, join_phrases, noun_phrase, specs_hold
from .scene import (
    CLASSES,
    COLOURS,
    HELDOUT_PAIRS,
    RELATIONS,
    SHAPES,
    SLOTS,
    Scene,
    pick,
    pick_distinct,
    random_object,
    relation_holds,
)

GENEVAL_CATEGORIES = ("single_object", "two_objects", "counting", "colors", "position", "attribute_binding")
_PAIRS = [p for p in HELDOUT_PAIRS if p[0] != p[1]]
_REPEATED = [p[0] for p in HELDOUT_PAIRS if p[0] == p[1]]
_BINDING_PAIRS = [(a, b) for a, b in _PAIRS if a[0] != b[0] and a[1] != b[1]]


def make_spec(objects: list[tuple[str | None, str, int]], exact: bool, relation: str | None = None) -> dict:
    """The spec of (colour or None, shape, count) objects, ``objects[0] relation objects[1]`` if a relation is given."""
    return {"objects": [{"shape": s, "colour": c, "count": n} for c, s, n in objects],
            "relation": relation, "exact": exact}


def prompt_of(spec: dict) -> str:
    """The words of a spec: "a circle and a triangle", "three green squares", "a red circle above a blue square"."""
    phrases = [noun_phrase(o["shape"], o.get("count", 1), o.get("colour")) for o in spec["objects"]]
    if spec.get("relation") is not None:
        return f"{phrases[0]} {RELATION_PHRASES[spec['relation']]} {phrases[1]}"
    return join_phrases(phrases)


def _prompt_spec(category: str, rng: np.random.Generator) -> dict:
    """The spec of one prompt of ``category``."""
    if category == "single_object":
        return make_spec([(None, pick(rng, SHAPES), 1)], exact=True)
    if category == "two_objects":
        return make_spec([(None, shape, 1) for shape in pick_distinct(rng, SHAPES, 2)], exact=True)
    if category == "counting":
        (colour, shape), n = pick(rng, _REPEATED), int(rng.integers(2, 5))
        return make_spec([(colour, shape, n)], exact=True)
    if category == "colors":
        colour, shape = pick(rng, CLASSES)
        return make_spec([(colour, shape, 1)], exact=False)
    if category not in ("position", "attribute_binding"):
        raise ValueError(f"unknown category {category!r}; expected one of {GENEVAL_CATEGORIES}")
    pair = pick(rng, _PAIRS if category == "position" else _BINDING_PAIRS)
    objects = [(colour, shape, 1) for colour, shape in (pair[k] for k in rng.permutation(2))]
    return make_spec(objects, exact=False, relation=pick(rng, RELATIONS) if category == "position" else None)


def prompt_set(spec_of, n_per_category: int, seed: int, stream: int) -> list[dict]:
    """``n_per_category`` prompts of each category, ``{"category", "prompt", "spec"}``; ``spec_of(category, rng)``
    draws each spec from the category's own random stream, numbered by (seed, stream, category)."""
    prompts = []
    for k, category in enumerate(GENEVAL_CATEGORIES):
        rng = np.random.default_rng([seed, stream, k])
        for _ in range(n_per_category):
            spec = spec_of(category, rng)
            prompts.append({"category": category, "prompt": prompt_of(spec), "spec": spec})
    return prompts


def geneval_prompts(n_per_category: int = 50, seed: int = 0) -> list[dict]:
    """``n_per_category`` prompts of each category: ``{"category", "prompt", "spec"}``."""
    return prompt_set(_prompt_spec, n_per_category, seed, 4231)


def _specs(spec: dict) -> list[ObjSpec]:
    objects = spec["objects"]
    if spec.get("relation") is not None and len(objects) != 2:
        raise ValueError(f"a relation needs exactly two objects, got {len(objects)}")
    specs = [ObjSpec(o["shape"], o.get("colour"), count=o.get("count", 1)) for o in objects]
    if spec.get("relation") is not None:
        specs[0] = ObjSpec(specs[0].shape, specs[0].colour, count=specs[0].count, relation=(spec["relation"], 1))
    return specs


def check_prompt(spec: dict, scene: Scene) -> bool:
    """Whether ``scene`` (read from a generated picture) satisfies the prompt's spec."""
    exact = bool(spec.get("exact", False))
    return specs_hold(_specs(spec), scene, exact_counts=exact, exact_total=exact)


def geneval_scores(results) -> dict[str, float]:
    """Accuracy per category and ``overall``, the mean of the category scores (as GenEval).

    ``results`` holds ``{"category", "correct"}`` dicts; a category with no result is left
    out (and out of ``overall``) so that partial runs still report.
    """
    hits: dict[str, list[bool]] = {}
    for result in results:
        if result["category"] not in GENEVAL_CATEGORIES:
            raise ValueError(f"unknown category {result['category']!r}")
        hits.setdefault(result["category"], []).append(bool(result["correct"]))
    scores = {c: float(np.mean(hits[c])) for c in GENEVAL_CATEGORIES if c in hits}
    scores["overall"] = float(np.mean(list(scores.values()))) if scores else 0.0
    return scores


def scene_from_spec(spec: dict, rng: np.random.Generator, image_size: int = 64) -> Scene:
    """A scene that satisfies ``spec`` with no extra objects; free attributes are random."""
    classes = []
    for o in spec["objects"]:
        classes += [(o.get("colour"), o["shape"])] * o.get("count", 1)
    if len(classes) > len(SLOTS):
        raise ValueError(f"the world holds at most {len(SLOTS)} objects, the spec asks for {len(classes)}")
    while True:  # a random slot order; with a relation, retry until the first object stands right
        slots = pick_distinct(rng, SLOTS, len(classes))
        objects = [random_object(rng, slot, (colour or pick(rng, COLOURS), shape))
                   for slot, (colour, shape) in zip(slots, classes)]
        relation = spec.get("relation")
        if relation is None or relation_holds(relation, objects[0], objects[1]):
            return Scene(tuple(objects), image_size)
