"""A five-minute tour of showo's core on tiny random models (no downloads).

It trains a small BPE, tokenizes a drawn image with MAGVIT-v2, builds a text-to-image and an
understanding sequence, draws their omni-attention masks, runs the transformer with and
without the KV cache, and round-trips a checkpoint. Everything lands in --output.

    python examples/core_tour.py --output outputs/quickstart
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image, ImageDraw

import showo
from showo.generation.prompting import mmu_prompt, t2i_prompt

CAPTIONS = ["a red circle above a blue square", "two green triangles", "a small yellow star on the left"]


def drawn_image(size: int = 96) -> Image.Image:
    image = Image.new("RGB", (size + 32, size), "white")  # not square: preprocessing crops the centre
    draw = ImageDraw.Draw(image)
    draw.ellipse((40, 10, 80, 50), fill="red")
    draw.rectangle((44, 56, 84, 90), fill="blue")
    return image


def mask_picture(mask: torch.Tensor, scale: int = 4) -> Image.Image:
    pixels = (mask.to(torch.uint8) * 255).numpy()
    picture = Image.fromarray(pixels, mode="L")
    return picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("outputs/quickstart"))
    out = parser.parse_args().output
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    tokenizer = showo.TextTokenizer.train_bpe(CAPTIONS * 10, vocab_size=300)
    vq = showo.MagvitV2(showo.magvit_preset("tiny")).eval()
    config = showo.ShowoConfig(
        llm=showo.showo_preset("tiny").llm, text_vocab_size=tokenizer.text_vocab_size,
        bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id, codebook_size=vq.config.codebook_size,
        image_size=64, downsample_factor=vq.config.downsample_factor, max_text_length=16,
    )
    model = showo.ShowoModel(config).eval()
    layout = model.layout
    print(f"layout: {tokenizer.text_vocab_size} text ids, specials {layout.pad_id}..{layout.lvg_id}, "
          f"image codes from {layout.image_offset}, [MASK] = {layout.mask_id}, vocab {layout.vocab_size}")

    pixels = showo.preprocess_image(drawn_image(), size=config.image_size)[None]
    codes = vq.encode(pixels)
    showo.postprocess_images(vq.decode(codes))[0].save(out / "reconstruction_untrained.png")
    print(f"image {tuple(pixels.shape)} -> {codes.shape[1]} codes, e.g. {codes[0, :6].tolist()}")

    t2i = t2i_prompt([tokenizer.encode(CAPTIONS[0])], torch.full((1, codes.shape[1]), layout.mask_id),
                     layout, config.max_text_length)
    mmu = mmu_prompt(layout.image_ids(codes), tokenizer.encode("USER: \nwhat is red? ASSISTANT:"), layout)
    for name, ids in (("t2i", t2i), ("mmu", mmu)):
        mask = showo.omni_attention_mask(ids, layout)
        mask_picture(mask[0, 0]).save(out / f"attention_{name}.png")
        with torch.no_grad():
            logits = model(ids, attention_mask=mask)
        print(f"{name}: {ids.shape[1]} tokens -> logits {tuple(logits.shape)}; mask in attention_{name}.png")

    with torch.no_grad():
        full = model(mmu)
        cache = model.new_cache(batch_size=1, max_length=mmu.shape[1])
        prefix = model(mmu[:, :-4], cache=cache)
        steps = [model(mmu[:, t : t + 1], cache=cache) for t in range(mmu.shape[1] - 4, mmu.shape[1])]
    cached = torch.cat([prefix, *steps], dim=1)
    print(f"KV cache: max |cached - uncached| = {(cached - full).abs().max():.2e}")

    model.save_pretrained(out / "tiny-showo")
    tokenizer.save(out / "tiny-showo")
    again = showo.ShowoModel.from_pretrained(out / "tiny-showo")
    with torch.no_grad():
        same = torch.equal(again(mmu), full)
    print(f"checkpoint written to {out / 'tiny-showo'}; reload gives identical logits: {same}")


if __name__ == "__main__":
    main()
