"""Build a small image set in showo's documented formats, from real handwritten digits.

    pip install scikit-learn            # its digits ship with it: nothing is downloaded
    python docs/own-images/make_digits.py --output data/digits

scikit-learn's 1,797 handwritten digits (8x8 grey scans, UCI) are enlarged to 64x64 and written as
- ``data/digits/train-000.tar`` ... : WebDataset shards (``NNNNN.png`` + ``NNNNN.txt`` caption,
  "a handwritten digit seven"), the released pre-training format: text-to-image and captioning;
- ``data/digits/images/NNNNN.png`` and ``data/digits/questions.json``: LLaVA-format conversations
  ("What digit is this?" -> "seven", "Is this digit even or odd?" -> "odd"): understanding;
- ``data/digits/heldout/``: the last 97 digits, for checking the trained model on pictures it never saw.
The shards are written in a shuffled order, so a streaming reader's small shuffle buffer is enough.
"""

import argparse
import io
import json
import random
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
HELDOUT = 97  # the last digits of the set: never trained on


def digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        message = "make_digits.py needs scikit-learn (its digits ship with it): pip install scikit-learn"
        raise SystemExit(message) from None
    data = load_digits()
    return data.images, data.target  # (1797, 8, 8) in 0..16, (1797,)


def picture(scan: np.ndarray, size: int = 64) -> Image.Image:
    """An 8x8 scan in 0..16 as a size x size RGB picture: white ink on black, smoothly enlarged."""
    grey = Image.fromarray((scan * 255 / 16).round().astype(np.uint8))
    return grey.resize((size, size), Image.BICUBIC).convert("RGB")


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_shards(folder: Path, items: list[tuple[int, Image.Image, int]], per_shard: int = 500) -> None:
    for start in range(0, len(items), per_shard):
        with tarfile.open(folder / f"train-{start // per_shard:03d}.tar", "w") as tar:
            for index, image, label in items[start : start + per_shard]:
                for suffix, data in ((".png", png(image)), (".txt", f"a handwritten digit {WORDS[label]}".encode())):
                    info = tarfile.TarInfo(f"{index:05d}{suffix}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))


def conversation(index: int, label: int) -> dict:
    return {"id": f"{index:05d}", "image": f"{index:05d}.png", "conversations": [
        {"from": "human", "value": "<image>\nWhat digit is this?"},
        {"from": "gpt", "value": WORDS[label]},
        {"from": "human", "value": "Is this digit even or odd?"},
        {"from": "gpt", "value": "even" if label % 2 == 0 else "odd"},
    ]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=Path("data/digits"))
    args = parser.parse_args()
    scans, labels = digits()
    items = [(i, picture(scan), int(label)) for i, (scan, label) in enumerate(zip(scans, labels))]
    train, heldout = items[:-HELDOUT], items[-HELDOUT:]
    random.Random(0).shuffle(train)
    for sub in ("images", "heldout"):
        (args.output / sub).mkdir(parents=True, exist_ok=True)
    write_shards(args.output, train)
    for index, image, _ in train:
        image.save(args.output / "images" / f"{index:05d}.png")
    (args.output / "questions.json").write_text(json.dumps([conversation(i, label) for i, _, label in train]))
    for index, image, label in heldout:
        image.save(args.output / "heldout" / f"{index:05d}-{WORDS[label]}.png")
    print(f"wrote {len(train)} training digits ({args.output}/train-*.tar, questions.json, images/) and "
          f"{len(heldout)} held-out ones ({args.output}/heldout/)")


if __name__ == "__main__":
    main()
