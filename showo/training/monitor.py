"""The capability monitor: does fine-tuning keep what the model could do? (``monitor.every=N``)

Every ``monitor.every`` steps, and once before the first step of a run (the row of step 0: the
"before" numbers; a resumed run does not measure again), the main process measures the model in
eval mode, without gradients and without touching the random streams that training draws from, and
adds the numbers to that step's row of ``OUTPUT/metrics.jsonl`` (step 0 has a row of its own, with
no loss), to TensorBoard / wandb when they are on (tag ``monitor/...``), and says them in one line.

Every number is a fraction of items right, in [0, 1], higher is better; ``monitor/seconds`` is the
time the measurement took:

* ``monitor/world_t2i_overall`` (``monitor.world``): the built-in world's GenEval-style prompts,
  ``monitor.prompts_per_category`` of each of the six categories, one picture each, read back from
  its pixels (``showo.world.read_scene``); the mean of the category scores, as the quickstart's
  ``t2i_overall``.
* ``monitor/world_vqa_accuracy`` (``monitor.world``): ``monitor.questions`` held-out pictures, one
  question each; an answer is right when it equals the expected one after normalisation (case,
  punctuation, articles, digits: ``showo.world.answer_matches``), as the quickstart's ``vqa_accuracy``.
* ``monitor/file_answer_accuracy`` and ``monitor/file_t2i_accuracy`` (``monitor.file``): a JSONL file
  of your own, one item a line, each line one of

  - ``{"question": "...", "image": "path", "answer": "..."}``: the model's answer about the picture
    (a path relative to the file's folder), right when it matches ``answer`` as above;
  - ``{"prompt": "..."}``: a picture drawn from a prompt in the world's language ("two blue squares",
    "a red circle to the left of a green triangle"), right when the scene read back from it has what
    the prompt says (``showo.world.caption_matches``: every object named, counts exact, relations
    holding; other objects may be there too).

  The file is read and checked when the run starts: a bad line stops it, naming file, line and field.

Each measurement sees the same items (drawn from ``monitor.seed``), draws picture ``i`` with seed
``monitor.seed + i`` and answers greedily, with the run's sampling settings (its
``generation_config.json``); so a change from one row to the next is the model's, not the draw's.
Reading the numbers: compare each row with step 0's. A budget this small is noisy across models
(at 8 prompts a category, a standard error of ~0.17 per category and ~0.07 overall; at 64 questions,
up to ~0.06), so a drop that stays over several rows is forgetting, a single low row may not be.
Against forgetting, replay the original data: a ``mixture`` source holding the data the model was
trained on beside the new data; the monitor shows whether it was enough.

Costs: a measurement runs on the main process while the others wait for it at their next step (under
``sharding = "fsdp"`` all first gather the whole model into the main process's copy); a ``max_minutes``
budget counts its time (the first run's, then the last one's) apart from the steps' pace.
"""

from __future__ import annotations

import contextlib
import random
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..model.checkpoint_io import jsonl_records
from ..world import answer_matches, caption_matches, geneval_prompts, parse_caption, read_scene
from ..world.heldout import category_scores, score_t2i, vqa_items
from .config import MonitorTraining

PREFIX = "monitor/"
SECONDS = f"{PREFIX}seconds"  # how long the measurement took
ANSWER_TOKENS = 16  # new tokens of an answer (a reasoning model writes its reasoning_tokens on top), as the quickstart
BATCH = 32  # pictures or questions at a time
QUESTION_FIELDS = ("question", "image", "answer")
PROMPT_FIELDS = ("prompt",)
LINES = '{"question": ..., "image": ..., "answer": ...} or {"prompt": ...}'


class CapabilityMonitor:
    """``monitor(pipe)``: the ``monitor/...`` numbers of the pipeline's model (see the module docstring).
    Built on every process, so that a bad ``monitor.file`` stops them all when the run starts."""

    def __init__(self, config: MonitorTraining) -> None:
        self.config, self.every = config, config.every
        self.questions, self.prompts = read_monitor_file(config.file) if config.file is not None else ([], [])
        self._world: dict[int, tuple[list[dict], list[dict]]] = {}  # image size -> (prompts, questions)

    def __call__(self, pipe) -> dict[str, float]:
        started = time.perf_counter()
        model = pipe.model
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad(), kept_random_state(pipe.device):
                metrics = self._measure(pipe)
        finally:
            model.train(was_training)
        return {**metrics, SECONDS: round(time.perf_counter() - started, 3)}

    def _measure(self, pipe) -> dict[str, float]:
        metrics = {}
        if self.config.world:
            prompts, questions = self._world_items(pipe.config.image_size)
            correct = score_t2i(prompts, self._pictures(pipe, [p["prompt"] for p in prompts]))
            metrics[f"{PREFIX}world_t2i_overall"] = category_scores(prompts, correct)["overall"]
            metrics[f"{PREFIX}world_vqa_accuracy"] = answer_accuracy(pipe, questions)
        if self.questions:
            metrics[f"{PREFIX}file_answer_accuracy"] = answer_accuracy(pipe, self.questions)
        if self.prompts:
            texts = [p["prompt"] for p in self.prompts]
            pictures = self._pictures(pipe, texts)
            metrics[f"{PREFIX}file_t2i_accuracy"] = fraction(caption_matches(text, read_scene(picture))
                                                             for text, picture in zip(texts, pictures))
        return metrics

    def _world_items(self, image_size: int) -> tuple[list[dict], list[dict]]:
        if image_size not in self._world:
            cfg = self.config
            self._world[image_size] = (geneval_prompts(cfg.prompts_per_category, cfg.seed),
                                       vqa_items(cfg.questions, cfg.seed, image_size))
        return self._world[image_size]

    def _pictures(self, pipe, prompts: list[str]) -> list[Image.Image]:
        """One picture a prompt, prompt ``i`` drawn with seed ``monitor.seed + i`` (from the model's plan
        of it when the run's generation config plans prompts)."""
        pictures = []
        for start in range(0, len(prompts), BATCH):
            drawn = pipe.prompts_to_draw(prompts[start:start + BATCH])
            pictures += pipe.text_to_image(drawn, plan=False, seed=self.config.seed + start)
        return pictures


def answer_accuracy(pipe, items: list[dict]) -> float:
    """The fraction of ``{"image", "question", "expected"}`` items answered right (greedy answers)."""
    correct = []
    for start in range(0, len(items), BATCH):
        batch = items[start:start + BATCH]
        answers = pipe.answer([i["image"] for i in batch], [i["question"] for i in batch],
                              max_new_tokens=ANSWER_TOKENS)
        correct += [answer_matches(a, i["expected"]) for a, i in zip(answers, batch, strict=True)]
    return fraction(correct)


def fraction(verdicts) -> float:
    verdicts = list(verdicts)
    return sum(map(bool, verdicts)) / len(verdicts) if verdicts else 0.0


@contextlib.contextmanager
def kept_random_state(device: torch.device):
    """Python's, NumPy's and torch's random states (the CPU's, and ``device``'s when it is a GPU) are
    what they were before: measuring does not change what training draws next."""
    python, numpy = random.getstate(), np.random.get_state()
    gpus = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=gpus):
        try:
            yield
        finally:
            random.setstate(python)
            np.random.set_state(numpy)


def summary(step: int, metrics: dict[str, float]) -> str:
    """``monitor at step 50: world_t2i_overall 0.417, world_vqa_accuracy 0.625 (12.3 s)``."""
    shown = ", ".join(f"{k.removeprefix(PREFIX)} {v:.3f}" for k, v in metrics.items() if k != SECONDS)
    return f"monitor at step {step}: {shown} ({metrics[SECONDS]:.1f} s)"


# -- the user's file -------------------------------------------------------------------------------
def read_monitor_file(path: str | Path) -> tuple[list[dict], list[dict]]:
    """``(questions, prompts)`` of a monitor JSONL file: ``{"image" (a PIL picture), "question",
    "expected"}`` and ``{"prompt"}`` items, in file order. Blank lines are skipped; anything else that
    is not one of the two kinds of line raises a ``ValueError`` naming ``FILE:LINE`` and the field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"monitor.file: {path} does not exist (expected a JSONL file, one {LINES} a line)")
    questions, prompts = [], []
    for where, item in jsonl_records(path, lambda number: f"{path}:{number}"):
        if not isinstance(item, dict) or not ({"question", "prompt"} & set(item)):
            got = sorted(item) if isinstance(item, dict) else type(item).__name__
            raise ValueError(f"{where}: expected {LINES}, got {got}")
        if "prompt" in item:
            prompts.append(_prompt_item(item, where))
        else:
            questions.append(_question_item(item, where, path.parent))
    if not questions and not prompts:
        raise ValueError(f"monitor.file: {path} holds no item; expected one {LINES} a line")
    return questions, prompts


def _strings(item: dict, fields: tuple[str, ...], where: str) -> dict[str, str]:
    """``item``'s fields, each a non-empty string, and no other field."""
    unknown = sorted(set(item) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown fields {unknown}; a line of this kind has exactly {list(fields)}")
    for name in fields:
        value = item.get(name)
        if not isinstance(value, str) or not value.strip():
            got = "nothing" if name not in item else repr(value)
            raise ValueError(f"{where}: {name}: expected a non-empty string, got {got}")
    return item


def _question_item(item: dict, where: str, folder: Path) -> dict:
    item = _strings(item, QUESTION_FIELDS, where)
    image = folder / item["image"]
    if not image.is_file():
        raise ValueError(f"{where}: image: {image} does not exist (paths are relative to the file's folder)")
    try:
        with Image.open(image) as opened:
            picture = opened.convert("RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{where}: image: {image} is not a picture that can be read ({e})") from None
    return {"image": picture, "question": item["question"], "expected": item["answer"]}


def _prompt_item(item: dict, where: str) -> dict:
    prompt = _strings(item, PROMPT_FIELDS, where)["prompt"]
    if not parse_caption(prompt):
        raise ValueError(f"{where}: prompt: {prompt!r} names no object of the built-in world, so its picture "
                         "cannot be checked; expected e.g. \"two blue squares\" or \"a red circle at the top left\"")
    return {"prompt": prompt}
