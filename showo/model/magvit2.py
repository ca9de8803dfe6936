"""MAGVIT-v2 image tokenizer with a lookup-free quantizer (LFQ).

Module and parameter names follow the released ``showlab/magvitv2`` checkpoint exactly, so its
``pytorch_model.bin`` loads with no key map. Pixels are (B, 3, H, W) in [-1, 1]; codes are
(B, h*w) integers in [0, 2**z_channels), row-major over the h x w latent grid.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint_io import (
    atomic_write,
    check_state_dict,
    find_weight_file,
    load_state_dict,
    read_json,
    replace_folder,
    save_safetensors,
)
from .config import MagvitConfig
from .hub import MODEL_FILES, resolve_folder
from .precision import resolve_dtype
from .validation import build

CONFIG_FORMAT = "showo-magvit2"


def swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, groups: int):
        super().__init__()
        self.norm1 = group_norm(in_channels, groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels, groups)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        # The released checkpoint has a shortcut conv only where the width changes.
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1)
        else:
            self.nin_shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(swish(self.norm2(h)))
        return self.nin_shortcut(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the H*W positions of a feature map."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = group_norm(channels, groups)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        y = self.norm(x)

        def tokens(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, 1, c, h * w).transpose(2, 3)  # (B, 1, HW, C)

        out = F.scaled_dot_product_attention(tokens(self.q(y)), tokens(self.k(y)), tokens(self.v(y)))
        out = out.transpose(2, 3).reshape(b, c, h, w)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Asymmetric padding (right and bottom only), as the released model was trained with.
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class MidBlock(nn.Module):
    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, groups)
        self.attn_1 = AttnBlock(channels, groups)
        self.block_2 = ResnetBlock(channels, channels, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


def _level(in_ch: int, out_ch: int, blocks: int, groups: int, resample: nn.Module | None, name: str) -> nn.Module:
    """One resolution level: ``blocks`` ResNet blocks, then an optional resampler."""
    level = nn.Module()
    widths = [in_ch] + [out_ch] * blocks
    level.block = nn.ModuleList(ResnetBlock(widths[i], out_ch, groups) for i in range(blocks))
    if resample is not None:
        level.add_module(name, resample)
    return level


class Encoder(nn.Module):
    def __init__(self, cfg: MagvitConfig):
        super().__init__()
        ch, g, mult = cfg.channels, cfg.norm_groups, cfg.encoder_channel_mult
        self.conv_in = nn.Conv2d(cfg.image_channels, ch, 3, padding=1)
        widths = [ch] + [ch * m for m in mult]  # widths[k] feeds level k
        last = len(mult) - 1
        self.down = nn.ModuleList(
            _level(widths[k], widths[k + 1], cfg.encoder_blocks[k], g,
                   Downsample(widths[k + 1]) if k != last else None, "downsample")
            for k in range(len(mult))
        )
        self.mid = MidBlock(widths[-1], g)
        self.norm_out = group_norm(widths[-1], g)
        self.conv_out = nn.Conv2d(widths[-1], cfg.z_channels, 3, padding=1)
        self.quant_conv = nn.Conv2d(cfg.z_channels, cfg.z_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)  # (B, C, H, W)
        for level in self.down:
            for block in level.block:
                h = block(h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = self.conv_out(swish(self.norm_out(self.mid(h))))
        return self.quant_conv(h)  # (B, z, H/f, W/f)


class Decoder(nn.Module):
    def __init__(self, cfg: MagvitConfig):
        super().__init__()
        ch, g, mult = cfg.channels, cfg.norm_groups, cfg.decoder_channel_mult
        self.post_quant_conv = nn.Conv2d(cfg.z_channels, cfg.z_channels, 1)
        self.conv_in = nn.Conv2d(cfg.z_channels, ch * mult[-1], 3, padding=1)
        self.mid = MidBlock(ch * mult[-1], g)
        # up[l] is indexed by level like the checkpoint; levels run from the last down to 0,
        # so the width entering level l is the width of level l+1 (or conv_in's for the last).
        in_widths = [ch * m for m in mult[1:]] + [ch * mult[-1]]
        self.up = nn.ModuleList(
            _level(in_widths[k], ch * mult[k], cfg.decoder_blocks[k], g,
                   Upsample(ch * mult[k]) if k != 0 else None, "upsample")
            for k in range(len(mult))
        )
        self.norm_out = group_norm(ch * mult[0], g)
        self.conv_out = nn.Conv2d(ch * mult[0], cfg.image_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(self.post_quant_conv(z)))  # (B, C, h, w)
        for level in reversed(self.up):
            for block in level.block:
                h = block(h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(swish(self.norm_out(h)))  # (B, 3, H, W)


class LookupFreeQuantizer(nn.Module):
    """Sign quantizer: channel k of a latent is one bit, channel 0 the most significant."""

    def __init__(self, z_channels: int, beta: float = 0.25, commit_mult: float = 0.1, entropy_mult: float = 0.1):
        super().__init__()
        self.z_channels = z_channels
        self.beta, self.commit_mult, self.entropy_mult = beta, commit_mult, entropy_mult
        powers = 2 ** torch.arange(z_channels - 1, -1, -1)  # (z,) 2^(z-1) ... 1
        codes = torch.arange(2**z_channels)
        # Non-persistent: both follow from z_channels, the checkpoint's copies are only verified.
        self.register_buffer("power_vals", powers, persistent=False)
        self.register_buffer("embedding", self._bits_to_signs(codes, powers), persistent=False)

    @staticmethod
    def _bits_to_signs(codes: torch.Tensor, powers: torch.Tensor) -> torch.Tensor:
        bits = torch.div(codes.unsqueeze(-1), powers, rounding_mode="floor") % 2  # (..., z)
        return bits.float() * 2 - 1

    def latents_to_codes(self, z: torch.Tensor) -> torch.Tensor:
        """(B, z, h, w) latents -> (B, h, w) long codes."""
        bits = (z > 0).long()
        return (bits * self.power_vals.view(1, -1, 1, 1)).sum(dim=1)

    def codes_to_latents(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, h, w) codes -> (B, z, h, w) +-1 latents."""
        signs = self._bits_to_signs(codes.long(), self.power_vals)  # (B, h, w, z)
        return signs.permute(0, 3, 1, 2).to(self.embedding.dtype)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantize (B, z, h, w) latents; returns (quantized latents, (B, h, w) codes)."""
        q = torch.where(z > 0, torch.ones_like(z), -torch.ones_like(z))
        if self.training:
            q = z + (q - z).detach()  # straight-through: gradients pass to the encoder unchanged
        return q, self.latents_to_codes(z)

    def losses(self, z: torch.Tensor, q: torch.Tensor) -> dict[str, torch.Tensor]:
        """Commitment and entropy losses (already scaled by their multipliers)."""
        commit = F.mse_loss(z, q.detach()) + self.beta * F.mse_loss(q, z.detach())
        # Per channel, a two-way distribution over {+1, -1} from negated squared distances.
        logits = torch.stack([-(z - 1) ** 2, -(z + 1) ** 2], dim=-1)  # (B, z, h, w, 2)
        log_p = F.log_softmax(logits.float(), dim=-1)
        token_entropy = -(log_p.exp() * log_p).sum(dim=-1).sum(dim=1).mean()
        avg_p = log_p.exp().mean(dim=(0, 2, 3))  # (z, 2) batch-average distribution
        batch_entropy = -(avg_p * torch.log(avg_p.clamp_min(1e-12))).sum()
        return {
            "commitment_loss": commit * self.commit_mult,
            "entropy_loss": (token_entropy - batch_entropy) * self.entropy_mult,
        }


class MagvitV2(nn.Module):
    def __init__(self, config: MagvitConfig = MagvitConfig()):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quantize = LookupFreeQuantizer(config.z_channels)

    # ---- encoding ------------------------------------------------------------------------

    def _check_pixels(self, pixels: torch.Tensor) -> None:
        c, f = self.config.image_channels, self.config.downsample_factor
        if pixels.dim() != 4 or pixels.shape[1] != c:
            raise ValueError(f"MagvitV2.encode: expected pixels of shape (B, {c}, H, W), got {tuple(pixels.shape)}")
        if not pixels.is_floating_point():
            raise ValueError(f"MagvitV2.encode: expected float pixels in [-1, 1], got dtype {pixels.dtype}")
        h, w = pixels.shape[-2:]
        if h % f or w % f:
            raise ValueError(
                f"MagvitV2.encode: image height and width must be multiples of the downsample "
                f"factor {f}, got {h}x{w}"
            )

    def encode_latents(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) pixels in [-1, 1] -> (B, z, H/f, W/f) continuous latents."""
        self._check_pixels(pixels)
        return self.encoder(pixels.to(self.encoder.conv_in.weight.dtype))

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) pixels in [-1, 1] -> (B, H/f * W/f) long codes, row-major."""
        codes = self.quantize.latents_to_codes(self.encode_latents(pixels))  # (B, h, w)
        return codes.flatten(1)

    # ---- decoding ------------------------------------------------------------------------

    def codes_to_latents(self, codes: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        """(B, N) codes -> (B, z, h, w) +-1 latents on the ``grid`` (square by default)."""
        h, w = self._check_codes(codes, grid)
        return self.quantize.codes_to_latents(codes.reshape(codes.shape[0], h, w))

    def _check_codes(self, codes: torch.Tensor, grid: tuple[int, int] | None) -> tuple[int, int]:
        if codes.dim() != 2 or codes.dtype.is_floating_point or codes.dtype == torch.bool:
            raise ValueError(f"MagvitV2.decode: expected (B, N) integer codes, got {codes.dtype} {tuple(codes.shape)}")
        n, size = codes.shape[1], self.config.codebook_size
        if codes.numel() and (codes.min() < 0 or codes.max() >= size):
            raise ValueError(
                f"MagvitV2.decode: codes must lie in [0, {size}), got min {int(codes.min())} max {int(codes.max())}"
            )
        if grid is None:
            side = math.isqrt(n)
            if side * side != n:
                raise ValueError(f"MagvitV2.decode: {n} codes do not form a square grid; pass grid=(h, w)")
            return side, side
        h, w = grid
        if h * w != n:
            raise ValueError(f"MagvitV2.decode: grid {h}x{w} needs {h * w} codes per image, got {n}")
        return h, w

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, z, h, w) quantized latents -> (B, 3, H, W) pixels (not clamped)."""
        return self.decoder(latents.to(self.decoder.conv_in.weight.dtype))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        """(B, N) codes -> (B, 3, H, W) pixels, roughly in [-1, 1]."""
        return self.decode_latents(self.codes_to_latents(codes, grid))

    # ---- training ------------------------------------------------------------------------

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Reconstruct ``pixels``; returns (reconstruction, quantizer losses)."""
        z = self.encode_latents(pixels)
        q, _ = self.quantize(z)
        return self.decode_latents(q), self.quantize.losses(z, q)

    # ---- checkpoints ---------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        subfolder: str | None = None,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        dtype: torch.dtype | str | None = None,
        **overrides: Any,
    ) -> MagvitV2:
        """Load a showo folder, the released ``showlab/magvitv2`` folder, or a weight file.

        ``path`` may be a Hugging Face Hub id, resolved through the Hugging Face cache
        (``showo.model.hub.resolve_folder``; a local folder of that name wins; only ``config.json``
        and the weights are fetched): ``"showlab/magvitv2"`` (weights at the top level), or a showo
        pipeline repo with ``subfolder="vq"``. ``subfolder`` is joined to a local path too.
        ``revision`` (branch, tag or commit hash), ``cache_dir`` (default ``HF_HUB_CACHE``),
        ``local_files_only`` (no download; ``HF_HUB_OFFLINE=1`` does the same) and ``token`` apply to
        Hub ids. ``overrides``: config fields to replace.

        ``dtype``: None keeps the stored precision; a ``torch.dtype`` or a name (``"bf16"``, ...;
        ``showo.model.precision.resolve_dtype``) converts the weights tensor by tensor as they are read."""
        dtype = resolve_dtype(dtype, "cpu")  # a bad value is refused before anything is read
        path = resolve_folder(path, subfolder=subfolder, revision=revision, cache_dir=cache_dir,
                              local_files_only=local_files_only, token=token, allow_patterns=MODEL_FILES)
        weight_file = find_weight_file(path)  # first, so a wrong path reads as FileNotFoundError
        folder = path if path.is_dir() else path.parent
        config = override_config(_read_config(folder), overrides)
        state = load_state_dict(weight_file, dtype)
        model = cls(config) if dtype is None else cls(config).to(dtype)
        expected = {k: v.shape for k, v in model.state_dict().items()}
        # The released LFQ buffers are accepted (shape-checked with the rest), then verified.
        buffers = {"quantize.embedding": model.quantize.embedding, "quantize.power_vals": model.quantize.power_vals}
        expected.update({k: b.shape for k, b in buffers.items() if k in state})
        check_state_dict(state, expected, str(weight_file))
        _pop_quantizer_buffers(state, buffers, str(weight_file))
        model.load_state_dict(state, strict=True)
        return model.eval()

    def save_pretrained(self, folder: str | Path, overwrite: bool = False) -> None:
        """Write ``config.json`` and ``model.safetensors`` as a new folder, published whole.

        ``folder`` must be new or empty, or a folder showo wrote with ``overwrite=True``."""
        replace_folder(folder, self.write_to, overwrite)

    def write_to(self, folder: str | Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` into ``folder``, each file atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"format": CONFIG_FORMAT, **dataclasses.asdict(self.config)}, indent=2) + "\n"
        atomic_write(folder / "config.json", lambda tmp: tmp.write_text(text))
        save_safetensors(self.state_dict(), folder / "model.safetensors")


def _read_config(folder: Path) -> MagvitConfig:
    """Our config.json when present; the released (diffusers-style) one names no shapes."""
    file = folder / "config.json"
    if not file.is_file():
        return MagvitConfig()
    d = read_json(file)
    if d.get("format") != CONFIG_FORMAT:
        return MagvitConfig()
    fields = {k: v for k, v in d.items() if k != "format"}
    return override_config(MagvitConfig(), fields, source=str(file))


def override_config(config: MagvitConfig, overrides: dict[str, Any], source: str = "from_pretrained") -> MagvitConfig:
    """``config`` with ``overrides``; one ``ValueError`` that starts with ``source`` names every unknown
    or bad field (``showo.model.validation``: JSON lists are read as the tuples the dataclass holds)."""
    return build(MagvitConfig, {**dataclasses.asdict(config), **overrides}, source)


def _pop_quantizer_buffers(state: dict[str, torch.Tensor], ours: dict[str, torch.Tensor], source: str) -> None:
    """Drop the released checkpoint's LFQ buffers after checking they match our bit order."""
    for key, buffer in ours.items():
        theirs = state.pop(key, None)
        if theirs is not None and not torch.equal(theirs.double(), buffer.double()):
            raise ValueError(
                f"{source}: {key} differs from ours: the checkpoint's bit order differs "
                f"(expected channel 0 as the most significant bit, codes in ascending order)"
            )
