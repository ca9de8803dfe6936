"""Our inference paths against the naive full-recompute path (what the released code does),
on the same random weights at the show-o-256 sequence layout.

    python benchmarks/versus_naive.py                      # CPU, 2 of 24 layers, fp32
    python benchmarks/versus_naive.py --layers 24 --device cuda --dtype bf16

Prints, for each task, seconds for both paths, the speed-up, and achieved GFLOP/s next to
the machine's plain matmul GFLOP/s:
* T2I: MaskGIT, 18 steps, guidance 1.75 (cond + uncond rows);
* understanding: 64 new tokens after an `<mmu> <soi> 256 codes <eoi> <sot> question` prompt;
* steps versus quality: the same 256 image tokens generated token by token (autoregressive,
  with a KV cache and guidance), against MaskGIT's 18 parallel steps.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch
from common import describe_machine, matmul_gflops, synchronize
from flops import forward_flops
from forward import DTYPES, t2i_batch
from naive_image import naive_generate_image_tokens
from naive_text import naive_generate_text

from showo import ShowoModel, omni_attention_mask, showo_preset
from showo.generation.generate_image import generate_image_tokens
from showo.generation.generate_text import generate_text
from showo.generation.prompting import mmu_prompt

STEPS, GUIDANCE, NEW_TOKENS, QUESTION_TOKENS = 18, 1.75, 64, 20


def timed(fn, device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def t2i_flops(config, prefix: int, naive: bool) -> int:
    n, total = config.num_image_tokens, prefix + config.num_image_tokens + 2
    if naive:
        return STEPS * forward_flops(config, batch=2, new_tokens=total)
    step = forward_flops(config, 2, new_tokens=n + 2, context=total, logit_rows=n, logit_cols=config.codebook_size)
    return forward_flops(config, 2, prefix, logit_rows=0) + STEPS * step


def mmu_flops(config, prompt: int, naive: bool) -> int:
    if naive:
        return sum(forward_flops(config, 1, prompt + t) for t in range(NEW_TOKENS))
    steps = sum(forward_flops(config, 1, 1, context=prompt + t) for t in range(1, NEW_TOKENS))
    return forward_flops(config, 1, prompt, logit_rows=1) + steps


@torch.no_grad()
def autoregressive_image(model, ids: torch.Tensor, start: int) -> None:
    """256 image tokens one at a time (cond + uncond rows, KV cache): the cost MaskGIT avoids."""
    cache = model.new_cache(ids.shape[0], ids.shape[1])
    mask = omni_attention_mask(ids, model.layout)
    model.hidden_states(ids[:, :start], attention_mask=mask[:, :, :start, :start], cache=cache)
    codes = slice(model.layout.image_offset, model.layout.image_offset + model.layout.codebook_size)
    weight, bias = model.lm_head.weight[codes], model.lm_head.bias[codes]  # image codes only, as ours
    prompt_columns = mask[:, :, start - 1 : start, :start]  # (B, 1, 1, start): what the prompt sees (no pads)
    token = ids[:, start : start + 1]
    for t in range(start, ids.shape[1] - 1):
        generated = torch.ones(ids.shape[0], 1, 1, t + 1 - start, dtype=torch.bool, device=ids.device)
        causal = torch.cat([prompt_columns, generated], dim=-1)
        hidden = model.hidden_states(token, attention_mask=causal, cache=cache)
        token = torch.nn.functional.linear(hidden[:, -1:], weight, bias).argmax(-1) + model.layout.image_offset


def report(name: str, ours: float, naive: float, flops_ours: int, flops_naive: int, peak: float) -> None:
    print(f"{name}: naive {naive:.2f} s, ours {ours:.2f} s -> speed-up {naive / ours:.1f}x "
          f"(ours {flops_ours / ours / 1e9:.0f} GFLOP/s, naive {flops_naive / naive / 1e9:.0f} GFLOP/s, "
          f"matmul {peak:.0f} GFLOP/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=2, help="reduced depth (released: 24)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    args = parser.parse_args()
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    base = showo_preset("show-o-256")
    config = dataclasses.replace(base, llm=dataclasses.replace(base.llm, num_layers=args.layers))
    torch.manual_seed(0)
    model = ShowoModel(config).to(device=device, dtype=dtype).eval()
    layout, peak = config.layout, matmul_gflops(device, dtype)
    print(f"machine: {describe_machine(device)}; show-o-256 shape, {args.layers}/24 layers, {args.dtype}")

    ids = t2i_batch(config, 2).to(device)
    cond, uncond = ids[:1], ids[1:].clone()
    uncond[:, : config.max_text_length + 1] = torch.tensor(
        [layout.pad_id] * (config.max_text_length - 2) + [layout.t2i_id, layout.sot_id, layout.eot_id])
    prefix = config.max_text_length + 2
    gen = lambda: torch.Generator(device).manual_seed(0)
    kw = dict(steps=STEPS, guidance_scale=GUIDANCE)
    generate_image_tokens(model, cond, uncond, steps=1, guidance_scale=GUIDANCE, generator=gen())  # warm-up
    t2i = timed(lambda: generate_image_tokens(model, cond, uncond, generator=gen(), **kw), device)
    naive = timed(lambda: naive_generate_image_tokens(model, cond, uncond, generator=gen(), **kw), device)
    report(f"T2I ({STEPS} steps, guidance {GUIDANCE})", t2i, naive,
           t2i_flops(config, prefix, False), t2i_flops(config, prefix, True), peak)

    codes = torch.randint(0, config.codebook_size, (1, config.num_image_tokens), device=device)
    question = torch.randint(0, config.text_vocab_size, (QUESTION_TOKENS,)).tolist()
    prompt = mmu_prompt(layout.image_ids(codes), question, layout)
    no_stop = dict(max_new_tokens=NEW_TOKENS, top_k=1, eot_id=-1)  # never stops early
    ours = timed(lambda: generate_text(model, prompt, **no_stop), device)
    naive = timed(lambda: naive_generate_text(model, prompt, **no_stop), device)
    report(f"understanding ({NEW_TOKENS} new tokens)", ours, naive,
           mmu_flops(config, prompt.shape[1], False), mmu_flops(config, prompt.shape[1], True), peak)

    both = torch.cat([cond, uncond])
    ar = timed(lambda: autoregressive_image(model, both, prefix + 1), device)
    print(f"steps versus quality: {config.num_image_tokens} tokens one by one {ar:.2f} s "
          f"({config.num_image_tokens} forward passes) against MaskGIT {STEPS} steps {t2i:.2f} s "
          f"-> {ar / t2i:.1f}x")


if __name__ == "__main__":
    main()
