"""The built-in world's held-out questions as an lmms-eval task and as a `showo eval vqa` file, and the
comparison of the two runs' answers (docs/evaluation.md).

    python docs/lmms_world/world_task.py --output runs/lmms-world              # write both
    python docs/lmms_world/world_task.py --output runs/lmms-world --compare    # after both ran
"""

import argparse
import json
from pathlib import Path

from showo.world.heldout import vqa_items


def write(root: Path, n: int) -> None:
    import datasets  # lmms-eval's dependency: run this with the Python that has lmms-eval

    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = {"question_id": [], "question": [], "answer": [], "image": []}
    with open(root / "world.jsonl", "w") as f:
        for i, item in enumerate(vqa_items(n, 0, 64)):
            name = f"images/{i:04d}.png"
            item["image"].save(root / name)
            f.write(json.dumps({"image": name, "question": item["question"], "answer": item["expected"]}) + "\n")
            for key, value in (("question_id", str(i)), ("question", item["question"]),
                               ("answer", item["expected"]), ("image", item["image"])):
                rows[key].append(value)
    features = datasets.Features({k: datasets.Value("string") for k in ("question_id", "question", "answer")}
                                 | {"image": datasets.Image()})
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows, features=features)}).save_to_disk(root / "data")
    print(f"{n} questions: {root / 'world.jsonl'} (showo eval vqa), {root / 'data'} (lmms-eval task world_vqa)")


def compare(root: Path) -> None:
    """lmms-eval's logged answers against `showo eval vqa`'s, question by question."""
    theirs = {}
    for path in sorted(root.glob("lmms/**/*samples_world_vqa.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            answer = row["filtered_resps"]
            while isinstance(answer, list):
                answer = answer[0]
            theirs[int(row["doc_id"])] = answer.strip()
    ours = [json.loads(line)["prediction"] for line in (root / "vqa" / "answers.jsonl").read_text().splitlines()]
    same = sum(theirs.get(i) == answer for i, answer in enumerate(ours))
    print(f"{same} of {len(ours)} answers identical")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--questions", type=int, default=120)
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args()
    if args.compare:
        compare(args.output)
    else:
        write(args.output, args.questions)
