"""The test items of every quickstart task and the checks that score a model's outputs.

Nothing here runs a model: each task has a function that builds its items from the held-out
split of the built-in world (``showo.world``) and a function that judges outputs (pictures
read back with ``read_scene``, strings checked with the world's language). ``evaluation``
feeds the items through a pipeline; the tests feed them through oracles and fakes.

What each check asks (the quickstart report repeats it):

* text-to-image: the GenEval-style spec of the prompt holds for the scene read from the
  picture (``geneval.check_prompt``);
* answers: exact match after normalisation (``answer_matches``);
* captions: the caption is true of the scene (every object it names is there, counts exact,
  relations hold); it need not name every object;
* inpainting: the masked slot holds the requested colour and shape, and every other slot
  holds what it held before (same shape, colour and size, or still empty);
* extrapolation: see :func:`extrapolation_case`;
* mixed modality: the scene read from each generated picture is exactly what the text before
  it describes (every object named, with its size, colour and slot, and nothing more).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..world import (
    SLOTS,
    Obj,
    Scene,
    WorldDataset,
    answer_matches,
    canonical_caption,
    caption_matches,
    read_scene,
)
from ..world.scene import CLASSES, SIZES, slot_box

MAX_PSNR = 100.0  # dB: a perfect reconstruction would be infinite, which JSON cannot hold


def _rng(seed: int, task: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, 7411, task, index])


def _heldout_scenes(seed: int, image_size: int, start: int = 0):
    """Held-out scenes (each with at least two objects), in order, without end."""
    data = WorldDataset("heldout", seed, image_size)
    index = start
    while True:
        yield data.t2i(index)["scene"]
        index += 1


# ---------------------------------------------------------------- text-to-image, answers and captions
# ``score_t2i`` and ``vqa_items`` live in ``showo.world.heldout``: the training monitor shares them.


def score_answers(predicted: list[str], expected: list[str]) -> list[bool]:
    return [answer_matches(p, e) for p, e in zip(predicted, expected, strict=True)]


def caption_items(n: int, seed: int, image_size: int = 64) -> list[dict]:
    """``n`` held-out pictures: ``{"image", "scene"}``."""
    data = WorldDataset("heldout", seed, image_size)
    return [{"image": s["image"], "scene": s["scene"]} for s in (data.t2i(i) for i in range(n))]


def score_captions(captions: list[str], scenes: list[Scene]) -> list[bool]:
    return [caption_matches(c, s) for c, s in zip(captions, scenes, strict=True)]


# ---------------------------------------------------------------- reconstruction


def psnr(original: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """(B,) PSNR in dB of pixels in [0, 1], capped at ``MAX_PSNR``."""
    mse = (original.float() - reconstruction.float()).pow(2).flatten(1).mean(dim=1)
    return (-10 * torch.log10(mse.clamp_min(10 ** (-MAX_PSNR / 10)))).clamp_max(MAX_PSNR)


# ---------------------------------------------------------------- inpainting


def slot_mask(slot: str, image_size: int) -> Image.Image:
    """White over ``slot``'s quadrant, black elsewhere (white = regenerate)."""
    mask = Image.new("L", (image_size, image_size), 0)
    mask.paste(255, slot_box(slot, image_size))
    return mask


def inpaint_case(scene: Scene, rng: np.random.Generator) -> dict:
    """Replace one object of ``scene`` by one of another colour-shape class.

    The prompt is the caption of the edited scene (every object, as in the t2i training
    captions, which always describe the whole picture). Returns ``{"image", "mask", "prompt",
    "slot", "target" (the new Obj), "scene" (before), "edited" (after)}``."""
    old = scene.objects[rng.integers(len(scene.objects))]
    classes = [c for c in CLASSES if c != (old.colour, old.shape)]
    colour, shape = classes[rng.integers(len(classes))]
    target = Obj(shape, colour, SIZES[rng.integers(len(SIZES))], old.slot)
    edited = Scene(tuple(o for o in scene.objects if o.slot != old.slot) + (target,), scene.image_size)
    return {"image": scene.render(), "mask": slot_mask(old.slot, scene.image_size), "prompt": canonical_caption(edited),
            "slot": old.slot, "target": target, "scene": scene, "edited": edited}


def inpaint_cases(n: int, seed: int, image_size: int = 64) -> list[dict]:
    scenes = _heldout_scenes(seed, image_size, start=10_000)
    return [inpaint_case(next(scenes), _rng(seed, 1, k)) for k in range(n)]


def _by_slot(scene: Scene) -> dict[str, Obj | None]:
    found = {o.slot: o for o in scene.objects}
    return {slot: found.get(slot) for slot in SLOTS}


def inpaint_success(case: dict, result: Image.Image) -> bool:
    """The edited slot holds the target's colour and shape (any size); the others are unchanged."""
    read, before = _by_slot(read_scene(result)), _by_slot(case["scene"])
    target, got = case["target"], read[case["slot"]]
    if got is None or (got.colour, got.shape) != (target.colour, target.shape):
        return False
    return all(read[slot] == before[slot] for slot in SLOTS if slot != case["slot"])


# ---------------------------------------------------------------- extrapolation


def extrapolation_case(scene: Scene) -> dict:
    """Grow a picture to the right so that it shows ``scene`` again.

    The input picture holds the left half of ``scene`` moved into its right half (its left
    half black). ``pipe.extrapolate(image, prompt, direction="right")`` shifts the token grid
    left by half, so the last ``image_size`` columns of its output are a new picture whose
    left half is the kept half and whose right half is generated; the prompt is the caption
    of the whole ``scene``, so that new picture should show ``scene``.
    Returns ``{"image", "prompt", "scene"}``."""
    size, half = scene.image_size, scene.image_size // 2
    image = Image.new("RGB", (size, size), (0, 0, 0))
    image.paste(scene.render().crop((0, 0, half, size)), (half, 0))
    return {"image": image, "prompt": canonical_caption(scene), "scene": scene}


def extrapolation_cases(n: int, seed: int, image_size: int = 64) -> list[dict]:
    """``n`` cases from held-out scenes with objects on both sides, so both checks bite."""
    cases = []
    for scene in _heldout_scenes(seed, image_size, start=20_000):
        sides = {"left" in o.slot for o in scene.objects}
        if sides == {True, False}:
            cases.append(extrapolation_case(scene))
        if len(cases) == n:
            return cases
    raise AssertionError("unreachable: the scene stream has no end")


def extrapolation_success(case: dict, output: Image.Image) -> bool:
    """On the new picture (the output's last ``image_size`` columns): the left slots hold
    exactly the objects of the scene's left slots (shape, colour and size), and each right
    slot holds an object of the colour and shape the caption puts there, or nothing when the
    caption puts nothing there."""
    size = case["scene"].image_size
    if output.height != size or output.width <= size:
        return False
    window = output.crop((output.width - size, 0, output.width, size))
    read, want = _by_slot(read_scene(window)), _by_slot(case["scene"])
    for slot in SLOTS:
        got, expected = read[slot], want[slot]
        if "left" in slot:
            if got != expected:
                return False
        elif (got is None) != (expected is None) or (
                got is not None and (got.colour, got.shape) != (expected.colour, expected.shape)):
            return False
    return True


# ---------------------------------------------------------------- mixed modality


def mixed_prompts(n: int, seed: int, image_size: int = 64) -> list[str]:
    """The first instruction of ``n`` held-out interleaved samples ("Start with a small red
    circle at the top left.")."""
    data = WorldDataset("heldout", seed, image_size)
    return [data.interleaved(i)["segments"][0] for i in range(n)]


def mixed_consistency(prompt: str, segments: list) -> list[bool]:
    """For each generated picture: is its scene exactly what the prompt and the generated text
    before it describe? A sequence without any picture counts as one inconsistent picture."""
    text, verdicts = prompt, []
    for segment in segments:
        if isinstance(segment, str):
            text = f"{text} {segment}"
        else:
            verdicts.append(caption_matches(text, read_scene(segment), complete=True))
    return verdicts or [False]


def scene_summary(image: Image.Image) -> str:
    """What the judge reads in a picture, in words (for the report)."""
    scene = read_scene(image)
    return canonical_caption(scene) if scene.objects else "(nothing)"


def mean(values) -> float:
    values = [float(v) for v in values]
    return sum(values) / len(values) if values else 0.0
