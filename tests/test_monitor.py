"""The capability monitor (``monitor.every=N``): its rows in metrics.jsonl at step 0 and every N steps
(and in TensorBoard), scores equal to hand-computed fractions, clear errors for a bad file, and
training that goes on exactly as without it, resumed or not."""

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import build_tiny_pipeline, losses, small, train_cli
from PIL import Image

from showo.cli.main import main
from showo.training.config import MonitorTraining, build_config
from showo.training.metrics import read_metrics
from showo.training.monitor import CapabilityMonitor, read_monitor_file
from showo.training.presets import train_preset
from showo.training.runs import open_run
from showo.world import Obj, Scene, geneval_prompts, scene_from_spec
from showo.world.heldout import vqa_items

SMALL_MONITOR = ["monitor.every=2", "monitor.prompts_per_category=1", "monitor.questions=4"]
NUMBERS = ["monitor/world_t2i_overall", "monitor/world_vqa_accuracy", "monitor/file_answer_accuracy",
           "monitor/file_t2i_accuracy"]
KEYS = sorted([*NUMBERS, "monitor/seconds"])
FILE_PROMPTS = ["a red circle at the top left", "two blue squares"]


def red_circle() -> Image.Image:
    return Scene((Obj("circle", "red", "large", "top left"),)).render()


def two_blue_squares() -> Image.Image:
    return Scene((Obj("square", "blue", "large", "top left"), Obj("square", "blue", "small", "bottom right"))).render()


def write_items(folder: Path) -> Path:
    """A monitor file: two questions about pictures beside it, two prompts."""
    (folder / "pictures").mkdir(parents=True)
    red_circle().save(folder / "pictures" / "circle.png")
    two_blue_squares().save(folder / "pictures" / "squares.png")
    lines = [{"question": "What colour is the circle?", "image": "pictures/circle.png", "answer": "red"},
             {"question": "How many squares are there?", "image": "pictures/squares.png", "answer": "two"},
             *({"prompt": p} for p in FILE_PROMPTS)]
    path = folder / "items.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def comparable(rows: list[dict]) -> list[dict]:
    """Rows without the numbers that are times."""
    return [{k: v for k, v in r.items() if k not in ("tokens_per_s", "monitor/seconds")} for r in rows]


# -- whole runs ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def items(tmp_path_factory) -> Path:
    return write_items(tmp_path_factory.mktemp("items"))


@pytest.fixture(scope="module")
def watched_config(world_tokenizer, items):
    overrides = [*small(world_tokenizer, *SMALL_MONITOR, f"monitor.file={items}", "tensorboard=true", "log_every=3"),
                 "max_steps=4", "checkpoint_every=2"]
    return build_config(train_preset("tiny"), None, overrides)


@pytest.fixture(scope="module")
def watched(tmp_path_factory, watched_config) -> Path:
    """A 4-step run measured at steps 0, 2 and 4, logging every 3 steps."""
    folder = tmp_path_factory.mktemp("watched")
    open_run(watched_config, folder).run()
    return folder


def test_the_monitor_writes_its_rows_at_step_0_and_every_n_steps(watched):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rows = read_metrics(watched)
    assert [r["step"] for r in rows] == [0, 2, 3, 4]  # measured steps are logged whatever log_every says
    measured = [r for r in rows if r["step"] % 2 == 0]
    assert [sorted(k for k in r if k.startswith("monitor/")) for r in rows] == [KEYS, KEYS, [], KEYS]
    assert set(rows[0]) == {"step", *KEYS}  # the numbers before training, alone in their row
    for row in measured:
        assert all(0.0 <= row[k] <= 1.0 for k in NUMBERS), row
        assert row["monitor/seconds"] > 0
    assert all("loss" in r for r in rows[1:])  # measured steps keep their training numbers
    events = EventAccumulator(str(watched / "tensorboard"))
    events.Reload()
    assert {*NUMBERS, "loss"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("monitor/world_vqa_accuracy")] == [0, 2, 4]
    assert [e.value for e in events.Scalars("monitor/file_t2i_accuracy")] == pytest.approx(
        [r["monitor/file_t2i_accuracy"] for r in measured])


def test_training_with_the_monitor_has_the_losses_of_training_without_it(tmp_path, world_tokenizer, watched):
    assert main(train_cli(tmp_path, world_tokenizer, 4, 2)) == 0
    logged = dict(losses(tmp_path))
    assert [(r["step"], r["loss"]) for r in read_metrics(watched) if r["step"] > 0] == [
        (step, logged[step]) for step in (2, 3, 4)]


class Stopped(Exception):
    pass


def stop_after(step: int):
    def on_step(trainer, record):
        if trainer.step == step:
            raise Stopped  # as a kill would, after the step's row is logged

    return on_step


def test_stopped_runs_resume_to_the_rows_of_an_unstopped_one(tmp_path, watched_config, watched, capsys):
    with pytest.raises(Stopped):  # before the first checkpoint: the run starts again from nothing
        open_run(watched_config, tmp_path).run(on_step=stop_after(1))
    assert [r["step"] for r in read_metrics(tmp_path)] == [0]
    with pytest.raises(Stopped):  # after the checkpoint of step 2
        open_run(watched_config, tmp_path).run(on_step=stop_after(3))
    assert [r["step"] for r in read_metrics(tmp_path)] == [0, 2, 3]  # step 0 once
    capsys.readouterr()
    open_run(watched_config, tmp_path).run()
    said = capsys.readouterr().err
    assert "monitor at step 4: world_t2i_overall" in said
    assert "monitor at step 0" not in said and "monitor at step 2" not in said  # not measured again
    assert comparable(read_metrics(tmp_path)) == comparable(read_metrics(watched))


def test_a_missing_monitor_file_stops_the_run_before_any_work(tmp_path, world_tokenizer, capsys):
    missing = tmp_path / "nowhere.jsonl"
    assert main(train_cli(tmp_path / "run", world_tokenizer, 2, 2, "monitor.every=1", f"monitor.file={missing}")) == 2
    said = capsys.readouterr().err
    assert "monitor.file" in said and str(missing) in said
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


# -- scores ------------------------------------------------------------------------------------------


def test_scores_are_the_fractions_of_items_right_and_training_state_is_left_alone(tmp_path):
    pipe = build_tiny_pipeline()
    monitor = CapabilityMonitor(MonitorTraining(every=1, prompts_per_category=1, questions=4, seed=3,
                                                file=str(write_items(tmp_path))))
    world_questions = vqa_items(4, 3, pipe.config.image_size)
    # The world's questions: three right, written otherwise (case, article, full stop), one wrong; then the
    # file's: "Red!" right, "3" wrong (two squares).
    replies = [f"The {q['expected'].upper()}." for q in world_questions[:3]] + ["no idea", "Red!", "3"]
    prompts = geneval_prompts(1, 3)
    # Pictures that hold their prompt: two of the six categories, and the file's first prompt.
    right = {p["prompt"]: scene_from_spec(p["spec"], np.random.default_rng(k)).render()
             for k, p in enumerate(prompts) if p["category"] in ("single_object", "counting")}
    right[FILE_PROMPTS[0]] = red_circle()
    asked, drawn = [], []

    def answer(images, questions, max_new_tokens):
        assert not pipe.model.training and not torch.is_grad_enabled()
        torch.rand(1), np.random.rand(), random.random()  # draws that training must never see
        asked.extend(questions)
        return [replies[len(asked) - len(questions) + k] for k in range(len(questions))]

    def text_to_image(prompts, plan, seed):
        drawn.extend(prompts)
        return [right.get(p, Image.new("RGB", (64, 64))) for p in prompts]

    pipe.answer, pipe.text_to_image = answer, text_to_image
    pipe.model.train()
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    metrics = monitor(pipe)
    assert pipe.model.training and torch.is_grad_enabled()
    after = torch.rand(1).item(), np.random.rand(), random.random()
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    assert after == (torch.rand(1).item(), np.random.rand(), random.random())
    assert metrics.pop("monitor/seconds") >= 0
    assert metrics == pytest.approx({"monitor/world_t2i_overall": 2 / 6, "monitor/world_vqa_accuracy": 3 / 4,
                                     "monitor/file_answer_accuracy": 1 / 2, "monitor/file_t2i_accuracy": 1 / 2})
    assert asked == [q["question"] for q in world_questions] + ["What colour is the circle?",
                                                                "How many squares are there?"]
    assert drawn == [p["prompt"] for p in prompts] + FILE_PROMPTS
    asked.clear(), drawn.clear()
    monitor(pipe)  # every measurement asks the same
    assert asked == [q["question"] for q in world_questions] + ["What colour is the circle?",
                                                                "How many squares are there?"]
    assert drawn == [p["prompt"] for p in prompts] + FILE_PROMPTS


# -- the file and the config -------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "says"), [
    ("not json", "not valid JSON"),
    ('["a red circle"]', 'expected {"question": ..., "image": ..., "answer": ...} or {"prompt": ...}, got list'),
    ('{"answer": "red"}', "expected {\"question\""),
    ('{"question": "What colour?", "answer": "red"}', "image: expected a non-empty string, got nothing"),
    ('{"question": "What colour?", "image": "pictures/circle.png", "answer": 3}',
     "answer: expected a non-empty string, got 3"),
    ('{"question": "What colour?", "image": "missing.png", "answer": "red"}', "missing.png does not exist"),
    ('{"question": "What colour?", "image": "items.jsonl", "answer": "red"}', "is not a picture"),
    ('{"prompt": "a beautiful sunset"}', "prompt: 'a beautiful sunset' names no object"),
    ('{"prompt": "a red circle", "seed": 1}', "unknown fields ['seed']"),
])
def test_a_bad_line_is_an_error_naming_file_line_and_field(tmp_path, line, says):
    path = write_items(tmp_path)
    good = path.read_text().splitlines()
    path.write_text(f"{good[0]}\n\n{line}\n{good[1]}\n")
    with pytest.raises(ValueError) as raised:
        read_monitor_file(path)
    assert str(raised.value).startswith(f"{path}:3: ")
    assert says in str(raised.value)


def test_the_file_is_read_relative_to_its_folder(tmp_path):
    questions, prompts = read_monitor_file(write_items(tmp_path))
    assert [(q["question"], q["expected"]) for q in questions] == [("What colour is the circle?", "red"),
                                                                   ("How many squares are there?", "two")]
    assert np.array_equal(np.asarray(questions[0]["image"]), np.asarray(red_circle()))
    assert prompts == [{"prompt": p} for p in FILE_PROMPTS]


def test_monitor_overrides_build_the_section_and_bad_values_name_their_field():
    config = build_config(train_preset("tiny"), None, ["monitor.every=50", "monitor.questions=16"])
    assert config.monitor == MonitorTraining(every=50, questions=16)
    assert build_config(train_preset("tiny"), None, []).monitor is None
    for overrides, says in [(["monitor.every=0"], "monitor.every"),
                            (["monitor.world=false"], "monitor.every"),
                            (["monitor.every=5", "monitor.world=false"], "monitor: nothing to measure"),
                            (["monitor.every=5", "monitor.questions=-1"], "monitor.questions")]:
        with pytest.raises(ValueError, match=says):
            build_config(train_preset("tiny"), None, overrides)
