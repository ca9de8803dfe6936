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
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class Obj:
    """One object. ``jitter`` (each in [-1, 1]) only nudges the drawing and is ignored by ==."""

    shape: str
    colour: str
    size: str
    slot: str
    jitter: tuple[float, float] = field(default=(0.0, 0.0), compare=False)

    def __post_init__(self) -> None:
        _check(self.shape, SHAPES, "shape")
        _check(self.colour, COLOURS, "colour")
        _check(self.size, SIZES, "size")
        _check(self.slot, SLOTS, "slot")
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
    colour = PALETTE[obj.colour]
    if obj.shape == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=colour)
    elif obj.shape == "square":
        draw.rectangle((x0, y0, x1, y1), fill=colour)
    else:  # an upright triangle: apex at the top centre, base along the bottom edge
        draw.polygon([((x0 + x1) / 2, y0), (x0, y1), (x1, y1)], fill=colour)


def relation_holds(relation: str, a: Obj, b: Obj) -> bool:
    """Whether ``a`` is ``relation`` ``b``; diagonal neighbours satisfy two relations."""
    (row_a, col_a), (row_b, col_b) = slot_row_col(a.slot), slot_row_col(b.slot)
    tests = {"left of": col_a < col_b, "right of": col_a > col_b, "above": row_a < row_b, "below": row_a > row_b}
    _check(relation, RELATIONS, "relation")
    return tests[relation]


def is_heldout(scene: Scene) -> bool:
    """True when the scene holds both objects of some pair in ``HELDOUT_PAIRS``."""
    counts = scene.class_counts()
    return any(counts[a] >= 2 if a == b else counts[a] >= 1 and counts[b] >= 1 for a, b in HELDOUT_PAIRS)


def pick(rng: np.random.Generator, options):
    """One of ``options``, drawn with ``rng``."""
    return options[rng.integers(len(options))]


def pick_distinct(rng: np.random.Generator, options, n: int) -> list:
    """``n`` of ``options``, no two the same, in random order."""
    return [options[k] for k in rng.permutation(len(options))[:n]]


def random_object(rng: np.random.Generator, slot: str, cls: tuple[str, str] | None = None) -> Obj:
    colour, shape = CLASSES[rng.integers(len(CLASSES))] if cls is None else cls
    return Obj(shape, colour, SIZES[rng.integers(2)], slot)


def _scene_of(rng: np.random.Generator, slots: list[str], classes: list, image_size: int) -> Scene:
    """One random object per slot, of the class beside it (None: a random class)."""
    return Scene(tuple(random_object(rng, s, c) for s, c in zip(slots, classes)), image_size)


def _free_scene(rng: np.random.Generator, image_size: int, min_objects: int) -> Scene:
    """Any scene; a quarter of them repeat one class so that counting has something to count."""
    n = int(rng.choice([1, 2, 3, 4], p=[0.25, 0.3, 0.25, 0.2]))
    n = max(n, min_objects)
    slots = pick_distinct(rng, SLOTS, n)
    if n >= 2 and rng.random() < 0.25:
        cls = CLASSES[rng.integers(len(CLASSES))]
        classes = [cls] * n
        if n >= 3 and rng.random() < 0.5:
            classes[-1] = None
    else:
        classes = [None] * n
    return _scene_of(rng, slots, classes, image_size)


def _pair_scene(rng: np.random.Generator, image_size: int, pair) -> Scene:
    """A pair of classes in two random slots, plus up to two more objects (each repeating one
    of the pair 3 times in 10): the shape of every held-out scene."""
    n = int(rng.integers(2, 5))
    classes = list(pair)
    for _ in range(n - 2):
        classes.append(pair[rng.integers(2)] if rng.random() < 0.3 else None)
    return _scene_of(rng, pick_distinct(rng, SLOTS, n), classes, image_size)


def _distinct_pair_scene(rng: np.random.Generator, image_size: int) -> Scene:
    """Exactly two objects of different shapes (colours random) in two random slots."""
    classes = [(pick(rng, COLOURS), shape) for shape in pick_distinct(rng, SHAPES, 2)]
    return _scene_of(rng, pick_distinct(rng, SLOTS, 2), classes, image_size)


SCENE_KINDS = ("any", "crowded", "pairs")


def sample_scene(split: str, rng: np.random.Generator, image_size: int = 64, min_objects: int = 1,
                 scenes: str = "any") -> Scene:
    """A scene of ``split``; train scenes are redrawn until they hold no held-out pair.

    ``scenes="crowded"`` draws train scenes shaped like the held-out ones (a random pair of
    classes and up to two more objects that often repeat it: 2 to 4 objects that share
    attributes), where telling objects apart takes every attribute. ``scenes="pairs"`` draws
    exactly two objects of different shapes, the scenes that two-object and attribute-binding
    prompts ask for ("a triangle and a circle", "a red triangle and a white circle"). Held-out
    scenes are always crowded.
    """
    if scenes not in SCENE_KINDS:
        raise ValueError(f"scenes must be one of {SCENE_KINDS}, got {scenes!r}")
    if split == "heldout":
        return _pair_scene(rng, image_size, HELDOUT_PAIRS[rng.integers(len(HELDOUT_PAIRS))])
    if split != "train":
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    while True:
        if scenes == "crowded":
            scene = _pair_scene(rng, image_size, tuple(CLASSES[k] for k in rng.integers(len(CLASSES), size=2)))
        elif scenes == "pairs":
            scene = _distinct_pair_scene(rng, image_size)
        else:
            scene = _free_scene(rng, image_size, min_objects)
        if not is_heldout(scene):
            return scene
