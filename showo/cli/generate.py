"""``showo generate | inpaint | extrapolate | answer``: the inference sub-commands.

Images land in ``--output`` as PNG files plus a grid; ``--save-steps`` adds the denoising
progression of each image as a strip. ``--prompts-file`` takes one prompt per line; under
``accelerate launch`` the prompts are sharded over the processes.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from ..model.image_processing import grid, load_image, save_image, write_text_file
from ..pipeline import ShowoPipeline
from .console import check_device, output_folder, say


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="Show-o folder (ours, or released with --vq/--tokenizer)")
    parser.add_argument("--vq", help="MAGVIT-v2 folder (default: MODEL/vq)")
    parser.add_argument("--tokenizer", help="tokenizer folder with tokenizer.json (default: MODEL)")
    parser.add_argument("--llm-config", help="base LLM config folder for released checkpoints")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output", type=Path, default=Path("outputs"), help="folder for the results")
    parser.add_argument("--seed", type=int, default=0)


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    default = "default: the model's generation_config.json, else %s"
    parser.add_argument("--steps", type=int, help=default % 18)
    parser.add_argument("--guidance-scale", type=float, help=default % 1.75)
    parser.add_argument("--schedule", help="cosine | linear | sigmoid | pow<p>; " + default % "cosine")
    parser.add_argument("--temperature", type=float,
                        help="of the Gumbel noise that picks which codes are re-masked; " + default % 1.0)
    parser.add_argument("--released-sampler", action="store_true", help="reproduce the released sampler's quirks")
    parser.add_argument("--save-steps", action="store_true", help="also write the denoising progression")


def load_pipeline(args) -> ShowoPipeline:
    device = check_device(args.device)  # before anything is loaded
    return ShowoPipeline.from_pretrained(args.model, vq=args.vq, tokenizer=args.tokenizer,
                                         llm_config=args.llm_config, device=device)


def sampling_kwargs(args) -> dict:
    return {"steps": args.steps, "guidance_scale": args.guidance_scale, "schedule": args.schedule,
            "temperature": args.temperature, "mode": "released" if args.released_sampler else "maskgit"}


def read_prompts(args) -> list[str]:
    prompts = list(args.prompt or [])
    if args.prompts_file:
        path = Path(args.prompts_file)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: prompts file not found")
        prompts += [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not prompts:
        raise ValueError("give at least one prompt (positional) or --prompts-file")
    return prompts


def shard(items: list, rank: int, world: int) -> list[tuple[int, object]]:
    """This process's share: every ``world``-th item starting at ``rank``, with its index."""
    return [(i, item) for i, item in enumerate(items) if i % world == rank]


def strip_recorder(pipe):
    """A callback that keeps the decoded image after every step (for --save-steps)."""
    frames: list[list[Image.Image]] = []

    def record(step, logits, sampled):
        frames.append(pipe.decode_codes(sampled))

    return frames, record


def run_generate(args) -> None:
    prompts, output = read_prompts(args), output_folder(args.output)
    pipe = load_pipeline(args)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    images, records = [], []
    for index, prompt in tqdm(shard(prompts, rank, world), desc="generating", disable=None):
        frames, record = strip_recorder(pipe) if args.save_steps else (None, None)
        (drawn,) = pipe.prompts_to_draw([prompt])
        codes = pipe.generate_codes([drawn], seed=args.seed + index, callback=record, plan=False,
                                    **sampling_kwargs(args))
        image = pipe.decode_codes(codes)[0]
        name = f"{index:05d}.png"
        save_image(image, output / name)
        if frames:
            save_image(grid([f[0] for f in frames], columns=len(frames)), output / f"{index:05d}_steps.png")
        images.append(image)
        records.append({"index": index, "prompt": prompt, "file": name, "seed": args.seed + index,
                        **({"plan": drawn} if drawn != prompt else {})})
    suffix = "" if world == 1 else f"_rank{rank}"
    save_image(grid(images), output / f"grid{suffix}.png")
    write_text_file(output / f"prompts{suffix}.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    say(f"wrote {len(images)} images and grid{suffix}.png to {output}")


def run_inpaint(args) -> None:
    output_folder(args.output)
    pipe = load_pipeline(args)
    result = pipe.inpaint(args.image, load_image(args.mask), args.prompt, seed=args.seed, **sampling_kwargs(args))
    save_image(result, args.output / "inpainted.png")
    say(f"wrote {args.output / 'inpainted.png'}")


def run_extrapolate(args) -> None:
    output_folder(args.output)
    pipe = load_pipeline(args)
    result = pipe.extrapolate(args.image, args.prompt, direction=args.direction, offset=args.offset,
                              seed=args.seed, **sampling_kwargs(args))
    save_image(result, args.output / "extrapolated.png")
    say(f"wrote {args.output / 'extrapolated.png'}")


def run_answer(args) -> None:
    pipe = load_pipeline(args)
    answers = pipe.answer(args.images, args.question, max_new_tokens=args.max_new_tokens, top_k=args.top_k,
                          top_p=args.top_p, temperature=args.temperature, seed=args.seed)
    for image, answer in zip(args.images, answers):
        say(f"{image}: {answer}")


def register(sub) -> None:
    gen = sub.add_parser("generate", help="text-to-image")
    gen.add_argument("prompt", nargs="*", help="prompts (or --prompts-file)")
    gen.add_argument("--prompts-file", help="one prompt per line")
    add_model_arguments(gen)
    add_sampling_arguments(gen)
    gen.set_defaults(run=run_generate)

    inpaint = sub.add_parser("inpaint", help="regenerate the white region of a mask")
    inpaint.add_argument("image")
    inpaint.add_argument("mask", help="mask image: white = regenerate")
    inpaint.add_argument("prompt")
    add_model_arguments(inpaint)
    add_sampling_arguments(inpaint)
    inpaint.set_defaults(run=run_inpaint)

    extra = sub.add_parser("extrapolate", help="grow an image toward one side")
    extra.add_argument("image")
    extra.add_argument("prompt")
    extra.add_argument("--direction", default="right", choices=["left", "right", "up", "down"])
    extra.add_argument("--offset", type=int, default=0, help="extra tokens of shift beyond half the grid")
    add_model_arguments(extra)
    add_sampling_arguments(extra)
    extra.set_defaults(run=run_extrapolate)

    answer = sub.add_parser("answer", help="answer a question about images")
    answer.add_argument("question")
    answer.add_argument("images", nargs="+")
    answer.add_argument("--max-new-tokens", type=int, default=100)
    answer.add_argument("--top-k", type=int, default=1)
    answer.add_argument("--top-p", type=float)
    answer.add_argument("--temperature", type=float, default=1.0)
    add_model_arguments(answer)
    answer.set_defaults(run=run_answer)
