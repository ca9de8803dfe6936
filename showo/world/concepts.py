"""Fixed checks for a concept the shipped model has never seen (``scene.CONCEPTS``: the diamond and
the dot, shapes; cyan, a colour).

To teach a trained model a concept (a LoRA adapter on rows of ``WorldDataset(scenes="dot")``,
say), measure it before and after on two sets, each a pure function of (concept, n, seed):

* ``concept_prompts``: text-to-image prompts that name the concept, in GenEval's six categories
  ("a dot", "a dot and a square", "three red dots", "a green dot", "a blue dot above a white
  square", "a red dot and a yellow triangle"; for a colour, which needs a noun, "a cyan square",
  "a cyan circle and a triangle", "three cyan circles", ...), each with a spec as in ``geneval``.
  The other object of a dot prompt is never a circle: the old world calls small circles circles
  too, so "a dot and a circle" would test that ambiguity, not the word. ``heldout.score_t2i``
  reads the generated pictures with the concept and checks them; ``geneval.geneval_scores``
  averages per category.
* ``concept_questions``: questions about pictures that hold the concept, with their answers
  (``concept_question_kinds``): its colour (or shape), its place, how many there are, where it
  stands against another object, the concept's own attribute of it or of its neighbours ("What
  shape is the red object?" -> "diamond", "What colour is the square?" -> "cyan"), and whether one
  (of a colour, a size) is there, asked of pictures with and without one. Where one answer would be
  common ("yes", "one", the concept), it is the answer every other time, so that always giving it
  scores half; a colour or a place is asked only of a picture that holds more than one, so that
  the answer is not given away to a model that does not know the word. A dot is never asked its
  shape or size: the old world answers "circle" and "small" of the same pixels, and its data
  replayed beside the new would contradict them. ``score_concept_answers`` checks a model's answers.

Scenes are drawn like training scenes, from random streams of their own: the concept is what
is new, not the composition.

What the shipped image tokenizer (``showo/weights/world/vq``) gives back: the 37 patterns per
quadrant it was trained on (3 shapes x 6 colours x 2 sizes, and empty), and nothing else, so
neither the diamond nor cyan. The judge (``evaluator.read_scene``) reads both right on renders
(1.0) and on degraded renders (``evaluator_accuracy(scenes=...)``: 1.0 for cyan, >= 0.99 for the
diamond), but after the shipped tokenizer's encode and decode, 0 of 100 ``scenes="diamond"``
pictures and 0 of 100 ``scenes="cyan"`` pictures read right: a large diamond comes back as a small
square or a round blob, and a cyan object as a blue one (median RGB ~(35, 69, 231)). The tokenizer
has learned six colours, not colour: of 48 RGB colours tried (each channel 0, 90, 170 or 250,
brightest >= 170), every one came back within 18 of one of ``scene.PALETTE``'s six. So a model
with the shipped tokenizer cannot draw either concept, whatever its transformer learns; teaching
one to draw them needs a tokenizer trained on pictures that hold them (and where understanding
reads pictures through the same codes, it cannot see them either).

Hence the dot: a new word for something the tokenizer already draws (a small circle of any of the
six colours, ``scene.WORD_SHAPES``), so a dot picture is an old picture and comes back through the
tokenizer as well as any: after its encode and decode, the judge reads 100 of 100 ``scenes="dot"``
pictures right (the tests ask >= 0.95). What a LoRA adapter must learn is the word: draw a small circle for "dot" and
say "dot" of one.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from .geneval import GENEVAL_CATEGORIES, make_spec, prompt_set
from .language import answer_matches
from .qa import make_question
from .scene import (
    CLASSES,
    COLOURS,
    CONCEPTS,
    RELATIONS,
    SHAPES,
    WORD_SHAPES,
    Scene,
    check_concepts,
    concept_attribute,
    drawn_shape,
    pick,
    sample_scene,
)

CONCEPT_QUESTION_KINDS = ("colour", "shape", "count", "presence", "position", "relation")
_ASKED = {"colour": "colour", "position": "slot"}  # question kind -> the attribute it asks for


def concept_question_kinds(concept: str) -> tuple[str, ...]:
    """The kinds of ``concept_questions`` about ``concept``: ``CONCEPT_QUESTION_KINDS``, less "shape" for a dot
    (the old world calls the same pixels a circle)."""
    concept = _one_concept(concept)
    return tuple(k for k in CONCEPT_QUESTION_KINDS if not (k == "shape" and concept in WORD_SHAPES))


def _one_concept(concept: str) -> str:
    if not isinstance(concept, str):
        raise ValueError(f"concept must be one name from {CONCEPTS}, got {concept!r}")
    check_concepts(concept)
    return concept


def _shuffled(rng: np.random.Generator, objects: list) -> list:
    return [objects[k] for k in rng.permutation(len(objects))]


def _concept_class(concept: str, rng: np.random.Generator) -> tuple[str, str]:
    """A (colour, shape) class of ``concept``: a diamond (a dot) of a random colour, a cyan object of a random shape."""
    if concept_attribute(concept) == "shape":
        return pick(rng, COLOURS), concept
    return concept, pick(rng, SHAPES)


def _concept_spec(category: str, rng: np.random.Generator, concept: str) -> dict:
    """The spec of one prompt of ``category`` that names ``concept`` (with one other class where two are
    asked: of another colour and another shape, not the one a dot is drawn as). Where GenEval leaves colours out
    ("a dot", "a dot and a square"), a colour concept still names its colour and a shape ("a cyan circle and a
    square")."""
    colour, shape = _concept_class(concept, rng)
    others = [c for c in CLASSES if c[0] != colour and c[1] not in (shape, drawn_shape(shape))]
    other_colour, other_shape = pick(rng, others)
    named = None if concept_attribute(concept) == "shape" else colour  # the concept's own colour, if any
    if category == "single_object":
        return make_spec([(named, shape, 1)], exact=True)
    if category == "two_objects":
        return make_spec(_shuffled(rng, [(named, shape, 1), (None, other_shape, 1)]), exact=True)
    if category == "counting":
        return make_spec([(colour, shape, int(rng.integers(2, 5)))], exact=True)
    if category == "colors":
        return make_spec([(colour, shape, 1)], exact=False)
    if category not in ("position", "attribute_binding"):
        raise ValueError(f"unknown category {category!r}; expected one of {GENEVAL_CATEGORIES}")
    objects = _shuffled(rng, [(colour, shape, 1), (other_colour, other_shape, 1)])
    return make_spec(objects, exact=False, relation=pick(rng, RELATIONS) if category == "position" else None)


def concept_prompts(concept: str = "dot", n_per_category: int = 20, seed: int = 0) -> list[dict]:
    """``n_per_category`` prompts of each GenEval category naming ``concept``:
    ``{"category", "prompt", "spec", "concepts"}`` (``concepts``: what the judge must read)."""
    concept = _one_concept(concept)
    prompts = prompt_set(partial(_concept_spec, concept=concept), n_per_category, seed, 5011)
    return [{**p, "concepts": [concept]} for p in prompts]


def _fits(kind: str, concept: str, i: int, scene: Scene, question: str, answer: str) -> bool:
    """Whether a drawn question can be the ``i``-th of ``kind``: it names the concept (a question
    for the concept's attribute, the shape of a diamond or the colour of a cyan object, may ask of a
    neighbour), every other answer is the common one ("yes", "one", the concept), so that always
    giving it scores half, and a colour or a place is asked of a picture with more than one (where
    every object has the answer, a model that does not know the word would still give it)."""
    asks_for = concept_attribute(concept)  # "shape" or "colour": question kinds of the same names
    common = {"presence": "yes", "relation": "yes", "count": "one", asks_for: concept}.get(kind)
    if common is not None and (answer == common) != (i % 2 == 0):
        return False
    if kind in _ASKED and len({getattr(o, _ASKED[kind]) for o in scene.objects}) < 2:
        return False
    return kind == asks_for or concept in question


def _concept_question(kind: str, concept: str, i: int, rng: np.random.Generator, image_size: int) -> dict:
    """The ``i``-th question of ``kind``; presence questions are also asked of pictures without
    the concept, so that "no" can mean none at all."""
    scenes = "any" if kind == "presence" else concept
    while True:
        scene = sample_scene("train", rng, image_size, scenes=scenes, concepts=(concept,))
        qa = make_question(kind, scene, rng, (concept,))
        if qa is not None and _fits(kind, concept, i, scene, *qa):
            return {"image": scene.render(), "question": qa[0], "expected": qa[1], "kind": kind, "scene": scene}


def concept_questions(concept: str = "dot", n_per_kind: int = 20, seed: int = 0,
                      image_size: int = 64) -> list[dict]:
    """``n_per_kind`` questions of each of ``concept_question_kinds(concept)`` about pictures with
    ``concept``: ``{"image", "question", "expected", "kind", "scene"}``, as ``heldout.vqa_items``."""
    questions = []
    for kind in concept_question_kinds(concept):
        rng = np.random.default_rng([seed, 5023, CONCEPT_QUESTION_KINDS.index(kind)])
        questions += [_concept_question(kind, concept, i, rng, image_size) for i in range(n_per_kind)]
    return questions


def score_concept_answers(items: list[dict], answers: list[str]) -> list[bool]:
    """Whether each answer, given to the question of the item beside it, matches the expected one."""
    return [answer_matches(answer, item["expected"]) for item, answer in zip(items, answers, strict=True)]
