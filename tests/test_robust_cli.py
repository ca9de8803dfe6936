"""The CLI contract under a generated sweep of malformed invocations of every sub-command: no
traceback, no internal error, a user error exits with 2 and says what was wrong in one line, and
no control character reaches the terminal.

The sweep is generated from the parser itself: for each sub-command a valid invocation (on a
tiny model the test saves), then every option and positional replaced in turn by each bad value.
The web server and the quickstart's evaluation are stubbed: their argument handling is what runs.
"""

import argparse
from pathlib import Path

import pytest
from conftest import build_tiny_pipeline
from PIL import Image

import showo.cli.main as cli_main
from showo.cli.main import build_parser, main
from showo.evaluation import quickstart
from showo.pipeline import ShowoPipeline

BAD_VALUES = ["", "-1", "1.5", "nan", "abc", "/nonexistent/x", "{dir}", "{file}", "\x1b]0;evil\x07\x1b[31m",
              "a\ud800b", "x" * 600]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A saved tiny pipeline, a picture, a mask, a prompts file, a JSONL of questions, an image folder, a
    text tokenizer."""
    root = tmp_path_factory.mktemp("cli")
    pipe = build_tiny_pipeline()
    pipe.save_pretrained(root / "model")
    Image.new("RGB", (64, 64), "red").save(root / "picture.png")
    Image.new("L", (64, 64), 255).save(root / "mask.png")
    (root / "prompts.txt").write_text("# prompts\na red circle\n")
    (root / "questions.jsonl").write_text('{"image": "picture.png", "question": "What colour is it?"}\n')
    (root / "images" / "circle").mkdir(parents=True)
    Image.new("RGB", (64, 64), "blue").save(root / "images" / "circle" / "a.png")
    (root / "a_dir").mkdir()
    (root / "a_file.txt").write_text("not a model")
    pipe.tokenizer.save(root / "tokenizer")
    return root


def valid_invocations(root: Path, out: Path) -> dict[str, list[str]]:
    model = ["--model", str(root / "model")]
    tiny = [f"tokenizer={root / 'tokenizer'}", 'batch_size={"t2i": 2, "lm": 1, "mmu": 2, "mixed": 1}',
            "vq.preset=tiny"]
    return {
        "convert": ["convert", str(root / "model"), str(out / "converted")],
        "generate": ["generate", "a red circle", *model, "--output", str(out / "gen"), "--steps", "1"],
        "inpaint": ["inpaint", str(root / "picture.png"), str(root / "mask.png"), "a blue square", *model,
                    "--output", str(out / "inpaint"), "--steps", "1"],
        "extrapolate": ["extrapolate", str(root / "picture.png"), "a red circle", *model, "--no-keep-unmasked",
                        "--output", str(out / "extra"), "--steps", "1"],
        "answer": ["answer", "What colour is it?", str(root / "picture.png"), *model, "--max-new-tokens", "2",
                   "--output", str(out / "answers")],
        "answer --jsonl": ["answer", "--jsonl", str(root / "questions.jsonl"), *model, "--max-new-tokens", "2",
                           "--do-sample", "--top-k", "3", "--output", str(out / "jsonl")],
        "caption": ["caption", str(root / "picture.png"), *model, "--max-new-tokens", "2",
                    "--output", str(out / "captions")],
        "train": ["train", "--preset", "tiny", "--output", str(out / "train"), "--max-steps", "1", *tiny],
        "pre-encode": ["pre-encode", "--source-type", "image_folder", "--path", str(root / "images"),
                       "--vq", str(root / "model" / "vq"), "--output", str(out / "tokens"), "--max-samples", "1"],
        "serve": ["serve", *model],
        "quickstart": ["quickstart", *model, "--ci", "--output", str(out / "quick")],
    }


def value_slots(argv: list[str], parser: argparse.ArgumentParser) -> list[int]:
    """Indices in ``argv`` of every value the user typed: positionals and option arguments."""
    command = parser._subparsers._group_actions[0].choices[argv[0]]
    takes_value = {s for a in command._actions if a.option_strings and a.nargs != 0 for s in a.option_strings}
    slots, i = [], 1
    while i < len(argv):
        if argv[i] in takes_value:
            slots.append(i + 1)
            i += 2
        elif not argv[i].startswith("--"):
            slots.append(i)
            i += 1
        else:
            i += 1
    return slots


def unused_options(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    command = parser._subparsers._group_actions[0].choices[argv[0]]
    return [a.option_strings[-1] for a in command._actions
            if a.option_strings and a.nargs != 0 and not set(a.option_strings) & set(argv)
            and a.dest not in ("help",)]


def sweep(root: Path, out: Path) -> list[list[str]]:
    parser, cases = build_parser(), []
    bad = [v.format(dir=root / "a_dir", file=root / "a_file.txt") for v in BAD_VALUES]
    for argv in valid_invocations(root, out).values():
        for slot in value_slots(argv, parser):
            cases += [[*argv[:slot], value, *argv[slot + 1:]] for value in bad]
        for option in unused_options(argv, parser):
            cases += [[*argv, option, value] for value in bad]
        cases += [argv[:-1], [*argv, "--no-such-option"], [*argv, "extra=1" if argv[0] != "train" else "bogus=1"]]
    return cases


@pytest.fixture
def no_server_no_evaluation(monkeypatch, world):
    """serve returns at once; the quickstart's evaluation returns empty metrics; each set of folders,
    good or bad, is loaded for real once, its pipeline or its error given again to later loads of it
    (loading is deterministic, and the sweep repeats the same folders across commands)."""
    monkeypatch.setattr(cli_main, "serve", lambda *args, **kwargs: None)
    load, model = ShowoPipeline.from_pretrained, str(world / "model")
    cached, loaded = load(model), {}

    def from_pretrained(model_dir, vq=None, tokenizer=None, llm_config=None, device=None, torch_dtype=None, **hub):
        if (str(model_dir), vq, tokenizer, llm_config, torch_dtype) == (model, None, None, None, None):
            return cached
        key = (str(model_dir), vq, tokenizer, llm_config, str(device), torch_dtype, tuple(sorted(hub.items())))
        if key not in loaded:
            try:
                loaded[key] = load(model_dir, vq=vq, tokenizer=tokenizer, llm_config=llm_config, device=device,
                                   torch_dtype=torch_dtype, **hub)
            except Exception as e:
                loaded[key] = e
        if isinstance(loaded[key], Exception):
            raise loaded[key].with_traceback(None)
        return loaded[key]

    monkeypatch.setattr(ShowoPipeline, "from_pretrained", from_pretrained)
    monkeypatch.setattr(quickstart, "evaluate", lambda pipe, budget, seed, progress: ({}, {}))
    monkeypatch.setattr(quickstart, "write_report", lambda output, metrics, artefacts, targets: Path(output))
    monkeypatch.setattr(cli_main, "metric_table", lambda metrics, targets: "")


def test_hundreds_of_malformed_invocations_give_no_traceback(world, tmp_path, capsys, monkeypatch,
                                                             no_server_no_evaluation):
    monkeypatch.chdir(tmp_path)  # a bad value may be a relative --output: it lands here
    cases = sweep(world, tmp_path)
    assert len(cases) > 500
    outcomes, problems = {}, []
    for argv in cases:
        try:
            code = main(argv)
        except SystemExit as e:  # argparse: usage and a one-line error, exit 2
            code = e.code
        except BaseException as e:  # anything escaping main is a traceback
            problems.append(f"{argv}: raised {type(e).__name__}: {e}")
            continue
        out, err = capsys.readouterr()
        outcomes[code] = outcomes.get(code, 0) + 1
        if code not in (0, 2):
            problems.append(f"{argv}: exit {code}: {err.strip()[-300:]}")
        if "Traceback" in out + err or "\x1b" in out + err or "\x07" in out + err:
            problems.append(f"{argv}: traceback or control characters in the output")
        last = err.strip().splitlines()[-1] if err.strip() else ""
        if code == 2 and not (last.startswith(f"showo {argv[0]}: error: ") or last.startswith("showo: error: ")):
            problems.append(f"{argv}: exit 2 without a one-line 'showo {argv[0]}: error: ...': {err[-300:]}")
    print(f"{len(cases)} invocations: {outcomes}")
    assert not problems, f"{len(problems)} bad outcomes:\n" + "\n".join(problems[:40])


def test_debug_shows_the_traceback(world, capsys):
    with pytest.raises(FileNotFoundError):
        main(["--debug", "answer", "q?", str(world / "nope.png"), "--model", str(world / "model")])


def test_an_output_that_is_a_file_is_refused_before_loading(world, capsys):
    notes = world / "a_file.txt"
    assert main(["generate", "x", "--model", str(world / "nothing-here"), "--output", str(notes)]) == 2
    assert "is a file; give a folder for the results" in capsys.readouterr().err
    assert notes.read_text() == "not a model"


def test_cuda_on_a_machine_without_it_is_a_clear_error(world, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["answer", "q?", str(world / "picture.png"), "--model", str(world / "model"), "--device", "cuda"]) == 2
    assert "sees no CUDA GPU; use --device cpu" in capsys.readouterr().err
