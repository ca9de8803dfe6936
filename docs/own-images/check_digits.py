"""Check a model trained on the digits of make_digits.py, on digits it never saw.

    python docs/own-images/check_digits.py --model runs/digits/model/final --data data/digits

- the image tokenizer: PSNR of held-out digits encoded and decoded (check_tokenizer.py);
- answers: "What digit is this?" on the held-out digits, exact match;
- pictures: "a handwritten digit N", four seeds for each digit, read back by a classifier trained on
  the training digits (scikit-learn's SVC on 8x8 shrinks of the pictures): the share drawn right.
Writes MODEL/../check/ (a grid of the pictures, check.json) and prints the numbers.
"""

import argparse
import json
from pathlib import Path

import numpy as np
from check_tokenizer import psnr, reconstruct  # beside this script
from make_digits import HELDOUT, WORDS
from PIL import Image

import showo
from showo.model.image_processing import labelled_grid


def reader():
    """A digit classifier on 8x8 grey pictures in 0..16 (the scans' own scale), from the training digits."""
    from sklearn.datasets import load_digits
    from sklearn.svm import SVC

    data = load_digits()
    return SVC(gamma=0.001).fit(data.data[:-HELDOUT], data.target[:-HELDOUT])  # the digits trained on


def to_scan(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L").resize((8, 8), Image.BOX), dtype=np.float64).reshape(-1) * 16 / 255


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("data/digits"))
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args()
    pipe = showo.ShowoPipeline.from_pretrained(args.model, device="cpu")
    files = sorted((args.data / "heldout").glob("*.png"))
    truths = [f.stem.split("-")[1] for f in files]
    pictures = [Image.open(f).convert("RGB") for f in files]

    pixels, recon = reconstruct(pipe.vq, pictures, pipe.config.image_size)

    answers = pipe.answer(pictures, "What digit is this?", max_new_tokens=4)
    answered = sum(a.strip() == t for a, t in zip(answers, truths)) / len(truths)

    classify, drawn, labels, right = reader(), [], [], 0
    for digit, word in enumerate(WORDS):
        out = pipe(f"a handwritten digit {word}", num_images_per_prompt=args.seeds, seed=0)
        read = classify.predict(np.stack([to_scan(i) for i in out.images]))
        right += int((read == digit).sum())
        drawn += out.images
        labels += [f"{word}: read {WORDS[r]}" for r in read]
    pictures_right = right / (10 * args.seeds)

    folder = args.model.parent / "check"
    folder.mkdir(exist_ok=True)
    labelled_grid(drawn, labels, columns=args.seeds).save(folder / "pictures.png")
    numbers = {"recon_psnr": round(psnr(pixels, recon), 2),
               "answer_accuracy": round(answered, 3), "pictures_right": round(pictures_right, 3),
               "heldout_digits": len(files), "pictures": 10 * args.seeds}
    (folder / "check.json").write_text(json.dumps(numbers, indent=1) + "\n")
    print(json.dumps(numbers))
    print(f"pictures: {folder / 'pictures.png'}")


if __name__ == "__main__":
    main()
