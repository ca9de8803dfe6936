"""The training configuration: one frozen dataclass, built from a preset, a file and overrides.

Precedence: preset < ``--config FILE`` (JSON or TOML) < ``key=value`` overrides. Dotted keys
reach into nested tables (``data.t2i.path=shards/*.tar``, ``model.llm.num_layers=4``); values
are parsed as JSON when they parse (numbers, booleans, lists), as strings otherwise.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..generation.generation_config import GenerationConfig

FLOWS = ("t2i", "lm", "mmu", "mixed")
PER_FLOW = ("batch_size", "loss_weights")  # fields that hold one value per flow


@dataclass(frozen=True)
class TrainConfig:
    task: str = "showo"  # "showo" (the transformer) or "tokenizer" (MAGVIT-v2)
    # -- model ------------------------------------------------------------------------------
    model: dict[str, Any] = field(default_factory=lambda: {"preset": "tiny"})  # preset + field overrides
    init_from: str | None = None  # a checkpoint folder, or the name of an earlier stage's output
    vq: str | dict[str, Any] | None = None  # image tokenizer folder, or {"preset": ..., "seed": ...} (random, frozen)
    tokenizer: str | dict[str, Any] | None = None  # text tokenizer folder, or {"train_on": "world", "vocab_size": N}
    # -- data: one source spec per flow; a flow without a source is off ------------------------
    data: dict[str, dict[str, Any]] = field(default_factory=dict)
    batch_size: dict[str, int] = field(default_factory=lambda: {"t2i": 8, "lm": 4, "mmu": 8, "mixed": 4})
    loss_weights: dict[str, float] = field(default_factory=lambda: {"t2i": 1.0, "lm": 0.1, "mmu": 1.0, "mixed": 1.0})
    max_seq_length: int = 192  # lm / mmu / mixed rows are cut to this many tokens
    min_masking_rate: float = 0.0
    caption_dropout: float = 0.1
    # "all": a conversation's turns in one row, each answer learned (the released LLaVA
    # training); "one": one turn drawn per row.
    mmu_turns: str = "all"
    on_bad_data: str = "skip"  # or "stop"
    # -- optimisation --------------------------------------------------------------------------
    learning_rate: float = 1e-4
    min_lr_ratio: float = 0.1  # cosine decays to learning_rate * min_lr_ratio
    warmup_steps: int = 100
    max_steps: int = 1000
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    grad_accum: int = 1
    mixed_precision: str = "no"  # "no" | "bf16" | "fp16"
    gradient_checkpointing: bool = False
    seed: int = 0
    # -- tokenizer training (task = "tokenizer") ----------------------------------------------
    image_size: int = 256  # training images are resized and cropped to this
    recon_loss: str = "l1"  # "l1" | "l2"
    entropy_weight: float = 1.0  # scales the quantizer's entropy loss (its own multiplier is 0.1)
    adversarial_weight: float = 0.0  # > 0 adds a PatchGAN discriminator (hinge loss)
    adversarial_start: int = 0
    # Train only the decoder: the codes stay those of ``init_from``, so every model trained
    # on them stays valid while the reconstructions sharpen.
    decoder_only: bool = False
    # -- bookkeeping -------------------------------------------------------------------------
    checkpoint_every: int = 500
    keep_last: int = 3
    log_every: int = 1
    sample_every: int = 0  # write a grid of sample images every K steps (0: never)
    sample_prompts: tuple[str, ...] = ()
    # Sampling defaults written to final/generation_config.json (GenerationConfig fields),
    # over those of ``init_from``'s folder: e.g. {"steps": 24, "guidance_scale": 3.0}.
    generation: dict[str, Any] = field(default_factory=dict)
    tensorboard: bool = False
    wandb: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.task not in ("showo", "tokenizer"):
            problems.append(f"task must be 'showo' or 'tokenizer', got {self.task!r}")
        for name in ("max_steps", "grad_accum", "checkpoint_every", "keep_last", "log_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        unknown = sorted(set(self.data) - set(FLOWS))
        if unknown:
            problems.append(f"data has unknown flows {unknown}; flows are {list(FLOWS)}")
        if self.mmu_turns not in ("all", "one"):
            problems.append(f"mmu_turns must be 'all' or 'one', got {self.mmu_turns!r}")
        if self.on_bad_data not in ("skip", "stop"):
            problems.append(f"on_bad_data must be 'skip' or 'stop', got {self.on_bad_data!r}")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            problems.append(f"mixed_precision must be no, bf16 or fp16, got {self.mixed_precision!r}")
        if not 0.0 <= self.min_masking_rate <= 1.0 or not 0.0 <= self.caption_dropout <= 1.0:
            problems.append("min_masking_rate and caption_dropout must lie in [0, 1]")
        for key in PER_FLOW:
            missing = [flow for flow in self.data if flow not in getattr(self, key)]
            if self.task == "showo" and missing:
                problems.append(f"{key} has no value for the flows {missing}")
        if self.task == "showo" and not self.data:
            problems.append("no data: give at least one flow under `data` (t2i, lm, mmu, mixed)")
        try:
            GenerationConfig(**self.generation)
        except (TypeError, ValueError) as e:
            problems.append(f"generation: {e}")
        if problems:
            raise ValueError("bad training config: " + "; ".join(problems))

    @property
    def flows(self) -> tuple[str, ...]:
        return tuple(f for f in FLOWS if f in self.data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"{source}: unknown training config keys {unknown}; known keys: {sorted(known)}")
        d = dict(d)
        if isinstance(d.get("data"), dict):  # data.FLOW=null turns a flow off
            d["data"] = {flow: spec for flow, spec in d["data"].items() if spec is not None}
        for key in ("betas", "sample_prompts"):
            if key in d:
                d[key] = tuple(d[key])
        defaults = {f.name: f.default_factory() for f in dataclasses.fields(cls) if f.name in PER_FLOW}
        for key in PER_FLOW:  # loss_weights.mmu=3 changes one flow's value, not the whole table
            if isinstance(d.get(key), dict):
                d[key] = {**defaults[key], **d[key]}
        return cls(**d)


def read_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        return tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {e}") from None


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: nested dicts merge key by key, everything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        old = out.get(key)
        # A data source of another type replaces the old spec instead of mixing fields of both.
        if isinstance(value, dict) and isinstance(old, dict) and value.get("type", old.get("type")) == old.get("type"):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> ``{"a": {"b": 1}, "c": "x"}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} is not of the form key=value")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = out
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def build_config(preset: dict[str, Any], file: str | Path | None, overrides: list[str]) -> TrainConfig:
    d = preset
    if file is not None:
        d = merge(d, read_config_file(file))
    d = merge(d, parse_overrides(overrides))
    return TrainConfig.from_dict(d)
