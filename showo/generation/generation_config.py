"""Sampling defaults that travel with a model: ``generation_config.json`` in its folder.

As with Hugging Face models, a folder may say how its pictures are best sampled (and whether
its prompts are first planned, ``showo.generation.prompting``, or whether it reasons before it answers,
``answer_marker``); the pipeline, ``showo generate`` and the web demo use these values wherever
the caller gives none. A folder without the file gets the paper's values (18 steps, guidance
1.75, prompts drawn as given, answers given directly).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .maskgit import MaskGITSampler

FILENAME = "generation_config.json"


@dataclass(frozen=True)
class GenerationConfig:
    steps: int = 18  # MaskGIT steps per picture
    guidance_scale: float = 1.75  # classifier-free guidance w in (1 + w) * cond - w * uncond
    schedule: str = "cosine"  # cosine | linear | sigmoid | pow<p>
    temperature: float = 1.0  # of the Gumbel noise on confidences that picks what is re-masked
    plan_prompts: bool = False  # text-to-image draws the model's own plan of the prompt (showo.generation.prompting)
    answer_marker: str | None = None  # the model reasons before it answers; the answer follows this
    reasoning_tokens: int = 0  # tokens an answer may spend on that reasoning, beyond its max_new_tokens

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {self.steps!r}")
        if not isinstance(self.plan_prompts, bool):
            raise ValueError(f"plan_prompts must be true or false, got {self.plan_prompts!r}")
        if self.answer_marker is not None and not (isinstance(self.answer_marker, str) and self.answer_marker.strip()):
            raise ValueError(f"answer_marker must be null or a non-empty string, got {self.answer_marker!r}")
        if not isinstance(self.reasoning_tokens, int) or isinstance(self.reasoning_tokens, bool) \
                or self.reasoning_tokens < 0:
            raise ValueError(f"reasoning_tokens must be an integer >= 0, got {self.reasoning_tokens!r}")
        if self.guidance_scale < 0:
            raise ValueError(f"guidance_scale must be >= 0, got {self.guidance_scale}")
        MaskGITSampler(self.steps, self.schedule, self.temperature)  # the sampler's own checks

    @classmethod
    def from_folder(cls, folder: str | Path) -> GenerationConfig:
        """The folder's ``generation_config.json``, or the defaults when it has none."""
        path = Path(folder) / FILENAME
        if not path.is_file():
            return cls()
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON: {e}") from None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path}: unknown fields {unknown}; known fields: {sorted(known)}")
        try:
            return cls(**values)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: {e}") from None

    def save(self, folder: str | Path) -> None:
        (Path(folder) / FILENAME).write_text(json.dumps(asdict(self), indent=2) + "\n")

    def resolve(self, **given) -> dict:
        """``given`` with every None replaced by this config's value."""
        return {name: getattr(self, name) if value is None else value for name, value in given.items()}
