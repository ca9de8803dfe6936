"""The inference commands, run in-process on a saved tiny pipeline."""

import json

import pytest
from PIL import Image

from showo.cli.main import main


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from conftest import build_tiny_pipeline

    folder = tmp_path_factory.mktemp("pipe") / "tiny"
    build_tiny_pipeline().save_pretrained(folder)
    return folder


def test_generate_writes_images_grid_and_steps(model_dir, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("two green triangles\n\n")
    out = tmp_path / "out"
    code = main(["generate", "a red circle", "--prompts-file", str(prompts), "--model", str(model_dir),
                 "--steps", "3", "--save-steps", "--output", str(out), "--seed", "5"])
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["00000.png", "00000_steps.png", "00001.png", "00001_steps.png", "grid.png", "prompts.jsonl"]
    assert Image.open(out / "00000_steps.png").size == (3 * 64, 64)
    assert Image.open(out / "grid.png").size == (2 * 64, 64)
    records = [json.loads(line) for line in (out / "prompts.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in records] == ["a red circle", "two green triangles"] and records[1]["seed"] == 6
    assert "wrote 2 images" in capsys.readouterr().out


def test_a_planning_model_records_the_plan_it_drew(model_dir, tmp_path):
    import shutil

    from showo.generation.generation_config import GenerationConfig
    from showo.pipeline import ShowoPipeline

    planner = tmp_path / "planner"
    shutil.copytree(model_dir, planner)
    GenerationConfig(plan_prompts=True).save(planner)
    out = tmp_path / "out"
    assert main(["generate", "a red circle", "--model", str(planner), "--steps", "2", "--output", str(out)]) == 0
    (record,) = [json.loads(line) for line in (out / "prompts.jsonl").read_text().splitlines()]
    pipe = ShowoPipeline.from_pretrained(planner)
    assert record["prompt"] == "a red circle" and record["plan"] == pipe.plan(["a red circle"])[0]
    drawn = pipe.decode_codes(pipe.generate_codes([record["plan"]], seed=0, steps=2, plan=False))[0]
    assert Image.open(out / "00000.png").tobytes() == drawn.tobytes()


def test_inpaint_extrapolate_answer_caption(model_dir, tmp_path, capsys):
    image, mask = tmp_path / "in.png", tmp_path / "mask.png"
    Image.new("RGB", (64, 64), "red").save(image)
    Image.new("L", (64, 64), 255).save(mask)
    out = tmp_path / "o"
    common = ["--model", str(model_dir), "--steps", "2", "--output", str(out)]
    assert main(["inpaint", str(image), str(mask), "a blue square", *common]) == 0
    assert Image.open(out / "inpaint-00000.png").size == (64, 64)
    assert Image.open(out / "inpaint-00000-mask.png").size == (64, 64)
    assert main(["extrapolate", str(image), "more", "--direction", "left", *common]) == 0
    assert Image.open(out / "extrapolate-00000.png").size == (96, 64)
    assert Image.open(out / "extrapolate-00000-mask.png").size == (96, 64)
    assert main(["answer", "what colour?", str(image), str(image), "--model", str(model_dir),
                 "--max-new-tokens", "3", "--output", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert sum(line.startswith(str(image)) for line in lines) == 2
    assert [json.loads(line)["question"] for line in (out / "answers.jsonl").read_text().splitlines()] == \
        ["what colour?"] * 2
    assert main(["caption", str(image), "--model", str(model_dir), "--max-new-tokens", "3", "--output", str(out)]) == 0
    assert len((out / "captions.jsonl").read_text().splitlines()) == 1


def test_errors_are_reported_not_raised(model_dir, tmp_path, capsys):
    assert main(["generate", "--model", str(model_dir), "--output", str(tmp_path)]) == 2
    assert "give at least one prompt" in capsys.readouterr().err
    assert main(["generate", "x", "--model", str(model_dir), "--steps", "0", "--output", str(tmp_path)]) == 2
    assert "steps must be at least 1" in capsys.readouterr().err
    assert main(["generate", "--prompts-file", str(tmp_path / "none.txt"), "--model", str(model_dir)]) == 2
    assert "prompts file not found" in capsys.readouterr().err
    assert main(["generate", "x", "--model", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
