"""Training a MAGVIT-v2 image tokenizer (lookup-free quantizer) for a new domain.

Loss: reconstruction (L1 or L2) + the quantizer's commitment and entropy losses, plus, when
``adversarial_weight > 0``, a hinge GAN loss from a small PatchGAN discriminator that starts
at ``adversarial_start``. (The released tokenizer also used a perceptual LPIPS loss; it needs
pretrained VGG weights, which cannot be fetched here, so it is not offered.)
Generator and discriminator train in one backward pass: the generator's adversarial term
goes through a detached copy of the discriminator, the discriminator's through detached
reconstructions, so each loss only moves its own side.
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..data.sources import build_source
from ..data.stream import BadSample, BadSampleWarning
from ..model.checkpoint_io import load_state_dict, save_safetensors
from ..model.image_processing import preprocess_images
from ..model.magvit2 import MagvitV2
from .checkpoints import latest_checkpoint, model_folder
from .components import make_vq, resolve_init
from .config import ImageTokenizerTraining, TrainConfig
from .trainer import TrainerBase, make_accelerator


class PatchDiscriminator(nn.Module):
    """Real/fake logits per patch (B, 1, h, w)."""

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(3, channels, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(channels, channels * 2, 4, 2, 1), nn.GroupNorm(8, channels * 2), nn.LeakyReLU(0.2),
            nn.Conv2d(channels * 2, 1, 3, 1, 1),
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.layers(pixels)


class TokenizerObjective(nn.Module):
    def __init__(self, vq: MagvitV2, cfg: ImageTokenizerTraining) -> None:
        super().__init__()
        self.vq, self.cfg = vq, cfg
        self.discriminator = PatchDiscriminator() if cfg.adversarial_weight > 0 else None

    def forward(self, pixels: torch.Tensor, adversarial: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(total loss, the parts: recon, commitment, entropy, generator, discriminator)."""
        recon, quant = self.vq(pixels)
        error = recon - pixels
        rec = error.abs().mean() if self.cfg.recon_loss == "l1" else error.pow(2).mean()
        gen = disc = torch.zeros((), device=pixels.device)
        if adversarial and self.discriminator is not None:
            frozen = {k: v.detach() for k, v in self.discriminator.named_parameters()}
            gen = -functional_call(self.discriminator, frozen, (recon,)).mean() * self.cfg.adversarial_weight
            disc = (F.relu(1 - self.discriminator(pixels)).mean()
                    + F.relu(1 + self.discriminator(recon.detach())).mean())
        parts = torch.stack([rec, quant["commitment_loss"], quant["entropy_loss"] * self.cfg.entropy_weight, gen, disc])
        mse = (error.detach() / 2).pow(2).mean()  # on [0, 1] pixels, for the PSNR
        return parts.sum(), torch.cat([parts.detach(), mse[None]])

    def save_pretrained(self, folder: str | Path) -> None:
        self.vq.save_pretrained(folder)
        if self.discriminator is not None:
            save_safetensors(self.discriminator.state_dict(), Path(folder) / "discriminator.safetensors")


PARTS = ("recon", "commitment", "entropy", "generator", "discriminator")


class ImageFeeder:
    """Images from a source, with the same resumable state as the Show-o feeders."""

    def __init__(self, source, on_bad_data: str) -> None:
        self.source, self.on_bad_data = source, on_bad_data
        self.taken, self._iterator = 0, None

    def take(self, count: int) -> list:
        if self._iterator is None:
            self._iterator = iter(self.source)
        images = []
        while len(images) < count:
            sample = next(self._iterator)
            self.taken += 1
            if "image" in sample:
                images.append(sample["image"])
            elif self.on_bad_data == "stop":
                raise BadSample(str(sample.get("source")), "tokenizer training needs images, this sample has none")
            else:
                warnings.warn(f"{sample.get('source')}: no image, skipped", BadSampleWarning, stacklevel=2)
        return images

    def state_dict(self) -> dict[str, Any]:
        return {"taken": self.taken, "source": self.source.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.taken = state["taken"]
        self.source.load_state_dict(state["source"])
        self._iterator = None


class TokenizerTrainer(TrainerBase):
    def __init__(self, config: TrainConfig, output: str | Path) -> None:
        self.config, self.output = config, Path(output)
        self.output.mkdir(parents=True, exist_ok=True)
        self.accelerator = acc = make_accelerator(config)
        resume = latest_checkpoint(self.output)
        if resume is not None:
            vq = MagvitV2.from_pretrained(model_folder(resume))
        elif config.init_from:
            vq = MagvitV2.from_pretrained(resolve_init(config.init_from, self.output))
        else:
            torch.manual_seed(config.seed)
            vq = make_vq(config.vq, None, self.output)
        if config.image_tokenizer.decoder_only:
            if resume is None and not config.init_from:
                raise ValueError("image_tokenizer.decoder_only=true needs init_from: "
                                 "a trained tokenizer whose codes to keep")
            vq.encoder.requires_grad_(False)
        self.model = TokenizerObjective(vq.train(), config.image_tokenizer)
        if resume is not None and self.model.discriminator is not None:
            saved = load_state_dict(model_folder(resume) / "discriminator.safetensors")
            self.model.discriminator.load_state_dict(saved)
        flow = config.flows[0]
        if config.batch_size[flow] % acc.num_processes:
            raise ValueError(f"batch_size.{flow}={config.batch_size[flow]} must divide by "
                             f"{acc.num_processes} processes")
        self.micro_batch = config.batch_size[flow] // acc.num_processes
        source = build_source(config.data[flow], rank=acc.process_index, world_size=acc.num_processes,
                              seed=config.seed, on_bad_data=config.on_bad_data)
        self.feeders = {flow: ImageFeeder(source, config.on_bad_data)}
        self.prepare(self.model, resume)

    def train_step(self) -> dict[str, float]:
        cfg, acc = self.config, self.accelerator
        started = time.perf_counter()
        (feeder,) = self.feeders.values()
        pixels = preprocess_images(feeder.take(self.micro_batch), cfg.image_tokenizer.image_size).to(acc.device)
        adversarial = self.model.discriminator is not None and self.step >= cfg.image_tokenizer.adversarial_start
        loss, parts = self.head(pixels, adversarial)
        acc.backward(loss)
        *parts, mse = acc.reduce(parts, "mean").tolist()
        record = {"step": self.step + 1, "loss": sum(parts), **{f"loss_{n}": v for n, v in zip(PARTS, parts)}}
        self.apply_gradients(record, parts)
        record["psnr"] = 10 * math.log10(1 / max(mse, 1e-10))
        record["images_per_s"] = len(pixels) * acc.num_processes / (time.perf_counter() - started)
        return record

    def save_final(self) -> None:
        self.model.vq.save_pretrained(self.output / "final", overwrite=True)
