"""Check an image tokenizer on your own pictures: how well it reconstructs them, and how many codes it uses.

    python docs/own-images/check_tokenizer.py --vq runs/digits/tokenizer/final --images data/digits/heldout

Encodes and decodes every picture in --images (at the tokenizer's training size, or --image-size),
prints the PSNR (dB, on pixels in [0, 1]) and the distinct codes used, and writes
``reconstructions.png`` beside --vq: each picture above its reconstruction. Pictures the
transformer later draws can be no sharper than these reconstructions.
"""

import argparse
import json
import math
from pathlib import Path

import torch
from PIL import Image

import showo
from showo.model.image_processing import grid, postprocess_images

SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def trained_size(vq: Path) -> int | None:
    """The image size the tokenizer run in ``vq``'s parent trained at (its train_config.json), if any."""
    config = vq.parent / "train_config.json"
    if config.is_file():
        return json.loads(config.read_text())["image_tokenizer"]["image_size"]
    return None


def reconstruct(vq: showo.MagvitV2, pictures: list[Image.Image], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixels, reconstructions) in [-1, 1], and nothing else: the round trip through the codes."""
    pixels = showo.preprocess_images(pictures, size)
    with torch.no_grad():
        return pixels, vq.decode(vq.encode(pixels)).clamp(-1, 1)


def psnr(pixels: torch.Tensor, recon: torch.Tensor) -> float:
    mse = ((recon - pixels) / 2).pow(2).mean().item()  # on [0, 1]
    return 10 * math.log10(1 / max(mse, 1e-10))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vq", type=Path, required=True, help="a tokenizer run's final/ (or any MAGVIT-v2 folder)")
    parser.add_argument("--images", type=Path, required=True, help="a folder of pictures the tokenizer never saw")
    parser.add_argument("--image-size", type=int, help="default: the size the tokenizer run trained at")
    parser.add_argument("--max-images", type=int, default=64)
    args = parser.parse_args()
    files = sorted(f for f in args.images.iterdir() if f.suffix.lower() in SUFFIXES)[: args.max_images]
    if not files:
        raise SystemExit(f"--images {args.images}: no pictures ({', '.join(sorted(SUFFIXES))})")
    size = args.image_size or trained_size(args.vq)
    if size is None:
        raise SystemExit(f"--vq {args.vq}: no train_config.json beside it: pass --image-size")
    vq = showo.MagvitV2.from_pretrained(args.vq).eval()
    pictures = [Image.open(f).convert("RGB") for f in files]
    pixels, recon = reconstruct(vq, pictures, size)
    with torch.no_grad():
        codes = vq.encode(pixels)
    shown = min(len(files), 16)
    pairs = postprocess_images(pixels[:shown]) + postprocess_images(recon[:shown])
    out = args.vq.parent / "reconstructions.png"
    grid(pairs, columns=shown).save(out)
    print(json.dumps({"pictures": len(files), "image_size": size, "recon_psnr": round(psnr(pixels, recon), 2),
                      "codes_used": len(set(codes.flatten().tolist()))}))
    print(f"pictures (top) and their reconstructions (bottom): {out}")


if __name__ == "__main__":
    main()
