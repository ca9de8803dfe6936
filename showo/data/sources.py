"""Build a data source from a config dict, and mix several sources by weight.

    build_source({"type": "webdataset", "path": "data/*.tar"}, rank=r, world_size=n, seed=0)
    build_source({"type": "mixture", "sources": [
        {"type": "token_shards", "path": "tokens/", "weight": 3},
        {"type": "text", "path": "text/*.parquet", "weight": 1}]})

New kinds of data register a factory in ``SOURCE_TYPES``. A factory is called as
``factory(**spec_without_type, rank=, world_size=, seed=, on_bad_data=)`` and returns an
object with ``__iter__`` (endless, dict samples), ``state_dict``, ``load_state_dict`` and
``skipped`` (see ``stream.Source``); subclassing ``stream.StreamingSource`` gives all of that.
"""

from __future__ import annotations

import bisect
import inspect
import itertools
import math
import random
from collections.abc import Callable, Iterator, Sequence

from .image_folder import ImageFolderSource
from .interleaved import InterleavedSource
from .llava import LlavaSource
from .stream import Source, check_state
from .text import TextSource
from .token_shards import TokenShardSource
from .webdataset import WebDatasetSource
from .world_source import WorldSource

SHARED_ARGUMENTS = ("rank", "world_size", "seed", "on_bad_data")


class Mixture:
    """Draws each sample from source ``i`` with probability ``weights[i] / sum(weights)``.

    The choice at step ``k`` depends only on (seed, k), so the stream is deterministic and
    resumes exactly: the state is the step plus every source's own state. Each source shards
    itself over ranks.
    """

    type_name = "mixture"

    def __init__(self, sources: Sequence[Source], weights: Sequence[float], *, seed: int = 0):
        if not sources or len(sources) != len(weights):
            raise ValueError(
                f"mixture: need one weight per source, got {len(sources)} sources and {len(weights)} weights"
            )
        if not all(math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"mixture: weights must be finite and >= 0 with a positive sum, got {list(weights)}")
        self.sources, self.seed, self.step = list(sources), seed, 0
        self.cumulative = list(itertools.accumulate(weights))

    @property
    def skipped(self) -> int:
        return sum(source.skipped for source in self.sources)

    def choose(self, step: int) -> int:
        u = random.Random(f"{self.seed}:mixture:{step}").random() * self.cumulative[-1]
        return bisect.bisect_right(self.cumulative, u)

    def __iter__(self) -> Iterator[dict]:
        streams = [iter(source) for source in self.sources]
        while True:
            sample = next(streams[self.choose(self.step)])
            self.step += 1
            yield sample

    def state_dict(self) -> dict:
        return {
            "type": self.type_name,
            "seed": self.seed,
            "step": self.step,
            "sources": [s.state_dict() for s in self.sources],
        }

    def load_state_dict(self, state: dict) -> None:
        check_state(state, self.type_name, seed=self.seed)
        if len(state["sources"]) != len(self.sources):
            raise ValueError(f"mixture state has {len(state['sources'])} sources, this mixture has {len(self.sources)}")
        for source, source_state in zip(self.sources, state["sources"]):
            source.load_state_dict(source_state)
        self.step = int(state["step"])

    def __repr__(self) -> str:
        return f"Mixture({', '.join(map(repr, self.sources))})"


def build_mixture(sources: list[dict], *, rank: int, world_size: int, seed: int, on_bad_data: str) -> Mixture:
    """Factory for ``{"type": "mixture", "sources": [spec with optional "weight", ...]}``."""
    children, weights = [], []
    for i, spec in enumerate(sources):
        if not isinstance(spec, dict):
            raise ValueError(f"mixture: sources[{i}] must be a source spec (a dict), got {spec!r:.80}")
        spec = dict(spec)
        weight = spec.pop("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ValueError(f"mixture: sources[{i}].weight must be a number, got {weight!r:.80}")
        weights.append(float(weight))
        # Distinct seeds, so two sources over the same files do not shuffle alike.
        children.append(
            build_source(spec, rank=rank, world_size=world_size, seed=seed + 1 + i, on_bad_data=on_bad_data)
        )
    return Mixture(children, weights, seed=seed)


# The registry: add a kind of data here.
SOURCE_TYPES: dict[str, Callable[..., Source]] = {
    "world": WorldSource,
    "webdataset": WebDatasetSource,
    "image_folder": ImageFolderSource,
    "text": TextSource,
    "jsonl": TextSource,
    "parquet": TextSource,
    "llava": LlavaSource,
    "interleaved": InterleavedSource,
    "token_shards": TokenShardSource,
    "mixture": build_mixture,
}


def build_source(spec: dict, *, rank: int = 0, world_size: int = 1, seed: int = 0, on_bad_data: str = "skip") -> Source:
    """A source from its config dict: ``"type"`` picks the factory, the other keys are its arguments."""
    if not isinstance(spec, dict) or "type" not in spec:
        raise ValueError(f"a source spec must be a dict with a 'type', got {spec!r}")
    fields = {k: v for k, v in spec.items() if k != "type"}
    kind = spec["type"]
    if kind not in SOURCE_TYPES:
        raise ValueError(f"unknown source type {kind!r}; choose one of {sorted(SOURCE_TYPES)}")
    shared = sorted(set(fields) & set(SHARED_ARGUMENTS))
    if shared:
        raise ValueError(f"source {kind!r}: {shared} are build_source arguments, not spec fields")
    factory = SOURCE_TYPES[kind]
    accepted = accepted_fields(factory)
    unknown = sorted(set(fields) - accepted) if accepted is not None else []
    if unknown:
        raise ValueError(
            f"source {kind!r}: unknown fields {unknown}; accepted: {sorted(accepted - set(SHARED_ARGUMENTS))}"
        )
    return factory(**fields, rank=rank, world_size=world_size, seed=seed, on_bad_data=on_bad_data)


def accepted_fields(factory: Callable) -> set[str] | None:
    """Keyword names a factory takes, following ``**options`` up a class's base classes
    (``None``: it takes any)."""
    functions = (
        [c.__init__ for c in type.mro(factory) if "__init__" in vars(c)] if isinstance(factory, type) else [factory]
    )
    names: set[str] = set()
    for function in functions:
        parameters = list(inspect.signature(function).parameters.values())
        names |= {
            p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"
        }
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return names
    return None
