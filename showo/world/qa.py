"""Questions about a scene with short canonical answers, and an oracle that answers them.

Answers are single words or short phrases ("red", "triangle", "three", "yes", "top left")
so that understanding accuracy is an exact match after ``answer_matches``. Objects are
referred to by the shortest phrases that pick out exactly one object and that do not give
the answer away ("the red object" when asking for a shape, never "the red circle").

With a word concept (``scene.WORD_SHAPES``: a dot is a small circle) the same pixels have another
name, and the old world's data may be replayed beside the new: a question that does not say the new
word is asked only when it has the answer the old world gives ("What shape is the red object?" is
never asked of a dot, nor "How many circles are there?" of a picture with one), and a dot is never
referred to with its size ("the dot", never "the small dot").

``answer_question`` parses the same templates and answers from a scene; the tests run it on
scenes read back from pixels, and it is the perfect-model baseline of evaluation scripts.
"""

from __future__ import annotations

import re

import numpy as np

from .language import RELATION_PHRASES, ObjSpec, canonical_caption, noun_phrase, number_word, parse_caption, words_of
from .scene import (
    RELATIONS,
    SIZES,
    WORD_SHAPES,
    Obj,
    Scene,
    as_drawn,
    check_concepts,
    drawing_pool,
    named,
    pick,
    relation_holds,
)

QA_KINDS = ("colour", "shape", "count", "presence", "position", "relation", "caption")
# The first is the released captioning prompt (ShowoPipeline.caption asks it).
CAPTION_QUESTIONS = ("Please describe this image in detail.", "Describe the image.", "What is in the image?",
                     "Describe the picture.")
# Attribute sets that may refer to an object, shortest first.
_REFERENCES = (("shape",), ("colour",), ("slot",), ("size",), ("colour", "shape"), ("size", "shape"),
               ("size", "colour"), ("size", "colour", "shape"))
_TEMPLATES = {
    "colour": ("What colour is {}?", "What is the colour of {}?", "Which colour is {}?"),
    "shape": ("What shape is {}?", "What is the shape of {}?", "Which shape is {}?"),
    "position": ("Where is {}?",),
}


def _reference(obj: Obj, keys: tuple[str, ...]) -> str:
    """"the red object", "the small circle", "the object at the top left"."""
    adjectives = [getattr(obj, k) for k in ("size", "colour") if k in keys]
    noun = obj.shape if "shape" in keys else "object"
    where = f" at the {obj.slot}" if "slot" in keys else ""
    return "the " + " ".join(adjectives + [noun]) + where


def _alike(a: Obj, b: Obj, keys: tuple[str, ...]) -> bool:
    """``a`` and ``b`` agree on every attribute in ``keys``."""
    return all(getattr(a, k) == getattr(b, k) for k in keys)


def unique_references(obj: Obj, scene: Scene, banned: set[str]) -> list[str]:
    """Phrases that pick out ``obj`` alone in ``scene`` without naming a banned attribute."""
    refs = []
    for keys in _REFERENCES:
        if banned.isdisjoint(keys) and not (obj.shape in WORD_SHAPES and {"size", "shape"} <= set(keys)):
            same = [o for o in scene.objects if _alike(o, obj, keys)]
            if len(same) == 1:
                refs.append(_reference(obj, keys))
    return refs


def _attribute_question(kind: str, scene: Scene, rng: np.random.Generator) -> tuple[str, str] | None:
    obj = pick(rng, scene.objects)
    attribute = "slot" if kind == "position" else kind
    refs = unique_references(obj, scene, {attribute})
    if not refs:
        return None
    return pick(rng, _TEMPLATES[kind]).format(pick(rng, refs)), getattr(obj, attribute)


def _count_question(scene: Scene, rng: np.random.Generator) -> tuple[str, str]:
    obj = pick(rng, scene.objects)
    keys = pick(rng, ((), ("colour",), ("shape",), ("colour", "shape")))
    colour = obj.colour if "colour" in keys else None
    shape = obj.shape if "shape" in keys else None
    n = sum((colour in (None, o.colour)) and (shape in (None, o.shape)) for o in scene.objects)
    noun = " ".join(w for w in (colour, (shape or "object") + "s") if w)
    return f"How many {noun} are there?", number_word(n)


def _presence_question(scene: Scene, rng: np.random.Generator, concepts=()) -> tuple[str, str]:
    """Yes and no equally often: a present object's attributes, or attributes nobody has (yes
    where no value of the asked attributes is missing, e.g. every shape is there); absent ones
    are drawn from the objects of the world with ``concepts`` (with "dot": no small circle, no large dot)."""
    keys = pick(rng, (("shape",), ("colour",), ("colour", "shape"), ("size", "colour", "shape")))

    def present(obj: Obj) -> bool:
        return any(_alike(o, obj, keys) for o in scene.objects)

    if rng.random() < 0.5:
        obj = pick(rng, scene.objects)
    else:
        slot, concepts = scene.objects[0].slot, check_concepts(concepts)
        candidates = (named(Obj(shape, colour, size, slot), concepts) for colour, shape in drawing_pool(concepts)
                      for size in SIZES)
        absent = [o for o in candidates if not present(o)]
        obj = pick(rng, absent) if absent else pick(rng, scene.objects)
    phrase = noun_phrase(obj.shape if "shape" in keys else None, 1, obj.colour if "colour" in keys else None,
                         obj.size if "size" in keys else None)
    return f"Is there {phrase}?", "yes" if present(obj) else "no"


def referenced_pair(scene: Scene, rng: np.random.Generator) -> tuple[Obj, Obj, list[str], list[str]] | None:
    """Two different objects and the ways to name each without its slot (None if either has none)."""
    if len(scene.objects) < 2:
        return None
    a, b = (scene.objects[k] for k in rng.permutation(len(scene.objects))[:2])
    refs_a, refs_b = unique_references(a, scene, {"slot"}), unique_references(b, scene, {"slot"})
    if not refs_a or not refs_b:
        return None
    return a, b, refs_a, refs_b


def _relation_question(scene: Scene, rng: np.random.Generator) -> tuple[str, str] | None:
    pair = referenced_pair(scene, rng)
    if pair is None:
        return None
    a, b, refs_a, refs_b = pair
    answer = "yes" if rng.random() < 0.5 else "no"
    options = [r for r in RELATIONS if relation_holds(r, a, b) == (answer == "yes")]
    relation = RELATION_PHRASES[pick(rng, options)]
    return f"Is {pick(rng, refs_a)} {relation} {pick(rng, refs_b)}?", answer


def make_question(kind: str, scene: Scene, rng: np.random.Generator, concepts=()) -> tuple[str, str] | None:
    """A (question, answer) of ``kind``, or None when the scene cannot support one; presence
    questions may ask about the shapes of ``concepts`` too, and with a word concept ("dot") a
    question that does not say the word is None unless the old world answers it the same (a caption
    of a picture with a dot is None: the old world captions the same pixels "a small ... circle")."""
    qa = _make_question(kind, scene, rng, concepts)
    if qa is None or _means_what_it_did(*qa, scene, concepts):
        return qa
    return None


def _means_what_it_did(question: str, answer: str, scene: Scene, concepts) -> bool:
    """Whether a question that says none of the world's new words (a dot) has the answer it has of the
    same pixels in the world without them (where a dot is a small circle)."""
    words = [w for w in WORD_SHAPES if w in check_concepts(concepts)]
    said = set(words_of(question))
    if not words or any(w in said or w + "s" in said for w in words):
        return True
    return answer_question(question, as_drawn(scene)) == answer


def _make_question(kind: str, scene: Scene, rng: np.random.Generator, concepts) -> tuple[str, str] | None:
    if not scene.objects:
        return None
    if kind in _TEMPLATES:
        return _attribute_question(kind, scene, rng)
    if kind == "count":
        return _count_question(scene, rng)
    if kind == "presence":
        return _presence_question(scene, rng, concepts)
    if kind == "relation":
        return _relation_question(scene, rng)
    if kind == "caption":
        return pick(rng, CAPTION_QUESTIONS), canonical_caption(scene)
    raise ValueError(f"unknown question kind {kind!r}; expected one of {QA_KINDS}")


# ---------------------------------------------------------------- the oracle

_QUESTION_FORMS = (
    (r"^(?:what colour is|what is the colour of|which colour is) (.+)$", "colour"),
    (r"^(?:what shape is|what is the shape of|which shape is) (.+)$", "shape"),
    (r"^where is (.+)$", "slot"),
    (r"^how many (.+?)(?: are there)?$", "count"),
    (r"^(?:is there|are there any|are there) (.+)$", "presence"),
    (r"^is (.+)$", "relation"),
)


def parse_question(question: str) -> tuple[str, list[ObjSpec]] | None:
    """The form of one of this module's questions ("colour", "shape", "slot", "count",
    "presence", "relation", "caption") and the object specs it names, or None if it is not one."""
    text = question.strip().lower().rstrip("?.! ")
    if text in (q.lower().rstrip("?.") for q in CAPTION_QUESTIONS):
        return "caption", []
    for pattern, form in _QUESTION_FORMS:
        match = re.match(pattern, text)
        if match:
            specs = parse_caption(match.group(1))
            if not specs or (form == "relation" and (len(specs) != 2 or specs[0].relation is None)):
                return None
            return form, specs
    return None


def the_one(spec: ObjSpec, scene: Scene) -> Obj | None:
    """The only object of ``scene`` that ``spec`` fits, or None."""
    found = [o for o in scene.objects if spec.matches(o)]
    return found[0] if len(found) == 1 else None


def answer_question(question: str, scene: Scene) -> str | None:
    """The canonical answer to one of this module's questions, or None if it is not one."""
    parsed = parse_question(question)
    return None if parsed is None else answer_parsed(*parsed, scene)


def answer_parsed(form: str, specs: list[ObjSpec], scene: Scene) -> str | None:
    """``answer_question`` for a question ``parse_question`` has read already."""
    if form == "caption":
        return canonical_caption(scene)
    if form in ("colour", "shape", "slot"):
        obj = the_one(specs[0], scene)
        return None if obj is None else getattr(obj, form)
    if form == "count":
        return number_word(sum(specs[0].matches(o) for o in scene.objects))
    if form == "presence":
        return "yes" if any(specs[0].matches(o) for o in scene.objects) else "no"
    a, b = the_one(specs[0], scene), the_one(specs[1], scene)
    if a is None or b is None:
        return None
    return "yes" if relation_holds(specs[0].relation[0], a, b) else "no"
