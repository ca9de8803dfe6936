"""Named training recipes (``showo train --preset NAME``); each is a plain dict of
:class:`~showo.training.config.TrainConfig` fields, so a file or ``key=value`` can change any.

* ``tiny``: a small model on the built-in world, with a frozen random image tokenizer: the CI
  check that every flow trains and that loss goes down, in a minute on 2 CPU cores.
* ``world-tokenizer``, ``world``: the recipe of the shipped model (``showo/weights/world``):
  first the MAGVIT-v2 tokenizer on world images, then the transformer on all four flows.
* ``world-quick``: the transformer of ``showo quickstart --retrain`` (30 minutes from scratch).
* ``world-stage1`` .. ``world-stage3`` and ``show-o-stage1`` .. ``show-o-stage3``: Show-o's
  three stages (the paper's "Training Pipeline"), each starting from the previous stage's output by
  name: ``--output runs/stage2`` with ``init_from=stage1`` starts from ``runs/stage1``.
  The ``show-o-*`` ones are the paper's recipe at 256x256 for real data: set the data paths,
  e.g. ``data.t2i.path='shards/*.tar'`` (see the README).
* ``world-lora``, ``show-o-lora``: LoRA adapters (rank 16) on a trained model, which stays frozen:
  the shipped world model on world data (change ``data`` to teach it yours, and keep world flows
  in a mixture as replay), and a released Show-o (set ``init_from`` and the data paths).
"""

from __future__ import annotations

import copy
from typing import Any

from ..pipeline import SHIPPED_DIR
from ..world.reasoning import ANSWER_MARKER

WORLD_PROMPTS = (
    "a red circle at the top left",
    "two blue squares",
    "a yellow triangle to the left of a green circle",
    "three white circles",
)


def _world(kind: str, split: str = "train") -> dict[str, Any]:
    return {"type": "world", "kind": kind, "split": split}


_WORLD_DATA = {"t2i": _world("t2i"), "lm": _world("lm"), "mmu": _world("mmu"), "mixed": _world("interleaved")}


def _mixture(kind: str, *scenes: str, ordinary: float = 1.0, **options: Any) -> dict[str, Any]:
    """``kind`` rows from ordinary scenes (``ordinary`` parts) and from each of ``scenes`` (one part
    each); ``options`` go to every source (``reasoned=True``)."""
    sources = [{**_world(kind), **options, "weight": ordinary}] + [
        {**_world(kind), **options, "scenes": s, "weight": 1.0} for s in scenes]
    return {"type": "mixture", "sources": sources}


# world-quick's data: half ordinary scenes (at a third, one-object prompts came out empty), plans, worked answers.
_WORLD_QUICK_DATA = {"t2i": _mixture("t2i", "crowded", "pairs", ordinary=2.0),
                     "lm": {"type": "mixture", "sources": [{**_world("lm"), "weight": 1.0},
                                                           {**_world("plan"), "weight": 2.0}]},
                     "mmu": _mixture("mmu", "crowded", reasoned=True), "mixed": _world("interleaved")}

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "model": {"preset": "tiny"},
        "vq": {"preset": "world", "seed": 0},
        "tokenizer": {"train_on": "world", "vocab_size": 400, "samples": 2000},
        "data": _WORLD_DATA,
        "batch_size": {"t2i": 8, "lm": 4, "mmu": 8, "mixed": 4},
        "learning_rate": 2e-3,
        "warmup_steps": 10,
        "max_steps": 60,
        "checkpoint_every": 20,
        "transformer": {"max_seq_length": 400, "sample_every": 20, "sample_prompts": WORLD_PROMPTS[:2]},
    },
    "world-tokenizer": {
        "task": "tokenizer",
        "vq": {"preset": "world"},
        "data": {"t2i": _world("t2i")},
        "batch_size": {"t2i": 16},
        "learning_rate": 2e-3,  # with a tenth of the entropy weight: 2x the codes used, +0.9 dB at 300 steps
        "warmup_steps": 100,
        "max_steps": 4000,
        "checkpoint_every": 500,
        "image_tokenizer": {
            "image_size": 64,
            "recon_loss": "l2",  # L1's median solution is the black background: it stalls at ~12 dB
            "entropy_weight": 0.1,
        },
    },
    "world": {
        "model": {"preset": "world"},
        "vq": "world-tokenizer",
        "tokenizer": {"train_on": "world", "vocab_size": 400, "samples": 20000},
        "data": _WORLD_DATA,
        # An interleaved row holds 2 to 4 pictures and costs as much as 2 to 4 t2i rows.
        "batch_size": {"t2i": 16, "lm": 4, "mmu": 16, "mixed": 2},
        "learning_rate": 1e-3,
        "warmup_steps": 100,
        "max_steps": 3000,
        "checkpoint_every": 100,
        "transformer": {
            "max_seq_length": 400,
            "sample_every": 500,
            "sample_prompts": WORLD_PROMPTS,
            "mmu_turns": "one",  # the shipped model's first runs; its later ones learned every turn
            # Guidance 1.5 beat 3.0 by ~0.06 t2i_overall on the shipped model (docs/world-model.md);
            # 16 steps, inverse-CDF draws and key/value reuse: 3.3x exact's speed at -0.003 (docs/benchmarks.md).
            "generation": {"steps": 16, "guidance_scale": 1.5, "draw": "inverse_cdf", "cache_refresh_every": 3},
        },
    },
}


# world-quick: the transformer of ``showo quickstart --retrain`` (~22 min); reasons: docs/world-model.md.
PRESETS["world-quick"] = {
    **copy.deepcopy(PRESETS["world"]),
    # Half as wide (a step costs 0.2 s, not 0.47 s); learned image positions doubled t2i from scratch.
    "model": {"preset": "world", "image_position_embeddings": True,
              "llm": {"hidden_size": 128, "num_heads": 4, "intermediate_size": 512}},
    "data": _WORLD_QUICK_DATA,
    "batch_size": {"t2i": 8, "lm": 6, "mmu": 8, "mixed": 1},  # half batches for twice the steps
    "max_steps": 6000,
    "transformer": {
        "max_seq_length": 400,
        # Text rows (its prompt plans) at full weight: at 0.1 its plans were right for 0.63 of prompts, not 0.91.
        "loss_weights": {"t2i": 1.0, "lm": 1.0, "mmu": 1.0, "mixed": 1.0},
        "mmu_turns": "one",  # one question a picture: a worked answer is 46 tokens on average, up to 88
        "sample_prompts": WORLD_PROMPTS,
        # Unguided at Gumbel temperature 3 (guidance emptied one-object pictures); plans prompts, works answers out.
        "generation": {"steps": 24, "guidance_scale": 0.0, "temperature": 3.0, "plan_prompts": True,
                       "answer_marker": ANSWER_MARKER, "reasoning_tokens": 96},
    },
}


def _stage(base: dict[str, Any], data: dict[str, Any], init_from: str | None, lr: float, steps: int) -> dict:
    d = copy.deepcopy(base)
    d.update({"data": data, "init_from": init_from, "learning_rate": lr, "max_steps": steps})
    return d


# The world's three stages: the same split of the work as the paper, at world scale.
_world_base = {k: v for k, v in PRESETS["world"].items() if k != "data"}
PRESETS["world-stage1"] = _stage(
    _world_base, {"lm": _world("lm"), "t2i": _world("class"), "mmu": _world("t2i")}, None, 1e-3, 1000)
PRESETS["world-stage2"] = _stage(
    _world_base, {"t2i": _world("t2i"), "mmu": _world("t2i")}, "world-stage1", 1e-3, 1000)
PRESETS["world-stage3"] = _stage(_world_base, _WORLD_DATA, "world-stage2", 3e-4, 1000)

# The paper's recipe (its "Training Pipeline" and experimental setup); data paths must be given.
_paper_base = {
    "model": {"preset": "show-o-256"},
    "vq": None, "tokenizer": None,  # set to the MAGVIT-v2 and phi-1.5 folders
    "batch_size": {"t2i": 16, "lm": 8, "mmu": 8, "mixed": 8},
    "warmup_steps": 5000, "mixed_precision": "bf16", "gradient_checkpointing": True, "checkpoint_every": 5000,
    "transformer": {"max_seq_length": 512, "sample_every": 5000},
}
_paper_data = {
    "lm": {"type": "parquet", "path": None},
    "class": {"type": "image_folder", "root": None},
    "pairs": {"type": "webdataset", "path": None},
    "llava": {"type": "llava", "path": None, "image_root": None},
    "interleaved": {"type": "interleaved", "path": None},
}
PRESETS["show-o-stage1"] = _stage(_paper_base, {"lm": _paper_data["lm"], "t2i": _paper_data["class"],
                                                "mmu": _paper_data["pairs"]}, None, 1e-4, 500_000)
PRESETS["show-o-stage2"] = _stage(_paper_base, {"t2i": _paper_data["pairs"], "mmu": _paper_data["pairs"]},
                                  "show-o-stage1", 1e-4, 1_000_000)
PRESETS["show-o-stage3"] = _stage(_paper_base, {"t2i": _paper_data["pairs"], "mmu": _paper_data["llava"],
                                                "mixed": _paper_data["interleaved"]}, "show-o-stage2", 2e-5, 50_000)


# LoRA: adapters on a trained model; the vq and the text tokenizer are init_from's.
_LORA = {"lora": {"rank": 16}, "vq": None, "tokenizer": None, "warmup_steps": 20}
PRESETS["world-lora"] = {**copy.deepcopy(_world_base), "model": {"preset": "world"}, "init_from": str(SHIPPED_DIR),
                         "data": _WORLD_DATA, "max_steps": 500, **copy.deepcopy(_LORA)}
PRESETS["show-o-lora"] = {**copy.deepcopy(_paper_base), "init_from": None, "learning_rate": 2e-4, "max_steps": 10_000,
                          "data": {"t2i": _paper_data["pairs"], "mmu": _paper_data["llava"]}, **copy.deepcopy(_LORA)}


def train_preset(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ValueError(f"unknown training preset {name!r}; choose one of {sorted(PRESETS)}")
    return copy.deepcopy(PRESETS[name])
