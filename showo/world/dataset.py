"""``WorldDataset``: every training sample of the built-in world, from (split, seed, index).

Each method is a pure function of (split, seed, kind, index): the random generator is
``numpy.random.default_rng([seed, split_id, kind_id, index])``, so any sample can be
recomputed on any worker, runs resume from a step counter, and shards never overlap.
Samples are plain dicts in the format the training code consumes.

Single objects are never held out, so ``class_sample`` draws the same distribution in both
splits (from different random streams).

``concepts`` (``scene.CONCEPTS``, e.g. ``("diamond",)``, ``("dot",)`` or ``("cyan",)``) adds new
classes to every kind of sample, and ``scenes="diamond"`` puts one in every picture; facts then list
the new shapes and colours. A dot is a new word, not a new drawing: with it every small circle is
called a dot, in every kind of sample.
"""

from __future__ import annotations

import numpy as np

from ..generation.prompting import plan_text
from .language import (
    NUMBER_WORDS,
    RELATION_PHRASES,
    canonical_caption,
    join_phrases,
    number_word,
    object_phrase,
    random_caption,
)
from .qa import QA_KINDS, make_question, referenced_pair, unique_references
from .reasoning import reasoned_answer
from .scene import (
    CONCEPTS,
    RELATIONS,
    SCENE_CHOICES,
    SLOTS,
    Scene,
    check_concepts,
    classes_of,
    colours_of,
    concepts_with,
    drawing_pool,
    named,
    pick,
    random_object,
    relation_holds,
    sample_scene,
    shapes_of,
)

SPLITS = ("train", "heldout")
KINDS = ("t2i", "class", "mmu", "lm", "interleaved", "plan")
_GENERAL_FACTS = (
    "A square has four corners.", "A triangle has three corners.", "A circle has no corners.",
    "A square has four equal sides.", "A triangle has three sides.", "A circle is round.",
    "A large object is bigger than a small object.", "The top left is above the bottom left.",
    "The top left is to the left of the top right.", "Left is the opposite of right.",
    "Above is the opposite of below.", "The background is always black.",
    "There are four places: top left, top right, bottom left and bottom right.",
)
CONCEPT_FACTS = {"diamond": ("A diamond has four corners.", "A diamond is a square turned onto one corner."),
                 "dot": ("A dot is a small circle.", "A dot is small and round."),
                 "cyan": ("Cyan is a mix of green and blue.", "Cyan is the colour of a clear sea.")}
_HOW_MANY = NUMBER_WORDS + ("five", "six", "seven", "eight")


def facts_of(concepts=()) -> tuple[str, ...]:
    """The facts of the world with ``concepts``: the general ones, the lists of colours and shapes, each
    concept's own."""
    colours, shapes = colours_of(concepts), shapes_of(concepts)
    listed = (f"There are {_HOW_MANY[len(colours)]} colours: {join_phrases(list(colours))}.",
              f"There are {_HOW_MANY[len(shapes)]} shapes: {join_phrases([s + 's' for s in shapes])}.")
    return _GENERAL_FACTS + listed + tuple(f for c in check_concepts(concepts) for f in CONCEPT_FACTS[c])


FACTS = facts_of()


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + "."


class WorldDataset:
    """Samples of one split; ``seed`` picks an independent copy of the whole stream."""

    def __init__(self, split: str = "train", seed: int = 0, image_size: int = 64, scenes: str = "any",
                 reasoned: bool = False, concepts=()):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if image_size <= 0 or image_size % 16:
            raise ValueError(f"image_size must be a positive multiple of 16, got {image_size}")
        if scenes not in SCENE_CHOICES:
            raise ValueError(f"scenes must be one of {SCENE_CHOICES}, got {scenes!r}")
        if not isinstance(reasoned, bool):
            raise ValueError(f"reasoned must be true or false, got {reasoned!r}")
        self.split, self.seed, self.image_size, self.scenes = split, seed, image_size, scenes
        self.reasoned = reasoned  # mmu answers show their work (showo.world.reasoning)
        self.concepts = concepts_with(concepts, scenes)  # the ones the scenes may hold
        self.classes, self.facts = classes_of(self.concepts), facts_of(self.concepts)
        # class samples: any class drawn (a small circle is then named a dot, with "dot"), or with
        # scenes="diamond" a diamond of any colour (a cyan one of any shape, a dot of any colour)
        drawn = drawing_pool(self.concepts)
        self.labels = [k for k, cls in enumerate(self.classes)
                       if (scenes in cls if scenes in CONCEPTS else cls in drawn)]

    def _rng(self, kind: str, index: int) -> np.random.Generator:
        if index < 0:
            raise ValueError(f"index must be >= 0, got {index}")
        return np.random.default_rng([self.seed, SPLITS.index(self.split), KINDS.index(kind), index])

    def scene(self, rng: np.random.Generator, min_objects: int = 1) -> Scene:
        return sample_scene(self.split, rng, self.image_size, min_objects, self.scenes, self.concepts)

    def sample(self, kind: str, index: int) -> dict:
        """The sample of ``kind`` (one of ``KINDS``) at ``index``."""
        methods = {"t2i": self.t2i, "class": self.class_sample, "mmu": self.mmu, "lm": self.lm,
                   "interleaved": self.interleaved, "plan": self.plan}
        if kind not in methods:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        return methods[kind](index)

    def t2i(self, index: int) -> dict:
        """A picture and one of many true captions of it."""
        rng = self._rng("t2i", index)
        scene = self.scene(rng)
        return {"kind": "t2i", "image": scene.render(), "caption": random_caption(scene, rng), "scene": scene}

    def class_sample(self, index: int) -> dict:
        """One object of a uniformly drawn colour-shape class, anywhere, any size; ``label``
        numbers the class in ``scene.classes_of(concepts)`` of the object as named (with "dot", a
        drawn circle that comes out small is a dot)."""
        rng = self._rng("class", index)
        label = self.labels[int(rng.integers(len(self.labels)))]
        obj = named(random_object(rng, pick(rng, SLOTS), self.classes[label]), self.concepts)
        label, scene = self.classes.index((obj.colour, obj.shape)), Scene((obj,), self.image_size)
        return {"kind": "class", "image": scene.render(), "label": label, "class_name": scene.objects[0].class_name,
                "scene": scene}

    def mmu(self, index: int) -> dict:
        """A picture and 1 to 3 question-answer turns of different kinds (``kinds`` names them);
        with ``reasoned``, answers other than captions are worked out (``showo.world.reasoning``)."""
        rng = self._rng("mmu", index)
        scene = self.scene(rng)
        turns, kinds, n_turns = [], [], int(rng.integers(1, 4))
        for kind in rng.permutation(QA_KINDS):
            qa = make_question(str(kind), scene, rng, self.concepts)
            if qa is not None:
                worked = reasoned_answer(qa[0], scene) if self.reasoned else None
                turns.append(qa if worked is None else (qa[0], worked))
                kinds.append(str(kind))
            if len(turns) == n_turns:
                break
        return {"kind": "mmu", "image": scene.render(), "turns": turns, "kinds": kinds, "scene": scene}

    def lm(self, index: int) -> dict:
        """2 to 5 sentences: a scene told in words, and facts of the world."""
        rng = self._rng("lm", index)
        scene = self.scene(rng)
        sentences = [_sentence(random_caption(scene, rng))]
        extra = [_count_sentence(scene), _colour_sentence(scene, rng), _relation_sentence(scene, rng)]
        extra = [s for s in extra if s] + [pick(rng, self.facts), pick(rng, self.facts)]
        for k in rng.permutation(len(extra))[: int(rng.integers(1, 5))]:
            sentences.append(extra[k])
        return {"kind": "lm", "text": " ".join(sentences)}

    def plan(self, index: int) -> dict:
        """A t2i caption and the complete description of its picture, as one text row
        (``showo.generation.prompting``): ``{"text", "prompt", "plan"}``, where the plan is the canonical caption."""
        rng = self._rng("plan", index)
        scene = self.scene(rng)
        prompt, plan = random_caption(scene, rng), canonical_caption(scene)
        return {"kind": "plan", "text": plan_text(prompt, plan), "prompt": prompt, "plan": plan, "scene": scene}

    def interleaved(self, index: int) -> dict:
        """A scene built one object at a time: instruction, picture so far, instruction, ..."""
        rng = self._rng("interleaved", index)
        scene = self.scene(rng, min_objects=2)
        order = [scene.objects[k] for k in rng.permutation(len(scene.objects))]
        segments, scenes = [], []
        for step, obj in enumerate(order):
            verb = pick(rng, ("Start with", "Begin with", "First, draw")) if step == 0 else \
                pick(rng, ("Now add", "Then add", "Add", "Next, put"))
            segments.append(f"{verb} {object_phrase(obj, where=pick(rng, ('at the', 'in the')))}.")
            scenes.append(Scene(tuple(order[: step + 1]), self.image_size))
            segments.append(scenes[-1].render())
        return {"kind": "interleaved", "segments": segments, "scenes": scenes}


def _count_sentence(scene: Scene) -> str:
    n = len(scene.objects)
    return f"There {'is' if n == 1 else 'are'} {number_word(n)} object{'' if n == 1 else 's'}."


def _colour_sentence(scene: Scene, rng: np.random.Generator) -> str | None:
    obj = pick(rng, scene.objects)
    refs = unique_references(obj, scene, {"colour", "slot"})
    return _sentence(f"{refs[0]} is {obj.colour}") if refs else None


def _relation_sentence(scene: Scene, rng: np.random.Generator) -> str | None:
    pair = referenced_pair(scene, rng)
    if pair is None:
        return None
    a, b, refs_a, refs_b = pair
    relation = pick(rng, [r for r in RELATIONS if relation_holds(r, a, b)])
    return _sentence(f"{refs_a[-1]} is {RELATION_PHRASES[relation]} {refs_b[-1]}")
