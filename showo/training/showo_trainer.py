"""The Show-o training loop: mixed batches of the four flows, distributed through accelerate.

The model knows nothing of accelerate: :class:`LossHead` wraps it, ``accelerator.prepare``
wraps that (DDP, FSDP or DeepSpeed from accelerate's config), or ``sharding = "fsdp"`` shards it
(``showo.training.sharding``: each transformer block, then the LossHead), and checkpoints store the
bare model (or its shards). Running the same command again resumes from the last complete checkpoint in OUTPUT
and continues exactly: same samples, same masks, same losses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..data.sources import build_source
from ..generation.generation_config import GenerationConfig
from ..generation.processor import ShowoProcessor
from ..model.adapters import save_adapter
from ..model.image_processing import labelled_grid, save_image
from ..model.omni_attention import omni_attention_mask
from ..model.transformer import ShowoModel
from ..pipeline import ShowoPipeline
from .checkpoints import checkpoint_model, latest_checkpoint, model_folder
from .components import attach_lora, build_model, build_text_tokenizer, build_vq, resolve_init
from .config import TrainConfig
from .feeder import FlowFeeder, RowBuilder
from .monitor import CapabilityMonitor
from .sequences import IGNORE, collate_by_length
from .trainer import TrainerBase, make_accelerator
from .untaught import untaught_left_off

# -- the loss: cross-entropy summed over labelled positions, divided in train_step by the count of
# such positions in the *global* batch (all processes, all accumulation steps), so that N
# processes compute exactly the loss and gradient of one process on the same global batch.


class LossHead(nn.Module):
    """Wraps the model so that distributed wrappers (DDP, FSDP) see one forward per batch and
    the vocabulary projection runs only at labelled positions."""

    def __init__(self, model: ShowoModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Summed cross-entropy (a float32 scalar) over positions with a label."""
        mask = omni_attention_mask(input_ids, self.model.layout)
        hidden = self.model.hidden_states(input_ids, attention_mask=mask)  # (B, L, D)
        picked = labels != IGNORE
        logits = self.model.lm_head(hidden[picked])  # (M, V): only where there is something to learn
        return F.cross_entropy(logits.float(), labels[picked], reduction="sum")


def labelled_count(labels: torch.Tensor) -> int:
    return int((labels != IGNORE).sum())


class ShowoTrainer(TrainerBase):
    def __init__(self, config: TrainConfig, output: str | Path) -> None:
        self.config, self.output = config, Path(output)
        self.output.mkdir(parents=True, exist_ok=True)
        self.accelerator = make_accelerator(config)
        acc, cfg = self.accelerator, config
        # Its file is read here, on every process: a bad one stops the run before any work.
        self.monitor = CapabilityMonitor(cfg.monitor) if cfg.monitor is not None else None
        resume = latest_checkpoint(self.output)
        init = resolve_init(cfg.init_from, self.output) if cfg.init_from and resume is None else None
        self.tokenizer = build_text_tokenizer(cfg, self.output, init, acc.is_main_process, acc.wait_for_everyone)
        self.vq = build_vq(cfg, self.output, init, acc.is_main_process, acc.wait_for_everyone).to(acc.device)
        # A LoRA run's checkpoints hold the adapter alone: its frozen base is always init_from's model.
        self.base = (init or resolve_init(cfg.init_from, self.output)) if cfg.lora else None
        weights = self.base if cfg.lora else checkpoint_model(resume) if resume else init
        self.model = build_model(cfg, self.tokenizer, self.vq, weights)
        if cfg.lora:
            attach_lora(self.model, cfg, model_folder(resume) if resume else None, acc.is_main_process)
        self.generation = self._generation_config(init, resume)
        self.sample_every = cfg.transformer.sample_every
        self.micro_batch = _micro_batches(cfg, acc.num_processes)
        builder = RowBuilder(cfg, ShowoProcessor(self.tokenizer, self.model.config))
        self.feeders = {
            flow: FlowFeeder(flow, build_source(cfg.data[flow], rank=acc.process_index, world_size=acc.num_processes,
                                                seed=cfg.seed, on_bad_data=cfg.on_bad_data),
                             builder, self.vq, self.model.config.image_size, acc.process_index,
                             acc.num_processes, cfg.on_bad_data)
            for flow in cfg.flows
        }
        self.prepare(LossHead(self.model), resume)

    def _generation_config(self, init: Path | None, resume: Path | None) -> GenerationConfig:
        """``config.transformer.generation`` over what the run started from (``init_from``'s folder), kept in
        the run folder so that a resumed run, which has no ``init``, writes the same one. Settings that only
        some data teaches (planning, worked answers) are left off when neither the data nor that folder
        taught them (:func:`untaught_left_off`), with a line saying so."""
        start = init if init is not None else self.output if resume is not None else None
        inherited = GenerationConfig.from_folder(start) if start is not None else GenerationConfig()
        asked = dataclasses.replace(inherited, **self.config.transformer.generation)
        generation, left_off = untaught_left_off(inherited, asked, self.config.data)
        if self.accelerator.is_main_process:
            if left_off:
                print(left_off, flush=True)
            generation.save(self.output)
        return generation

    # -- one optimisation step -----------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        cfg, acc = self.config, self.accelerator
        weights = cfg.transformer.loss_weights
        started = time.perf_counter()
        micro_rows = [{f: self.feeders[f].take(self.micro_batch[f]) for f in cfg.flows} for _ in range(cfg.grad_accum)]
        pad = self.model.layout.pad_id
        batches = [{f: collate_by_length(rows[f], pad) for f in cfg.flows} for rows in micro_rows]
        local = torch.tensor([[sum(labelled_count(labels) for b in batches for _, labels in b[f]) for f in cfg.flows],
                              [sum(int((ids != pad).sum()) for b in batches for ids, _ in b[f]) for f in cfg.flows]],
                             dtype=torch.float64, device=acc.device)
        counts, tokens = acc.reduce(local, "sum").clamp_min(1).unbind(0)
        sums = torch.zeros(len(cfg.flows), dtype=torch.float64, device=acc.device)
        for m, batch in enumerate(batches):
            sync = contextlib.nullcontext() if m == len(batches) - 1 else self.no_sync()
            with sync:
                loss = torch.zeros((), device=acc.device)
                for i, flow in enumerate(cfg.flows):
                    for ids, labels in batch[flow]:
                        summed = self.head(ids.to(acc.device), labels.to(acc.device))
                        sums[i] += summed.detach().double()
                        # DDP averages gradients over processes: scale so the global mean comes out.
                        loss = loss + weights[flow] * summed * acc.num_processes / counts[i].float()
                acc.backward(loss)
        flow_losses = (acc.reduce(sums, "sum") / counts).tolist()
        record = {"step": self.step + 1}
        record.update({f"loss_{f}": v for f, v in zip(cfg.flows, flow_losses)})
        record["loss"] = sum(weights[f] * v for f, v in zip(cfg.flows, flow_losses))
        self.apply_gradients(record, [record["loss"]])
        ratios = [r.mask_ratio for rows in micro_rows for f in cfg.flows for r in rows[f] if r.mask_ratio is not None]
        record["masking_rate"] = sum(ratios) / len(ratios) if ratios else None
        record["tokens_per_s"] = float(tokens.sum()) / (time.perf_counter() - started)
        return record

    def shard_units(self) -> list[nn.Module]:
        return list(self.model.blocks)

    def pipeline(self) -> ShowoPipeline:
        """The pipeline of the whole model (the main process's copy under sharding: ``gather_whole``)."""
        pipe = ShowoPipeline(self.whole, self.vq, self.tokenizer, self.generation)
        self.whole.train()  # the pipeline switches to eval mode; training goes on afterwards
        return pipe

    def save_final(self) -> None:
        """``final/``: the pipeline folder; a LoRA run's adapter alone,
        for ``pipe.load_adapter`` / ``--adapter`` on its base, ``init_from``'s model."""
        if self.config.lora:
            save_adapter(self.model, self.output / "final", overwrite=True, base=str(self.base))
        else:
            self.pipeline().save_pretrained(self.output / "final", overwrite=True)

    @torch.no_grad()
    def write_samples(self) -> None:
        prompts = list(self.config.transformer.sample_prompts) or ["", ""]
        pipe = self.pipeline()
        self.whole.eval()
        output = pipe(prompts, seed=0)
        self.whole.train()
        labels = [p if p == drawn else f"{p} (planned: {drawn})" for p, drawn in zip(prompts, output.prompts)]
        save_image(labelled_grid(output.images, labels), self.output / "samples" / f"step-{self.step:08d}.png")


def _micro_batches(cfg: TrainConfig, world_size: int) -> dict[str, int]:
    sizes = {}
    for flow in cfg.flows:
        global_batch = cfg.batch_size.get(flow, 0)
        if global_batch % (world_size * cfg.grad_accum) or global_batch == 0:
            raise ValueError(
                f"batch_size.{flow}={global_batch} must be a positive multiple of processes x grad_accum "
                f"= {world_size} x {cfg.grad_accum}"
            )
        sizes[flow] = global_batch // (world_size * cfg.grad_accum)
    return sizes
