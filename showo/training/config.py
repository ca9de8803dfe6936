"""The training configuration: typed, frozen sections, built from a preset, a file and overrides.

Precedence: preset < ``--config FILE`` (JSON or TOML) < ``key=value`` overrides. Dotted keys
reach into nested tables (``data.t2i.path=shards/*.tar``, ``model.llm.num_layers=4``,
``transformer.loss_weights.mmu=3``); values are parsed as JSON when they parse (numbers,
booleans, lists), as strings otherwise.

Shared by both trainers: the model and tokenizers to start from, the data, batch sizes, the
optimisation and the bookkeeping. The transformer trainer (``task = "showo"``) reads its own
section ``transformer``, the image-tokenizer trainer (``task = "tokenizer"``) its section
``image_tokenizer``. Every field is checked by type and range when the config is built
(``showo.model.validation``), and every error names its dotted field.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import tomllib
from dataclasses import field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import field_validator

from ..generation.generation_config import GenerationConfig
from ..model.adapters import LORA_TARGETS, lora_config
from ..model.config import MagvitConfig, PhiConfig, ShowoConfig, magvit_preset, showo_preset
from ..model.text_tokenizer import DEFAULT_BOS_EOS
from ..model.validation import (
    Bool,
    Fraction,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Str,
    build,
    config_dataclass,
)

FLOWS = ("t2i", "lm", "mmu", "mixed")
SOURCE = "training config"


@config_dataclass
class TextTokenizerTraining:
    """Train a BPE text tokenizer on a named corpus (``tokenizer = {"train_on": ...}``): ``"data"``, the
    run's own texts (captions, class names, conversations, text rows and interleaved text of the
    sources in ``data``); ``"world"``, the built-in world's. ``samples``: how many samples to read
    (over all flows for ``"data"``; a finite source is read at most once through)."""

    # The corpora that ``showo.training.components.TOKENIZER_CORPORA`` provides.
    corpora: ClassVar[tuple[str, ...]] = ("data", "world")
    # ``TextTokenizer.train_bpe``'s vocabulary holds the 256 byte-level symbols and its special token
    # before any merge: a smaller size would silently come out larger.
    min_vocab_size: ClassVar[int] = 256 + 1

    train_on: Str
    vocab_size: PositiveInt = 512
    samples: PositiveInt = 20000

    @field_validator("train_on")
    @classmethod
    def _known_corpus(cls, train_on: str) -> str:
        if train_on not in cls.corpora:
            raise ValueError(f"unknown corpus {train_on!r}; known: {list(cls.corpora)}")
        return train_on

    @field_validator("vocab_size")
    @classmethod
    def _room_for_the_alphabet(cls, vocab_size: int) -> int:
        if vocab_size < cls.min_vocab_size:
            raise ValueError(f"must be at least {cls.min_vocab_size} (the 256 byte-level symbols and "
                             f"{DEFAULT_BOS_EOS}, before any merge), got {vocab_size}")
        return vocab_size


@config_dataclass
class TransformerTraining:
    """Fields of the transformer trainer (``task = "showo"``)."""

    loss_weights: dict[str, NonNegativeFloat] = field(
        default_factory=lambda: {"t2i": 1.0, "lm": 0.1, "mmu": 1.0, "mixed": 1.0})
    max_seq_length: PositiveInt = 192  # lm / mmu / mixed rows are cut to this many tokens
    min_masking_rate: Fraction = 0.0
    caption_dropout: Fraction = 0.1
    # "all": a conversation's turns in one row, each answer learned (the released LLaVA
    # training); "one": one turn drawn per row.
    mmu_turns: Literal["all", "one"] = "all"
    sample_every: NonNegativeInt = 0  # write a grid of sample images every K steps (0: never)
    sample_prompts: tuple[Str, ...] = ()
    # Sampling defaults written to final/generation_config.json (GenerationConfig fields),
    # over those of ``init_from``'s folder: e.g. {"steps": 24, "guidance_scale": 3.0}.
    generation: dict[str, Any] = field(default_factory=dict)


@config_dataclass
class ImageTokenizerTraining:
    """Fields of the MAGVIT-v2 trainer (``task = "tokenizer"``)."""

    image_size: PositiveInt = 256  # training images are resized and cropped to this
    recon_loss: Literal["l1", "l2"] = "l1"
    entropy_weight: NonNegativeFloat = 1.0  # scales the quantizer's entropy loss (its own multiplier is 0.1)
    adversarial_weight: NonNegativeFloat = 0.0  # > 0 adds a PatchGAN discriminator (hinge loss)
    adversarial_start: NonNegativeInt = 0
    # Train only the decoder: the codes stay those of ``init_from``, so every model trained
    # on them stays valid while the reconstructions sharpen.
    decoder_only: Bool = False


@config_dataclass
class LoraTraining:
    """LoRA (``showo.model.adapters``, through peft): low-rank adapters on the layers whose names
    end in one of ``targets`` train, every weight of ``init_from``'s model stays frozen; the run
    writes the adapter alone. ``alpha``: the update is scaled by ``alpha / rank`` (None: the rank,
    a scale of 1). ``token_ids``: the embedding rows of these ids train too (tokens the base never
    learned)."""

    rank: PositiveInt = 16
    alpha: PositiveFloat | None = None
    dropout: Fraction = 0.0
    targets: tuple[Str, ...] = LORA_TARGETS
    token_ids: tuple[NonNegativeInt, ...] = ()

    def peft_config(self):
        return lora_config(self.rank, self.alpha, self.dropout, self.targets, self.token_ids)


@config_dataclass
class MonitorTraining:
    """The capability monitor (``showo.training.monitor``): every ``every`` steps, and before the first
    step, the model is measured on held-out items and the numbers join that step's row of
    ``metrics.jsonl``. ``world``: the built-in world's GenEval-style prompts (``prompts_per_category``
    of each category) and questions (``questions``); ``file``: a JSONL file of your own questions and
    prompts (read when the run starts). ``seed`` picks the world's items and the pictures' seeds: every
    measurement sees the same ones."""

    every: PositiveInt
    world: Bool = True
    file: Str | None = None
    prompts_per_category: PositiveInt = 8
    questions: PositiveInt = 64
    seed: NonNegativeInt = 0


@config_dataclass
class TrainConfig:
    task: Literal["showo", "tokenizer"] = "showo"
    # -- what to start from -------------------------------------------------------------------
    # A Show-o preset name and overrides of its fields: {"preset": "world", "llm": {"num_layers": 8}}.
    model: dict[str, Any] = field(default_factory=lambda: {"preset": "tiny"})
    init_from: Str | None = None  # a checkpoint folder, or the name of an earlier stage's output
    # The image tokenizer: a folder, or a frozen random one {"preset": ..., "seed": ..., MagvitConfig fields}.
    vq: Str | dict[str, Any] | None = None
    tokenizer: Str | TextTokenizerTraining | None = None  # text tokenizer folder, or a BPE to train
    # -- data: one source spec per flow; a flow without a source is off ------------------------
    data: dict[str, dict[str, Any]] = field(default_factory=dict)
    batch_size: dict[str, PositiveInt] = field(default_factory=lambda: {"t2i": 8, "lm": 4, "mmu": 8, "mixed": 4})
    on_bad_data: Literal["skip", "stop"] = "skip"
    # -- optimisation --------------------------------------------------------------------------
    learning_rate: NonNegativeFloat = 1e-4
    min_lr_ratio: Fraction = 0.1  # cosine decays to learning_rate * min_lr_ratio
    warmup_steps: NonNegativeInt = 100
    max_steps: PositiveInt = 1000
    # Train for this many minutes instead: the step count is sized from the step time measured in
    # warm-up, shortened where the pace slows, and kept in OUTPUT/time_budget.json; max_steps still
    # caps it (see showo.training.time_budget).
    max_minutes: PositiveFloat | None = None
    weight_decay: NonNegativeFloat = 0.01
    betas: tuple[Fraction, Fraction] = (0.9, 0.999)
    grad_clip: PositiveFloat = 1.0
    grad_accum: PositiveInt = 1
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    gradient_checkpointing: Bool = False
    seed: NonNegativeInt = 0
    # Train LoRA adapters instead of every weight (``lora.rank=16``); needs ``init_from``.
    lora: LoraTraining | None = None
    torch_threads: PositiveInt | None = None  # CPU threads for torch (None: torch's own choice)
    # None: every process holds the whole model (DDP; or what accelerate's config asks for on GPUs);
    # "fsdp": each holds 1/N of every weight (PyTorch FSDP2, on CPU processes too), and checkpoints
    # resume on any number of processes (``showo.training.sharding``).
    sharding: Literal["fsdp"] | None = None
    # -- bookkeeping -------------------------------------------------------------------------
    checkpoint_every: PositiveInt = 500
    keep_last: PositiveInt = 3
    log_every: PositiveInt = 1
    tensorboard: Bool = False
    wandb: Bool = False
    # Measure the model on held-out items every monitor.every steps (``monitor.every=50``; MonitorTraining).
    monitor: MonitorTraining | None = None
    # -- each trainer's own fields -------------------------------------------------------------
    transformer: TransformerTraining = field(default_factory=TransformerTraining)
    image_tokenizer: ImageTokenizerTraining = field(default_factory=ImageTokenizerTraining)

    def __post_init__(self) -> None:
        problems = [*_data_problems(self), *_model_problems(self.model), *_vq_problems(self.vq)]
        if self.lora is not None and (self.task != "showo" or self.init_from is None):
            problems.append("lora: adapters train on a Show-o model given by init_from (task = \"showo\")")
        problems += _monitor_problems(self) + _sharding_problems(self)
        try:
            GenerationConfig(**self.transformer.generation)
        except (TypeError, ValueError) as e:
            problems.append(f"transformer.generation: {e}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def flows(self) -> tuple[str, ...]:
        return tuple(f for f in FLOWS if f in self.data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = SOURCE) -> TrainConfig:
        d = copy.deepcopy(d)
        if isinstance(d.get("data"), dict):  # data.FLOW=null turns a flow off
            d["data"] = {flow: spec for flow, spec in d["data"].items() if spec is not None}
        # batch_size.lm=1 and transformer.loss_weights.mmu=3 change one flow's value, not the table
        if isinstance(d.get("batch_size"), dict):
            d["batch_size"] = {**_default(cls, "batch_size"), **d["batch_size"]}
        transformer = d.get("transformer")
        if isinstance(transformer, dict) and isinstance(transformer.get("loss_weights"), dict):
            defaults = _default(TransformerTraining, "loss_weights")
            transformer["loss_weights"] = {**defaults, **transformer["loss_weights"]}
        return build(cls, d, source)


def _data_problems(cfg: TrainConfig) -> list[str]:
    problems = []
    unknown = sorted(set(cfg.data) - set(FLOWS))
    if unknown:
        problems.append(f"data: unknown flows {unknown}; flows are {list(FLOWS)}")
    if cfg.task == "tokenizer":
        if len(cfg.data) != 1:
            problems.append(f"data: the image tokenizer trains on one source, got {len(cfg.data)}")
        return problems
    if not cfg.data:
        problems.append("data: give at least one flow (t2i, lm, mmu, mixed)")
    for key, table in (("batch_size", cfg.batch_size), ("transformer.loss_weights", cfg.transformer.loss_weights)):
        missing = [flow for flow in cfg.data if flow not in table]
        if missing:
            problems.append(f"{key}: no value for the flows {missing}")
    return problems


def _monitor_problems(cfg: TrainConfig) -> list[str]:
    monitor = cfg.monitor
    if monitor is None:
        return []
    if cfg.task != "showo":
        return ["monitor: the capability monitor measures a Show-o model (task = \"showo\")"]
    if not monitor.world and monitor.file is None:
        return ["monitor: nothing to measure: monitor.world is false and monitor.file is not set"]
    return []


def _sharding_problems(cfg: TrainConfig) -> list[str]:
    if cfg.sharding is None:
        return []
    if cfg.task != "showo":
        return [f"sharding: {cfg.sharding!r} shards a Show-o model (task = \"showo\"); the image tokenizer "
                "trains unsharded (sharding = null)"]
    if cfg.lora is not None:
        return [f"sharding: {cfg.sharding!r} with lora is not supported (LoRA trains a few weights beside a "
                "frozen base); leave sharding unset (null)"]
    if cfg.mixed_precision == "fp16":
        return [f"sharding: {cfg.sharding!r} with mixed_precision = \"fp16\" is not supported (no loss scaler "
                "for sharded gradients); use \"bf16\" or \"no\""]
    return []


def _model_problems(model: dict[str, Any]) -> list[str]:
    """``model`` names a Show-o preset and overrides fields that ``ShowoConfig`` has, with values it
    takes (checked on the preset; the vocabulary fields come from the tokenizers later)."""
    try:
        base = showo_preset(model.get("preset", "tiny"))
    except ValueError as e:
        return [f"model.preset: {e}"]
    problems = [f"model.{k}: unknown field" for k in sorted(set(model) - _fields(ShowoConfig) - {"preset"})]
    llm = model.get("llm", {})
    if not isinstance(llm, dict):
        problems.append(f"model.llm: expected a table of PhiConfig fields, got {llm!r}")
    else:
        problems += [f"model.llm.{k}: unknown field" for k in sorted(set(llm) - _fields(PhiConfig))]
    if problems:
        return problems
    fields = {k: v for k, v in model.items() if k not in ("preset", "llm")}
    try:
        dataclasses.replace(base, llm=dataclasses.replace(base.llm, **llm), **fields)
    except ValueError as e:
        return [f"model: {e}"]
    return []


def _vq_problems(vq: str | dict[str, Any] | None) -> list[str]:
    """A random image tokenizer names a MAGVIT-v2 preset and overrides only ``MagvitConfig`` fields."""
    if not isinstance(vq, dict):
        return []
    if "preset" not in vq:
        return ["vq: a table needs a preset: {\"preset\": NAME, \"seed\": S}"]
    try:
        magvit_preset(vq["preset"])
    except ValueError as e:
        return [f"vq.preset: {e}"]
    return [f"vq.{k}: unknown field" for k in sorted(set(vq) - _fields(MagvitConfig) - {"preset", "seed"})]


def _default(cls, name: str) -> Any:
    return next(f for f in dataclasses.fields(cls) if f.name == name).default_factory()


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


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
