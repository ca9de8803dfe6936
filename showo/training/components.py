"""What a run trains with: the text tokenizer, the frozen image tokenizer, the model, where to
start from. A run stores its tokenizers in ``OUTPUT/tokenizer`` and ``OUTPUT/vq`` the first
time, and a resumed run reads them back from there, so every restart sees the same ones."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..data.world_source import world_texts
from ..model.config import ShowoConfig, magvit_preset, showo_preset
from ..model.magvit2 import MagvitV2, override_config
from ..model.text_tokenizer import TextTokenizer
from ..model.transformer import ShowoModel, check_compatible
from .checkpoints import latest_checkpoint, model_folder
from .config import TextTokenizerTraining, TrainConfig

# name -> function returning an iterable of texts to train a BPE tokenizer on
TOKENIZER_CORPORA: dict[str, Callable[[int], Any]] = {"world": world_texts}


def resolve_init(init_from: str, output: str | Path) -> Path:
    """A folder with a model, or the name of an earlier run beside ``output`` (its ``final``
    folder, else its latest checkpoint): ``stage2`` next to ``runs/stage3`` is ``runs/stage2``."""
    candidate = Path(init_from)
    if not candidate.exists():
        candidate = Path(output).parent / init_from
    latest = latest_checkpoint(candidate)
    for folder in (candidate / "final", latest and model_folder(latest), candidate):
        if folder is not None and (folder / "config.json").is_file():
            return folder
    raise FileNotFoundError(
        f"init_from={init_from!r}: no model found at {init_from} or {candidate} "
        "(expected a folder with config.json + weights, or a training output with final/ or checkpoints/)"
    )


def build_text_tokenizer(cfg: TrainConfig, output: Path, init: Path | None, is_main: bool, wait) -> TextTokenizer:
    stored = output / "tokenizer"
    if is_main and not (stored / "tokenizer.json").is_file():
        make_text_tokenizer(cfg.tokenizer, init).save(stored)
    wait()  # every process waits, whoever wrote: they must not decide apart
    return TextTokenizer.from_folder(stored)


def make_text_tokenizer(spec, init: Path | None) -> TextTokenizer:
    if isinstance(spec, str):
        return TextTokenizer.from_folder(spec)
    if isinstance(spec, TextTokenizerTraining):
        corpus = TOKENIZER_CORPORA.get(spec.train_on)
        if corpus is None:
            known = sorted(TOKENIZER_CORPORA)
            raise ValueError(f"tokenizer.train_on: unknown corpus {spec.train_on!r}; known: {known}")
        return TextTokenizer.train_bpe(corpus(spec.samples), vocab_size=spec.vocab_size)
    if spec is None and init is not None and (init / "tokenizer.json").is_file():
        return TextTokenizer.from_folder(init)
    raise ValueError("no text tokenizer: set `tokenizer` to a folder or to {\"train_on\": CORPUS, \"vocab_size\": N}")


def build_vq(cfg: TrainConfig, output: Path, init: Path | None, is_main: bool, wait) -> MagvitV2:
    stored = output / "vq"
    if is_main and not (stored / "config.json").is_file():
        make_vq(cfg.vq, init, output).save_pretrained(stored)
    wait()
    vq = MagvitV2.from_pretrained(stored).eval()
    vq.requires_grad_(False)
    return vq


def make_vq(spec, init: Path | None, output: Path) -> MagvitV2:
    if isinstance(spec, str):  # a folder, or the name of a tokenizer run beside this one
        return MagvitV2.from_pretrained(resolve_init(spec, output))
    if isinstance(spec, dict) and "preset" in spec:
        # A frozen random tokenizer: enough to exercise training where no trained one exists.
        # Other keys change the preset's fields, e.g. {"preset": "world", "channels": 32}.
        torch.manual_seed(spec.get("seed", 0))
        fields = {k: v for k, v in spec.items() if k not in ("preset", "seed")}
        return MagvitV2(override_config(magvit_preset(spec["preset"]), fields, source="vq"))
    if spec is None and init is not None and (init / "vq" / "config.json").is_file():
        return MagvitV2.from_pretrained(init / "vq")
    raise ValueError("no image tokenizer: set `vq` to a folder or to {\"preset\": NAME, \"seed\": S}")


def model_config(cfg: TrainConfig, tokenizer: TextTokenizer, vq: MagvitV2) -> ShowoConfig:
    """The preset with the overrides in ``cfg.model``, its vocabulary taken from the tokenizers."""
    spec = dict(cfg.model)
    base = showo_preset(spec.pop("preset", "tiny"))
    llm = dataclasses.replace(base.llm, **spec.pop("llm", {}))
    vocab = {
        "text_vocab_size": tokenizer.text_vocab_size, "bos_id": tokenizer.bos_id, "eos_id": tokenizer.eos_id,
        "codebook_size": vq.config.codebook_size, "downsample_factor": vq.config.downsample_factor,
    }
    return dataclasses.replace(base, llm=llm, **{**vocab, **spec})


def build_model(cfg: TrainConfig, tokenizer: TextTokenizer, vq: MagvitV2, init: Path | None) -> ShowoModel:
    wanted = model_config(cfg, tokenizer, vq)
    if init is not None:
        model = ShowoModel.from_pretrained(init)
        layers = wanted.llm.num_layers
        if layers > model.config.llm.num_layers:
            added = model.grow_layers(layers)
            print(f"{init}: grown to {layers} layers (new blocks {added} start as identities)")
    else:
        torch.manual_seed(cfg.seed)
        model = ShowoModel(wanted)
    check_compatible(model, vq, tokenizer)
    model.gradient_checkpointing = cfg.gradient_checkpointing
    return model.train()
