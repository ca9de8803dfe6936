"""``showo eval vqa`` (issue 33): yes/no answers scored as POPE scores them and short answers by
VQAv2-style normalised exact match, checked against values computed by hand; the command's files."""

import json

import pytest
from PIL import Image

from showo.cli.main import main
from showo.evaluation.benchmarks.vqa_scoring import (
    normalize_answer,
    pope_answer,
    pope_scores,
    short_answer_score,
    short_answer_scores,
)
from showo.pipeline import ShowoPipeline


@pytest.mark.parametrize("text, read", [
    ("Yes, there is a dog in the image.", "yes"),
    ("No.", "no"),
    ("There is not a dog", "no"),
    ("no", "no"),
    ("Yes. But no cat.", "yes"),  # only the first sentence counts
    ("No, there is none", "no"),  # the comma is dropped before the words are split
    ("Not really", "yes"),  # POPE's rule: only "No", "not" and "no" are read as no
    ("I see nothing", "yes"),
    ("nope", "yes"),
])
def test_answers_are_read_as_pope_reads_them(text, read):
    assert pope_answer(text) == read


def test_pope_scores_match_the_hand_computed_values():
    predictions = ["yes", "yes", "no", "no", "yes", "no", "yes", "yes"]
    labels = ["yes", "no", "no", "yes", "yes", "no", "yes", "no"]
    # TP: 0, 4, 6 (3); FP: 1, 7 (2); TN: 2, 5 (2); FN: 3 (1)
    scores = pope_scores(predictions, labels)
    assert (scores["tp"], scores["fp"], scores["tn"], scores["fn"], scores["n"]) == (3, 2, 2, 1, 8)
    assert scores["accuracy"] == pytest.approx(5 / 8)
    assert scores["precision"] == pytest.approx(3 / 5)
    assert scores["recall"] == pytest.approx(3 / 4)
    assert scores["f1"] == pytest.approx(2 * 0.6 * 0.75 / (0.6 + 0.75))  # 0.6667
    assert scores["yes_ratio"] == pytest.approx(5 / 8)
    nothing_said_yes = pope_scores(["no", "no"], ["yes", "no"])
    assert nothing_said_yes["precision"] == 0.0 and nothing_said_yes["f1"] == 0.0
    with pytest.raises(ValueError, match="every label must be \"yes\" or \"no\", got 'maybe'"):
        pope_scores(["yes"], ["maybe"])


@pytest.mark.parametrize("text, normal", [
    ("Two dogs!", "2 dogs"),
    ("The Red car.", "red car"),
    ("1,000", "1000"),
    ("3.5", "3.5"),
    ("a man's hat", "man's hat"),
    ("  Yes\n", "yes"),
    ("left-side", "left side"),
    ("none", "0"),
])
def test_short_answers_are_normalised_vqa_style(text, normal):
    assert normalize_answer(text) == normal


def test_short_answer_scores():
    assert short_answer_score("Two.", "2") == 1.0 and short_answer_score("a cat", "dog") == 0.0
    assert short_answer_score("two", ["2", "2", "two", "3"]) == 1.0  # three annotators agree
    assert short_answer_score("2", ["2", "3", "3"]) == pytest.approx(1 / 3)
    assert short_answer_scores(["The dog", "3", "red"], ["dog", "three", "blue"]) == \
        {"accuracy": pytest.approx(2 / 3), "n": 3}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from conftest import build_tiny_pipeline

    root = tmp_path_factory.mktemp("vqa")
    build_tiny_pipeline().save_pretrained(root / "model")
    (root / "images").mkdir()
    for name, colour in (("a.png", "red"), ("b.png", "blue")):
        Image.new("RGB", (80, 64), colour).save(root / "images" / name)
    return root


CANNED = {"Is there a dog?": "Yes, a dog.", "Is there a cat?": "Yes.", "Is there a car?": "There is not a car.",
          "Is there a bus?": "No", "How many dogs?": "Two", "What colour?": "The blue."}


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_the_command_writes_answers_scores_and_its_record(data, tmp_path, monkeypatch, capsys):
    asked = []

    def canned(self, images, questions, max_new_tokens=100, **kwargs):
        asked.append((len(images), max_new_tokens))
        return [CANNED[q.removesuffix(" Answer yes or no.")] for q in questions]

    monkeypatch.setattr(ShowoPipeline, "answer", canned)
    yes_no = write_rows(data / "pope.jsonl", [
        {"image": "images/a.png", "question": "Is there a dog?", "answer": "yes"},
        {"image": "images/b.png", "question": "Is there a cat?", "answer": "no"},
        {"image": "images/a.png", "question": "Is there a car?", "answer": "No"},
        {"image": "images/b.png", "question": "Is there a bus?", "answer": "yes"},
    ])
    out = tmp_path / "pope"
    assert main(["eval", "vqa", "--data", str(yes_no), "--output", str(out), "--model", str(data / "model"),
                 "--batch-size", "3", "--max-new-tokens", "5", "--suffix", " Answer yes or no."]) == 0
    assert asked == [(3, 5), (1, 5)]  # batched
    scores = json.loads((out / "scores.json").read_text())
    # read: yes, yes, no, no against yes, no, no, yes -> TP 1, FP 1, TN 1, FN 1
    assert scores == {"metric": "yesno", "accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5,
                      "yes_ratio": 0.5, "tp": 1, "fp": 1, "tn": 1, "fn": 1, "n": 4}
    rows = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert [r["prediction"] for r in rows] == ["Yes, a dog.", "Yes.", "There is not a car.", "No"]
    assert [r["score"] for r in rows] == [1.0, 0.0, 1.0, 0.0]
    assert "showo eval vqa: metric yesno, accuracy 0.5000" in capsys.readouterr().out
    record = json.loads((out / "showo_eval.json").read_text())
    assert record["settings"]["metric"] == "yesno" and record["settings"]["suffix"] == " Answer yes or no."
    assert len(record["checkpoint"]["sha256"]) == 64 and record["inputs"]["rows"] == 4

    short = write_rows(data / "vqa.jsonl", [
        {"image": "images/a.png", "question": "How many dogs?", "answer": ["2", "2", "two", "3"]},
        {"image": "images/b.png", "question": "What colour?", "answer": "blue"},
        {"image": "images/b.png", "question": "Is there a bus?", "answer": "cat"},
    ])
    out = tmp_path / "vqa"
    assert main(["eval", "vqa", "--data", str(short), "--output", str(out), "--model", str(data / "model")]) == 0
    assert json.loads((out / "scores.json").read_text()) == {"metric": "exact", "accuracy": pytest.approx(2 / 3),
                                                             "n": 3}


def test_the_command_answers_with_the_pipeline(data, tmp_path):
    rows = write_rows(data / "one.jsonl", [{"image": "images/a.png", "question": "What colour?", "answer": "red"}])
    assert main(["eval", "vqa", "--data", str(rows), "--output", str(tmp_path / "o"), "--model", str(data / "model"),
                 "--max-new-tokens", "3", "--dtype", "fp32"]) == 0
    (row,) = [json.loads(line) for line in (tmp_path / "o" / "answers.jsonl").read_text().splitlines()]
    pipe = ShowoPipeline.from_pretrained(data / "model", torch_dtype="fp32")
    assert row["prediction"] == pipe.answer(data / "images" / "a.png", "What colour?", max_new_tokens=3)[0]


def test_bad_rows_are_named(data, tmp_path, capsys):
    rows = write_rows(data / "bad.jsonl", [{"image": "images/a.png", "question": "Q?", "answer": "yes"},
                                           {"image": "images/missing.png", "question": "Q?", "answer": "no"}])
    assert main(["eval", "vqa", "--data", str(rows), "--output", str(tmp_path / "o"),
                 "--model", str(data / "model")]) == 2
    assert f'--data {rows} line 2: field "image": no such file' in capsys.readouterr().err
    rows = write_rows(data / "bad.jsonl", [{"image": "images/a.png", "question": "Q?", "answer": 3}])
    assert main(["eval", "vqa", "--data", str(rows), "--output", str(tmp_path / "o"),
                 "--model", str(data / "model")]) == 2
    assert 'field "answer" must be a string or a non-empty list of strings, got 3' in capsys.readouterr().err
    rows = write_rows(data / "bad.jsonl", [{"image": "images/a.png", "question": "Q?", "answer": "blue"}])
    assert main(["eval", "vqa", "--data", str(rows), "--output", str(tmp_path / "o"), "--metric", "yesno",
                 "--model", str(data / "model")]) == 2
    assert '--metric yesno needs "yes" or "no" answers; row 1 has' in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
