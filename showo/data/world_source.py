"""The built-in world (``showo.world``) as a training source: ``{"type": "world", "kind": ...}``
(with ``"scenes"``, and ``"reasoned": true`` for understanding answers that show their work).
A concept the shipped model has never seen is opt-in (``showo.world.CONCEPTS``: "diamond", "dot",
"cyan"): ``"concepts": ["dot"]`` calls every small circle a dot, ``"scenes": "dot"`` puts at least
one dot in every picture (``"scenes": "cyan"``, a cyan object).

Sample ``i`` of a kind is a pure function of (seed, split, kind, i), so sharding is "rank r
takes r, r + W, r + 2W, ..." and the state is one counter: nothing to read, nothing to skip.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..generation.prompting import CAPTION_QUESTION, understanding_text
from ..world import KINDS, WorldDataset
from .stream import check_state


class WorldSource:
    type_name = "world"

    def __init__(self, kind: str = "t2i", split: str = "train", image_size: int = 64, scenes: str = "any",
                 reasoned: bool = False, concepts=(), *,
                 rank: int = 0, world_size: int = 1, seed: int = 0, on_bad_data: str = "skip") -> None:
        if kind not in KINDS:
            raise ValueError(f"world source: kind must be one of {KINDS}, got {kind!r}")
        self.kind, self.dataset = kind, WorldDataset(split, seed, image_size, scenes, reasoned, concepts)
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.taken, self.skipped = 0, 0

    def __iter__(self) -> Iterator[dict]:
        while True:
            index = self.taken * self.world_size + self.rank
            self.taken += 1
            sample = self.dataset.sample(self.kind, index)
            sample["source"] = f"world:{self.dataset.split}:{self.kind}:{index}"
            yield sample

    def state_dict(self) -> dict:
        return {"type": self.type_name, "seed": self.seed, "rank": self.rank, "world_size": self.world_size,
                "taken": self.taken}

    def load_state_dict(self, state: dict) -> None:
        check_state(state, self.type_name, seed=self.seed, rank=self.rank, world_size=self.world_size)
        self.taken = int(state["taken"])

    def __repr__(self) -> str:
        return f"WorldSource({self.kind!r}, split={self.dataset.split!r})"


def world_texts(count: int, seed: int = 0) -> Iterator[str]:
    """Text of every kind the world speaks (captions, questions, answers, passages, plans, steps,
    and the worked answers of every fourth picture: all of them would take most of a small
    vocabulary's merges): the corpus its BPE tokenizer is trained on."""
    data, reasoned = WorldDataset("train", seed), WorldDataset("train", seed, reasoned=True)
    yield understanding_text(CAPTION_QUESTION)
    for i in range(count):
        yield data.t2i(i)["caption"]
        yield data.lm(i)["text"]
        yield data.plan(i)["text"]
        for question, answer in data.mmu(i)["turns"]:
            yield understanding_text(question) + " " + answer
        if i % 4 == 0:
            yield " ".join(s for s in data.interleaved(i)["segments"] if isinstance(s, str))
            yield from (answer for _, answer in reasoned.mmu(i)["turns"])
