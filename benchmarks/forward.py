"""Time one forward pass of the show-o-256 shape (reduced depth) and compare its achieved
GFLOP/s with a plain matmul on the same machine.

    python benchmarks/forward.py                 # CPU, 2 layers, fp32
    python benchmarks/forward.py --layers 24 --device cuda --dtype bf16
"""

from __future__ import annotations

import argparse
import dataclasses

import torch
from common import best_time, describe_machine, matmul_gflops
from flops import forward_flops

from showo import ShowoModel, omni_attention_mask, showo_preset

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def t2i_batch(config, batch: int) -> torch.Tensor:
    """Released t2i layout: [PAD]* <t2i> <sot> text <eot> <soi> [MASK]*N <eoi> (387 tokens at 256x256)."""
    layout = config.layout
    text = torch.randint(0, config.text_vocab_size, (batch, 20))
    pad = torch.full((batch, config.max_text_length + 1 - 23), layout.pad_id)
    head = torch.tensor([layout.t2i_id, layout.sot_id])
    tail = torch.tensor([layout.eot_id, layout.soi_id] + [layout.mask_id] * config.num_image_tokens + [layout.eoi_id])
    return torch.cat([pad, head.expand(batch, -1), text, tail.expand(batch, -1)], dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="show-o-256")
    parser.add_argument("--layers", type=int, default=2, help="reduced depth (released: 24)")
    parser.add_argument("--batch", type=int, default=2, help="2 = a cond + uncond pair, as guidance runs")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    base = showo_preset(args.preset)
    config = dataclasses.replace(base, llm=dataclasses.replace(base.llm, num_layers=args.layers))
    torch.manual_seed(0)
    model = ShowoModel(config).to(device=device, dtype=dtype).eval()
    ids = t2i_batch(config, args.batch).to(device)
    mask = omni_attention_mask(ids, config.layout)

    with torch.no_grad():
        seconds = best_time(lambda: model(ids, attention_mask=mask), device, repeats=args.repeats)
    flops = forward_flops(config, batch=args.batch, new_tokens=ids.shape[1])
    achieved = flops / seconds / 1e9
    peak = matmul_gflops(device, dtype)
    print(f"machine: {describe_machine(device)}")
    print(f"model: {args.preset} shape, {args.layers}/{base.llm.num_layers} layers, {args.dtype}, "
          f"batch {args.batch} x {ids.shape[1]} tokens")
    print(f"forward: {seconds * 1e3:.1f} ms, {flops / 1e9:.1f} GFLOP -> {achieved:.1f} GFLOP/s")
    print(f"plain 2048x2048 matmul: {peak:.1f} GFLOP/s; forward reaches {100 * achieved / peak:.0f}% of it")


if __name__ == "__main__":
    main()
