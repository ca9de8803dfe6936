"""``showo eval geneval | dpg`` (issue 33): the folders GenEval's and DPG-Bench's own scorers read,
written by a tiny pipeline from files in each benchmark's published format; resumed after a kill;
sharded over two processes by the real launcher (torchrun) into the same files as one process;
recorded (checkpoint sha256, settings, seeds); and refusing what it must not touch."""

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from showo.cli.main import main
from showo.pipeline import ShowoPipeline

HERE = Path(__file__).parent

# Lines in the format of GenEval's prompts/evaluation_metadata.jsonl (one per task tag)
GENEVAL_LINES = [
    '{"tag": "single_object", "include": [{"class": "bench", "count": 1}], "prompt": "a photo of a bench"}',
    '{"tag": "two_object", "include": [{"class": "toilet", "count": 1}, {"class": "bicycle", "count": 1}], '
    '"prompt": "a photo of a toilet and a bicycle"}',
    '{"tag": "counting", "include": [{"class": "car", "count": 2}], "exclude": [{"class": "car", "count": 3}], '
    '"prompt": "a photo of two cars"}',
    '{"tag": "colors", "include": [{"class": "bus", "count": 1, "color": "green"}], '
    '"prompt": "a photo of a green bus"}',
    '{"tag": "position", "include": [{"class": "dog", "count": 1}, {"class": "cat", "count": 1, '
    '"position": ["left of", 0]}], "prompt": "a photo of a cat left of a dog"}',
]
SETTINGS = ["--steps", "2", "--n-samples", "3", "--batch-size", "4", "--seed", "7", "--dtype", "fp32"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from conftest import build_tiny_pipeline

    root = tmp_path_factory.mktemp("bench")
    build_tiny_pipeline().save_pretrained(root / "model")
    (root / "evaluation_metadata.jsonl").write_text("\n".join(GENEVAL_LINES) + "\n")
    return root


def geneval_argv(files, output, *extra):
    return ["eval", "geneval", "--metadata", str(files / "evaluation_metadata.jsonl"), "--output", str(output),
            "--model", str(files / "model"), *SETTINGS, *extra]


@pytest.fixture(scope="module")
def geneval_run(files):
    out = files / "geneval"
    assert main(geneval_argv(files, out)) == 0
    return out


def snapshot(folder, skip=()):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in skip}


def read_like_geneval(imagedir):
    """What GenEval's evaluation/evaluate_images.py reads: every all-digit folder's metadata.jsonl
    (json.load) and its samples/<digits>.png."""
    read = {}
    for subfolder in os.listdir(imagedir):
        folderpath = os.path.join(imagedir, subfolder)
        if not os.path.isdir(folderpath) or not subfolder.isdigit():
            continue
        with open(os.path.join(folderpath, "metadata.jsonl")) as fp:
            metadata = json.load(fp)
        samples = sorted(name for name in os.listdir(os.path.join(folderpath, "samples"))
                         if re.match(r"\d+\.png", name))
        read[subfolder] = (metadata, samples)
    return read


def test_geneval_writes_the_folders_its_scorer_reads(files, geneval_run):
    read = read_like_geneval(geneval_run)
    assert sorted(read) == ["00000", "00001", "00002", "00003", "00004"]
    for i, line in enumerate(GENEVAL_LINES):
        metadata, samples = read[f"{i:05d}"]
        assert metadata == json.loads(line) and {"tag", "prompt", "include"} <= set(metadata)
        assert (geneval_run / f"{i:05d}" / "metadata.jsonl").read_text() == line + "\n"  # the line as is
        assert samples == ["0000.png", "0001.png", "0002.png"]
    assert sorted(p.name for p in geneval_run.iterdir()) == ["00000", "00001", "00002", "00003", "00004",
                                                             "showo_eval.json"]
    # sample j of every prompt is the pipeline's own picture at seed SEED + j
    pipe = ShowoPipeline.from_pretrained(files / "model", torch_dtype="fp32")
    expected = pipe.text_to_image("a photo of two cars", num_images_per_prompt=3, seed=7, steps=2)
    for j, picture in enumerate(expected):
        written = Image.open(geneval_run / "00002" / "samples" / f"{j:04d}.png")
        assert written.size == (64, 64) and written.convert("RGB").tobytes() == picture.tobytes()


def test_the_record_names_checkpoint_settings_and_seeds(files, geneval_run):
    record = json.loads((geneval_run / "showo_eval.json").read_text())
    sha = {name: hashlib.sha256((files / "model" / name).read_bytes()).hexdigest()
           for name in ("model.safetensors", "vq/model.safetensors")}
    assert record["checkpoint"]["files"] == {"model/model.safetensors": sha["model.safetensors"],
                                             "vq/model.safetensors": sha["vq/model.safetensors"]}
    assert len(record["checkpoint"]["sha256"]) == 64
    settings = record["settings"]
    assert (settings["steps"], settings["guidance_scale"], settings["resolution"], settings["n_samples"]) == \
        (2, 1.75, 64, 3)
    assert settings["schedule"] == "cosine" and settings["dtype"] == "float32" and settings["sampler"] == "maskgit"
    assert record["seeds"]["values"] == [7, 8, 9] and record["run"]["batch_size"] == 4
    metadata = files / "evaluation_metadata.jsonl"
    assert record["inputs"] == {"path": str(metadata), "sha256": hashlib.sha256(metadata.read_bytes()).hexdigest(),
                                "prompts": 5}


def test_a_killed_run_is_resumed_and_done_prompts_are_skipped(files, geneval_run, monkeypatch, capsys):
    out = files / "killed"
    killed = subprocess.run([sys.executable, str(HERE / "killed_at.py"), "eval-publish:2",
                             *geneval_argv(files, out)], capture_output=True, text=True, timeout=120)
    assert killed.returncode == 137, killed.stderr[-2000:]
    stale, *names = sorted(p.name for p in out.iterdir())
    assert stale.startswith(".00002.") and stale.endswith(".tmp")  # prompt 2 complete but not yet renamed
    assert names == ["00000", "00001", "showo_eval.json"]

    drawn = []
    real = ShowoPipeline.generate_codes

    def counting(self, prompts, *args, **kwargs):
        drawn.extend(prompts)
        return real(self, prompts, *args, **kwargs)

    monkeypatch.setattr(ShowoPipeline, "generate_codes", counting)
    assert main(geneval_argv(files, out)) == 0
    assert "3 prompts drawn, 2 already there" in capsys.readouterr().out
    prompts = [json.loads(line)["prompt"] for line in GENEVAL_LINES]
    assert drawn == [p for p in prompts[2:] for _ in range(3)]  # only the prompts not done, each once
    assert snapshot(out) == snapshot(geneval_run)  # the same files as a run that was never killed
    drawn.clear()
    assert main(geneval_argv(files, out)) == 0 and drawn == []  # all done: nothing drawn


def test_two_processes_under_torchrun_write_the_same_files_as_one(files, geneval_run):
    out = files / "sharded"
    # as many threads as this process: a CPU's float reductions (and so a picture's last bits) depend on it
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "showo", *geneval_argv(files, out)], capture_output=True, text=True, timeout=180,
                          env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "(shard 0 of 2: 3 prompts)" in done.stdout and "(shard 1 of 2: 2 prompts)" in done.stdout
    assert snapshot(out, skip={"showo_eval.json"}) == snapshot(geneval_run, skip={"showo_eval.json"})
    one, two = (json.loads((folder / "showo_eval.json").read_text()) for folder in (geneval_run, out))
    assert {k: v for k, v in one.items() if k != "run"} == {k: v for k, v in two.items() if k != "run"}
    assert (one["run"]["world_size"], two["run"]["world_size"]) == (1, 2)


def test_other_settings_or_a_foreign_folder_are_refused_and_left_alone(files, geneval_run, tmp_path, capsys):
    before = snapshot(geneval_run)
    assert main(geneval_argv(files, geneval_run, "--steps", "3")) == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("showo eval geneval: error: ") and "settings.steps: 2 there, 3 now" in last
    assert snapshot(geneval_run) == before
    theirs = tmp_path / "theirs"
    (theirs / "00000").mkdir(parents=True)  # another tool's GenEval folder
    (theirs / "00000" / "metadata.jsonl").write_text("{}")
    assert main(geneval_argv(files, theirs)) == 2
    assert "holds files showo did not write (00000) and no showo_eval.json" in capsys.readouterr().err
    assert snapshot(theirs) == {"00000/metadata.jsonl": b"{}"}


def test_a_bad_metadata_line_is_named(files, tmp_path, capsys):
    bad = tmp_path / "metadata.jsonl"
    bad.write_text(GENEVAL_LINES[0] + "\n\n" + '{"tag": "colors", "include": []}\n')
    assert main(["eval", "geneval", "--metadata", str(bad), "--output", str(tmp_path / "o"),
                 "--model", str(files / "model")]) == 2
    assert f'--metadata {bad} line 3: field "prompt" must be a non-empty string, got None' in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # refused before anything was written


# -- DPG-Bench -------------------------------------------------------------------------------------------
DPG_PROMPTS = {  # the format of ELLA's dpg_bench/prompts/<item_id>.txt: one prompt per file (theirs are longer)
    "1": "A red apple beside a blue mug.",
    "256": "Three yellow ducks on a green pond.",
    "30": "A white lighthouse on a rocky shore.",
}


def test_dpg_writes_2x2_grids_of_four_seeds_that_its_scorer_crops(files, tmp_path, capsys):
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    for name, text in DPG_PROMPTS.items():
        (prompts / f"{name}.txt").write_text(text + "\n")
    out = tmp_path / "dpg"
    argv = ["eval", "dpg", "--prompts", str(prompts), "--output", str(out), "--model", str(files / "model"),
            "--steps", "2", "--batch-size", "3", "--dtype", "fp32"]
    assert main(argv) == 0
    assert "--resolution 64 --pic-num 4" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["1.png", "256.png", "30.png", "showo_eval.json"]
    pipe = ShowoPipeline.from_pretrained(files / "model", torch_dtype="fp32")
    resolution = 64
    crops = [(0, 0, resolution, resolution), (resolution, 0, resolution * 2, resolution),  # compute_dpg_bench.py's
             (0, resolution, resolution, resolution * 2), (resolution, resolution, resolution * 2, resolution * 2)]
    for name, text in DPG_PROMPTS.items():
        picture = Image.open(out / f"{name}.png")
        assert picture.size == (128, 128) and os.path.basename(out / f"{name}.png").split(".")[0] == name
        tiles = pipe.text_to_image(text, num_images_per_prompt=4, seed=0, steps=2)  # tile j: seed 0 + j
        for crop, tile in zip(crops, tiles):
            assert picture.convert("RGB").crop(crop).tobytes() == tile.tobytes()
    record = json.loads((out / "showo_eval.json").read_text())
    assert record["benchmark"] == "dpg" and record["seeds"]["values"] == [0, 1, 2, 3]
    assert record["settings"]["resolution"] == 64 and record["inputs"]["prompts"] == 3
    (out / "256.png").unlink()
    assert main(argv) == 0  # resumed: only the missing grid is drawn again
    assert "1 prompts drawn, 2 already there" in capsys.readouterr().out
    assert Image.open(out / "256.png").size == (128, 128)
