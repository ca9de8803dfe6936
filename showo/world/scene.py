"""Scenes of the built-in world: what may be in a picture, where, and how it is drawn.

A picture is a black square canvas cut into a 2x2 grid of slots. Each of the 1 to 4 objects
sits in its own slot, at the slot centre; it has a shape, a colour and a size. The world is
kept this small so that a ~10M-parameter Show-o can learn it on one CPU, and so that
``evaluator.read_scene`` can read every attribute back from pixels without a learned model.

Objects are drawn exactly at their slot centres, so a picture is a pure function of its
objects' (shape, colour, size, slot) and each quadrant of the picture holds one of 37 patterns.
A random nudge off centre (up to 8% of a slot) would make an object's 8x8-pixel image codes
differ with its offset, and a small model would spend its capacity on keeping neighbouring
codes' offsets consistent instead of on language and composition. ``Obj.jitter`` still moves a
drawing off centre, to check that ``read_scene`` does not depend on exact placement (generated
pictures are not exact).

Held-out rule (composition test). A (colour, shape) pair of objects is *held out* when it
is listed in ``HELDOUT_PAIRS``; a scene is held out when it contains both objects of some
held-out pair (for a pair of one class twice, two objects of that class). The "train" split
never contains a held-out scene; every scene of the "heldout" split contains at least one.
Every one of the 18 colour-shape classes is seen in training, alone and beside others; only
the listed pairings are new. The pairs are:

* eight pairs of different classes, e.g. a red circle together with a blue square;
* three classes never repeated in a training scene (green square, purple triangle and blue
  circle appear at most once per training picture), so counting them is new at test time.

Concepts (opt-in). ``CONCEPTS`` lists what the world can add for teaching a trained model
something new (a LoRA adapter, say): two new shapes and a new colour. The "diamond" is a square
turned on its corner (it fills half its box, where a circle fills ~79%); "cyan" (``NEW_PALETTE``)
is the hue between green and blue, >= 160 in RGB distance from every colour of ``PALETTE``. Neither
can be taught to the shipped model: its image tokenizer gives back only the 37 quadrant patterns
it was trained on (``showo.world.concepts``). The "dot" can: it is a new *word* for something the
tokenizer draws already (``WORD_SHAPES``), a small circle. ``Obj("dot", ...)`` is always small and
drawn exactly as a small circle; with the concept on, every small circle is called a dot (``named``)
and a circle is a large one, so the pictures are the old world's and only the words change
(``as_drawn`` gives them back). A concept is one value of one attribute (``concept_attribute``);
with it, every class of the other attribute's values joins the world (cyan circles, squares,
triangles; diamonds and dots of every colour). Nothing samples, reads or asks about a concept
unless given ``concepts=("cyan",)`` or ``scenes="cyan"`` (every scene shows one), so the default
world is what it always was. ``Obj`` and the language know the words always: no default scene or
text holds them, so that changes nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")
COLOURS = ("red", "green", "blue", "yellow", "purple", "white")
SIZES = ("small", "large")
SLOTS = ("top left", "top right", "bottom left", "bottom right")
RELATIONS = ("left of", "right of", "above", "below")

# Saturated and far apart (every pair >= ~130 in RGB distance) so that blur, noise and the
# colour shifts of a learned tokenizer still land nearest to the right entry.
PALETTE = {
    "red": (220, 30, 30),
    "green": (30, 200, 50),
    "blue": (30, 70, 230),
    "yellow": (235, 215, 30),
    "purple": (160, 50, 210),
    "white": (235, 235, 235),
}
CLASSES = tuple((colour, shape) for colour in COLOURS for shape in SHAPES)
CLASS_NAMES = [f"{colour} {shape}" for colour, shape in CLASSES]
# Values that only exist when asked for. Cyan is the hue farthest from every colour of PALETTE
# (~160 from blue, ~183 from green, ~215 from white; orange, pink or grey would sit ~90-110 from
# red, yellow, purple or white). The shipped image tokenizer gives neither concept back: see
# ``showo.world.concepts``.
NEW_SHAPES = ("diamond", "dot")
# New words for objects the world draws already: word -> (the shape it is drawn as, its only size).
WORD_SHAPES = {"dot": ("circle", "small")}
NEW_PALETTE = {"cyan": (20, 230, 230)}
NEW_COLOURS = tuple(NEW_PALETTE)
CONCEPTS = NEW_SHAPES + NEW_COLOURS  # every opt-in concept
ALL_SHAPES = SHAPES + NEW_SHAPES
ALL_COLOURS = COLOURS + NEW_COLOURS
ALL_PALETTE = {**PALETTE, **NEW_PALETTE}

SIZE_FRACTION = {"small": 0.4, "large": 0.68}  # object side / slot side
JITTER_FRACTION = 0.08  # largest centre offset / slot side: large objects keep >= 4 px apart at 64

HELDOUT_PAIRS = (
    (("red", "circle"), ("blue", "square")),
    (("green", "triangle"), ("yellow", "circle")),
    (("purple", "square"), ("white", "triangle")),
    (("blue", "triangle"), ("yellow", "square")),
    (("white", "circle"), ("red", "triangle")),
    (("yellow", "triangle"), ("purple", "circle")),
    (("green", "circle"), ("green", "square")),
    (("red", "square"), ("purple", "square")),
    (("green", "square"), ("green", "square")),
    (("purple", "triangle"), ("purple", "triangle")),
    (("blue", "circle"), ("blue", "circle")),
)


def _check(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {allowed}")


def check_concepts(concepts) -> tuple[str, ...]:
    """``concepts`` (a name, or names from ``CONCEPTS``) as a tuple in ``CONCEPTS`` order."""
    names = (concepts,) if isinstance(concepts, str) else concepts
    if not isinstance(names, (tuple, list)):
        raise ValueError(f"concepts must be a list of names from {CONCEPTS}, got {concepts!r}")
    for name in names:
        _check(name, CONCEPTS, "concept")
    return tuple(c for c in CONCEPTS if c in names)


def concepts_with(concepts, scenes: str) -> tuple[str, ...]:
    """``concepts`` checked, plus the concept that ``scenes`` names (if it names one)."""
    concepts = check_concepts(concepts)
    return check_concepts(concepts + (scenes,)) if scenes in CONCEPTS else concepts


def concept_attribute(concept: str) -> str:
    """The attribute of objects that ``concept`` is a value of: "shape" or "colour"."""
    _check(concept, CONCEPTS, "concept")
    return "shape" if concept in NEW_SHAPES else "colour"


def drawn_shape(shape: str) -> str:
    """The shape that ``shape`` is drawn as: a dot is drawn as a circle, every other shape as itself."""
    return WORD_SHAPES[shape][0] if shape in WORD_SHAPES else shape


def shapes_of(concepts=()) -> tuple[str, ...]:
    """The shapes of the world with ``concepts`` added: ``SHAPES`` first."""
    return SHAPES + tuple(s for s in NEW_SHAPES if s in check_concepts(concepts))


def colours_of(concepts=()) -> tuple[str, ...]:
    """The colours of the world with ``concepts`` added: ``COLOURS`` first."""
    return COLOURS + tuple(c for c in NEW_COLOURS if c in check_concepts(concepts))


def classes_of(concepts=()) -> tuple[tuple[str, str], ...]:
    """The (colour, shape) classes with ``concepts`` added: ``CLASSES`` first, so labels keep their numbers,
    then the new ones in colour-major order (red diamond, ..., white diamond, cyan circle, ..., cyan diamond)."""
    shapes = shapes_of(concepts)
    return CLASSES + tuple((colour, shape) for colour in colours_of(concepts) for shape in shapes
                           if (colour, shape) not in CLASSES)


def drawing_pool(concepts=()) -> tuple[tuple[str, str], ...]:
    """The classes that scenes of the world with ``concepts`` are drawn from: ``classes_of`` less the words
    for objects drawn already (a dot is a small circle of a drawn circle class, named by ``named``)."""
    return tuple(cls for cls in classes_of(concepts) if cls[1] not in WORD_SHAPES)


@dataclass(frozen=True)
class Obj:
    """One object. ``jitter`` (each in [-1, 1]) only nudges the drawing and is ignored by ==."""

    shape: str
    colour: str
    size: str
    slot: str
    jitter: tuple[float, float] = field(default=(0.0, 0.0), compare=False)

    def __post_init__(self) -> None:
        _check(self.shape, ALL_SHAPES, "shape")
        _check(self.colour, ALL_COLOURS, "colour")
        _check(self.size, SIZES, "size")
        _check(self.slot, SLOTS, "slot")
        if self.shape in WORD_SHAPES and self.size != WORD_SHAPES[self.shape][1]:
            raise ValueError(f"a {self.shape} is always {WORD_SHAPES[self.shape][1]}, got size {self.size!r}")
        if not all(-1.0 <= j <= 1.0 for j in self.jitter):
            raise ValueError(f"jitter must lie in [-1, 1], got {self.jitter}")

    @property
    def class_name(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass(frozen=True)
class Scene:
    """A picture's content. Objects are kept in slot order so that equal scenes compare equal."""

    objects: tuple[Obj, ...]
    image_size: int = 64

    def __post_init__(self) -> None:
        objects = tuple(sorted(self.objects, key=lambda o: SLOTS.index(o.slot)))
        object.__setattr__(self, "objects", objects)
        if self.image_size <= 0 or self.image_size % 16:
            raise ValueError(f"image_size must be a positive multiple of 16, got {self.image_size}")
        slots = [o.slot for o in objects]
        if len(set(slots)) != len(slots):
            raise ValueError(f"at most one object per slot, got slots {slots}")

    def render(self) -> Image.Image:
        """The RGB picture; a pure function of the scene (jitter included)."""
        image = Image.new("RGB", (self.image_size, self.image_size), (0, 0, 0))
        draw = ImageDraw.Draw(image)
        for obj in self.objects:
            _draw(draw, obj, self.image_size)
        return image

    def class_counts(self) -> Counter:
        return Counter((o.colour, o.shape) for o in self.objects)


def slot_row_col(slot: str) -> tuple[int, int]:
    return SLOTS.index(slot) // 2, SLOTS.index(slot) % 2


def slot_box(slot: str, image_size: int) -> tuple[int, int, int, int]:
    """Pixel box (x0, y0, x1, y1), x1/y1 exclusive, of a slot."""
    half = image_size // 2
    row, col = slot_row_col(slot)
    return col * half, row * half, (col + 1) * half, (row + 1) * half


def object_box(obj: Obj, image_size: int) -> tuple[int, int, int, int]:
    """Inclusive pixel box (x0, y0, x1, y1) that the object fills."""
    half = image_size / 2
    side = round(SIZE_FRACTION[obj.size] * half)
    x_slot, y_slot, _, _ = slot_box(obj.slot, image_size)
    cx = x_slot + half / 2 + obj.jitter[0] * JITTER_FRACTION * half
    cy = y_slot + half / 2 + obj.jitter[1] * JITTER_FRACTION * half
    x0, y0 = round(cx - side / 2), round(cy - side / 2)
    return x0, y0, x0 + side - 1, y0 + side - 1


def _draw(draw: ImageDraw.ImageDraw, obj: Obj, image_size: int) -> None:
    x0, y0, x1, y1 = object_box(obj, image_size)
    colour, shape = ALL_PALETTE[obj.colour], drawn_shape(obj.shape)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if shape == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=colour)
    elif shape == "square":
        draw.rectangle((x0, y0, x1, y1), fill=colour)
    elif shape == "triangle":  # upright: apex at the top centre, base along the bottom edge
        draw.polygon([(cx, y0), (x0, y1), (x1, y1)], fill=colour)
    else:  # a diamond: a corner at the middle of each side of the box
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=colour)


def named(obj: Obj, concepts: tuple[str, ...]) -> Obj:
    """``obj`` as the world with ``concepts`` (checked) calls it: with "dot", a small circle is a dot."""
    for word, (shape, size) in WORD_SHAPES.items():
        if word in concepts and (obj.shape, obj.size) == (shape, size):
            return replace(obj, shape=word)
    return obj


def named_scene(scene: Scene, concepts) -> Scene:
    """``scene`` with every object ``named`` in the world with ``concepts``."""
    concepts = check_concepts(concepts)
    if not any(word in concepts for word in WORD_SHAPES):
        return scene
    return Scene(tuple(named(o, concepts) for o in scene.objects), scene.image_size)


def as_drawn(scene: Scene) -> Scene:
    """``scene`` in the words of the world without word concepts: every dot a small circle (same pixels)."""
    return Scene(tuple(replace(o, shape=drawn_shape(o.shape)) for o in scene.objects), scene.image_size)


def relation_holds(relation: str, a: Obj, b: Obj) -> bool:
    """Whether ``a`` is ``relation`` ``b``; diagonal neighbours satisfy two relations."""
    (row_a, col_a), (row_b, col_b) = slot_row_col(a.slot), slot_row_col(b.slot)
    tests = {"left of": col_a < col_b, "right of": col_a > col_b, "above": row_a < row_b, "below": row_a > row_b}
    _check(relation, RELATIONS, "relation")
    return tests[relation]


def is_heldout(scene: Scene) -> bool:
    """True when the scene holds both objects of some pair in ``HELDOUT_PAIRS`` (as drawn: a dot is a circle)."""
    counts = as_drawn(scene).class_counts()
    return any(counts[a] >= 2 if a == b else counts[a] >= 1 and counts[b] >= 1 for a, b in HELDOUT_PAIRS)


def pick(rng: np.random.Generator, options):
    """One of ``options``, drawn with ``rng``."""
    return options[rng.integers(len(options))]


def pick_distinct(rng: np.random.Generator, options, n: int) -> list:
    """``n`` of ``options``, no two the same, in random order."""
    return [options[k] for k in rng.permutation(len(options))[:n]]


def random_object(rng: np.random.Generator, slot: str, cls: tuple[str, str] | None = None,
                  pool: tuple[tuple[str, str], ...] = CLASSES) -> Obj:
    """An object of class ``cls`` (None: one of ``pool``) and random size (a dot: small) in ``slot``."""
    colour, shape = pick(rng, pool) if cls is None else cls
    size = SIZES[rng.integers(2)]
    return Obj(shape, colour, WORD_SHAPES[shape][1] if shape in WORD_SHAPES else size, slot)


def _scene_of(rng: np.random.Generator, slots: list[str], classes: list, image_size: int, pool) -> Scene:
    """One random object per slot, of the class beside it (None: a random class of ``pool``)."""
    return Scene(tuple(random_object(rng, s, c, pool) for s, c in zip(slots, classes)), image_size)


def _free_scene(rng: np.random.Generator, image_size: int, min_objects: int, pool) -> Scene:
    """Any scene; a quarter of them repeat one class so that counting has something to count."""
    n = int(rng.choice([1, 2, 3, 4], p=[0.25, 0.3, 0.25, 0.2]))
    n = max(n, min_objects)
    slots = pick_distinct(rng, SLOTS, n)
    if n >= 2 and rng.random() < 0.25:
        cls = pick(rng, pool)
        classes = [cls] * n
        if n >= 3 and rng.random() < 0.5:
            classes[-1] = None
    else:
        classes = [None] * n
    return _scene_of(rng, slots, classes, image_size, pool)


def _pair_scene(rng: np.random.Generator, image_size: int, pair, pool) -> Scene:
    """A pair of classes in two random slots, plus up to two more objects (each repeating one
    of the pair 3 times in 10): the shape of every held-out scene."""
    n = int(rng.integers(2, 5))
    classes = list(pair)
    for _ in range(n - 2):
        classes.append(pair[rng.integers(2)] if rng.random() < 0.3 else None)
    return _scene_of(rng, pick_distinct(rng, SLOTS, n), classes, image_size, pool)


def _distinct_pair_scene(rng: np.random.Generator, image_size: int, pool) -> Scene:
    """Exactly two objects of different shapes (colours random) in two random slots."""
    colours, shapes = (tuple(dict.fromkeys(attributes)) for attributes in zip(*pool))
    classes = [(pick(rng, colours), shape) for shape in pick_distinct(rng, shapes, 2)]
    return _scene_of(rng, pick_distinct(rng, SLOTS, 2), classes, image_size, pool)


def shows(obj: Obj, concept: str) -> bool:
    """Whether ``obj`` is of ``concept`` (a diamond, say, or a cyan object)."""
    return getattr(obj, concept_attribute(concept)) == concept


def turned_into(obj: Obj, concept: str) -> Obj:
    """``obj`` made a ``concept``: a diamond of its colour and size, a cyan object of its shape and size,
    a dot of its colour (small)."""
    changes = {concept_attribute(concept): concept}
    if concept in WORD_SHAPES:
        changes["size"] = WORD_SHAPES[concept][1]
    return replace(obj, **changes)


def _featuring(scene: Scene, concept: str, rng: np.random.Generator) -> Scene:
    """``scene`` with one random object ``turned_into`` a ``concept`` (same slot), unless it holds one already."""
    if any(shows(o, concept) for o in scene.objects):
        return scene
    objects = list(scene.objects)
    k = int(rng.integers(len(objects)))
    objects[k] = turned_into(objects[k], concept)
    return Scene(tuple(objects), scene.image_size)


SCENE_KINDS = ("any", "crowded", "pairs")
SCENE_CHOICES = SCENE_KINDS + CONCEPTS  # a concept's name: "any" scenes that each show it


def _draft(split: str, scenes: str, rng: np.random.Generator, image_size: int, min_objects: int, pool) -> Scene:
    """A scene of the kind asked for, before the held-out rule is checked."""
    if split == "heldout":
        return _pair_scene(rng, image_size, HELDOUT_PAIRS[rng.integers(len(HELDOUT_PAIRS))], pool)
    if scenes == "crowded":
        return _pair_scene(rng, image_size, tuple(pool[k] for k in rng.integers(len(pool), size=2)), pool)
    if scenes == "pairs":
        return _distinct_pair_scene(rng, image_size, pool)
    return _free_scene(rng, image_size, min_objects, pool)


def sample_scene(split: str, rng: np.random.Generator, image_size: int = 64, min_objects: int = 1,
                 scenes: str = "any", concepts=()) -> Scene:
    """A scene of ``split``; scenes are redrawn until they obey the held-out rule.

    ``scenes="crowded"`` draws train scenes shaped like the held-out ones (a random pair of
    classes and up to two more objects that often repeat it: 2 to 4 objects that share
    attributes), where telling objects apart takes every attribute. ``scenes="pairs"`` draws
    exactly two objects of different shapes, the scenes that two-object and attribute-binding
    prompts ask for ("a triangle and a circle", "a red triangle and a white circle"). Held-out
    scenes are always crowded.

    ``concepts`` (names from ``CONCEPTS``) adds their classes to those objects are drawn from
    (a word concept names what is drawn: with "dot", every small circle is a dot); ``scenes`` set to
    a concept's name draws "any" scenes with the concept added, each holding at least one object of
    it (a held-out one besides its held-out pair, so 3 or 4 objects, unless the pair's circle is a dot).
    """
    if scenes not in SCENE_CHOICES:
        raise ValueError(f"scenes must be one of {SCENE_CHOICES}, got {scenes!r}")
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    featured = scenes if scenes in CONCEPTS else None
    concepts = concepts_with(concepts, scenes)
    pool = drawing_pool(concepts)
    while True:
        scene = named_scene(_draft(split, scenes, rng, image_size, min_objects, pool), concepts)
        if featured:
            scene = _featuring(scene, featured, rng)
        if is_heldout(scene) == (split == "heldout"):
            return scene
