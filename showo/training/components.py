"""What a run trains with: the text tokenizer, the frozen image tokenizer, the model, where to
start from. A run stores its tokenizers in ``OUTPUT/tokenizer`` and ``OUTPUT/vq`` the first
time, and a resumed run reads them back from there, so every restart sees the same ones."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

from ..data.sources import Mixture, build_source
from ..data.stream import StreamingSource
from ..data.world_source import world_texts
from ..generation.prompting import CAPTION_QUESTION, understanding_text
from ..model.adapters import add_adapter, load_adapter
from ..model.config import ShowoConfig, magvit_preset, showo_preset
from ..model.magvit2 import MagvitV2, override_config
from ..model.text_tokenizer import TextTokenizer
from ..model.transformer import ShowoModel, check_compatible
from .checkpoints import latest_checkpoint, model_folder
from .config import TextTokenizerTraining, TrainConfig


def data_texts(samples: int, config: TrainConfig) -> Iterator[str]:
    """The texts of the run's own data (``config.data``, every flow, mixtures included), as its
    training rows hold them (``feeder.RowBuilder``): captions and class names, questions in the
    chat template with their answers (a caption read by the mmu flow is the answer to the caption
    question), text rows, the text segments of interleaved documents.

    ``samples`` samples are read, spread evenly over the flows, each flow's source built as
    training builds it on one process (its seed, its ``on_bad_data``); a finite source is read at
    most once through, so a small data set gives fewer. Images are decoded where a source decodes
    them, and dropped at once."""
    flows = config.flows
    for i, flow in enumerate(flows):
        share = samples // len(flows) + (i < samples % len(flows))
        source = build_source(config.data[flow], rank=0, world_size=1, seed=config.seed,
                              on_bad_data=config.on_bad_data)
        for sample in _one_pass(source, share):
            yield from sample_texts(flow, sample)


def sample_texts(flow: str, sample: dict[str, Any]) -> Iterator[str]:
    """The texts of one sample as the rows of ``flow`` tokenize them (images and codes left out)."""
    kind = sample.get("kind")
    if kind == "t2i" and flow == "mmu":  # captioning: the caption answers the caption question
        yield understanding_text(CAPTION_QUESTION) + " " + sample["caption"].strip()
    elif kind == "t2i":
        yield sample["caption"]
    elif kind == "class":
        yield sample["class_name"]
    elif kind in ("lm", "plan"):
        yield sample["text"]
    elif kind == "mmu":  # the question in the chat template, the answer after a space (as mmu rows)
        for question, answer in sample["turns"]:
            yield understanding_text(question) + " " + answer.strip()
    elif kind == "interleaved":
        yield from (segment for segment in sample["segments"] if isinstance(segment, str))


def _one_pass(source, count: int) -> Iterator[dict[str, Any]]:
    """Up to ``count`` samples of ``source``, stopping where a finite source starts over."""
    if count <= 0:
        return
    for taken, sample in enumerate(source, start=1):
        if _read_through(source):  # this sample starts the second pass
            return
        yield sample
        if taken == count:
            return


def _read_through(source) -> bool:
    """Whether every part of ``source`` that is drawn from has been read once through (never for an
    endless source, such as the world)."""
    if isinstance(source, StreamingSource):
        return source.epoch > 0
    if isinstance(source, Mixture):
        weights = [b - a for a, b in zip([0.0, *source.cumulative], source.cumulative)]
        return all(_read_through(s) for s, w in zip(source.sources, weights) if w > 0)
    return False


def _world_corpus(samples: int, config: TrainConfig | None) -> Iterable[str]:
    """The built-in world's texts, whatever the run's data and seed (the world presets' tokenizer)."""
    return world_texts(samples)


def _data_corpus(samples: int, config: TrainConfig | None) -> Iterable[str]:
    if config is None:
        raise ValueError("tokenizer.train_on='data' trains on the run's data: it needs the training config")
    return data_texts(samples, config)


# name -> function(samples, training config) returning the texts to train a BPE tokenizer on; a
# corpus added here is named in ``TextTokenizerTraining.corpora`` too.
TOKENIZER_CORPORA: dict[str, Callable[[int, TrainConfig | None], Iterable[str]]] = {
    "data": _data_corpus, "world": _world_corpus}


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
    """The run's text tokenizer: made (trained, for ``{"train_on": ...}``) and stored in
    ``OUTPUT/tokenizer`` the first time; read back from there ever after, never trained again."""
    stored = output / "tokenizer"
    if is_main and not (stored / "tokenizer.json").is_file():
        make_text_tokenizer(cfg.tokenizer, init, cfg).save(stored)
    wait()  # every process waits, whoever wrote: they must not decide apart
    return TextTokenizer.from_folder(stored)


def make_text_tokenizer(spec, init: Path | None, config: TrainConfig | None = None) -> TextTokenizer:
    """``spec`` (a folder, or the BPE to train; ``config``: the run, whose data ``"data"`` reads),
    else ``init``'s tokenizer."""
    if isinstance(spec, str):
        return TextTokenizer.from_folder(spec)
    if isinstance(spec, TextTokenizerTraining):
        corpus = TOKENIZER_CORPORA.get(spec.train_on)
        if corpus is None:
            known = sorted(TOKENIZER_CORPORA)
            raise ValueError(f"tokenizer.train_on: unknown corpus {spec.train_on!r}; known: {known}")
        return TextTokenizer.train_bpe(corpus(spec.samples, config), vocab_size=spec.vocab_size)
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


def attach_lora(model: ShowoModel, cfg: TrainConfig, checkpoint: Path | None, is_main: bool) -> None:
    """``cfg.lora``'s adapters on ``model`` (frozen from here on): new ones, whose B is zero, or the
    trainable adapter a checkpoint holds; says how many parameters train."""
    if checkpoint is not None:
        load_adapter(model, checkpoint, trainable=True)
    else:
        add_adapter(model, cfg.lora.peft_config())
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    if is_main:
        print(f"lora: rank {cfg.lora.rank} on {list(cfg.lora.targets)}: {trained:,} parameters train, "
              f"{frozen:,} stay frozen ({100 * trained / (trained + frozen):.2f}%)", flush=True)


def build_model(cfg: TrainConfig, tokenizer: TextTokenizer, vq: MagvitV2,
                init: Path | ShowoConfig | None) -> ShowoModel:
    """The model ``init`` holds (a folder), or a new one of ``init``'s config (a sharded checkpoint's: its
    weights are read in later), or of the run's (``cfg.model``, the tokenizers' vocabulary) if None."""
    wanted = model_config(cfg, tokenizer, vq)
    if isinstance(init, Path | str):
        model = ShowoModel.from_pretrained(init)
        layers = wanted.llm.num_layers
        if layers > model.config.llm.num_layers:
            added = model.grow_layers(layers)
            print(f"{init}: grown to {layers} layers (new blocks {added} start as identities)")
    else:
        torch.manual_seed(cfg.seed)
        model = ShowoModel(init or wanted)
    check_compatible(model, vq, tokenizer)
    model.gradient_checkpointing = cfg.gradient_checkpointing
    return model.train()
