"""From data sources to training rows, one feeder per flow.

A feeder pulls samples from its (rank-sharded) source, runs the frozen image tokenizer over
the images of a whole batch at once, and turns each sample into a :class:`Row`. Its state
(how many samples it took, and the source's own position) goes into every checkpoint.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from ..data.stream import BadSample, BadSampleWarning
from ..generation.processor import ShowoProcessor
from ..model.image_processing import preprocess_images
from .config import TrainConfig
from .sequences import Row, SampleTooLong, lm_row, mixed_row, mmu_row, question_and_answer, sample_generator, t2i_row

# Image-caption pairs also feed the mmu flow, as captioning (stages 1 and 2 of the recipe); prompt
# plans (showo.generation.prompting) are language-modelling rows.
FLOW_KINDS = {"t2i": ("t2i", "class"), "lm": ("lm", "plan"), "mmu": ("mmu", "t2i"), "mixed": ("interleaved",)}


class RowBuilder:
    """Samples -> training rows, through the same ``ShowoProcessor`` (chat template, layouts) as
    inference."""

    def __init__(self, config: TrainConfig, processor: ShowoProcessor) -> None:
        self.config, self.processor = config, processor
        self.layout, self.tokenizer = processor.layout, processor.tokenizer
        self.max_text_length = processor.config.max_text_length

    def row(self, flow: str, sample: dict[str, Any], position: int) -> Row:
        kind = sample.get("kind")
        if kind not in FLOW_KINDS[flow]:
            raise BadSample(where(sample), f"a {kind!r} sample cannot feed the {flow} flow ({FLOW_KINDS[flow]})")
        cfg, layout = self.config.transformer, self.layout
        generator = sample_generator(self.config.seed, flow, position)
        if flow == "t2i":
            caption = sample["caption"] if kind == "t2i" else sample["class_name"]
            return t2i_row(sample["codes"], self.tokenizer.encode(caption), layout, self.max_text_length,
                           generator, cfg.min_masking_rate, cfg.caption_dropout)
        if flow == "lm":
            return lm_row(self.tokenizer.encode(sample["text"]), layout, cfg.max_seq_length)
        if flow == "mmu":
            turns = sample["turns"] if kind == "mmu" else [(self.processor.caption_question(), sample["caption"])]
            if cfg.mmu_turns == "one":
                turns = [turns[int(torch.randint(len(turns), (), generator=generator))]]
            turns = [question_and_answer(self.processor, q, a) for q, a in turns]
            return mmu_row(sample["codes"], turns, layout, cfg.max_seq_length)
        segments = [s if isinstance(s, torch.Tensor) else self.tokenizer.encode(s) for s in sample["segments"]]
        return mixed_row(segments, layout, cfg.max_seq_length, generator, cfg.min_masking_rate)


def where(sample: dict[str, Any]) -> str:
    return str(sample.get("source", "<unknown source>"))


@torch.no_grad()
def encode_images(samples: list[dict[str, Any]], vq, image_size: int) -> None:
    """Replace every PIL image in ``samples`` by its codes, with one tokenizer call for all."""
    slots = []  # (sample, key or segment index)
    for sample in samples:
        if "image" in sample and "codes" not in sample:
            slots.append((sample, "image"))
        for i, segment in enumerate(sample.get("segments", ())):
            if not isinstance(segment, (str, torch.Tensor)):
                slots.append((sample, i))
    if not slots:
        return
    images = [s["image"] if key == "image" else s["segments"][key] for s, key in slots]
    param = next(vq.parameters())
    codes = vq.encode(preprocess_images(images, image_size).to(param.device, param.dtype)).cpu()
    for (sample, key), c in zip(slots, codes):
        if key == "image":
            sample["codes"] = c
        else:
            sample["segments"][key] = c


class FlowFeeder:
    def __init__(self, flow: str, source, builder: RowBuilder, vq, image_size: int,
                 rank: int = 0, world_size: int = 1, on_bad_data: str = "skip") -> None:
        self.flow, self.source, self.builder = flow, source, builder
        self.vq, self.image_size = vq, image_size
        self.rank, self.world_size, self.on_bad_data = rank, world_size, on_bad_data
        self.taken = 0
        self.skipped = 0
        self._iterator = None

    def take(self, count: int) -> list[Row]:
        """The next ``count`` rows; bad samples are skipped (with a warning) or stop the run."""
        rows: list[Row] = []
        skipped_before = self.skipped
        while len(rows) < count:
            if self.skipped - skipped_before > 100 + 10 * count:
                raise BadSample(f"the {self.flow} flow's source",
                                f"{self.skipped - skipped_before} bad samples in a row "
                                "and nothing usable: check the data and the flow it feeds")
            batch = [self._next() for _ in range(count - len(rows))]
            encode_images([s for s, _ in batch], self.vq, self.image_size)
            for sample, position in batch:
                try:
                    rows.append(self.builder.row(self.flow, sample, position))
                except SampleTooLong as e:
                    self._bad(BadSample(where(sample), str(e)))
                except BadSample as e:
                    self._bad(e)
        return rows

    def _next(self) -> tuple[dict[str, Any], int]:
        if self._iterator is None:
            self._iterator = iter(self.source)
        sample = next(self._iterator)
        # The sample's place in the one-process stream: rank r takes records r, r + W, ...
        position = self.taken * self.world_size + self.rank
        self.taken += 1
        return sample, position

    def _bad(self, error: BadSample) -> None:
        if self.on_bad_data == "stop":
            raise error
        self.skipped += 1
        warnings.warn(f"skipping bad sample in the {self.flow} flow: {error}", BadSampleWarning, stacklevel=2)

    def state_dict(self) -> dict[str, Any]:
        return {"taken": self.taken, "skipped": self.skipped, "source": self.source.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.taken, self.skipped = state["taken"], state.get("skipped", 0)
        self.source.load_state_dict(state["source"])
        self._iterator = None
