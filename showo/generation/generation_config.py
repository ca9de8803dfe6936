"""Sampling defaults that travel with a model: ``generation_config.json`` in its folder.

As with Hugging Face models, a folder may say how its pictures are best sampled (and whether
its prompts are first planned, ``showo.generation.prompting``, or whether it reasons before it answers,
``answer_marker``); the pipeline, ``showo generate`` and the web demo use these values wherever
the caller gives none. A folder without the file gets the paper's values (18 steps, guidance
1.75, prompts drawn as given, answers given directly).

Every field is checked when the config is built (``showo.model.validation``), each error naming
the file, the field, what it must be and what it got: steps an integer in 1..1000, guidance and
temperature finite numbers in [0, 100] (the bounds of ``showo.generation.arguments``, where a
larger value only burns compute or overflows), a known schedule, and the sampling accelerations
of ``MaskGITSampler`` (all off unless the file names them; an older file without them loads as
before): ``unmask`` with its ``confidence_threshold`` or ``entropy_budget``, ``order`` and
``guidance_interval`` (a JSON list ``[lo, hi]``), and the reuse of image keys/values across
steps (``cache_refresh_every``, ``cache_warmup_steps``; ``generate_image_tokens``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator

from ..model.checkpoint_io import atomic_write, read_json
from ..model.validation import (
    build,
    config_dataclass,
    is_finite_number,
    is_integer,
    must,
    unicode_problem,
)
from .arguments import MAX_GUIDANCE, MAX_STEPS, MAX_TEMPERATURE
from .generate_image import check_cache_refresh_every, check_cache_warmup_steps
from .maskgit import DRAWS, ORDERS, UNMASK_RULES, MaskGITSampler, check_choice, check_guidance_interval, check_schedule

FILENAME = "generation_config.json"


def _text_marker(value: Any) -> bool:
    return value is None or (isinstance(value, str) and bool(value.strip()) and unicode_problem(value) is None)


Steps = Annotated[Any, must(lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
                  must(lambda v: v <= MAX_STEPS, f"an integer <= {MAX_STEPS} (more steps only burn compute)")]
GuidanceScale = Annotated[Any, must(is_finite_number, "a finite number"), must(lambda v: v >= 0, ">= 0"),
                          must(lambda v: v <= MAX_GUIDANCE, f"<= {MAX_GUIDANCE:g} (larger only amplifies noise)")]
Temperature = Annotated[Any, must(is_finite_number, "a finite number"), must(lambda v: v >= 0, ">= 0"),
                        must(lambda v: v <= MAX_TEMPERATURE, f"<= {MAX_TEMPERATURE:g} (hotter is uniform noise)")]
Schedule = Annotated[Any, AfterValidator(check_schedule)]
Unmask = Annotated[Any, AfterValidator(lambda v: check_choice("unmask", v, UNMASK_RULES))]
Order = Annotated[Any, AfterValidator(lambda v: check_choice("order", v, ORDERS))]
Draw = Annotated[Any, AfterValidator(lambda v: check_choice("draw", v, DRAWS))]
ConfidenceThreshold = Annotated[Any, must(lambda v: v is None or (is_finite_number(v) and 0 < v <= 1),
                                          "null or a probability in (0, 1]")]
EntropyBudget = Annotated[Any, must(lambda v: v is None or (is_finite_number(v) and v >= 0),
                                    "null or a number of nats >= 0")]
GuidanceInterval = Annotated[Any, AfterValidator(check_guidance_interval)]  # a [lo, hi] list becomes a tuple
CacheRefreshEvery = Annotated[Any, AfterValidator(check_cache_refresh_every)]
CacheWarmupSteps = Annotated[Any, AfterValidator(check_cache_warmup_steps)]


@config_dataclass
class GenerationConfig:
    steps: Steps = 18  # MaskGIT steps per picture
    guidance_scale: GuidanceScale = 1.75  # classifier-free guidance w in (1 + w) * cond - w * uncond
    schedule: Schedule = "cosine"  # cosine | linear | sigmoid | pow<p>
    temperature: Temperature = 1.0  # of the Gumbel noise on confidences that picks what is re-masked
    # text-to-image draws the model's own plan of the prompt (showo.generation.prompting)
    plan_prompts: Annotated[Any, must(lambda v: isinstance(v, bool), "true or false")] = False
    # the model reasons before it answers; the answer follows this
    answer_marker: Annotated[Any, must(_text_marker, "null or a non-empty string")] = None
    # tokens an answer may spend on that reasoning, beyond its max_new_tokens
    reasoning_tokens: Annotated[Any, must(lambda v: is_integer(v) and v >= 0, "an integer >= 0")] = 0
    # sampling accelerations (showo.generation.maskgit.MaskGITSampler), all off by default:
    unmask: Unmask = "schedule"  # schedule | confidence | entropy: also commit the positions the model is sure of
    confidence_threshold: ConfidenceThreshold = None  # unmask=confidence: commit codes this probable
    entropy_budget: EntropyBudget = None  # unmask=entropy: summed entropy (nats) committed beyond the schedule
    order: Order = "confidence"  # confidence | halton: the order in which positions are committed
    guidance_interval: GuidanceInterval = None  # [lo, hi]: guide only steps with lo <= step / steps < hi
    draw: Draw = "multinomial"  # multinomial | inverse_cdf: the same distribution, cheaper on a CPU
    # null | k >= 1: reuse the keys/values of unchanged image positions, a full step every k steps
    cache_refresh_every: CacheRefreshEvery = None
    cache_warmup_steps: CacheWarmupSteps = 1  # the first steps always run the whole image

    def __post_init__(self) -> None:
        # the options that depend on each other (unmask=confidence needs confidence_threshold, ...)
        MaskGITSampler(self.steps, self.schedule, self.temperature, unmask=self.unmask,
                       confidence_threshold=self.confidence_threshold, entropy_budget=self.entropy_budget,
                       order=self.order, guidance_interval=self.guidance_interval, draw=self.draw)

    @classmethod
    def from_folder(cls, folder: str | Path) -> GenerationConfig:
        """The folder's ``generation_config.json``, or the defaults when it has none."""
        path = Path(folder) / FILENAME
        if not path.is_file():
            return cls()
        values = read_json(path)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path}: unknown fields {unknown}; known fields: {sorted(known)}")
        return build(cls, values, str(path))

    def save(self, folder: str | Path) -> None:
        """Write ``folder/generation_config.json`` atomically."""
        text = json.dumps(asdict(self), indent=2) + "\n"
        atomic_write(Path(folder) / FILENAME, lambda tmp: tmp.write_text(text))

    # The fields that speed image decoding up at some cost in fidelity (``generate_image_tokens``'s
    # keyword arguments of the same names); ``mode="released"`` decodes without them.
    ACCELERATIONS = ("unmask", "confidence_threshold", "entropy_budget", "order", "guidance_interval", "draw",
                     "cache_refresh_every", "cache_warmup_steps")

    def accelerations(self) -> dict[str, Any]:
        """The sampling accelerations this config names, as ``generate_image_tokens`` keywords."""
        return {name: getattr(self, name) for name in self.ACCELERATIONS}

    def without_accelerations(self) -> GenerationConfig:
        """This config with every acceleration off (the exact sampler; steps, guidance and the
        rest unchanged): ``pipe.generation = pipe.generation.without_accelerations()``."""
        return replace(self, **GenerationConfig().accelerations())

    def resolve(self, **given) -> dict:
        """``given`` with every None replaced by this config's value."""
        return {name: getattr(self, name) if value is None else value for name, value in given.items()}
