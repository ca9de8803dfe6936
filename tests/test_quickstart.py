"""``showo quickstart``: the evaluation runs end to end, the report is written, and the scoring
itself is right (oracles that answer perfectly score 1, models that fail score 0)."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import build_tiny_pipeline
from PIL import Image

from showo.cli.main import main
from showo.evaluation import tasks as tasks
from showo.evaluation.evaluate import (
    METRICS,
    PARTS,
    Budget,
    evaluate,
    run_captions,
    run_extrapolation,
    run_inpainting,
    run_t2i,
    run_vqa,
)
from showo.evaluation.report import write_report
from showo.generation.editing import stitch
from showo.generation.generation_config import GenerationConfig
from showo.world import (
    GENEVAL_CATEGORIES,
    Obj,
    Scene,
    answer_question,
    canonical_caption,
    geneval_prompts,
    parse_caption,
    read_scene,
    scene_from_spec,
)
from showo.world.reasoning import ANSWER_MARKER, reasoned_answer

pytestmark = pytest.mark.filterwarnings("ignore:prompt of .* tokens is over the budget")  # the tiny tokenizer
SMALL = Budget(t2i_per_category=3, vqa=12, captions=8, inpaints=4, extrapolations=4, shown=1)


@pytest.fixture(scope="module")
def tiny_evaluation():
    return evaluate(build_tiny_pipeline(), Budget.ci(), progress=False)


def test_evaluate_returns_every_metric_in_range(tiny_evaluation):
    metrics, artefacts = tiny_evaluation
    assert set(metrics) == set(METRICS) | {"seconds", "seconds_total"}
    for name in METRICS:
        assert isinstance(metrics[name], float)
        upper = tasks.MAX_PSNR if name == "recon_psnr" else 1.0
        assert 0.0 <= metrics[name] <= upper, name
    assert set(metrics["seconds"]) == set(PARTS) and all(s >= 0 for s in metrics["seconds"].values())
    assert metrics["seconds_total"] == pytest.approx(sum(metrics["seconds"].values()), abs=0.01)
    assert len(artefacts["t2i"]["progression"]["frames"]) == Budget.ci().steps
    assert artefacts["inpainting"]["examples"][0]["result"].size == (64, 64)
    assert artefacts["extrapolation"]["examples"][0]["result"].size == (96, 64)


def test_report_is_self_contained(tmp_path, tiny_evaluation):
    metrics, artefacts = tiny_evaluation
    page = write_report(tmp_path, metrics, artefacts).read_text()
    assert all(name in page for name in METRICS)
    assert page.count('<img src="data:image/png;base64,') >= 10
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert len(list((tmp_path / "images").glob("*.png"))) == page.count("<img ")


def test_cli_quickstart_end_to_end(tmp_path, capsys):
    build_tiny_pipeline().save_pretrained(tmp_path / "model")
    out = tmp_path / "out"
    assert main(["quickstart", "--model", str(tmp_path / "model"), "--ci", "--output", str(out)]) == 0
    assert set(json.loads((out / "metrics.json").read_text())) == set(METRICS) | {"seconds", "seconds_total"}
    assert (out / "report.html").is_file()
    printed = capsys.readouterr().out
    assert "t2i_overall" in printed and str(out / "report.html") in printed
    assert "target >= 0.950" in printed  # answers, against the shipped model's target


def test_retrain_is_measured_against_the_recipes_targets(tmp_path, monkeypatch, capsys):
    from showo.evaluation import quickstart

    build_tiny_pipeline().save_pretrained(tmp_path / "model")
    monkeypatch.setattr(quickstart, "retrain_model", lambda folder: tmp_path / "model")
    assert main(["quickstart", "--retrain", "--ci", "--output", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "target >= 0.800" in printed and "target >= 0.900" in printed  # t2i_overall, vqa_accuracy
    assert "target >= 0.950" not in printed
    page = (tmp_path / "out" / "report.html").read_text()
    assert "<td>>= 0.800</td>" in page and ">= 0.950" not in page


# ---------------------------------------------------------------- the scoring, with oracles


def _scene_of(text: str) -> Scene:
    """The scene a fully specified caption ("a small red circle at the top left and ...") describes."""
    return Scene(tuple(Obj(s.shape, s.colour, s.size, s.slot) for s in parse_caption(text)))


class FakePipe:
    """The pipeline's interface with perfect (or ``blank``) answers computed from the world."""

    config = SimpleNamespace(image_size=64)
    generation = GenerationConfig()

    def __init__(self, blank: bool = False):
        self.blank = blank
        self.specs = {p["prompt"]: p["spec"] for p in geneval_prompts(SMALL.t2i_per_category)}

    def _picture(self, scene: Scene) -> Image.Image:
        return Image.new("RGB", (64, 64)) if self.blank else scene.render()

    def prompts_to_draw(self, prompts):
        return list(prompts)

    def text_to_image(self, prompts, seed=0, **kwargs):
        rng = np.random.default_rng(seed)
        return [self._picture(scene_from_spec(self.specs[p], rng)) for p in prompts]

    def answer(self, images, questions, **kwargs):
        return ["" if self.blank else answer_question(q, read_scene(i)) for i, q in zip(images, questions)]

    def caption(self, images, **kwargs):
        return ["four white triangles" if self.blank else canonical_caption(read_scene(i)) for i in images]

    def inpaint(self, image, mask, prompt, **kwargs):
        return image if self.blank else _scene_of(prompt).render()

    def extrapolate(self, image, prompt, direction="right", offset=0, **kwargs):
        new = Image.new("RGB", (64, 64))
        new.paste(image.crop((32, 0, 64, 64)), (0, 0))  # the shifted input, nothing generated
        return stitch(image, new if self.blank else _scene_of(prompt).render(), direction, 32)


@pytest.mark.parametrize("blank", [False, True])
def test_t2i_scores_one_for_the_oracle_and_zero_for_blank_pictures(blank):
    metrics, _ = run_t2i(FakePipe(blank), SMALL, seed=0, progress=False)
    assert len(metrics) == 7 and set(metrics.values()) == {0.0 if blank else 1.0}


class PlanningPipe(FakePipe):
    """Plans each prompt as the canonical caption of a scene that fits it, and draws only plans."""

    def prompts_to_draw(self, prompts):
        rng = np.random.default_rng(7)
        return [canonical_caption(scene_from_spec(self.specs[p], rng)) for p in prompts]

    def text_to_image(self, prompts, plan=None, **kwargs):
        assert plan is False  # the evaluation planned already and draws the plans as given
        return [_scene_of(p).render() for p in prompts]


def test_t2i_of_a_planning_model_draws_and_reports_its_plans():
    metrics, artefacts = run_t2i(PlanningPipe(), SMALL, seed=0, progress=False)
    assert set(metrics.values()) == {1.0}
    examples = artefacts["examples"]
    assert len(examples) == len(GENEVAL_CATEGORIES) * SMALL.shown
    for x in examples:
        assert x["plan"] != x["prompt"] and read_scene(x["image"]) == _scene_of(x["plan"])


@pytest.mark.parametrize("run, metric", [(run_vqa, "vqa_accuracy"), (run_captions, "caption_accuracy"),
                                         (run_inpainting, "inpaint_accuracy"),
                                         (run_extrapolation, "extrapolation_accuracy")])
@pytest.mark.parametrize("blank", [False, True])
def test_task_scores_one_for_the_oracle_and_zero_for_failures(run, metric, blank):
    metrics, artefacts = run(FakePipe(blank), SMALL, seed=0, progress=False)
    assert metrics == {metric: 0.0 if blank else 1.0}
    assert len(artefacts["examples"]) == SMALL.shown


class ReasoningPipe(FakePipe):
    """Works every answer out (showo.world.reasoning) before it gives it."""

    generation = GenerationConfig(answer_marker=ANSWER_MARKER, reasoning_tokens=96)

    def answer(self, images, questions, reasoning=False, **kwargs):
        assert reasoning  # the evaluation keeps the work to show it
        return [reasoned_answer(q, read_scene(i)) for i, q in zip(images, questions)]


def test_answers_of_a_reasoning_model_are_scored_on_what_follows_its_marker():
    metrics, artefacts = run_vqa(ReasoningPipe(), SMALL, seed=0, progress=False)
    assert metrics == {"vqa_accuracy": 1.0}
    for x in artefacts["examples"]:
        assert x["predicted"] == x["expected"] and x["reasoning"].endswith(f"{ANSWER_MARKER} {x['expected']}")


def test_inpaint_checker():
    scene = Scene((Obj("circle", "red", "small", "top left"), Obj("square", "blue", "large", "bottom right")))
    case = tasks.inpaint_case(scene, np.random.default_rng(3))
    assert case["target"].slot == case["slot"] and case["target"].class_name != \
        next(o.class_name for o in scene.objects if o.slot == case["slot"])
    assert tasks.inpaint_success(case, case["edited"].render())
    assert not tasks.inpaint_success(case, case["image"])  # unedited
    others = tuple(Obj("triangle", "green", o.size, o.slot) if o.slot != case["slot"] else o
                   for o in case["edited"].objects)
    assert not tasks.inpaint_success(case, Scene(others).render())  # the edit spilled into the other slot
    x0, y0, x1, y1 = tasks.slot_box(case["slot"], 64)
    mask = np.asarray(case["mask"]) > 0
    assert mask.mean() == 0.25 and mask[y0:y1, x0:x1].all()


def test_extrapolation_checker_needs_both_halves():
    scene = Scene((Obj("circle", "red", "small", "top left"), Obj("square", "blue", "large", "bottom right")))
    case = tasks.extrapolation_case(scene)
    assert read_scene(case["image"]).objects == (Obj("circle", "red", "small", "top right"),)
    assert tasks.extrapolation_success(case, stitch(case["image"], scene.render(), "right", 32))
    lost = Scene((Obj("square", "blue", "large", "bottom right"),)).render()
    assert not tasks.extrapolation_success(case, stitch(case["image"], lost, "right", 32))
    assert not tasks.extrapolation_success(case, scene.render())  # not extrapolated at all


def test_mixed_consistency():
    circle, square = Obj("circle", "red", "small", "top left"), Obj("square", "blue", "large", "bottom right")
    prompt, more = "Start with a small red circle at the top left.", " Now add a large blue square at the bottom right."
    both = Scene((circle, square)).render()
    assert tasks.mixed_consistency(prompt, [Scene((circle,)).render(), more, both]) == [True, True]
    assert tasks.mixed_consistency(prompt, [both, more, Scene((circle,)).render()]) == [False, False]
    assert tasks.mixed_consistency(prompt, [" Then stop."]) == [False]


def test_psnr():
    x = torch.rand(2, 3, 8, 8)
    assert tasks.psnr(x, x).tolist() == [tasks.MAX_PSNR] * 2
    assert tasks.psnr(torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.1)).item() == pytest.approx(20.0)


def test_retrain_runs_both_presets_with_the_recipes_changes(tmp_path, monkeypatch):
    from showo.pipeline import ShowoPipeline
    from showo.training import runs as world_recipe
    from showo.training.presets import train_preset
    from showo.training.runs import RETRAIN_RUNS, retrain

    small = ["batch_size.t2i=2", "batch_size.mmu=2", "batch_size.lm=1", "batch_size.mixed=1"]
    (tok_folder, tok_preset, tok_changes), (model_folder, model_preset, model_changes) = RETRAIN_RUNS
    monkeypatch.setattr(world_recipe, "RETRAIN_RUNS", (  # the recipe's own changes, on small batches
        (tok_folder, tok_preset, tok_changes + ["batch_size.t2i=2"]),
        (model_folder, model_preset, model_changes + small + ["tokenizer.samples=500"])))
    folder = retrain(tmp_path, tokenizer_steps=2, model_steps=2)
    assert folder == tmp_path / "world" / "final"
    tokenizer_run = json.loads((tmp_path / "world-tokenizer" / "train_config.json").read_text())
    model_run = json.loads((tmp_path / "world" / "train_config.json").read_text())
    assert tokenizer_run["max_steps"] == 2 and model_run["max_steps"] == 2  # the arguments win
    assert model_run["vq"] == "world-tokenizer" and model_run["transformer"]["mmu_turns"] == "one"
    assert model_run["data"] == train_preset("world-quick")["data"]  # the preset's mixtures, not the world's
    t2i_sources = model_run["data"]["t2i"]["sources"]
    assert [s.get("scenes") for s in t2i_sources] == [None, "crowded", "pairs"]
    assert [s["weight"] for s in t2i_sources] == [2.0, 1.0, 1.0]  # half ordinary scenes: one-object pictures
    assert [(s["kind"], s["weight"]) for s in model_run["data"]["lm"]["sources"]] == [("lm", 1.0), ("plan", 2.0)]
    assert model_run["transformer"]["loss_weights"]["lm"] == 1.0  # plans learn at full weight
    assert all(s["reasoned"] for s in model_run["data"]["mmu"]["sources"])  # answers show their work
    pipe = ShowoPipeline.from_pretrained(folder)
    assert pipe.model.config.image_position_embeddings  # world-quick's image tokens know their place
    assert pipe.model.config.llm.hidden_size == 128 and pipe.model.config.llm.num_layers == 4  # half the width
    assert (pipe.generation.guidance_scale, pipe.generation.temperature) == (0.0, 3.0)  # how it samples best
    assert pipe.generation.plan_prompts  # it draws its own plan of a prompt
    assert (pipe.generation.answer_marker, pipe.generation.reasoning_tokens) == (ANSWER_MARKER, 96)  # it reasons
    assert len(pipe.text_to_image(["a red circle"], steps=2, seed=0)) == 1
