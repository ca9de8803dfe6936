"""Show-o as an lmms-eval model (github EvolvingLMMs-Lab/lmms-eval, 0.7):
``lmms-eval --model showo --model_args pretrained=DIR --tasks pope,mme,...``.

lmms-eval is an optional extra (``pip install 'showo[eval]'``). It finds this model through the
Python entry point ``showo`` of the group ``lmms_eval.models`` (showo's pyproject.toml; a
``ModelManifest`` from ``lmms_eval_manifest``), the registry lmms-eval 0.7 reads; older versions
read ``LMMS_EVAL_PLUGINS=showo.evaluation.benchmarks.lmms_plugin`` instead (that package's
``models.AVAILABLE_MODELS``), and the class is also put in the ``register_model`` registry.
Without lmms-eval this module still imports: ``ShowoLmms`` then derives from ``StandInLmms``, a
small copy of the interface, so it can be used and tested alone.

``model_args`` (lmms-eval turns ``true``/``false`` and numbers into Python values):

- ``pretrained``: a pipeline folder or Hub id (default: the shipped model); ``vq``, ``tokenizer``,
  ``llm_config`` for a released Show-o folder, ``adapter`` for a LoRA adapter, as ``showo answer``
  takes them; ``device`` (default: ``cuda:LOCAL_RANK`` when torch sees a GPU, else cpu), ``dtype``
  (auto | fp32 | bf16 | fp16);
- ``batch_size``: questions answered at once (``--batch_size`` of lmms-eval sets it too);
- ``max_new_tokens``: when a task does not give one; ``seed``: of sampled answers (tasks are greedy
  unless they ask for ``do_sample``);
- ``record``: a JSON file to write the checkpoint's sha256 and these settings to.

Requests: ``generate_until`` answers ``pipe.answer`` would give (batched, grouped by generation
settings, cut at the task's ``until`` strings); ``loglikelihood`` scores a continuation
(``likelihood.continuation_logprobs``; ``for_evaluator``: how the pairs reach lmms-eval 0.7.3).
Show-o answers about one image: a document with several uses its first (with a warning), one with
none gets an empty answer (and a log-probability of -inf). Multi-round generation is not supported.
"""

from __future__ import annotations

import abc
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from ...model.image_processing import write_text_file
from ...pipeline import SHIPPED_DIR, ShowoPipeline
from .likelihood import continuation_logprobs
from .records import FORMAT, checkpoint_record, distributed_rank, software

MODEL_NAME = "showo"
CLASS_PATH = "showo.evaluation.benchmarks.lmms_eval_model.ShowoLmms"
HAVE_LMMS_EVAL = importlib.util.find_spec("lmms_eval") is not None
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class StandInLmms(abc.ABC):
    """The part of ``lmms_eval.api.model.lmms`` (0.7) that models use, for when lmms-eval is not
    installed: rank and world size, the ``task_dict`` the evaluator fills (task -> split -> docs),
    the three request methods, and ``create_from_arg_string``."""

    is_simple: bool = True

    def __init__(self) -> None:
        self._rank, self._world_size = 0, 1
        self.task_dict: dict = {}

    @abc.abstractmethod
    def loglikelihood(self, requests) -> list[tuple[float, bool]]: ...

    @abc.abstractmethod
    def generate_until(self, requests) -> list[str]: ...

    @abc.abstractmethod
    def generate_until_multi_round(self, requests) -> list[str]: ...

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None):
        args = dict(parse_value(part.split("=", 1)) for part in arg_string.split(",") if part.strip())
        extra = {k: v for k, v in (additional_config or {}).items() if v is not None}
        return cls(**args, **extra)

    @property
    def rank(self) -> int:
        return self._rank

    @property
    def world_size(self) -> int:
        return self._world_size


def parse_value(pair: list[str]) -> tuple[str, object]:
    """lmms-eval's reading of one ``key=value`` of ``--model_args``."""
    if len(pair) != 2:
        raise ValueError(f"--model_args: expected key=value, got {'='.join(pair)!r}")
    key, value = pair[0].strip(), pair[1].strip()
    if value.lower() in ("true", "false"):
        return key, value.lower() == "true"
    if value.isnumeric():
        return key, int(value)
    try:
        return key, float(value)
    except ValueError:
        return key, value


if HAVE_LMMS_EVAL:
    from lmms_eval.api.model import lmms as Base
else:
    Base = StandInLmms


class ShowoLmms(Base):
    """A Show-o pipeline behind lmms-eval's model interface (see the module docstring)."""

    is_simple = True

    def __init__(self, pretrained: str | None = None, vq: str | None = None, tokenizer: str | None = None,
                 llm_config: str | None = None, adapter: str | None = None, device: str | None = None,
                 dtype: str = "auto", batch_size: int | str = 1, max_new_tokens: int = 64, seed: int = 0,
                 record: str | None = None, pipeline: ShowoPipeline | None = None, **ignored) -> None:
        super().__init__()
        self.batch_size = positive_int("batch_size", batch_size)
        self.max_new_tokens = positive_int("max_new_tokens", max_new_tokens)
        self.seed = int(seed)
        unknown = sorted(k for k in ignored if k != "max_batch_size")
        if unknown:
            warnings.warn(f"showo lmms-eval model: ignoring model_args {unknown}", stacklevel=2)
        self._rank, self._world_size = distributed_rank()
        if pipeline is None:
            if device is None and torch.cuda.is_available():
                device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
            model = str(pretrained) if pretrained is not None else str(SHIPPED_DIR)
            pipeline = ShowoPipeline.from_pretrained(model, vq=vq, tokenizer=tokenizer, llm_config=llm_config,
                                                     device=device, torch_dtype=dtype)
            if adapter is not None:
                pipeline.load_adapter(adapter)
            self.checkpoint = checkpoint_record(model, vq, adapter)
        else:
            self.checkpoint = {"model": "(a pipeline object)", "sha256": None}
        self.pipe = pipeline
        self.settings = {"batch_size": self.batch_size, "max_new_tokens": self.max_new_tokens, "seed": self.seed,
                         "dtype": str(pipeline.dtype).removeprefix("torch."), "device_type": pipeline.device.type,
                         "resolution": pipeline.config.image_size}
        print(f"showo lmms-eval model: {self.checkpoint['model']}, checkpoint sha256 {self.checkpoint['sha256']}",
              file=sys.stderr)
        if record is not None:
            text = json.dumps({"format": FORMAT, "benchmark": "lmms-eval", "checkpoint": self.checkpoint,
                               "settings": self.settings, "run": software()}, indent=2)
            write_text_file(Path(record), text + "\n")
        self._warned: set[str] = set()

    @property
    def device(self) -> torch.device:
        return self.pipe.device

    # -- the documents' pictures ---------------------------------------------------------------------
    def _image(self, doc_to_visual, task: str, split: str, doc_id) -> Image.Image | str | None:
        """The first picture of a document (``doc_to_visual(doc)``), or None when it has none."""
        if doc_to_visual is None:
            return None
        visuals = doc_to_visual(self.task_dict[task][split][doc_id])
        found = [v for v in flatten(visuals) if isinstance(v, Image.Image)
                 or (isinstance(v, (str, Path)) and Path(v).suffix.lower() in IMAGE_SUFFIXES)]
        if len(found) > 1:
            self._warn_once(f"many:{task}", f"showo answers about one image: documents of {task} with several "
                                            "are answered about their first")
        if not found:
            self._warn_once(f"none:{task}", f"showo answers about an image: documents of {task} without one get an "
                                            "empty answer")
            return None
        return found[0].convert("RGB") if isinstance(found[0], Image.Image) else str(found[0])

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, stacklevel=3)

    # -- requests ------------------------------------------------------------------------------------
    def generate_until(self, requests) -> list[str]:
        """The answer to each request: ``args`` = (context, generation kwargs, doc_to_visual, doc_id,
        task, split)."""
        answers: list[str | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            groups.setdefault(json.dumps(request.args[1], sort_keys=True, default=str), []).append(i)
        with tqdm(total=len(requests), desc="showo generate_until", disable=self.rank != 0 or None) as bar:
            for indices in groups.values():
                options, until = self._generation_options(requests[indices[0]].args[1])
                for start in range(0, len(indices), self.batch_size):
                    chunk = indices[start:start + self.batch_size]
                    asked = []
                    for i in chunk:
                        context, _, doc_to_visual, doc_id, task, split = requests[i].args[:6]
                        image = self._image(doc_to_visual, task, split, doc_id)
                        if image is None:
                            answers[i] = ""
                        else:
                            asked.append((i, image, context))
                    if asked:
                        written = self.pipe.answer([image for _, image, _ in asked], [c for _, _, c in asked],
                                                   seed=self.seed + start, **options)
                        for (i, _, _), text in zip(asked, written):
                            answers[i] = cut_at(text, until)
                    bar.update(len(chunk))
        return answers

    def _generation_options(self, kwargs: dict) -> tuple[dict, list[str]]:
        """``pipe.answer``'s arguments and the stop strings for one task's generation kwargs."""
        kwargs = dict(kwargs or {})
        until = kwargs.get("until") or []
        until = [until] if isinstance(until, str) else list(until)
        if int(kwargs.get("num_beams") or 1) > 1:
            self._warn_once("beams", "showo decodes without beam search: num_beams is ignored")
        temperature = float(kwargs.get("temperature") or 0.0)
        sample = bool(kwargs.get("do_sample", temperature > 0)) and temperature > 0
        top_p = kwargs.get("top_p")
        options = {"max_new_tokens": int(kwargs.get("max_new_tokens") or self.max_new_tokens)}
        if sample:
            options.update(top_k=None, top_p=None if top_p in (None, 1, 1.0) else float(top_p),
                           temperature=temperature)
        else:
            options.update(top_k=1, top_p=None, temperature=1.0)
        return options, until

    def loglikelihood(self, requests) -> list[tuple[float, bool]]:
        """(log-probability, is greedy) of each request's continuation: ``args`` = (context,
        continuation or doc_to_target, doc_to_visual, doc_id, task, split)."""
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        with tqdm(total=len(requests), desc="showo loglikelihood", disable=self.rank != 0 or None) as bar:
            for start in range(0, len(requests), self.batch_size):
                asked = []
                for i in range(start, min(start + self.batch_size, len(requests))):
                    context, target, doc_to_visual, doc_id, task, split = requests[i].args[:6]
                    continuation = target if isinstance(target, str) else target(self.task_dict[task][split][doc_id])
                    image = self._image(doc_to_visual, task, split, doc_id)
                    if image is None:
                        results[i] = (float("-inf"), False)
                    else:
                        asked.append((i, image, context, continuation))
                if asked:
                    scored = continuation_logprobs(self.pipe, [a[1] for a in asked], [a[2] for a in asked],
                                                   [a[3] for a in asked])
                    for (i, *_), result in zip(asked, scored):
                        results[i] = result
                bar.update(min(self.batch_size, len(requests) - start))
        return for_evaluator(results)

    def generate_until_multi_round(self, requests) -> list[str]:
        raise NotImplementedError("showo answers one question per image; multi-round tasks are not supported")


def for_evaluator(results: list[tuple[float, bool]]) -> list:
    """``loglikelihood``'s pairs as the installed lmms-eval keeps them. lmms-eval 0.7.3's evaluator
    passes every response through ``unwrap_generation_output``, which turns a (float, bool) pair into
    its string, and its multiple-choice scoring then fails on the string; a ``GenerationResult``
    holding the pair is passed on whole. Other versions (and the stand-in) get the pairs."""
    if not HAVE_LMMS_EVAL:
        return results
    try:
        from lmms_eval.api.instance import GenerationResult, unwrap_generation_output
    except ImportError:  # a version without them keeps responses as they are
        return results
    if unwrap_generation_output((0.0, True))[0] == (0.0, True):
        return results
    return [GenerationResult(text=pair) for pair in results]


def flatten(visuals) -> list:
    if isinstance(visuals, (list, tuple)):
        return [v for item in visuals for v in flatten(item)]
    return [] if visuals is None else [visuals]


def cut_at(text: str, until: Sequence[str]) -> str:
    """``text`` up to the first of the stop strings ``until`` (empty ones ignored)."""
    for stop in until:
        if stop and stop in text:
            text = text.split(stop)[0]
    return text


def positive_int(name: str, value) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"showo lmms-eval model: {name} must be a positive integer, got {value!r}") from None
    if number < 1 or (number != value and str(number) != str(value).strip()):
        raise ValueError(f"showo lmms-eval model: {name} must be a positive integer, got {value!r}")
    return number


def lmms_eval_manifest():
    """The entry point lmms-eval (0.7) reads from the group ``lmms_eval.models``."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_NAME, simple_class_path=CLASS_PATH)


if HAVE_LMMS_EVAL:
    from lmms_eval.api.registry import register_model

    register_model(MODEL_NAME)(ShowoLmms)
