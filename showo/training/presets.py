"""Named training recipes (``showo train --preset NAME``); each is a plain dict of
:class:`~showo.training.config.TrainConfig` fields, so a file or ``key=value`` can change any.

* ``tiny``: a small model on the built-in world, with a frozen random image tokenizer: the CI
  check that every flow trains and that loss goes down, in a minute on 2 CPU cores.
* ``world-tokenizer``, ``world``: the recipe of the shipped model (``showo/weights/world``):
  first the MAGVIT-v2 tokenizer on world images, then the transformer on all four flows.
* ``world-quick``: the transformer of ``showo quickstart --retrain`` (30 minutes from scratch).
* ``world-stage1`` .. ``world-stage3`` and ``show-o-stage1`` .. ``show-o-stage3``: Show-o's
  three stages (SHOWO_SPEC section 6), each starting from the previous stage's output by
  name: ``--output runs/stage2`` with ``init_from=stage1`` starts from ``runs/stage1``.
  The ``show-o-*`` ones are the paper's recipe at 256x256 for real data: set the data paths,
  e.g. ``data.t2i.path='shards/{00000..01000}.tar'`` (see the README).
"""

from __future__ import annotations

import copy
from typing import Any

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


# The data of world-quick: of the pictures to draw, a quarter hold many objects that share
# attributes ("crowded"), a quarter exactly two different shapes, half are ordinary scenes (the
# shipped model's last runs, 19 to 21, drew from a third of each); half the questions are
# about crowded scenes.
# Two thirds of its text rows are prompt plans (showo.planning): it draws the plan it writes.
# Its answers show their work (showo.world.reasoning): it answers after comparing every object
# with what the question asks about.
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
        "max_seq_length": 400,
        "learning_rate": 2e-3,
        "warmup_steps": 10,
        "max_steps": 60,
        "checkpoint_every": 20,
        "sample_prompts": WORLD_PROMPTS[:2],
    },
    "world-tokenizer": {
        "task": "tokenizer",
        "vq": {"preset": "world"},
        "image_size": 64,
        "data": {"t2i": _world("t2i")},
        "batch_size": {"t2i": 16},
        "recon_loss": "l2",  # L1's median solution is the black background: it stalls at ~12 dB
        # A tenth of the usual entropy weight and 2e-3: +0.9 dB after 300 steps and 2x the
        # codes used; at 1e-3 and full weight 1,500 steps only reach 22 dB.
        "entropy_weight": 0.1,
        "learning_rate": 2e-3,
        "warmup_steps": 100,
        "max_steps": 4000,
        "checkpoint_every": 500,
    },
    "world": {
        "model": {"preset": "world"},
        "vq": "world-tokenizer",
        "tokenizer": {"train_on": "world", "vocab_size": 400, "samples": 20000},
        "data": _WORLD_DATA,
        # An interleaved row holds 2 to 4 pictures and costs as much as 2 to 4 t2i rows.
        "batch_size": {"t2i": 16, "lm": 4, "mmu": 16, "mixed": 2},
        "max_seq_length": 400,
        "learning_rate": 1e-3,
        "warmup_steps": 100,
        "max_steps": 3000,
        "checkpoint_every": 100,
        "sample_every": 500,
        "sample_prompts": WORLD_PROMPTS,
        # Runs 2 and 4 of the shipped model learned one drawn question per picture; its
        # later runs (mmu_turns=all) learn every turn: see showo/weights/world/training.
        "mmu_turns": "one",
        # How the quickstart samples. On run 9 of the shipped model guidance 1.5 beat 3.0 by ~0.06
        # t2i_overall (0.5 to 2.0 scored alike; 6.0 lost half); at 3.0, 48 steps gained 0.02 for
        # twice the time. On run 11, 1.0 and 2.0 scored below 1.5.
        "generation": {"steps": 24, "guidance_scale": 1.5},
    },
}


# world-quick: the transformer of ``showo quickstart --retrain``, from scratch in ~22 minutes on 2
# CPU cores: about the shipped model's last data, every question of a picture, and half the world
# preset's batches for about twice the steps (after 5.7 minutes of each, t2i loss 0.76 against
# 0.82 at full batches). Its image tokens carry learned row and column embeddings (not in
# Show-o, nor in the shipped model): with rotary phases alone a model learns slowly where a code
# sits, and from scratch these doubled t2i_overall (0.20 -> 0.40) in the same 2,600 steps.
# It is half as wide as the shipped model (128 against 256, 4 heads of 32): a step costs 0.2 s
# instead of 0.47 s, and in 8 minutes of training the narrow model scored a little better than
# the shipped width in bf16 (t2i_overall 0.36 against 0.31, vqa 0.65 against 0.63; 6 layers:
# 0.39 / 0.63). Half of its pictures to draw are ordinary scenes (a quarter each crowded and
# pairs; the shipped model's last runs had a third each), so one picture in eight holds one
# object: at a third, after 6,000 steps most one-object prompts came out empty (single object
# 0.15, colours 0.31 at seed 0; at a half: 0.35 and 0.83). It samples without guidance and with
# Gumbel temperature 3: its unconditional prediction, learned mostly from pictures of many
# objects, expects more objects than a one-object prompt asks for, so guidance pushes such
# pictures toward the empty background (t2i_overall 0.490 / 0.524 / 0.479 at seeds 0 / 1 / 2
# at guidance 1.5, 0.583 / 0.594 / 0.597 at 0 with temperature 3). The shipped model scores
# alike either way (0.944 / 0.941 at temperature 1 / 3). It plans its prompts (showo.planning):
# two thirds of its text rows pair a caption with the complete description of its picture, and
# it draws the description it writes for a prompt (t2i_overall 0.917 / 0.917 / 0.913 against
# 0.580 / 0.583 / 0.569 without plans). It works its answers out (showo.world.reasoning): one
# question a picture, answered after comparing each object with what the question asks about
# (vqa 0.940 / 0.942 / 0.932 against 0.595 / 0.543 / 0.567 answered directly; t2i_overall
# 0.941 / 0.941 / 0.944; see showo/weights/world/training/README.md).
PRESETS["world-quick"] = {
    **copy.deepcopy(PRESETS["world"]),
    "model": {"preset": "world", "image_position_embeddings": True,
              "llm": {"hidden_size": 128, "num_heads": 4, "intermediate_size": 512}},
    "data": _WORLD_QUICK_DATA,
    "batch_size": {"t2i": 8, "lm": 6, "mmu": 8, "mixed": 1},
    # Text rows at full weight (Show-o's lm weight is 0.1): at step 3,000 of 6,000 its plans were
    # right for 0.91 of the prompts, against 0.63 at 0.1.
    "loss_weights": {"t2i": 1.0, "lm": 1.0, "mmu": 1.0, "mixed": 1.0},
    "max_steps": 6000,
    # One question a picture: a worked answer is 46 tokens on average, up to 88.
    "mmu_turns": "one",
    "sample_every": 0,
    "generation": {"steps": 24, "guidance_scale": 0.0, "temperature": 3.0, "plan_prompts": True,
                   "answer_marker": ANSWER_MARKER, "reasoning_tokens": 96},
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

# The paper's recipe (SHOWO_SPEC sections 6 and 8); data paths must be given.
_paper_base = {
    "model": {"preset": "show-o-256"},
    "vq": None, "tokenizer": None,  # set to the MAGVIT-v2 and phi-1.5 folders
    "batch_size": {"t2i": 16, "lm": 8, "mmu": 8, "mixed": 8},
    "max_seq_length": 512, "warmup_steps": 5000, "mixed_precision": "bf16",
    "gradient_checkpointing": True, "checkpoint_every": 5000, "sample_every": 5000,
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


def train_preset(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ValueError(f"unknown training preset {name!r}; choose one of {sorted(PRESETS)}")
    return copy.deepcopy(PRESETS[name])
