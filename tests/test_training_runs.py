"""Whole training runs on the built-in world: loss goes down, a SIGKILLed run resumes exactly,
2 processes (gloo) equal 1, bad data and NaN stop or skip as configured, stages chain by name."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch
from conftest import losses, small, train_cli
from PIL import Image

from showo.cli.main import main
from showo.data.stream import BadSample, BadSampleWarning
from showo.generation.generation_config import GenerationConfig
from showo.model.magvit2 import MagvitV2
from showo.training.config import build_config
from showo.training.metrics import read_metrics
from showo.training.presets import train_preset
from showo.training.showo_trainer import ShowoTrainer
from showo.training.trainer import TrainingDiverged


def test_loss_goes_down_on_the_tiny_preset(tmp_path, world_tokenizer):
    assert main(train_cli(tmp_path, world_tokenizer, 30, 30)) == 0
    values = [loss for _, loss in losses(tmp_path)]
    assert len(values) == 30
    assert sum(values[-5:]) / 5 < 0.75 * sum(values[:5]) / 5
    records = read_metrics(tmp_path)
    assert {"loss_t2i", "loss_lm", "loss_mmu", "loss_mixed", "lr", "masking_rate", "tokens_per_s"} <= set(records[0])
    assert (tmp_path / "final" / "model.safetensors").is_file() and (tmp_path / "final" / "vq").is_dir()
    # what the README says the tiny preset writes: a labelled sample grid every 20 steps
    grid = Image.open(tmp_path / "samples" / "step-00000020.png").convert("L")
    assert grid.size[0] == 2 * 128 and grid.size[1] > 128  # two enlarged 64x64 pictures, a label band below
    band = np.asarray(grid)[129:, :]
    assert (band < 100).sum() > 50  # the prompts are written there (dark text on white)


def test_tensorboard_logs_every_metric(tmp_path, world_tokenizer):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert main(train_cli(tmp_path, world_tokenizer, 2, 2, "tensorboard=true")) == 0
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert {"loss", "loss_t2i", "lr", "grad_norm"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("loss")] == [1, 2]


def run_module(args, **kwargs):
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, **kwargs)


def test_sigkill_then_rerun_gives_the_same_losses_as_an_uninterrupted_run(tmp_path, world_tokenizer):
    steps, every = 8, 3
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert run_module(["showo", *train_cli(whole, world_tokenizer, steps, every)]).wait(300) == 0
    proc = run_module(["showo", *train_cli(killed, world_tokenizer, steps, every)])
    deadline = time.time() + 300
    while time.time() < deadline:  # kill it after step 5: past the step-3 checkpoint, before step 6's
        if (killed / "metrics.jsonl").exists() and any(s >= 5 for s, _ in losses(killed)):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "final").exists()
    done = sorted(p.name for p in (killed / "checkpoints").iterdir() if not p.name.startswith("."))
    assert done[-1] in ("step-00000003", "step-00000006")
    resumed = run_module(["showo", *train_cli(killed, world_tokenizer, steps, every)])
    assert resumed.wait(300) == 0, resumed.stderr.read().decode()[-2000:]
    assert losses(killed) == losses(whole)  # every step once, bit for bit


def test_two_processes_give_the_loss_of_one_on_the_same_global_batch(tmp_path, world_tokenizer):
    one, two = tmp_path / "one", tmp_path / "two"
    args = train_cli(one, world_tokenizer, 3, 3)
    assert run_module(["showo", *args]).wait(300) == 0
    args2 = train_cli(two, world_tokenizer, 3, 3)
    proc = run_module(["torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "showo", *args2])
    assert proc.wait(300) == 0, proc.stderr.read().decode()[-3000:]
    for (s1, l1), (s2, l2) in zip(losses(one), losses(two), strict=True):
        assert s1 == s2 and l1 == pytest.approx(l2, rel=1e-5)
    assert {"data_rank0.json", "data_rank1.json"} <= {p.name for p in (two / "checkpoints" / "step-00000003").iterdir()}


def image_folder(root, corrupt=False):
    for name in ("red_circle", "blue_square"):
        (root / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (64, 64), (200, 10 * i, 0)).save(root / name / f"{i}.png")
    if corrupt:
        (root / "red_circle" / "broken.png").write_bytes(b"not a png at all")


def folder_config(tokenizer, root, *extra):
    overrides = small(tokenizer, f'data={{"t2i": {{"type": "image_folder", "root": "{root}"}}}}',
                      "data.lm=null", "data.mmu=null", "data.mixed=null", "max_steps=2", *extra)
    return build_config(train_preset("tiny"), None, overrides)


def test_bad_data_is_named_and_skipped_or_stops(tmp_path, world_tokenizer):
    root = tmp_path / "images"
    image_folder(root, corrupt=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ShowoTrainer(folder_config(world_tokenizer, root), tmp_path / "skip").run()
    messages = [str(w.message) for w in caught if issubclass(w.category, BadSampleWarning)]
    assert messages and all("broken.png" in m for m in messages)
    with pytest.raises(BadSample, match=r"broken\.png"):
        ShowoTrainer(folder_config(world_tokenizer, root, "on_bad_data=stop", "max_steps=6"), tmp_path / "stop").run()


def test_over_long_samples_are_reported_with_their_record(tmp_path, world_tokenizer):
    config = build_config(train_preset("tiny"), None, small(world_tokenizer, "data.t2i=null", "data.lm=null",
                                                            "data.mmu=null", "transformer.max_seq_length=150",
                                                            "on_bad_data=stop"))
    with pytest.raises(BadSample, match=r"world:train:interleaved:\d+: mixed-modality row of \d+ tokens, budget 150"):
        ShowoTrainer(config, tmp_path).run()


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, world_tokenizer, monkeypatch):
    config = build_config(train_preset("tiny"), None, small(world_tokenizer, "max_steps=6", "checkpoint_every=2"))
    trainer = ShowoTrainer(config, tmp_path)
    original = type(trainer.head).forward

    def poisoned(self, ids, labels):
        out = original(self, ids, labels)
        return out * float("nan") if trainer.step >= 3 else out

    monkeypatch.setattr(type(trainer.head), "forward", poisoned)
    with pytest.raises(TrainingDiverged, match=r"at step 4.*step-00000002"):
        trainer.run()
    assert [s for s, _ in losses(tmp_path)] == [1, 2, 3]
    assert not (tmp_path / "final").exists()


def test_a_stage_starts_from_the_previous_stage_by_name(tmp_path, world_tokenizer):
    first = tmp_path / "stage-a"
    generation = 'transformer.generation={"steps": 7, "guidance_scale": 2.5}'
    assert main(train_cli(first, world_tokenizer, 2, 2, generation)) == 0
    second = tmp_path / "stage-b"
    assert main(train_cli(second, world_tokenizer, 1, 1, "init_from=stage-a", "learning_rate=0",
                          "transformer.generation.steps=9")) == 0
    from safetensors.torch import load_file

    a = load_file(first / "final" / "model.safetensors")
    b = load_file(second / "final" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)  # lr 0: the second stage kept the first's weights
    # sampling defaults: the config's, over those of the folder it started from
    assert GenerationConfig.from_folder(first / "final") == GenerationConfig(steps=7, guidance_scale=2.5)
    assert GenerationConfig.from_folder(second / "final") == GenerationConfig(steps=9, guidance_scale=2.5)
    # ... and a resumed run (which starts from its checkpoint, not from init_from) keeps them
    assert main([*train_cli(second, world_tokenizer, 2, 1, "init_from=stage-a", "learning_rate=0",
                          "transformer.generation.steps=9"), "--allow-config-change"]) == 0
    assert [r["step"] for r in read_metrics(second)] == [1, 2]
    assert GenerationConfig.from_folder(second / "final") == GenerationConfig(steps=9, guidance_scale=2.5)


def test_a_stage_whose_model_asks_for_more_layers_grows_the_model_it_starts_from(tmp_path, world_tokenizer, capsys):
    first, second = tmp_path / "shallow", tmp_path / "deep"
    assert main(train_cli(first, world_tokenizer, 1, 1)) == 0
    assert main(train_cli(second, world_tokenizer, 2, 1, "init_from=shallow", "model.llm.num_layers=3")) == 0
    assert "grown to 3 layers (new blocks [2] start as identities)" in capsys.readouterr().out
    from safetensors.torch import load_file

    before, after = load_file(first / "final" / "model.safetensors"), load_file(second / "final" / "model.safetensors")
    assert {k for k in after if k.startswith("blocks.2.")} and not {k for k in before if k.startswith("blocks.2.")}
    assert after["blocks.2.mlp.fc2.weight"].abs().max() > 0  # trained from zero
    assert json.loads((second / "final" / "config.json").read_text())["llm"]["num_layers"] == 3
    # resumed, the run starts from its own (3-layer) checkpoint and grows nothing
    assert main([*train_cli(second, world_tokenizer, 3, 1, "init_from=shallow", "model.llm.num_layers=3"),
                 "--allow-config-change"]) == 0
    assert "grown to" not in capsys.readouterr().out
    assert [r["step"] for r in read_metrics(second)] == [1, 2, 3]


def test_tokenizer_training_improves_reconstruction_and_resumes(tmp_path):
    args = ["train", "--preset", "world-tokenizer", "--output", str(tmp_path), "--max-steps", "6",
            "--checkpoint-every", "3", 'batch_size={"t2i": 4}', "vq.preset=tiny", "warmup_steps=1",
            "image_tokenizer.adversarial_weight=0.1", "image_tokenizer.adversarial_start=2"]
    assert main(args) == 0
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == list(range(1, 7))
    assert records[-1]["psnr"] > records[0]["psnr"]
    assert records[0]["loss_generator"] == 0 and records[-1]["loss_discriminator"] > 0
    assert (tmp_path / "checkpoints" / "step-00000006" / "model" / "discriminator.safetensors").is_file()
    assert main([*args[:6], "9", *args[7:], "--allow-config-change"]) == 0  # resumes from step 6
    assert [r["step"] for r in read_metrics(tmp_path)] == list(range(1, 10))
    json.loads((tmp_path / "final" / "config.json").read_text())


def test_decoder_only_tokenizer_training_keeps_the_codes(tmp_path, capsys):
    first = ["train", "--preset", "world-tokenizer", "--output", str(tmp_path / "a"), "--max-steps", "2",
             "--checkpoint-every", "2", 'batch_size={"t2i": 4}', "vq.preset=tiny", "warmup_steps=1"]
    assert main(first) == 0
    second = [*first[:4], str(tmp_path / "b"), *first[5:], "init_from=a", "image_tokenizer.decoder_only=true",
              "learning_rate=1e-2"]
    assert main(second) == 0
    before, after = (MagvitV2.from_pretrained(tmp_path / run / "final") for run in ("a", "b"))
    pixels = torch.rand(2, 3, 64, 64) * 2 - 1
    assert torch.equal(before.encode(pixels), after.encode(pixels))
    assert not torch.equal(before.decoder.conv_out.weight, after.decoder.conv_out.weight)
    assert main([*first[:4], str(tmp_path / "c"), *first[5:], "image_tokenizer.decoder_only=true"]) == 2
    assert "decoder_only=true needs init_from" in capsys.readouterr().err
