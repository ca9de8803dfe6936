"""Opt-in concepts for the built-in world (the diamond, a shape; cyan, a colour): drawn, spoken, asked,
read and checked only when asked for, while the default world stays as it was."""

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from showo.data.sources import build_source
from showo.world import (
    COLOURS,
    CONCEPT_QUESTION_KINDS,
    CONCEPTS,
    GENEVAL_CATEGORIES,
    KINDS,
    SLOTS,
    Obj,
    Scene,
    WorldDataset,
    answer_question,
    caption_matches,
    concept_prompts,
    concept_questions,
    degrade_image,
    evaluator_accuracy,
    geneval_scores,
    is_heldout,
    read_scene,
    sample_scene,
    scene_from_spec,
    score_concept_answers,
)
from showo.world.dataset import FACTS, facts_of
from showo.world.heldout import score_t2i
from showo.world.scene import ALL_PALETTE, CLASSES, PALETTE, SHAPES, classes_of, concept_attribute, object_box, shows

DIAMOND, CYAN = ("diamond",), ("cyan",)
FEATURED = WorldDataset("train", seed=0, scenes="diamond")
STAND_IN = {"diamond": "circle", "cyan": "blue"}  # what the judge says of each without the concept


def diamonds(scene: Scene, concept: str = "diamond") -> int:
    """How many objects of ``scene`` are of ``concept``."""
    return sum(shows(o, concept) for o in scene.objects)


def as_circles(scene: Scene, concept: str = "diamond") -> Scene:
    """``scene`` with every object of ``concept`` drawn as its stand-in instead (diamonds as circles, cyan as blue)."""
    attribute = concept_attribute(concept)
    return Scene(tuple(replace(o, **{attribute: STAND_IN[concept]}) if shows(o, concept) else o for o in scene.objects),
                 scene.image_size)


# ---------------------------------------------------------------- the judge


@pytest.mark.parametrize("degrade", [False, True])
@pytest.mark.parametrize("concept", CONCEPTS)
def test_the_judge_reads_the_concepts_back_when_asked_to(concept, degrade):
    assert evaluator_accuracy(n=400, seed=0, degrade=degrade, scenes=concept) >= 0.99
    assert evaluator_accuracy(n=200, seed=1, degrade=degrade, concepts=(concept,)) >= 0.99
    if concept == "cyan":  # diamonds and cyan objects at once: cyan diamonds too
        assert evaluator_accuracy(n=200, seed=2, degrade=degrade, scenes="cyan", concepts=DIAMOND) >= 0.99


def test_cyan_is_far_from_every_colour_and_drawn_in_its_own_colour():
    cyan = np.array(ALL_PALETTE["cyan"])
    assert min(np.linalg.norm(cyan - np.array(rgb)) for rgb in PALETTE.values()) > 150
    obj = Obj("triangle", "cyan", "large", "top left")
    picture = np.asarray(Scene((obj,)).render())
    assert {tuple(p) for p in picture.reshape(-1, 3)} == {(0, 0, 0), ALL_PALETTE["cyan"]}
    assert read_scene(picture, CYAN).objects == (obj,)


def test_a_diamond_is_a_square_turned_onto_its_corner_in_the_box_of_its_size():
    for size in ("small", "large"):
        obj = Obj("diamond", "white", size, "bottom right")
        lit = np.argwhere(np.asarray(Scene((obj,)).render()).max(axis=-1) > 0)  # (N, 2) rows, cols
        x0, y0, x1, y1 = object_box(obj, 64)
        assert (lit[:, 1].min(), lit[:, 0].min(), lit[:, 1].max(), lit[:, 0].max()) == (x0, y0, x1, y1)
        assert 0.45 < len(lit) / ((x1 - x0 + 1) * (y1 - y0 + 1)) < 0.6  # half its box; a circle fills ~0.79
        assert read_scene(Scene((obj,)).render(), DIAMOND).objects == (obj,)


def test_reading_default_pictures_is_the_same_with_the_concepts_on():
    rng = np.random.default_rng(3)
    exact = 0
    for k in range(300):
        scene = sample_scene(("train", "heldout")[k % 2], rng)
        image = degrade_image(scene.render(), rng)
        plain = read_scene(image)
        assert read_scene(image, DIAMOND) == plain and read_scene(image, "diamond") == plain
        assert read_scene(image, CYAN) == plain and read_scene(image, CONCEPTS) == plain
        exact += plain == scene
    assert exact >= 297


def test_without_the_concept_the_judge_never_says_diamond_or_cyan():
    scene = Scene((Obj("diamond", "red", "large", "top left"), Obj("square", "cyan", "small", "bottom right")))
    assert [o.class_name for o in read_scene(scene.render()).objects] == ["red circle", "blue square"]
    assert [o.class_name for o in read_scene(scene.render(), CYAN).objects] == ["red circle", "cyan square"]
    assert read_scene(scene.render(), CONCEPTS) == scene
    with pytest.raises(ValueError, match=r"unknown concept 'hexagon'; expected one of \('diamond', 'cyan'\)"):
        read_scene(scene.render(), ["hexagon"])


# ---------------------------------------------------------------- the default world has no diamonds


def test_the_default_world_has_no_concepts_and_says_nothing_of_them():
    assert CONCEPTS == DIAMOND + CYAN and classes_of() == CLASSES and facts_of() == FACTS
    assert "There are six colours: red, green, blue, yellow, purple and white." in FACTS
    rng = np.random.default_rng(0)
    for k in range(600):
        scene = sample_scene(("train", "heldout")[k % 2], rng, scenes=("any", "crowded", "pairs")[k % 3])
        assert diamonds(scene) == diamonds(scene, "cyan") == 0
    for kind in KINDS:
        for data in (WorldDataset("train"), WorldDataset("heldout", scenes="crowded")):
            text = repr(data.sample(kind, 7))
            assert "diamond" not in text and "cyan" not in text, kind
    with pytest.raises(ValueError, match="unknown shape 'hexagon'"):
        Obj("hexagon", "red", "small", "top left")
    with pytest.raises(ValueError, match="unknown colour 'orange'"):
        Obj("circle", "orange", "small", "top left")


def test_concept_options_are_checked_and_named_in_errors():
    with pytest.raises(ValueError, match=r"scenes must be one of \('any', 'crowded', 'pairs', 'diamond', 'cyan'\)"):
        WorldDataset("train", scenes="hexagon")
    with pytest.raises(ValueError, match="unknown concept 'orange'"):
        WorldDataset("train", concepts=["orange"])
    with pytest.raises(ValueError, match="concepts must be a list of names"):
        sample_scene("train", np.random.default_rng(0), concepts=3)
    with pytest.raises(ValueError, match="concept must be one name"):
        concept_prompts(["diamond"])


# ---------------------------------------------------------------- scenes and samples with the concept


def test_diamond_scenes_hold_one_or_more_and_keep_the_heldout_rule():
    rng = np.random.default_rng(1)
    train = [sample_scene("train", rng, scenes="diamond") for _ in range(600)]
    heldout = [sample_scene("heldout", rng, scenes="diamond") for _ in range(200)]
    assert all(diamonds(s) >= 1 for s in train + heldout)
    assert not any(is_heldout(s) for s in train) and all(is_heldout(s) for s in heldout)
    assert all(len(s.objects) >= 3 for s in heldout)  # a held-out pair and a diamond
    assert set(Counter(len(s.objects) for s in train)) == {1, 2, 3, 4}
    assert {o.colour for s in train for o in s.objects if o.shape == "diamond"} == set(COLOURS)
    assert any(diamonds(s) >= 2 for s in train)  # something to count
    mixed = [sample_scene("train", rng, scenes=kind, concepts=DIAMOND) for kind in ("any", "crowded", "pairs")
             for _ in range(300)]
    share = np.mean([o.shape == "diamond" for s in mixed for o in s.objects])
    assert 0.15 < share < 0.35  # one shape of four
    assert all(s.objects[0].shape != s.objects[1].shape for s in mixed[600:])  # pairs stay two shapes


def test_captions_plans_and_steps_name_the_diamonds_and_hold_of_the_pixels():
    for i in range(60):
        sample = FEATURED.t2i(i)
        seen = read_scene(sample["image"], DIAMOND)
        assert seen == sample["scene"] and diamonds(seen) >= 1
        assert "diamond" in sample["caption"] and caption_matches(sample["caption"], seen), sample["caption"]
        assert not caption_matches(sample["caption"], as_circles(seen))
        plan = FEATURED.plan(i)
        assert "diamond" in plan["plan"] and caption_matches(plan["plan"], plan["scene"], complete=True)
    for i in range(20):
        segments = FEATURED.interleaved(i)["segments"]
        texts, images = segments[0::2], segments[1::2]
        assert any("diamond" in t for t in texts)
        assert caption_matches(" and ".join(texts), read_scene(images[-1], DIAMOND), complete=True)


def test_questions_ask_about_diamonds_and_their_answers_are_read_from_the_pixels():
    asked = Counter()
    mixed = WorldDataset("train", seed=2, concepts=DIAMOND)
    for data in (FEATURED, mixed, WorldDataset("heldout", scenes="diamond", reasoned=True)):
        for i in range(150):
            sample = data.mmu(i)
            seen = read_scene(sample["image"], DIAMOND)
            assert seen == sample["scene"]
            for (question, answer), kind in zip(sample["turns"], sample["kinds"]):
                if kind == "caption":
                    assert caption_matches(answer, seen, complete=True)
                else:  # a worked answer ends in the short one
                    short = answer_question(question, seen)
                    assert answer == short or (data.reasoned and answer.endswith(f"answer: {short}")), answer
                if "diamond" in question or answer.endswith("diamond"):
                    asked[(kind, answer.split()[-1] if kind in ("shape", "presence") else "")] += 1
    assert asked[("shape", "diamond")] >= 10 and asked[("count", "")] >= 10 and asked[("colour", "")] >= 10
    assert asked[("presence", "yes")] >= 5 and asked[("presence", "no")] >= 5  # absent diamonds are asked of too
    scene = Scene((Obj("diamond", "green", "small", "top left"), Obj("diamond", "red", "large", "bottom left"),
                   Obj("circle", "green", "large", "top right")))
    assert answer_question("What shape is the green object at the top left?", scene) == "diamond"
    assert answer_question("How many diamonds are there?", scene) == "two"
    assert answer_question("Is the red diamond below the small diamond?", scene) == "yes"
    assert answer_question("Is there a blue diamond?", scene) == "no"


def test_class_samples_and_facts_speak_of_diamonds_when_asked_to():
    classes = classes_of(DIAMOND)
    assert classes[:len(CLASSES)] == CLASSES and classes[len(CLASSES):] == tuple((c, "diamond") for c in COLOURS)
    labels = set()
    for i in range(80):
        sample = FEATURED.class_sample(i)
        (obj,) = read_scene(sample["image"], DIAMOND).objects
        assert sample["class_name"] == obj.class_name == " ".join(classes[sample["label"]]) and obj.shape == "diamond"
        labels.add(sample["label"])
    assert labels == set(range(len(CLASSES), len(classes)))
    facts = facts_of(DIAMOND)
    assert "There are four shapes: circles, squares, triangles and diamonds." in facts
    assert not any("three shapes" in f for f in facts) and "A diamond has four corners." in facts
    text = " ".join(FEATURED.lm(i)["text"] for i in range(200))
    assert "diamond" in text and "three shapes" not in text


def test_a_world_source_with_the_concept_yields_rows_that_hold_it():
    featured = iter(build_source({"type": "world", "kind": "t2i", "scenes": "diamond"}))
    rows = [next(featured) for _ in range(30)]
    assert all(diamonds(r["scene"]) >= 1 and "diamond" in r["caption"] for r in rows)
    mixed = iter(build_source({"type": "world", "kind": "mmu", "concepts": ["diamond"]}, seed=4))
    counts = [diamonds(next(mixed)["scene"]) for _ in range(60)]
    assert 0 in counts and max(counts) >= 1  # diamonds among other shapes, not in every picture
    plain = iter(build_source({"type": "world", "kind": "t2i"}))
    assert [next(plain)["caption"] for _ in range(5)] == [WorldDataset("train").t2i(i)["caption"] for i in range(5)]
    with pytest.raises(ValueError, match="unknown concept 'hexagon'"):
        build_source({"type": "world", "kind": "t2i", "concepts": ["hexagon"]})


def test_cyan_scenes_samples_and_facts_hold_cyan_objects_and_are_read_from_the_pixels():
    rng = np.random.default_rng(5)
    train = [sample_scene("train", rng, scenes="cyan") for _ in range(300)]
    heldout = [sample_scene("heldout", rng, scenes="cyan") for _ in range(100)]
    assert all(diamonds(s, "cyan") >= 1 for s in train + heldout)
    assert not any(is_heldout(s) for s in train) and all(is_heldout(s) for s in heldout)
    assert {o.shape for s in train for o in s.objects if o.colour == "cyan"} == set(SHAPES)
    pairs = [sample_scene("train", rng, scenes="pairs", concepts=CYAN) for _ in range(200)]
    assert any(o.colour == "cyan" for s in pairs for o in s.objects)
    assert all(s.objects[0].shape != s.objects[1].shape for s in pairs)
    data, named, answered = WorldDataset("train", seed=1, scenes="cyan"), 0, Counter()
    for i in range(60):
        sample = data.t2i(i)
        assert read_scene(sample["image"], CYAN) == sample["scene"]
        assert caption_matches(sample["caption"], sample["scene"]), sample["caption"]
        if "cyan" in sample["caption"]:
            named += 1
            assert not caption_matches(sample["caption"], as_circles(sample["scene"], "cyan")), sample["caption"]
        mmu = data.mmu(i)
        for (question, answer), kind in zip(mmu["turns"], mmu["kinds"]):
            if kind != "caption":
                assert answer_question(question, read_scene(mmu["image"], CYAN)) == answer, question
                answered[(kind, answer)] += "cyan" in question or answer == "cyan"
    assert named >= 30 and answered[("colour", "cyan")] >= 5
    classes = classes_of(CYAN)
    assert classes[len(CLASSES):] == tuple(("cyan", shape) for shape in SHAPES)
    assert classes_of(CONCEPTS)[len(CLASSES):][-4:] == tuple(("cyan", shape) for shape in SHAPES + DIAMOND)
    assert {data.class_sample(i)["class_name"] for i in range(40)} == {f"cyan {shape}" for shape in SHAPES}
    assert "There are seven colours: red, green, blue, yellow, purple, white and cyan." in data.facts
    assert "There are three shapes: circles, squares and triangles." in data.facts
    rows = iter(build_source({"type": "world", "kind": "t2i", "scenes": "cyan"}))
    assert all(diamonds(next(rows)["scene"], "cyan") >= 1 for _ in range(20))


# ---------------------------------------------------------------- the fixed checks of the concept


@pytest.mark.parametrize("concept", CONCEPTS)
def test_concept_prompts_are_fixed_name_the_concept_and_are_checked_right(concept):
    prompts = concept_prompts(concept, n_per_category=10, seed=0)
    assert [p["category"] for p in prompts] == [c for c in GENEVAL_CATEGORIES for _ in range(10)]
    assert concept_prompts(concept, 10, seed=0) == prompts and concept_prompts(concept, 10, seed=1) != prompts
    assert len({p["prompt"] for p in prompts}) >= 30 and all(p["concepts"] == [concept] for p in prompts)
    rng = np.random.default_rng(0)
    scenes = [scene_from_spec(p["spec"], rng) for p in prompts]
    for p, scene in zip(prompts, scenes):
        assert concept in p["prompt"] and caption_matches(p["prompt"], scene), p["prompt"]
    right = [degrade_image(s.render(), rng) for s in scenes]
    assert all(score_t2i(prompts, right))
    assert not any(score_t2i(prompts, [as_circles(s, concept).render() for s in scenes]))
    assert geneval_scores([{"category": p["category"], "correct": c} for p, c in
                           zip(prompts, score_t2i(prompts, right))])["overall"] == 1.0


@pytest.mark.parametrize("concept", CONCEPTS)
def test_concept_questions_are_fixed_balanced_and_answered_from_their_pictures(concept):
    own = concept_attribute(concept)  # the question kind whose answer is the concept: "shape" or "colour"
    other = {"shape": "colour", "colour": "shape"}[own]
    questions = concept_questions(concept, n_per_kind=10, seed=0)
    again = concept_questions(concept, n_per_kind=10, seed=0)
    assert [(q["question"], q["expected"], q["scene"]) for q in again] == \
        [(q["question"], q["expected"], q["scene"]) for q in questions]
    assert [q["question"] for q in concept_questions(concept, 10, seed=1)] != [q["question"] for q in questions]
    assert [q["kind"] for q in questions] == [k for k in CONCEPT_QUESTION_KINDS for _ in range(10)]
    for q in questions:
        seen = read_scene(q["image"], (concept,))
        assert seen == q["scene"] and answer_question(q["question"], seen) == q["expected"]
        if q["kind"] != "presence":
            assert diamonds(seen, concept) >= 1
        if q["kind"] != own:
            assert concept in q["question"], q["question"]
    by_kind = {k: [q["expected"] for q in questions if q["kind"] == k] for k in CONCEPT_QUESTION_KINDS}
    assert by_kind[own][0::2] == [concept] * 5 and concept not in by_kind[own][1::2]
    assert by_kind["presence"] == by_kind["relation"] == ["yes", "no"] * 5
    assert by_kind["count"][0::2] == ["one"] * 5 and "one" not in by_kind["count"][1::2]
    assert len(set(by_kind[other])) >= 2 and set(by_kind["position"]) <= set(SLOTS)
    assert all(score_concept_answers(questions, [q["expected"].upper() + "." for q in questions]))
    assert not any(score_concept_answers(questions, ["hexagon"] * len(questions)))
    at = CONCEPT_QUESTION_KINDS.index(own) * 10
    assert sum(score_concept_answers(questions[at:at + 10], [concept] * 10)) == 5  # saying the concept scores half
