"""What a new user of the command line can count on (issue 30), run in-process through ``main``:
every command defaults to the shipped model and says which model it loaded; every option's help
shows its default; editing writes numbered files that never overwrite, keeps the pixels outside
the mask, says when it resized an input and writes denoising strips; ``answer`` takes one question,
a question per image or a JSONL, writes answers.jsonl and samples only with ``--do-sample``;
``caption`` exists; prompts files skip comments; progress off a terminal is plain lines;
``pre-encode`` takes its image size from the model its tokenizer belongs to."""

import argparse
import json
import re
import shutil

import numpy as np
import pytest
import torch
from conftest import build_tiny_pipeline
from PIL import Image

import showo.cli.main as cli_main
from showo.cli.main import build_parser, main
from showo.pipeline import ShowoPipeline, shipped_model_dir

SHIPPED = f"model {shipped_model_dir()} (the shipped model of the built-in world)"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A saved tiny pipeline (64x64 pictures), a red picture, a mask whose right half is white, a
    wide picture and its mask (white on the right quarter)."""
    root = tmp_path_factory.mktemp("contract")
    build_tiny_pipeline().save_pretrained(root / "model")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / "picture.png")
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (32, 0, 64, 64))
    mask.save(root / "mask.png")
    Image.new("RGB", (128, 64), "blue").save(root / "wide.png")
    wide_mask = Image.new("L", (128, 64), 0)
    wide_mask.paste(255, (64, 0, 128, 64))
    wide_mask.save(root / "wide_mask.png")
    return root


def tiny(files, *argv: str) -> list[str]:
    return [*argv, "--model", str(files / "model")]


def picture(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


# -- the model ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [
    ["generate", "a red circle", "--steps", "1"],
    ["inpaint", "{picture}", "{mask}", "a blue square", "--steps", "1"],
    ["extrapolate", "{picture}", "a blue square", "--steps", "1"],
    ["answer", "What colour is it?", "{picture}", "--max-new-tokens", "2"],
    ["caption", "{picture}", "--max-new-tokens", "2"],
], ids=lambda argv: argv[0])
def test_without_model_the_shipped_model_is_loaded_and_named(command, files, tmp_path, capsys):
    argv = [a.format(picture=files / "picture.png", mask=files / "mask.png") for a in command]
    assert main([*argv, "--output", str(tmp_path)]) == 0
    assert f"showo {command[0]}: {SHIPPED}" in capsys.readouterr().err.splitlines()


def test_serve_and_quickstart_name_their_model_too(files, tmp_path, monkeypatch, capsys):
    import importlib.util

    if importlib.util.find_spec("gradio") is None:
        pytest.skip("serve needs gradio")
    served = []
    monkeypatch.setattr(cli_main, "serve", lambda model, *args, **kwargs: served.append(model))
    monkeypatch.setattr(cli_main, "run_quickstart", lambda output, model, *args, **kwargs: served.append(model) or {})
    monkeypatch.setattr(cli_main, "metric_table", lambda metrics, targets: "")
    assert main(["serve"]) == 0 and main(["quickstart", "--output", str(tmp_path)]) == 0
    assert served == [shipped_model_dir()] * 2
    err = capsys.readouterr().err.splitlines()
    assert f"showo serve: {SHIPPED}" in err and f"showo quickstart: {SHIPPED}" in err
    assert main(["serve", "--model", str(files / "model")]) == 0
    assert f"showo serve: model {files / 'model'}" in capsys.readouterr().err.splitlines()


def test_a_given_model_is_named(files, tmp_path, capsys):
    assert main(tiny(files, "generate", "a red circle", "--steps", "1", "--output", str(tmp_path))) == 0
    assert f"showo generate: model {files / 'model'}" in capsys.readouterr().err.splitlines()


# -- help ----------------------------------------------------------------------------------------------
def commands() -> dict[str, argparse.ArgumentParser]:
    return build_parser()._subparsers._group_actions[0].choices


def test_every_option_of_every_command_has_help_that_shows_its_default(capsys):
    missing = []
    for name, parser in commands().items():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            text = formatter._expand_help(action) if action.help else ""
            where = f"{name} {'/'.join(action.option_strings) or action.dest}"
            if not text.strip():
                missing.append(f"{where}: no help")
            elif action.option_strings and action.nargs != 0 and not action.required and "default" not in text:
                missing.append(f"{where}: no default in {text!r}")
            elif action.default not in (None, False, argparse.SUPPRESS) and action.option_strings \
                    and f"default: {action.default}" not in text and "default: on" not in text:
                missing.append(f"{where}: its default {action.default!r} not shown in {text!r}")
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        shown = capsys.readouterr().out
        assert exit_.value.code == 0
        missing += [f"{name} --help lacks {option}" for action in parser._actions for option in action.option_strings
                    if option not in shown]
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("command", ["generate", "inpaint", "extrapolate"])
def test_sampling_defaults_say_they_come_from_the_model(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for option, fallback in (("--steps", "18"), ("--guidance-scale", "1.75"), ("--schedule", "cosine"),
                             ("--temperature", "1.0")):
        described = re.search(rf"{option} [A-Z_]+ (.*?)(?= --[a-z]|$)", shown).group(1)
        assert f"default: the model's generation_config.json, else {fallback}" in described
    assert "(default: outputs)" in shown and "(default: cuda when torch sees a GPU, else cpu)" in shown


# -- prompts and progress ------------------------------------------------------------------------------
def test_comment_and_blank_lines_of_a_prompts_file_are_skipped(files, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# the first batch\na red circle\n\n   # indented comment\ntwo green triangles\n  \n")
    out = tmp_path / "out"
    assert main(tiny(files, "generate", "--prompts-file", str(prompts), "--steps", "1", "--output", str(out))) == 0
    records = [json.loads(line) for line in (out / "prompts.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in records] == ["a red circle", "two green triangles"]


def test_progress_off_a_terminal_is_a_few_plain_lines_per_image_and_step(files, tmp_path, capsys):
    assert main(tiny(files, "generate", "one", "two", "--steps", "8", "--output", str(tmp_path))) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if ", step " in line]
    assert lines == [f"showo generate: image {i}/2, step {s}/8" for i in (1, 2) for s in (2, 4, 6, 8)]
    assert main(tiny(files, "inpaint", str(files / "picture.png"), str(files / "mask.png"), "x", "--steps", "3",
                      "--output", str(tmp_path))) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if ", step " in line]
    assert lines == [f"showo inpaint: image 1/1, step {s}/3" for s in (1, 2, 3)]


def test_progress_on_a_terminal_is_one_bar_over_images_and_steps(files, tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert main(tiny(files, "generate", "one", "two", "--steps", "3", "--output", str(tmp_path))) == 0
    err = capsys.readouterr().err
    assert "6/6" in err and ", step " not in err


# -- inpaint and extrapolate ---------------------------------------------------------------------------
def inpaint(files, out, *extra) -> list[str]:
    return tiny(files, "inpaint", str(files / "picture.png"), str(files / "mask.png"), "a blue square",
                "--steps", "2", "--output", str(out), *extra)


def test_edits_are_numbered_and_never_overwrite(files, tmp_path):
    out = tmp_path / "out"
    assert main(inpaint(files, out)) == 0
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(first) == ["inpaint-00000-input.png", "inpaint-00000-mask.png", "inpaint-00000.png"]
    assert main(inpaint(files, out, "--seed", "3")) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([*first, "inpaint-00001-input.png", "inpaint-00001-mask.png", "inpaint-00001.png"])
    assert all((out / name).read_bytes() == data for name, data in first.items())
    extrapolate = tiny(files, "extrapolate", str(files / "picture.png"), "x", "--steps", "1", "--output", str(out))
    assert main(extrapolate) == 0 and main(extrapolate) == 0
    assert {"extrapolate-00000.png", "extrapolate-00001-input.png", "extrapolate-00001-mask.png"} \
        <= {p.name for p in out.iterdir()}


def test_inpaint_keeps_the_pixels_outside_the_mask_unless_told_not_to(files, tmp_path):
    assert main(inpaint(files, tmp_path / "kept")) == 0
    assert main(inpaint(files, tmp_path / "redrawn", "--no-keep-unmasked")) == 0
    for folder in ("kept", "redrawn"):
        shown = picture(tmp_path / folder / "inpaint-00000-input.png")
        assert (shown == picture(files / "picture.png")).all()  # 64x64: the model saw it as it is
        assert (picture(tmp_path / folder / "inpaint-00000-mask.png")[:, :, 0] > 0).mean() == 0.5
    kept, redrawn = (picture(tmp_path / folder / "inpaint-00000.png") for folder in ("kept", "redrawn"))
    assert (kept[:, :32] == shown[:, :32]).all()
    assert not (redrawn[:, :32] == shown[:, :32]).all()
    assert (kept[:, 32:] == redrawn[:, 32:]).all()  # the regenerated half is the same either way


def test_extrapolate_keeps_the_original_unless_told_not_to(files, tmp_path):
    common = ["x", "--direction", "left", "--steps", "1"]
    assert main(tiny(files, "extrapolate", str(files / "picture.png"), *common, "--output", str(tmp_path / "k"))) == 0
    assert main(tiny(files, "extrapolate", str(files / "picture.png"), *common, "--output", str(tmp_path / "r"),
                     "--no-keep-unmasked")) == 0
    shown = picture(tmp_path / "k" / "extrapolate-00000-input.png")
    kept, redrawn = picture(tmp_path / "k" / "extrapolate-00000.png"), picture(tmp_path / "r" / "extrapolate-00000.png")
    assert kept.shape == (64, 96, 3) and (kept[:, 32:] == shown).all() and not (redrawn[:, 32:] == shown).all()
    mask = picture(tmp_path / "k" / "extrapolate-00000-mask.png")[:, :, 0]
    assert (mask[:, :32] == 255).all() and (mask[:, 32:] == 0).all()  # white where it grew


def test_a_resized_input_and_mask_are_announced_and_cropped_alike(files, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(tiny(files, "inpaint", str(files / "wide.png"), str(files / "wide_mask.png"), "x", "--steps", "1",
                     "--output", str(out))) == 0
    err = capsys.readouterr().err
    assert f"showo inpaint: image {files / 'wide.png'} resized from 128x64 to the model's 64x64 (shorter side " \
           "resized, centre cropped)" in err.splitlines()
    assert f"showo inpaint: mask {files / 'wide_mask.png'} resized from 128x64 to the model's 64x64" in err
    assert "Warning" not in err and ".py:" not in err  # a notice, not a Python warning with its source line
    mask = picture(out / "inpaint-00000-mask.png")[:, :, 0]
    assert mask.shape == (64, 64) and (mask[:, :32] == 0).all() and (mask[:, 32:] == 255).all()  # the centre
    assert Image.open(out / "inpaint-00000-input.png").size == (64, 64)
    assert main(tiny(files, "extrapolate", str(files / "wide.png"), "x", "--steps", "1", "--output", str(out))) == 0
    assert "showo extrapolate: image" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["inpaint", "extrapolate"])
def test_save_steps_writes_a_strip_of_one_frame_per_step(command, files, tmp_path):
    inputs = [str(files / "picture.png")] + ([str(files / "mask.png")] if command == "inpaint" else [])
    assert main(tiny(files, command, *inputs, "x", "--steps", "3", "--save-steps", "--output", str(tmp_path))) == 0
    assert Image.open(tmp_path / f"{command}-00000-steps.png").size == (3 * 64, 64)


# -- answer and caption --------------------------------------------------------------------------------
def answers(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "answers.jsonl").read_text().splitlines()]


def test_answer_one_question_for_every_image(files, tmp_path, capsys):
    image = str(files / "picture.png")
    assert main(tiny(files, "answer", "What colour?", image, image, "--max-new-tokens", "2",
                     "--output", str(tmp_path))) == 0
    printed = capsys.readouterr().out.splitlines()
    records = answers(tmp_path)
    assert [(r["image"], r["question"]) for r in records] == [(image, "What colour?")] * 2
    assert printed == [f"{image}: {r['answer']}".strip() for r in records]


def test_answer_a_question_per_image(files, tmp_path, capsys):
    image, mask = str(files / "picture.png"), str(files / "mask.png")
    assert main(tiny(files, "answer", "--question", "What colour?", "--question", "How many?", image, mask,
                     "--max-new-tokens", "2", "--output", str(tmp_path))) == 0
    assert [(r["image"], r["question"]) for r in answers(tmp_path)] == [(image, "What colour?"), (mask, "How many?")]
    assert main(tiny(files, "answer", "--question", "a", "--question", "b", "--question", "c", image, mask)) == 2
    assert "3 --question options for 2 images" in capsys.readouterr().err


def test_answer_a_jsonl_with_paths_relative_to_it(files, tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(files / "picture.png", folder / "a.png")
    questions = folder / "questions.jsonl"
    questions.write_text('{"image": "a.png", "question": "What colour?"}\n\n'
                         f'{{"image": "{files / "mask.png"}", "question": "How many?"}}\n')
    assert main(tiny(files, "answer", "--jsonl", str(questions), "--max-new-tokens", "2",
                     "--output", str(tmp_path / "out"))) == 0
    records = answers(tmp_path / "out")
    assert [(r["image"], r["question"]) for r in records] == [(str(folder / "a.png"), "What colour?"),
                                                              (str(files / "mask.png"), "How many?")]
    assert all(isinstance(r["answer"], str) for r in records)
    capsys.readouterr()
    for line, complaint in (("{not json", "line 3: not valid JSON"), ('{"image": "a.png"}', "line 3: give an object"),
                            ('{"image": "b.png", "question": "q"}', "line 3: no such image file")):
        questions.write_text('{"image": "a.png", "question": "What colour?"}\n\n' + line + "\n")
        assert main(tiny(files, "answer", "--jsonl", str(questions), "--output", str(tmp_path))) == 2
        err = capsys.readouterr().err
        assert complaint in err and "model" not in err  # refused before the model is loaded


def test_sampling_options_need_do_sample(files, tmp_path, capsys):
    image = str(files / "picture.png")
    for option, value in (("--temperature", "0.7"), ("--top-k", "5"), ("--top-p", "0.9")):
        assert main(tiny(files, "answer", "q?", image, option, value, "--output", str(tmp_path))) == 2
        err = capsys.readouterr().err.strip()
        assert err == f"showo answer: error: {option} shapes sampling, and answers are greedy without --do-sample: " \
                      "add --do-sample"
    sample = tiny(files, "answer", "q?", image, "--do-sample", "--max-new-tokens", "3", "--output", str(tmp_path))
    assert main([*sample, "--temperature", "0.7", "--top-k", "0", "--top-p", "1.0"]) == 0
    assert main([*sample, "--top-k", "-1"]) == 2
    assert "--top-k -1: must be 0 (no top-k) or more" in capsys.readouterr().err


def test_caption_prints_one_caption_per_image_and_writes_captions_jsonl(files, tmp_path, capsys):
    images = [str(files / "picture.png"), str(files / "wide.png")]
    assert main(tiny(files, "caption", *images, "--max-new-tokens", "3", "--output", str(tmp_path))) == 0
    printed = capsys.readouterr().out.splitlines()
    records = [json.loads(line) for line in (tmp_path / "captions.jsonl").read_text().splitlines()]
    assert [r["image"] for r in records] == images
    assert printed == [f"{r['image']}: {r['caption']}".strip() for r in records]


# -- pre-encode ----------------------------------------------------------------------------------------
def test_pre_encode_takes_the_image_size_of_the_model_its_tokenizer_belongs_to(files, tmp_path, capsys):
    (tmp_path / "images" / "circle").mkdir(parents=True)
    Image.new("RGB", (80, 80), "red").save(tmp_path / "images" / "circle" / "a.png")
    common = ["pre-encode", "--source-type", "image_folder", "--path", str(tmp_path / "images"), "--max-samples", "1"]
    assert main([*common, "--vq", str(files / "model" / "vq"), "--output", str(tmp_path / "a")]) == 0
    assert json.loads((tmp_path / "a" / "index.json").read_text())["image_size"] == 64
    assert f"--image-size 64, the size of the model in {files / 'model'}" in capsys.readouterr().err
    shutil.copytree(files / "model" / "vq", tmp_path / "tokenizer")
    assert main([*common, "--vq", str(tmp_path / "tokenizer"), "--output", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "index.json").read_text())["image_size"] == 256
    notice = [line for line in capsys.readouterr().err.splitlines() if "--image-size 256" in line]
    assert len(notice) == 1 and "pass --image-size" in notice[0]


# -- the console contract ------------------------------------------------------------------------------
def test_bad_inputs_are_refused_in_one_line_before_the_model_is_loaded(files, tmp_path, capsys):
    for argv in (["inpaint", str(tmp_path / "none.png"), str(files / "mask.png"), "x"],
                 ["extrapolate", str(files / "a_missing.png"), "x"],
                 ["answer", "q?", str(tmp_path / "none.png")],
                 ["caption", str(tmp_path / "none.png")],
                 ["answer", "q?"]):
        assert main([*argv, "--model", str(tmp_path / "no-model"), "--output", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"showo {argv[0]}: error: ") and "no-model" not in err[0]


def test_images_per_prompt_draws_each_prompt_with_consecutive_seeds(files, tmp_path):
    out, tiny_folder = tmp_path / "out", files / "model"
    assert main(["generate", "a red circle", "two squares", "--model", str(tiny_folder), "--output", str(out),
                 "--steps", "2", "--seed", "5", "--images-per-prompt", "3"]) == 0
    records = [json.loads(line) for line in (out / "prompts.jsonl").read_text().splitlines()]
    assert [(r["prompt"], r["seed"], r["file"]) for r in records] == [
        (p, 5 + j, f"{i:05d}-{slug}-seed{5 + j}.png")
        for i, (p, slug) in enumerate([("a red circle", "a-red-circle"), ("two squares", "two-squares")])
        for j in range(3)]
    pipe = ShowoPipeline.from_pretrained(tiny_folder)
    again = pipe("two squares", seed=6, steps=2).images[0]  # the second picture of the second prompt
    assert np.array_equal(np.asarray(Image.open(out / "00001-two-squares-seed6.png")), np.asarray(again))
    assert main(["generate", "x", "--model", str(tiny_folder), "--output", str(out), "--images-per-prompt", "0"]) == 2


def test_threads_sets_what_torch_may_use(files, tmp_path, capsys):
    before = torch.get_num_threads()
    try:
        assert main(["caption", str(files / "picture.png"), "--model", str(files / "model"), "--output", str(tmp_path),
                     "--threads", "1", "--max-new-tokens", "2"]) == 0
        assert torch.get_num_threads() == 1
        assert main(["caption", str(files / "picture.png"), "--threads", "0"]) == 2
        assert "--threads must lie in 1..4096, got 0" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)
