"""``showo answer | caption``: understanding. Each prints one line per image and writes a JSONL of
the results to ``--output`` (``answers.jsonl``: image, question, answer; ``captions.jsonl``:
image, caption), whole or not at all.

``answer`` takes one question for every image (``showo answer "What colour?" a.png b.png``), one
question per image (``--question Q`` once per image, the images as positionals), or a JSONL of
``{"image": ..., "question": ...}`` lines (``--jsonl FILE``; image paths relative to the file).

Answers are greedy unless ``--do-sample``; then ``--temperature``, ``--top-k`` and ``--top-p``
shape the sampling (and are refused without it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..model.checkpoint_io import jsonl_records
from ..model.image_processing import write_text_file
from .console import output_folder, say
from .options import add_command, add_model_arguments, load_pipeline

BATCH = 8  # images answered at once; each answer is what it would be alone


def sampling(args: argparse.Namespace) -> dict:
    """``pipe.answer``'s sampling arguments: greedy unless ``--do-sample``."""
    given = [name for name, value in (("--temperature", args.temperature), ("--top-k", args.top_k),
                                      ("--top-p", args.top_p)) if value is not None]
    if not args.do_sample:
        if given:
            raise ValueError(f"{', '.join(given)} {'shapes' if len(given) == 1 else 'shape'} sampling, and "
                             "answers are greedy without --do-sample: add --do-sample")
        return {"top_k": 1, "top_p": None, "temperature": 1.0}
    if args.top_k is not None and args.top_k < 0:
        raise ValueError(f"--top-k {args.top_k}: must be 0 (no top-k) or more")
    return {"top_k": args.top_k or None, "top_p": None if args.top_p == 1.0 else args.top_p,
            "temperature": 1.0 if args.temperature is None else args.temperature}


def read_jsonl(path: Path) -> list[tuple[str, str]]:
    """The (image, question) pairs of a JSONL file; image paths relative to the file's folder. A bad
    line is named by its number."""
    if not path.is_file():
        raise FileNotFoundError(f"--jsonl {path}: no such file")
    pairs = []
    for where, record in jsonl_records(path, lambda number: f"--jsonl {path} line {number}"):
        if not isinstance(record, dict) or not all(isinstance(record.get(k), str) for k in ("image", "question")):
            raise ValueError(f'{where}: give an object with "image" and "question" strings')
        image = path.parent / record["image"]
        if not image.is_file():
            raise FileNotFoundError(f"{where}: no such image file: {image}")
        pairs.append((str(image), record["question"]))
    if not pairs:
        raise ValueError(f"--jsonl {path}: no (image, question) lines")
    return pairs


def questions_and_images(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(image, question) pairs of whichever of the three forms was used."""
    if args.jsonl is not None:
        if args.inputs or args.question:
            raise ValueError("--jsonl FILE holds the images and questions: give no others")
        return read_jsonl(Path(args.jsonl))
    if args.question:
        images = args.inputs
        if not images:
            raise ValueError("give the images after the --question options")
        if len(args.question) not in (1, len(images)):
            raise ValueError(f"{len(args.question)} --question options for {len(images)} images: give one "
                             "for every image, or one for all")
        questions = args.question * len(images) if len(args.question) == 1 else args.question
        return list(zip(images, questions))
    if len(args.inputs) < 2:
        raise ValueError("give a question and at least one image (showo answer QUESTION IMAGE...), "
                         "--question Q per image, or --jsonl FILE")
    return [(image, args.inputs[0]) for image in args.inputs[1:]]


def check_images(images: list[str]) -> None:
    for image in images:
        if not Path(image).is_file():
            raise FileNotFoundError(f"{image}: no such image file")


def run_answer(args: argparse.Namespace) -> None:
    options, pairs = sampling(args), questions_and_images(args)
    check_images([image for image, _ in pairs])
    output = output_folder(args.output)
    pipe = load_pipeline(args)
    answers = []
    for start in range(0, len(pairs), BATCH):
        batch = pairs[start:start + BATCH]
        answers += pipe.answer([image for image, _ in batch], [q for _, q in batch],
                               max_new_tokens=args.max_new_tokens, seed=args.seed + start, **options)
    one_question = len({q for _, q in pairs}) == 1
    for (image, question), answer in zip(pairs, answers):
        say(f"{image}: {answer}" if one_question else f"{image}: {question} -> {answer}")
    records = [{"image": image, "question": q, "answer": a} for (image, q), a in zip(pairs, answers)]
    write_text_file(output / "answers.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    say(f"wrote {len(records)} answer{'s' if len(records) > 1 else ''} to {output / 'answers.jsonl'}", error=True)


def run_caption(args: argparse.Namespace) -> None:
    options = sampling(args)
    check_images(args.images)
    output = output_folder(args.output)
    pipe = load_pipeline(args)
    captions = []
    for start in range(0, len(args.images), BATCH):
        captions += pipe.caption(args.images[start:start + BATCH], max_new_tokens=args.max_new_tokens,
                                 seed=args.seed + start, **options)
    for image, caption in zip(args.images, captions):
        say(f"{image}: {caption}")
    records = [{"image": image, "caption": caption} for image, caption in zip(args.images, captions)]
    write_text_file(output / "captions.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    say(f"wrote {len(records)} caption{'s' if len(records) > 1 else ''} to {output / 'captions.jsonl'}", error=True)


def add_text_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-new-tokens", type=int, default=100, help="the longest text per image, in tokens")
    parser.add_argument("--do-sample", action="store_true", help="sample the text instead of greedy decoding")
    parser.add_argument("--temperature", type=float, help="with --do-sample: of the sampling (default: 1.0)")
    parser.add_argument("--top-k", type=int, help="with --do-sample: sample from the K likeliest tokens; "
                                                  "0 = no top-k (default: 0)")
    parser.add_argument("--top-p", type=float, help="with --do-sample: sample from the likeliest tokens whose "
                                                    "probabilities add up to P; 1.0 = off (default: 1.0)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of --do-sample")
    add_model_arguments(parser)


def register(sub) -> None:
    answer = add_command(
        sub, "answer", help="answer questions about images",
        usage="showo answer [options] QUESTION IMAGE [IMAGE ...]\n"
              "       showo answer [options] --question Q [--question Q ...] IMAGE [IMAGE ...]\n"
              "       showo answer [options] --jsonl FILE",
        description="Answer one question about every image, one question per image (--question, once per "
                    "image) or the (image, question) lines of a JSONL file. Prints one answer per image and "
                    "writes OUTPUT/answers.jsonl (image, question, answer).")
    answer.add_argument("inputs", nargs="*", metavar="QUESTION IMAGE",
                        help="the question, then the images (only the images with --question)")
    answer.add_argument("--question", action="append",
                        help="a question per image, in their order; once for all (default: the first positional)")
    answer.add_argument("--jsonl", help='a file of {"image": "a.png", "question": "..."} lines, image paths '
                                        "relative to the file (default: the questions and images given)")
    add_text_arguments(answer)
    answer.set_defaults(run=run_answer)

    caption = add_command(sub, "caption", help="describe images",
                          description="Caption each image: prints one caption per image and writes "
                                      "OUTPUT/captions.jsonl (image, caption).")
    caption.add_argument("images", nargs="+", metavar="IMAGE", help="the images to describe")
    add_text_arguments(caption)
    caption.set_defaults(run=run_caption)
