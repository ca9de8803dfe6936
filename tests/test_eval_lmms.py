"""Show-o as an lmms-eval model (issue 33): ``generate_until`` and ``loglikelihood`` requests, built as
lmms-eval 0.7 builds them (``Instance.args``; documents in ``task_dict[task][split][doc_id]``),
get the pipeline's answers; the registration lmms-eval reads. Without lmms-eval installed the
adapter derives from a stand-in of its interface; the real-registry test then skips."""

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from PIL import Image

from showo.evaluation.benchmarks import lmms_eval_model
from showo.evaluation.benchmarks.likelihood import continuation_logprobs, split_continuation
from showo.evaluation.benchmarks.lmms_eval_model import ShowoLmms, cut_at
from showo.model.omni_attention import omni_attention_mask
from showo.pipeline import ShowoPipeline

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Instance:
    """lmms_eval.api.instance.Instance (0.7), the fields a model reads."""

    request_type: str
    arguments: tuple
    idx: int = 0
    metadata: dict = field(default_factory=lambda: {"task": "pope", "doc_id": 0, "repeats": 1})

    @property
    def args(self):
        return self.arguments if isinstance(self.arguments, tuple) else (self.arguments,)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from conftest import build_tiny_pipeline

    folder = tmp_path_factory.mktemp("lmms") / "model"
    build_tiny_pipeline().save_pretrained(folder)
    return folder


def documents():
    colours = ["red", "blue", "green", "yellow"]
    docs = [{"image": Image.new("RGB", (64, 64), c), "question": f"Is it {c}?"} for c in colours]
    docs.append({"image": None, "question": "Is there an image?"})  # a text-only document
    return docs


def adapter(model_dir, tmp_path, batch_size=2, **extra):
    args = f"pretrained={model_dir},batch_size={batch_size},dtype=fp32,record={tmp_path / 'record.json'}"
    model = ShowoLmms.create_from_arg_string(args + "".join(f",{k}={v}" for k, v in extra.items()),
                                             {"batch_size": None, "max_batch_size": None, "device": None})
    model.task_dict = {"pope": {"test": documents()}}
    return model


def visual(doc):
    return [] if doc["image"] is None else [doc["image"]]


def request(kind, doc_id, second):
    return Instance(kind, (documents()[doc_id]["question"], second, visual, doc_id, "pope", "test"), idx=doc_id,
                    metadata={"task": "pope", "doc_id": doc_id, "repeats": 1})


def test_generate_until_gives_the_pipelines_answers_batched(model_dir, tmp_path, monkeypatch):
    model = adapter(model_dir, tmp_path, batch_size=2)
    greedy = {"max_new_tokens": 4, "temperature": 0, "until": ["\n\n"], "do_sample": False}
    short = {"max_new_tokens": 2}
    requests = [request("generate_until", 0, greedy), request("generate_until", 1, short),
                request("generate_until", 2, greedy), request("generate_until", 3, greedy),
                request("generate_until", 4, greedy)]
    calls = []
    real = ShowoPipeline.answer

    def spy(self, images, questions, **kwargs):
        calls.append(len(images))
        return real(self, images, questions, **kwargs)

    monkeypatch.setattr(ShowoPipeline, "answer", spy)
    with pytest.warns(UserWarning, match="without one get an empty answer"):
        answers = model.generate_until(requests)
    monkeypatch.undo()
    assert calls == [2, 1, 1]  # the greedy group in batches of 2 (the text-only one asks nothing), then the other
    pipe, docs = model.pipe, documents()  # the fp32 pipeline of model_dir, asked one question at a time
    for doc_id, tokens in ((0, 4), (1, 2), (2, 4), (3, 4)):
        alone = pipe.answer(docs[doc_id]["image"], docs[doc_id]["question"], max_new_tokens=tokens)[0]
        assert answers[doc_id] == alone
    assert answers[4] == ""
    assert model.settings["batch_size"] == 2 and model.device == torch.device("cpu")
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["benchmark"] == "lmms-eval" and len(record["checkpoint"]["sha256"]) == 64


def test_stop_strings_cut_the_answer():
    assert cut_at("yes\n\nUSER: more", ["\n\n"]) == "yes"
    assert cut_at("a. b; c", [";", "."]) == "a"
    assert cut_at("unchanged", ["", "zzz"]) == "unchanged"


def word_pipeline():
    """A tiny pipeline whose answers are made of whole space-led words (the other logits pushed down),
    so that an answer's text tokenizes back to the tokens the model wrote."""
    from conftest import build_tiny_pipeline

    pipe = build_tiny_pipeline()
    tokenizer = pipe.tokenizer
    words = [t for t in range(len(tokenizer)) if (text := tokenizer.decode([t])).startswith(" ")
             and text[1:].isalpha() and tokenizer.encode(text) == [t]]
    assert len(words) > 5
    with torch.no_grad():
        others = torch.ones_like(pipe.model.lm_head.bias, dtype=torch.bool)
        others[words] = False
        pipe.model.lm_head.bias[others] = -1e4
    return pipe


def test_loglikelihood_scores_the_pipelines_greedy_answer():
    pipe = word_pipeline()
    model = ShowoLmms(pipeline=pipe, batch_size=3)
    model.task_dict = {"pope": {"test": documents()}}
    docs = documents()
    # lmms-eval's continuations start with the target delimiter " ": the pipeline's own answers
    answers = [" " + pipe.answer(doc["image"], doc["question"], max_new_tokens=3)[0] for doc in docs[:3]]
    requests = [request("loglikelihood", i, answer) for i, answer in enumerate(answers)]
    requests.append(request("loglikelihood", 0, answers[1] if answers[1] != answers[0] else " zebra"))
    requests.append(request("loglikelihood", 4, " yes"))
    with pytest.warns(UserWarning, match="without one"):
        results = [getattr(r, "text", r) for r in model.loglikelihood(requests)]  # lmms-eval 0.7.3: wrapped
    assert [greedy for _, greedy in results[:3]] == [True, True, True]  # the pipeline's answers are greedy
    assert results[3][1] is False and results[3][0] < results[0][0]  # another answer is not, and is less likely
    assert results[4] == (float("-inf"), False)  # a document without a picture
    layout = pipe.model.layout
    for i, answer in enumerate(answers):  # each score is the row's own, unpadded: the sum over its tokens
        context, ids = split_continuation(pipe, docs[i]["question"], answer)
        row = pipe.processor.understanding_inputs(layout.image_ids(pipe.encode_images([docs[i]["image"]])),
                                                  [context + ids])
        with torch.no_grad():
            logits = pipe.model(row, omni_attention_mask(row, layout)).float()
        steps = torch.log_softmax(logits[0, -len(ids) - 1:-1], dim=-1)
        assert results[i][0] == pytest.approx(float(steps.gather(1, torch.tensor(ids)[:, None]).sum()), abs=1e-3)
    alone = continuation_logprobs(pipe, [docs[1]["image"]], [docs[1]["question"]], [answers[1]])[0]
    assert alone[0] == pytest.approx(results[1][0], abs=1e-4) and alone[1] is True


def test_multi_round_is_refused_clearly(model_dir, tmp_path):
    model = adapter(model_dir, tmp_path)
    with pytest.raises(NotImplementedError, match="multi-round tasks are not supported"):
        model.generate_until_multi_round([])


def test_bad_model_args_are_refused(model_dir):
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 'auto'"):
        ShowoLmms.create_from_arg_string(f"pretrained={model_dir},batch_size=auto")


def test_lmms_eval_finds_the_model_where_it_looks():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    target = pyproject["project"]["entry-points"]["lmms_eval.models"]["showo"]
    module, attribute = target.split(":")
    assert getattr(importlib.import_module(module), attribute) is lmms_eval_model.lmms_eval_manifest
    assert "lmms-eval>=0.7" in pyproject["project"]["optional-dependencies"]["eval"]
    # the older plugin layout (LMMS_EVAL_PLUGINS): <plugin>.models.AVAILABLE_MODELS, <plugin>.models.<name>.<class>
    plugin = "showo.evaluation.benchmarks.lmms_plugin"
    for name, class_name in importlib.import_module(f"{plugin}.models").AVAILABLE_MODELS.items():
        assert getattr(importlib.import_module(f"{plugin}.models.{name}"), class_name) is ShowoLmms
    assert importlib.util.find_spec(f"{plugin}.tasks").submodule_search_locations
    base = ShowoLmms.__mro__[1]
    assert base.__name__ in ("lmms", "StandInLmms") and ShowoLmms.is_simple


def test_the_real_lmms_eval_registry_resolves_showo():
    pytest.importorskip("lmms_eval", reason="lmms-eval is not installed (pip install 'showo[eval]')")
    env = {**os.environ, "LMMS_EVAL_PLUGINS": "showo.evaluation.benchmarks.lmms_plugin"}
    code = ("from lmms_eval.models import get_model; from lmms_eval.api.model import lmms; "
            "cls = get_model('showo'); print(cls.__module__, cls.__name__, issubclass(cls, lmms))")
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=300,
                          env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-3:] == ["showo.evaluation.benchmarks.lmms_eval_model", "ShowoLmms", "True"]
