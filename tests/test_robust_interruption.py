"""Interrupted training keeps the work: a kill at any write point, Ctrl-C or SIGTERM, then the same
command again, ends with the weights and every metric row of a run never interrupted.

Each run is a real ``showo train`` process (tests/killed_at.py dies at one write point like a
SIGKILL: no cleanup)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import losses, train_cli

from showo.cli.main import main

HERE = Path(__file__).parent
STEPS, EVERY = 4, 2


def run(args, env_extra=None, point=None):
    """``showo ARGS`` in a new process (dying at ``point``); returns the finished process."""
    command = [sys.executable, str(HERE / "killed_at.py"), point, *args] if point else \
        [sys.executable, "-m", "showo", *args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env={**env, **(env_extra or {})})


def rows(folder):
    """The complete rows of a run's metrics.jsonl (a row being written is left out)."""
    path = folder / "metrics.jsonl"
    lines = path.read_text().split("\n") if path.exists() else [""]
    return [json.loads(line) for line in lines[:-1]]  # what follows the last newline is unfinished


def outcome(folder):
    """What a finished run leaves: its final weights and (step, loss) of every metric row."""
    return (folder / "final" / "model.safetensors").read_bytes(), losses(folder)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, world_tokenizer):
    folder = tmp_path_factory.mktemp("whole")
    done = run(train_cli(folder, world_tokenizer, STEPS, EVERY))
    assert done.returncode == 0, done.stderr[-2000:]
    return outcome(folder)


@pytest.mark.parametrize("points", [
    ["checkpoint"],                                   # mid-checkpoint: half of optimizer.pt written
    ["publish"],                                      # the checkpoint's temp-to-final rename
    ["final"],                                        # final/ written, not yet published
    ["rewrite:train_config.json"],                    # the config written at every start
    ["rewrite:generation_config.json"],               # the sampling defaults written at every start
    ["after-step:3", "rewrite:metrics.jsonl"],        # rows past the checkpoint, then their rewrite on resume
], ids=lambda points: "+".join(points))
def test_a_kill_at_each_write_point_then_the_same_command_gives_the_uninterrupted_run(
        tmp_path, world_tokenizer, uninterrupted, points):
    args = train_cli(tmp_path, world_tokenizer, STEPS, EVERY)
    for point in points:
        killed = run(args, point=point)
        assert killed.returncode == 137, f"{point}: the process did not die there: {killed.stderr[-1500:]}"
    for name in ("train_config.json", "generation_config.json"):  # never left empty or half written
        if (tmp_path / name).exists():
            json.loads((tmp_path / name).read_text())
    done = run(args)
    assert done.returncode == 0, done.stderr[-2000:]
    assert outcome(tmp_path) == uninterrupted


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_checkpoints_the_step_says_so_and_the_same_command_resumes_exactly(
        tmp_path, world_tokenizer, signum):
    steps = 12
    args = train_cli(tmp_path / "stopped", world_tokenizer, steps, 100)  # no checkpoint but the last
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    proc = subprocess.Popen([sys.executable, "-m", "showo", *args], stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and len(rows(tmp_path / "stopped")) < 2:
        time.sleep(0.05)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    stopped_at = len(losses(tmp_path / "stopped"))
    assert proc.returncode == 128 + signum, err[-2000:]
    assert f"stopped at step {stopped_at}; run the same command to resume" in err
    assert "Traceback" not in err
    assert (tmp_path / "stopped" / "checkpoints" / f"step-{stopped_at:08d}").is_dir()
    assert not (tmp_path / "stopped" / "final").exists() and stopped_at < steps
    if signum == signal.SIGTERM:
        return  # the resume is the same for both; Ctrl-C checks it
    assert main(args) == 0
    assert main(train_cli(tmp_path / "whole", world_tokenizer, steps, 100)) == 0
    assert outcome(tmp_path / "stopped") == outcome(tmp_path / "whole")


def test_a_rerun_with_another_config_is_refused_until_told_and_the_change_is_recorded(
        tmp_path, world_tokenizer, capsys):
    assert main(train_cli(tmp_path, world_tokenizer, 2, 2)) == 0
    capsys.readouterr()
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    changed = train_cli(tmp_path, world_tokenizer, 3, 2, "learning_rate=1e-5")
    assert main(changed) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a run with another config" in err
    assert "learning_rate: 0.003 -> 1e-05" in err and "max_steps: 2 -> 3" in err and "--allow-config-change" in err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before  # nothing touched
    assert main([*changed, "--allow-config-change"]) == 0
    record = json.loads((tmp_path / "config_changes.jsonl").read_text())
    assert record == {"step": 2, "changes": {"learning_rate": [0.003, 1e-05], "max_steps": [2, 3]}}
    assert json.loads((tmp_path / "train_config.json").read_text())["learning_rate"] == 1e-05
    assert [s for s, _ in losses(tmp_path)] == [1, 2, 3]


def test_a_resumed_run_may_change_its_thread_count_without_being_told(tmp_path, world_tokenizer):
    before = torch.get_num_threads()
    try:
        assert main(train_cli(tmp_path, world_tokenizer, 2, 2)) == 0
        assert main([*train_cli(tmp_path, world_tokenizer, 2, 2), "--threads", "1"]) == 0  # a machine setting
        assert torch.get_num_threads() == 1 and not (tmp_path / "config_changes.jsonl").exists()
        assert json.loads((tmp_path / "train_config.json").read_text())["torch_threads"] == 1
    finally:
        torch.set_num_threads(before)


def test_another_preset_in_the_same_folder_is_refused_before_any_work(tmp_path, world_tokenizer, capsys):
    assert main(train_cli(tmp_path, world_tokenizer, 2, 2)) == 0
    capsys.readouterr()
    other = ["train", "--preset", "world-tokenizer", "--output", str(tmp_path), "--max-steps", "2"]
    assert main(other) == 2
    assert "task: \"showo\" -> \"tokenizer\"" in capsys.readouterr().err
