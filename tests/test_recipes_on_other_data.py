"""A preset is a recipe, not a world (issue 34): ``world-quick`` plans its prompts and works its
answers out because its data holds plan rows and worked answers. Trained on other data with
nothing but data overrides, its model must neither plan nor reason (it would rewrite every prompt
into what it learned to say), the run says what it left off, and the pipeline warns when a model
is asked to plan or reason in a way its data never taught it."""

import dataclasses
import json
import warnings

import pytest
from conftest import build_tiny_pipeline
from data_files import png_bytes, write_tar
from PIL import Image, ImageDraw

from showo import TextTokenizer
from showo.data.pre_encode import pre_encode
from showo.data.world_source import WorldSource
from showo.generation.generation_config import GenerationConfig
from showo.generation.prompting import CAPTION_QUESTION, understanding_text
from showo.generation.untaught import warn_unmarked_answers, warn_unrelated_plans
from showo.model.config import magvit_preset
from showo.model.magvit2 import MagvitV2
from showo.pipeline import ShowoPipeline
from showo.training.config import build_config
from showo.training.presets import train_preset
from showo.training.showo_trainer import ShowoTrainer
from showo.training.untaught import data_teaches, untaught_left_off
from showo.world.reasoning import ANSWER_MARKER

# Pictures and words the built-in world never shows or says.
PATTERNS = {"stripes": "a striped banner", "dots": "a dotted tile", "checks": "a checkered flag"}
TINTS = ["crimson", "teal", "gold", "olive"]
QUESTION = "What pattern is this?"
TINY_RUN = ['vq={"preset": "tiny", "seed": 0}', "model.llm.num_layers=1", "max_steps=3", "warmup_steps=1",
            "checkpoint_every=3"]
OUR_WARNINGS = ("share no word with their prompt", "but the model wrote none")


def pattern_picture(pattern: str, tint: str, shift: int) -> Image.Image:
    image = Image.new("RGB", (64, 64), "black")
    draw = ImageDraw.Draw(image)
    for k in range(8):
        if pattern == "stripes":
            draw.rectangle([0, 8 * k + shift % 4, 63, 8 * k + shift % 4 + 3], fill=tint)
        else:
            for j in range(8):
                if pattern == "dots":
                    draw.ellipse([8 * j + 2, 8 * k + 2, 8 * j + 5, 8 * k + 5], fill=tint)
                elif (j + k + shift) % 2:
                    draw.rectangle([8 * j, 8 * k, 8 * j + 7, 8 * k + 7], fill=tint)
    return image


def write_pattern_data(folder):
    """36 pictures as a webdataset tar (captions) and a LLaVA JSON (a question each); the texts."""
    records, members, texts = [], [], []
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(36):
        pattern, tint = list(PATTERNS)[i % 3], TINTS[(i // 3) % len(TINTS)]
        caption = f"{PATTERNS[pattern]} in {tint}"
        picture = pattern_picture(pattern, tint, i)
        picture.save(folder / f"{i:03d}.png")
        members += [(f"{i:06d}.png", png_bytes(picture)), (f"{i:06d}.txt", caption.encode())]
        records.append({"id": f"{i:06d}", "image": f"{i:03d}.png", "conversations": [
            {"from": "human", "value": f"<image>\n{QUESTION}"}, {"from": "gpt", "value": pattern}]})
        texts += [caption, understanding_text(QUESTION) + " " + pattern]
    write_tar(folder / "pairs-000.tar", members)
    (folder / "questions.json").write_text(json.dumps(records))
    return texts


@pytest.fixture
def pattern_run(tmp_path):
    """world-quick's config on the pattern data with nothing but data overrides (and test sizes)."""
    root = tmp_path
    texts = write_pattern_data(root / "data")
    TextTokenizer.train_bpe((texts + [understanding_text(CAPTION_QUESTION)]) * 5, vocab_size=300).save(root / "tok")
    overrides = [
        f'data.t2i={{"type": "webdataset", "path": "{root}/data/*.tar"}}',
        f'data.mmu={{"type": "llava", "path": "{root}/data/questions.json", "image_root": "{root}/data"}}',
        "data.lm=null", "data.mixed=null",
        f"tokenizer={root / 'tok'}", "batch_size.t2i=2", "batch_size.mmu=2", *TINY_RUN,
    ]
    config = build_config(train_preset("world-quick"), None, overrides)
    assert config.transformer.generation["plan_prompts"]  # the recipe asks for plans and worked answers
    return config, root / "run"


def test_world_quick_on_other_data_neither_plans_nor_reasons(pattern_run, capsys):
    config, run = pattern_run
    ShowoTrainer(config, run).run()
    printed = capsys.readouterr().out
    assert "transformer.generation's plan_prompts left off: this run's data has no plan rows" in printed
    assert (f"answer_marker {ANSWER_MARKER!r} and reasoning_tokens 96 left off: "
            "this run's data has no worked answers") in printed
    for folder in (run, run / "final"):
        saved = GenerationConfig.from_folder(folder)
        assert (saved.plan_prompts, saved.answer_marker, saved.reasoning_tokens) == (False, None, 0)
        assert (saved.steps, saved.guidance_scale, saved.temperature) == (24, 0.0, 3.0)  # the rest of the recipe
    assert ShowoTrainer(config, run).generation == GenerationConfig.from_folder(run)  # a rerun decides alike

    pipe = ShowoPipeline.from_pretrained(run / "final")
    prompts = ["a striped banner in teal", "a dotted tile in gold", "a checkered flag in olive"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert pipe.prompts_to_draw(prompts) == prompts  # drawn as given, not as a plan
        assert len(pipe.text_to_image(prompts[:1], steps=2, seed=0)) == 1
        pictures = [pattern_picture(p, "teal", 0) for p in PATTERNS]
        assert len(pipe.answer(pictures, QUESTION, max_new_tokens=3)) == 3
    assert not [w for w in caught if any(m in str(w.message) for m in OUR_WARNINGS)]


def test_world_quick_on_its_world_data_still_plans_and_reasons(tmp_path, world_tokenizer, capsys):
    overrides = [f"tokenizer={world_tokenizer}", "batch_size.t2i=2", "batch_size.lm=2", "batch_size.mmu=2",
                 "batch_size.mixed=1", *TINY_RUN, "max_steps=1"]
    ShowoTrainer(build_config(train_preset("world-quick"), None, overrides), tmp_path).run()
    assert "left off" not in capsys.readouterr().out
    for folder in (tmp_path, tmp_path / "final"):
        saved = GenerationConfig.from_folder(folder)
        assert (saved.plan_prompts, saved.answer_marker, saved.reasoning_tokens) == (True, ANSWER_MARKER, 96)


def test_what_data_teaches_planning_and_worked_answers(tmp_path):
    world = train_preset("world-quick")["data"]
    assert data_teaches(world) == {"plan", "reasoned"}  # mixtures are opened
    assert data_teaches(train_preset("world")["data"]) == set()  # no plans, answers given directly
    plans_elsewhere = {"t2i": {"type": "world", "kind": "plan"}, "mmu": {"type": "world", "kind": "mmu"}}
    assert data_teaches(plans_elsewhere) == set()  # plan rows feed only the lm flow
    never_drawn = {"lm": {"type": "mixture", "sources": [{"type": "world", "kind": "lm"},
                                                         {"type": "world", "kind": "plan", "weight": 0}]}}
    assert data_teaches(never_drawn) == set()
    # token shards pre-encoded from worked answers teach them; shards of direct answers do not
    vq = MagvitV2(magvit_preset("tiny"))
    for reasoned in (True, False):
        world = WorldSource("mmu", reasoned=reasoned)
        samples = ({k: v for k, v in sample.items() if k not in ("scene", "kinds")} for sample in world)
        pre_encode(samples, vq, tmp_path / str(reasoned), image_size=64, max_samples=12)
        shards = {"mmu": {"type": "mixture", "sources": [
            {"type": "llava", "path": "x.json"}, {"type": "token_shards", "path": str(tmp_path / str(reasoned))}]}}
        assert data_teaches(shards) == ({"reasoned"} if reasoned else set())
    assert data_teaches({"mmu": {"type": "token_shards", "path": str(tmp_path / "missing")}}) == set()


def test_a_model_taught_before_keeps_its_settings():
    asked = GenerationConfig(**train_preset("world-quick")["transformer"]["generation"])
    other = {"t2i": {"type": "webdataset", "path": "x.tar"}}
    taught = GenerationConfig(plan_prompts=True, answer_marker=ANSWER_MARKER, reasoning_tokens=64)
    assert untaught_left_off(taught, asked, other) == (asked, None)  # init_from had them: it was taught
    planner = dataclasses.replace(GenerationConfig(), plan_prompts=True)
    kept, line = untaught_left_off(planner, asked, other)
    assert (kept.plan_prompts, kept.answer_marker, kept.reasoning_tokens) == (True, None, 0)
    assert "plan_prompts" not in line and "answer_marker 'answer:' and reasoning_tokens 96 left off" in line
    assert untaught_left_off(GenerationConfig(), GenerationConfig(steps=5), other) == (GenerationConfig(steps=5),
                                                                                     None)


@pytest.fixture(scope="module")
def pipe():
    return build_tiny_pipeline()


def test_a_plan_that_shares_no_word_with_its_prompt_is_named_in_a_warning(pipe):
    prompts = ["a handwritten digit seven", "a handwritten digit two"]
    with pytest.warns(UserWarning, match="share no word"):  # asked for directly, too
        plans = pipe.plan(prompts)
    assert all(plan != prompt for plan, prompt in zip(plans, prompts))  # the untrained model writes anything
    pipe.generation = dataclasses.replace(GenerationConfig(), plan_prompts=True)
    try:
        with pytest.warns(UserWarning, match="2 of 2 plans share no word with their prompt") as caught:
            assert pipe.prompts_to_draw(prompts) == plans
    finally:
        pipe.generation = GenerationConfig()
    message = str(caught[0].message)
    assert f"{prompts[0]!r} planned as {plans[0]!r}" in message and "set plan_prompts to false" in message
    with pytest.warns(UserWarning, match=r"'a handwritten digit seven' planned as 'one'"):
        warn_unrelated_plans(["a handwritten digit seven"], ["one"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_unrelated_plans(["a triangle and a circle", "two blue squares", "a"],
                             ["a small white triangle at the top left and a large green circle at the bottom right",
                              "a small blue square at the top left and a large blue square at the top right", "b"])
        warn_unrelated_plans(["a red circle"], ["a red circle"])  # an empty plan keeps its prompt


def test_an_answer_marker_the_model_never_writes_is_named_in_a_warning(pipe):
    pictures = [Image.new("RGB", (64, 64), c) for c in ("red", "blue")]
    pipe.generation = dataclasses.replace(GenerationConfig(), answer_marker=ANSWER_MARKER, reasoning_tokens=4)
    try:
        with pytest.warns(UserWarning, match=r"sets answer_marker 'answer:' but the model wrote none") as caught:
            written = pipe.answer(pictures, "what colour?", max_new_tokens=3, reasoning=True)
        assert "set answer_marker to null" in str(caught[0].message)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            pipe.caption(pictures, max_new_tokens=3)  # a caption is given directly even by a reasoning model
            marker = next(w for w in written if len(w) >= 2)[-2:]  # something the model does write
            pipe.generation = dataclasses.replace(pipe.generation, answer_marker=marker)
            pipe.answer(pictures, "what colour?", max_new_tokens=3)
    finally:
        pipe.generation = GenerationConfig()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_unmarked_answers("answer:", ["q1", "q2"], ["x", "y; answer: yes"], CAPTION_QUESTION)
