"""Reading a scene back from pixels: the judge of generated pictures, no learned model needed.

Each slot is read on its own (the world never lets an object leave its slot): bright pixels
are foreground, a 3x3 opening removes speckles and thin noise, the largest blob is the
object and blobs under ``MIN_AREA_FRACTION`` of the slot are ignored. Colour is the palette
entry nearest to the median of the blob's inner pixels (cyan, a concept, is an entry only when
``concepts`` asks for it); shape comes from geometry (a triangle narrows towards the top, a
square fills its bounding box, a circle ~79% of it, and a diamond, read only when ``concepts``
asks for it, narrows towards both ends); size from the bounding box side. With the "dot"
concept, a small circle is read as a dot (``scene.named``). ``degrade_image`` imitates what a
learned tokenizer and generator do to a picture, and ``evaluator_accuracy`` measures exact
scene recovery.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from PIL import Image, ImageFilter

from .scene import (
    ALL_PALETTE,
    SHAPES,
    SIZE_FRACTION,
    SLOTS,
    Obj,
    Scene,
    check_concepts,
    colours_of,
    concepts_with,
    named_scene,
    sample_scene,
    shapes_of,
    slot_box,
)

FOREGROUND_LEVEL = 80  # max channel that finds an object; the dimmest palette entry reaches 210
MIN_AREA_FRACTION = 0.03  # of the slot area; the smallest object (a small triangle) covers ~0.08
TAPER_TRIANGLE = 0.6  # mean width of the top quarter / bottom quarter: ~0.25 triangle, ~1 otherwise
FILL_SQUARE = 0.86  # area / bounding box: ~1 square, ~0.79 circle
# Mean width of the end quarters / the widest, rows and columns averaged. On blurred, noisy renders
# (degrade_image) small circles give >= 0.47 (most ~0.54), small diamonds <= 0.5 (most ~0.36);
# large ones lie further apart.
ENDS_DIAMOND = 0.46
SIZE_THRESHOLD = (SIZE_FRACTION["small"] + SIZE_FRACTION["large"]) / 2


def to_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 from a PIL image or an array (uint8, or float in [0, 1])."""
    array = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3) picture, got shape {array.shape}")
    if array.dtype != np.uint8:
        scale = 255.0 if array.max() <= 1.0 else 1.0
        array = np.clip(np.rint(array.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    return array[..., :3]


def _neighbourhood(mask: np.ndarray, reduce) -> np.ndarray:
    """``reduce`` (np.logical_and / np.logical_or) over each pixel's 3x3 neighbourhood."""
    h, w = mask.shape
    padded = np.pad(mask, 1)  # outside the picture counts as background
    views = [padded[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)]
    return reduce.reduce(views)


def _opening(mask: np.ndarray) -> np.ndarray:
    return _neighbourhood(_neighbourhood(mask, np.logical_and), np.logical_or)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected blob, by spreading the largest pixel id through each blob."""
    h, w = mask.shape
    labels = np.where(mask, np.arange(1, h * w + 1).reshape(h, w), 0)
    p = np.zeros((h + 2, w + 2), dtype=labels.dtype)  # labels with a background rim
    while True:
        p[1:-1, 1:-1] = labels
        spread = np.maximum(np.maximum(p[:-2, 1:-1], p[2:, 1:-1]), np.maximum(p[1:-1, :-2], p[1:-1, 2:]))
        spread = np.maximum(spread, labels) * mask
        if np.array_equal(spread, labels):
            break
        labels = spread
    ids, counts = np.unique(labels[mask], return_counts=True)
    return labels == ids[np.argmax(counts)]


def _ends(widths: np.ndarray) -> float:
    """Mean width of the first and the last quarter of a blob's rows (or columns) / its widest."""
    quarter = max(1, len(widths) // 4)
    return (widths[:quarter].mean() + widths[-quarter:].mean()) / 2 / widths.max()


def _shape_of(blob: np.ndarray, shapes: tuple[str, ...] = SHAPES) -> str:
    ys, xs = np.nonzero(blob)
    box = blob[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    widths = box.sum(axis=1)  # (h,)
    quarter = max(1, len(widths) // 4)
    if widths[:quarter].mean() < TAPER_TRIANGLE * widths[-quarter:].mean():
        return "triangle"
    if box.mean() > FILL_SQUARE:
        return "square"
    if "diamond" in shapes and (_ends(widths) + _ends(box.sum(axis=0))) / 2 < ENDS_DIAMOND:
        return "diamond"
    return "circle"


def _colour_of(pixels: np.ndarray, colours: tuple[str, ...]) -> str:
    """The colour of ``colours`` whose palette entry is nearest to the median pixel."""
    median = np.median(pixels.astype(np.float64), axis=0)
    palette = np.array([ALL_PALETTE[c] for c in colours], dtype=np.float64)  # (colours, 3)
    return colours[int(np.argmin(((palette - median) ** 2).sum(axis=1)))]


def _blob(mask: np.ndarray, min_area: float) -> np.ndarray | None:
    """The largest blob left after the opening, or None when nothing big enough is there."""
    mask = _opening(mask)
    if mask.sum() < min_area:
        return None
    blob = _largest_component(mask)
    return blob if blob.sum() >= min_area else None


def _inner(blob: np.ndarray) -> np.ndarray:
    """The blob without its rim, whose pixels blur mixes with the background."""
    inner = _neighbourhood(blob, np.logical_and)
    return inner if inner.sum() >= 4 else blob


def _read_slot(rgb: np.ndarray, slot: str, shapes: tuple[str, ...], colours: tuple[str, ...]) -> Obj | None:
    x0, y0, x1, y1 = slot_box(slot, rgb.shape[0])
    patch = rgb[y0:y1, x0:x1]
    level = patch.max(axis=-1)  # (h, w)
    min_area = MIN_AREA_FRACTION * level.size
    blob = _blob(level >= FOREGROUND_LEVEL, min_area)
    if blob is None:
        return None
    # Cut again at half the object's own brightness: blur then neither grows nor shrinks it.
    blob = _blob(level >= 0.5 * np.median(level[_inner(blob)]), min_area)
    if blob is None:
        return None
    ys, xs = np.nonzero(blob)
    side = max(ys.max() - ys.min(), xs.max() - xs.min()) + 1
    size = "large" if side / (x1 - x0) > SIZE_THRESHOLD else "small"
    return Obj(_shape_of(blob, shapes), _colour_of(patch[_inner(blob)], colours), size, slot)


def read_scene(image: Image.Image | np.ndarray, concepts=()) -> Scene:
    """Every object's shape, colour, size and slot, read from a (possibly degraded) picture;
    the shapes and colours of ``concepts`` (e.g. ``("diamond",)``, ``("cyan",)``) are told apart
    only when named; with ``("dot",)`` every small circle is a dot."""
    concepts = check_concepts(concepts)
    shapes, colours = shapes_of(concepts), colours_of(concepts)
    rgb = to_array(image)
    if rgb.shape[0] != rgb.shape[1]:
        raise ValueError(f"expected a square picture, got {rgb.shape[1]}x{rgb.shape[0]}")
    objects = (_read_slot(rgb, slot, shapes, colours) for slot in SLOTS)
    return named_scene(Scene(tuple(o for o in objects if o is not None), rgb.shape[0]), concepts)


def degrade_image(image: Image.Image, rng: np.random.Generator, strength: float = 1.0) -> Image.Image:
    """Colour jitter, gaussian blur (radius ~1), gaussian noise (sigma ~10/255) and a few speckles."""
    array = np.asarray(image.convert("RGB"), dtype=np.float64)
    gain = 1.0 + strength * rng.uniform(-0.08, 0.08, size=3)
    shift = strength * rng.uniform(-12.0, 12.0, size=3)
    array = np.clip(array * gain + shift, 0, 255).astype(np.uint8)
    blurred = Image.fromarray(array).filter(ImageFilter.GaussianBlur(radius=strength))
    array = np.asarray(blurred, dtype=np.float64) + rng.normal(0.0, 10.0 * strength, size=array.shape)
    h, w = array.shape[:2]
    for _ in range(int(rng.integers(3, 9))):
        y, x, side = int(rng.integers(h)), int(rng.integers(w)), int(rng.integers(1, 3))
        array[y:y + side, x:x + side] = rng.uniform(0, 255, size=3)
    return Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8))


def evaluator_accuracy(n: int = 1000, seed: int = 0, degrade: bool = True, image_size: int = 64,
                       scenes: str = "any", concepts=()) -> float:
    """Fraction of rendered scenes (train and held-out alike) that ``read_scene`` recovers exactly.

    Each object is drawn off its slot centre by a random ``jitter``: generated pictures do not
    place objects exactly, and the judge must not depend on it. ``scenes`` and ``concepts`` pick
    the scenes as ``sample_scene`` does; the judge reads the concepts they hold."""
    rng = np.random.default_rng([seed, 7919])
    read_as = concepts_with(concepts, scenes)
    correct = 0
    for k in range(n):
        scene = sample_scene(("train", "heldout")[k % 2], rng, image_size, scenes=scenes, concepts=concepts)
        image = Scene(tuple(replace(o, jitter=tuple(rng.uniform(-1.0, 1.0, size=2))) for o in scene.objects),
                      image_size).render()
        if degrade:
            image = degrade_image(image, rng)
        correct += read_scene(image, read_as) == scene
    return correct / n
