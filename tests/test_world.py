"""The built-in world: determinism, the held-out rule, the pixel judge and the checks built on it."""

import re
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from showo.data.sources import build_source
from showo.world import (
    CLASS_NAMES,
    COLOURS,
    GENEVAL_CATEGORIES,
    HELDOUT_PAIRS,
    KINDS,
    QA_KINDS,
    SLOTS,
    Obj,
    Scene,
    WorldDataset,
    answer_matches,
    answer_question,
    canonical_caption,
    caption_matches,
    check_prompt,
    evaluator_accuracy,
    geneval_prompts,
    geneval_scores,
    is_heldout,
    parse_caption,
    random_caption,
    read_scene,
    sample_scene,
    scene_from_spec,
)
from showo.world.language import NUMBER_WORDS, RELATION_PHRASES
from showo.world.scene import CLASSES, SIZE_FRACTION, object_box, relation_holds, slot_box

TRAIN = WorldDataset("train", seed=0)
HELDOUT = WorldDataset("heldout", seed=0)


def fingerprint(value):
    """A comparable stand-in for a sample: pictures by their bytes, containers element-wise."""
    if isinstance(value, Image.Image):
        return value.size, value.tobytes()
    if isinstance(value, dict):
        return tuple(sorted((k, fingerprint(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(fingerprint(v) for v in value)
    return value


def other_colour(colour: str) -> str:
    return COLOURS[(COLOURS.index(colour) + 1) % len(COLOURS)]


def pair(first: tuple[str, str], second: tuple[str, str]) -> Scene:
    """A scene of two (colour, shape) classes side by side."""
    return Scene((Obj(first[1], first[0], "small", "top left"), Obj(second[1], second[0], "large", "top right")))


def recoloured(scene: Scene, k: int) -> Scene:
    objects = list(scene.objects)
    o = objects[k]
    objects[k] = Obj(o.shape, other_colour(o.colour), o.size, o.slot, o.jitter)
    return Scene(tuple(objects), scene.image_size)


# ---------------------------------------------------------------- samples and the world's rules


@pytest.mark.parametrize("kind", KINDS)
def test_samples_are_pure_functions_of_split_seed_and_index(kind):
    again, reseeded = WorldDataset("train", seed=0), WorldDataset("train", seed=1)
    firsts = [fingerprint(TRAIN.sample(kind, i)) for i in range(12)]
    assert firsts == [fingerprint(again.sample(kind, i)) for i in range(12)]
    assert len(set(firsts)) >= 10  # different indices, different samples
    assert sum(a != fingerprint(reseeded.sample(kind, i)) for i, a in enumerate(firsts)) >= 10
    assert sum(a != fingerprint(HELDOUT.sample(kind, i)) for i, a in enumerate(firsts)) >= 10


def test_pictures_have_the_asked_size_and_objects_stay_in_their_slots():
    for size in (64, 128):
        data = WorldDataset(image_size=size)
        assert data.t2i(0)["image"].size == (size, size) and data.class_sample(0)["image"].size == (size, size)
        for slot in SLOTS:
            for jitter in [(-1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)]:
                scene = Scene((Obj("square", "white", "large", slot, jitter),), size)
                x0, y0, x1, y1 = slot_box(slot, size)
                lit = np.argwhere(np.asarray(scene.render()).max(axis=-1) > 0)  # (N, 2) rows, cols
                assert lit[:, 0].min() > y0 and lit[:, 0].max() < y1 - 1
                assert lit[:, 1].min() > x0 and lit[:, 1].max() < x1 - 1
    small, large = (object_box(Obj("square", "red", s, "top left"), 64) for s in ("small", "large"))
    assert small[2] - small[0] + 1 == round(SIZE_FRACTION["small"] * 32) == 13
    assert large[2] - large[0] + 1 == round(SIZE_FRACTION["large"] * 32) == 22


def test_objects_sit_at_slot_centres_so_each_quadrant_holds_one_of_37_patterns():
    """A picture is a pure function of its objects' classes, sizes and slots: each quadrant is
    empty or one of the 36 (colour, shape, size) objects, drawn the same way every time."""
    quadrants = set()
    for i in range(600):
        sample = TRAIN.t2i(i)
        picture, scene = np.asarray(sample["image"]), sample["scene"]
        quadrants.update(picture[r:r + 32, c:c + 32].tobytes() for r in (0, 32) for c in (0, 32))
        for obj in scene.objects:
            x0, y0, x1, y1 = object_box(obj, 64)
            sx0, sy0, sx1, sy1 = slot_box(obj.slot, 64)
            # centred to half a pixel (a small object is 13 pixels wide)
            assert abs(x0 + x1 + 1 - sx0 - sx1) <= 1 and abs(y0 + y1 + 1 - sy0 - sy1) <= 1
    assert len(quadrants) == 1 + len(CLASSES) * 2


def test_scenes_reject_what_the_world_does_not_allow():
    with pytest.raises(ValueError, match="one object per slot"):
        Scene((Obj("circle", "red", "small", "top left"), Obj("square", "red", "small", "top left")))
    with pytest.raises(ValueError, match="colour"):
        Obj("circle", "orange", "small", "top left")
    with pytest.raises(ValueError, match="multiple of 16"):
        Scene((), image_size=50)
    with pytest.raises(ValueError, match="split"):
        WorldDataset("test")
    a, b = Obj("circle", "red", "small", "top right"), Obj("square", "blue", "large", "top left", (0.5, 0.5))
    same = Scene((b, Obj("circle", "red", "small", "top right", (-1.0, 1.0))))
    assert Scene((a, b)) == same  # objects kept in slot order, jitter ignored


def test_the_train_split_never_holds_a_heldout_combination():
    rng = np.random.default_rng(0)
    train = [sample_scene("train", rng) for _ in range(3000)] + [TRAIN.t2i(i)["scene"] for i in range(300)]
    assert not any(is_heldout(s) for s in train)
    seen = {cls for s in train for cls in s.class_counts()}
    assert seen == set(CLASSES)  # every class is seen in training, held-out pairs included one by one
    for a, b in HELDOUT_PAIRS:
        assert any(s.class_counts()[a] for s in train if len(s.objects) > 1)  # seen beside other objects
        assert not any(s.class_counts()[a] and s.class_counts()[b] and (a != b or s.class_counts()[a] > 1)
                       for s in train)
    heldout = [sample_scene("heldout", rng) for _ in range(500)] + [HELDOUT.t2i(i)["scene"] for i in range(100)]
    assert all(is_heldout(s) for s in heldout)
    assert is_heldout(pair(("red", "circle"), ("blue", "square")))
    assert not is_heldout(pair(("red", "circle"), ("red", "square")))
    assert is_heldout(pair(("green", "square"), ("green", "square")))


def test_crowded_train_scenes_are_shaped_like_heldout_ones_without_their_pairs():
    rng = np.random.default_rng(2)
    crowded = [sample_scene("train", rng, scenes="crowded") for _ in range(1000)]
    source = iter(build_source({"type": "world", "kind": "mmu", "scenes": "crowded"}))  # as a training config asks
    crowded += [next(source)["scene"] for _ in range(100)]
    assert not any(is_heldout(s) for s in crowded)
    sizes = Counter(len(s.objects) for s in crowded)
    assert set(sizes) == {2, 3, 4} and min(sizes.values()) > 250  # 2 to 4 objects, evenly
    any_scenes = [sample_scene("train", rng) for _ in range(1000)]

    def shared_share(scenes):  # how often two objects of a scene are of one class
        return np.mean([max(s.class_counts().values()) > 1 for s in scenes])

    assert shared_share(crowded) > shared_share(any_scenes) + 0.1
    assert WorldDataset("train", seed=3, scenes="crowded").t2i(5)["scene"] == \
        WorldDataset("train", seed=3, scenes="crowded").t2i(5)["scene"]
    assert sample_scene("heldout", np.random.default_rng(4), scenes="crowded") == \
        sample_scene("heldout", np.random.default_rng(4))  # held-out scenes are crowded already
    with pytest.raises(ValueError, match="scenes must be one of"):
        WorldDataset("train", scenes="busy")
    with pytest.raises(ValueError, match="scenes must be one of"):
        sample_scene("train", rng, scenes="busy")


def test_pair_train_scenes_hold_two_objects_of_different_shapes():
    rng = np.random.default_rng(5)
    pairs = [sample_scene("train", rng, scenes="pairs") for _ in range(500)]
    source = iter(build_source({"type": "world", "kind": "t2i", "scenes": "pairs"}))
    pairs += [next(source)["scene"] for _ in range(50)]
    assert all(len(s.objects) == 2 and s.objects[0].shape != s.objects[1].shape for s in pairs)
    assert not any(is_heldout(s) for s in pairs)
    assert {o.colour for s in pairs for o in s.objects} == set(COLOURS)
    assert len({o.slot for s in pairs for o in s.objects}) == 4
    assert np.mean([s.objects[0].colour == s.objects[1].colour for s in pairs]) < 0.3


# ---------------------------------------------------------------- the pixel judge


@pytest.mark.parametrize("degrade", [False, True])
def test_evaluator_recovers_scenes_exactly(degrade):
    assert evaluator_accuracy(n=400, seed=0, degrade=degrade) >= 0.99


def test_read_scene_takes_arrays_other_sizes_and_empty_pictures():
    data = WorldDataset("heldout", image_size=128)
    for i in range(20):
        sample = data.t2i(i)
        assert read_scene(sample["image"]) == sample["scene"]
        assert read_scene(np.asarray(sample["image"]) / 255.0) == sample["scene"]
    assert read_scene(Image.new("RGB", (64, 64))) == Scene(())
    assert read_scene(np.zeros((64, 64, 3), np.uint8) + 20).objects == ()  # a dim background is no object


# ---------------------------------------------------------------- language


def test_captions_round_trip_and_fail_once_an_attribute_changes():
    rng = np.random.default_rng(1)
    for k in range(300):
        scene = sample_scene(("train", "heldout")[k % 2], rng)
        canonical = canonical_caption(scene)
        assert caption_matches(canonical, scene, complete=True)
        assert not caption_matches(canonical, recoloured(scene, k % len(scene.objects)))
        caption = random_caption(scene, rng)
        assert caption_matches(caption, scene) and len(caption.split()) <= 25, caption
    four = Scene(tuple(Obj("circle", "red", "small", s) for s in SLOTS))
    assert len(canonical_caption(four).split()) <= 25 and caption_matches(canonical_caption(four), four, complete=True)


def test_parse_caption_reads_counts_sizes_slots_and_relations():
    specs = parse_caption("Three objects: a big red circle in the upper-left corner and 2 blue squares.")
    assert [(s.shape, s.colour, s.size, s.slot, s.count) for s in specs] == [
        (None, None, None, None, 3), ("circle", "red", "large", "top left", 1), ("square", "blue", None, None, 2)]
    two = Scene((Obj("circle", "red", "large", "top left"), Obj("square", "blue", "small", "bottom left"),
                 Obj("square", "blue", "large", "bottom right")))
    assert caption_matches("three objects: a big red circle in the upper-left corner and 2 blue squares", two)
    assert not caption_matches("a red circle and a blue square", two)  # counts are exact
    assert not caption_matches("four objects", two) and caption_matches("two blue squares", two)
    assert caption_matches("a red circle above a blue square", Scene(two.objects[:2]))
    assert not caption_matches("a red circle below a blue square", Scene(two.objects[:2]))
    assert not caption_matches("a red circle", two, complete=True) and not caption_matches("hello", two)
    assert caption_matches("there is no green triangle", two)


def test_answers_match_after_normalisation():
    assert answer_matches("The Top-Left corner.", "top left")
    assert answer_matches("at the bottom right", "bottom right")
    assert answer_matches("3", "three") and answer_matches("Yes.", "yes") and answer_matches("a Red", "red")
    assert answer_matches("upper left", "top left") and answer_matches("big", "large")
    assert not answer_matches("red", "blue") and not answer_matches("two", "three")
    assert not answer_matches("top left", "top right") and not answer_matches("", "no")


# ---------------------------------------------------------------- samples are true of their pictures


def test_t2i_captions_are_true_of_the_pixels_and_varied():
    captions = []
    for i in range(200):
        sample = (TRAIN if i % 2 else HELDOUT).t2i(i)
        assert caption_matches(sample["caption"], read_scene(sample["image"])), sample["caption"]
        captions.append(sample["caption"])
    text = " | ".join(captions)
    for form in ("to the left of", "objects:", "there is", " two ", "at the", "small", "large"):
        assert form in text, form
    colourless = [c for c in captions if not any(colour in c for colour in COLOURS)]
    assert len(captions) // 6 < len(colourless) < len(captions) * 2 // 5  # 3 in 10 leave colours out


def test_every_question_kind_appears_and_its_answer_is_read_from_the_pixels():
    kinds, yes_no = set(), set()
    for i in range(150):
        sample = (TRAIN if i % 3 else HELDOUT).mmu(i)
        seen = read_scene(sample["image"])
        assert seen == sample["scene"] and 1 <= len(sample["turns"]) <= 3
        for (question, answer), kind in zip(sample["turns"], sample["kinds"]):
            kinds.add(kind)
            if kind == "caption":
                assert caption_matches(answer, seen, complete=True)
            else:
                assert answer_matches(answer_question(question, seen), answer), (question, answer)
            if kind in ("presence", "relation"):
                yes_no.add((kind, answer))
    assert kinds == set(QA_KINDS)
    assert yes_no == {(k, a) for k in ("presence", "relation") for a in ("yes", "no")}
    scene = Scene((Obj("circle", "red", "small", "top left"), Obj("circle", "red", "large", "top right")))
    assert answer_question("What colour is the circle?", scene) is None  # two circles: no unique answer
    assert answer_question("Is the small circle to the left of the large circle?", scene) == "yes"
    assert answer_question("What is the meaning of this?", scene) is None


def test_yes_and_no_answers_are_balanced_so_a_constant_answer_scores_half():
    answers = Counter()
    for i in range(600):
        sample = HELDOUT.mmu(i)
        answers.update((k, a) for (_, a), k in zip(sample["turns"], sample["kinds"]) if k in ("presence", "relation"))
    for kind in ("presence", "relation"):
        yes, no = answers[(kind, "yes")], answers[(kind, "no")]
        assert 0.42 < yes / (yes + no) < 0.58, (kind, yes, no)


def test_a_reasoned_answer_compares_every_object_with_the_question_and_ends_in_the_answer():
    from showo.world.reasoning import ANSWER_MARKER, reasoned_answer

    scene = Scene((Obj("circle", "red", "large", "top left"), Obj("square", "blue", "small", "bottom right")))
    assert reasoned_answer("How many circles are there?", scene) == (
        "large red circle top left is any any circle anywhere yes, "
        "small blue square bottom right is any any circle anywhere no; answer: one")
    assert reasoned_answer("Is the small square below the circle?", scene) == (
        "large red circle top left is small any square anywhere no and any any circle anywhere yes, "
        "small blue square bottom right is small any square anywhere yes and any any circle anywhere no; "
        "bottom right below top left; answer: yes")
    assert reasoned_answer("Describe the image.", scene) is None
    assert reasoned_answer("What colour is the object?", scene) is None  # two objects: no unique answer

    worked_out = WorldDataset("heldout", seed=0, reasoned=True)
    kinds = set()
    for i in range(200):
        plain, worked = HELDOUT.mmu(i), worked_out.mmu(i)
        assert worked["kinds"] == plain["kinds"] and worked["scene"] == plain["scene"]
        objects = plain["scene"].objects
        for (question, short), (asked, long), kind in zip(plain["turns"], worked["turns"], plain["kinds"]):
            assert asked == question
            if kind == "caption":
                assert long == short
                continue
            kinds.add(kind)
            body, answer = long.split(f"; {ANSWER_MARKER} ")
            assert answer == short, long
            scan, *steps = body.split("; ")
            items = [item.split(" is ") for item in scan.split(", ")]
            assert [named for named, _ in items] == [f"{o.size} {o.colour} {o.shape} {o.slot}" for o in objects]
            asked_about = [[part.rsplit(" ", 1) for part in rest.split(" and ")] for _, rest in items]
            for parts in zip(*asked_about):  # one restatement of each object asked about, in the question's words
                assert len({r for r, _ in parts}) == 1
                stated = [w for w in parts[0][0].split() if w not in ("any", "object", "anywhere")]
                assert all(w in question.lower() for w in stated), (question, parts[0][0])
            marked = [[o for o, parts in zip(objects, asked_about) if parts[k][1] == "yes"]
                      for k in range(len(asked_about[0]))]
            if kind == "relation":
                (first,), (second,) = marked
                assert steps[0].startswith(first.slot + " ") and steps[0].endswith(" " + second.slot)
                phrase = steps[0][len(first.slot) + 1: -len(second.slot) - 1]
                relation = {v: k for k, v in RELATION_PHRASES.items()}[phrase]
                assert f" {phrase} " in question and (short == "yes") == relation_holds(relation, first, second)
                continue
            (picked,) = marked
            assert steps == []
            attribute = {"colour": "colour", "shape": "shape", "position": "slot"}.get(kind)
            if attribute:
                assert len(picked) == 1 and getattr(picked[0], attribute) == short
            if kind == "count":
                assert NUMBER_WORDS[len(picked)] == short
            if kind == "presence":
                assert (short == "yes") == bool(picked)
    assert kinds == set(QA_KINDS) - {"caption"}
    with pytest.raises(ValueError, match="reasoned must be true or false, got 'yes'"):
        WorldDataset("train", reasoned="yes")


def test_class_samples_show_their_class():
    labels = set()
    for i in range(120):
        sample = TRAIN.class_sample(i)
        (obj,) = read_scene(sample["image"]).objects
        assert sample["class_name"] == CLASS_NAMES[sample["label"]] == obj.class_name
        labels.add(sample["label"])
    assert labels == set(range(18))


def test_interleaved_pictures_hold_exactly_the_objects_announced_so_far():
    for i in range(40):
        segments = (TRAIN if i % 2 else HELDOUT).interleaved(i)["segments"]
        assert 4 <= len(segments) <= 8
        texts, images = segments[0::2], segments[1::2]
        assert all(isinstance(t, str) for t in texts) and all(isinstance(m, Image.Image) for m in images)
        assert len(texts) == len(images)
        for step, image in enumerate(images):
            seen = read_scene(image)
            assert len(seen.objects) == step + 1
            assert caption_matches(" and ".join(texts[: step + 1]), seen, complete=True)


def test_lm_passages_are_short_sentences():
    for i in range(50):
        text = TRAIN.lm(i)["text"]
        sentences = re.split(r"(?<=\.) ", text)
        assert 2 <= len(sentences) <= 5 and all(s[0].isupper() and s.endswith(".") for s in sentences), text


def test_a_plan_describes_every_object_of_a_picture_its_prompt_fits():
    from showo.generation.prompting import plan_request

    for i in range(60):
        split = TRAIN if i % 2 else HELDOUT
        sample = split.plan(i)
        scene = sample["scene"]
        assert is_heldout(scene) == (split is HELDOUT)
        assert sample["text"] == f"{plan_request(sample['prompt'])} {sample['plan']}"
        assert caption_matches(sample["prompt"], scene), sample["prompt"]
        assert sample["plan"] == canonical_caption(scene)
        assert caption_matches(sample["plan"], scene, complete=True)
    assert TRAIN.plan(3) == TRAIN.plan(3) and TRAIN.plan(3)["text"] != TRAIN.plan(4)["text"]


# ---------------------------------------------------------------- GenEval-style prompts


def test_geneval_prompts_are_heldout_and_checked_right():
    prompts = geneval_prompts(n_per_category=8, seed=0)
    assert [p["category"] for p in prompts] == [c for c in GENEVAL_CATEGORIES for _ in range(8)]
    assert geneval_prompts(8, seed=0) == prompts and geneval_prompts(8, seed=1) != prompts
    rng = np.random.default_rng(2)
    for p in prompts:
        spec, scene = p["spec"], scene_from_spec(p["spec"], rng)
        assert check_prompt(spec, scene) and check_prompt(spec, read_scene(scene.render()))
        assert caption_matches(p["prompt"], scene), p["prompt"]  # prompts speak the world's language
        if p["category"] in ("counting", "position", "attribute_binding"):
            assert is_heldout(scene), p["prompt"]
        if spec["objects"][0]["colour"] is not None:
            assert not check_prompt(spec, recoloured(scene, 0))
        free = [s for s in SLOTS if s not in {o.slot for o in scene.objects}]
        if free:
            extra = Scene(scene.objects + (Obj("triangle", "white", "small", free[0]),))
            assert check_prompt(spec, extra) == (not spec["exact"]), p["prompt"]
        if p["category"] == "position":
            a, b = scene.objects
            swapped = Scene((Obj(a.shape, a.colour, a.size, b.slot), Obj(b.shape, b.colour, b.size, a.slot)))
            assert not check_prompt(spec, swapped)
        if p["category"] == "counting":
            assert not check_prompt(spec, Scene(scene.objects[1:])) and not check_prompt(spec, recoloured(scene, 1))


def test_geneval_scores_average_the_categories():
    results = [{"category": "counting", "correct": c} for c in (True, False, False, False)]
    results += [{"category": "colors", "correct": True}]
    assert geneval_scores(results) == {"counting": 0.25, "colors": 1.0, "overall": 0.625}
    with pytest.raises(ValueError, match="category"):
        geneval_scores([{"category": "style", "correct": True}])


def test_the_tokenizer_corpus_holds_the_worked_answers_of_every_fourth_picture():
    from showo.data.world_source import world_texts
    from showo.world.reasoning import ANSWER_MARKER

    worked = [t for t in world_texts(8) if f"; {ANSWER_MARKER} " in t]
    expected = [a for i in (0, 4) for (_, a), k in zip(*(WorldDataset("train", 0, reasoned=True).mmu(i)[key]
                                                          for key in ("turns", "kinds"))) if k != "caption"]
    assert worked == expected and expected
