"""Every file showo rewrites is written whole or not at all: a failure (here a raised error where
a kill would strike) leaves the old bytes and no temporary file; what is written is fsynced, file
and folder, before it counts. The kills themselves, in real processes: test_robust_interruption."""

import os
import stat

import pytest
import torch
from conftest import TINY, losses, train_cli

from showo import GenerationConfig, ShowoModel
from showo.cli.main import main
from showo.model import checkpoint_io
from showo.model.checkpoint_io import atomic_write
from showo.training.metrics import MetricsLog


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so no ``except Exception`` cleans up after it."""


def leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".old"))]


def test_a_failed_rewrite_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "state.json"
    path.write_text('{"step": 1}')

    def half_then_killed(tmp):
        tmp.write_text('{"st')
        raise Killed

    with pytest.raises(Killed):
        atomic_write(path, half_then_killed)
    assert path.read_text() == '{"step": 1}' and not leftovers(tmp_path)


def test_the_file_and_its_folder_are_fsynced_before_the_rename_counts(tmp_path, monkeypatch):
    synced, real_fsync = [], os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    atomic_write(tmp_path / "a.json", lambda tmp: tmp.write_text("{}"))
    assert synced[0].startswith(str(tmp_path / ".a.json.")) and synced[-1] == str(tmp_path)
    synced.clear()
    ShowoModel(TINY).save_pretrained(tmp_path / "model")
    assert str(tmp_path / "model") not in synced[:-1]  # the temporary folder is synced, then renamed
    assert any(p.endswith("model.safetensors") for p in synced) and synced[-1] == str(tmp_path)


def test_a_rewritten_file_keeps_the_mode_of_a_new_file(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "a.txt", lambda tmp: tmp.write_text("x"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640


def test_generation_config_is_rewritten_whole(tmp_path, monkeypatch):
    GenerationConfig(steps=7).save(tmp_path)
    before = (tmp_path / "generation_config.json").read_bytes()

    def killed(path):
        raise Killed

    monkeypatch.setattr(checkpoint_io, "fsync", killed)
    with pytest.raises(Killed):
        GenerationConfig(steps=9).save(tmp_path)
    assert (tmp_path / "generation_config.json").read_bytes() == before and not leftovers(tmp_path)


def test_resuming_rewrites_metrics_whole_and_keeps_every_row_up_to_the_checkpoint(tmp_path, monkeypatch):
    rows = "".join(f'{{"step": {s}, "loss": {s}}}\n' for s in range(1, 6)) + '{"step": 6, "lo'  # cut by a kill
    (tmp_path / "metrics.jsonl").write_text(rows)

    def killed(path):
        raise Killed

    with monkeypatch.context() as m:
        m.setattr(checkpoint_io, "fsync", killed)
        with pytest.raises(Killed):
            MetricsLog(tmp_path, resume_step=3)
    assert (tmp_path / "metrics.jsonl").read_text() == rows and not leftovers(tmp_path)  # nothing lost
    MetricsLog(tmp_path, resume_step=3).close()
    assert (tmp_path / "metrics.jsonl").read_text() == rows.split('{"step": 4')[0]  # rows 1-3, whole


def test_a_full_disk_while_checkpointing_is_reported_and_keeps_the_last_good_checkpoint(
        tmp_path, world_tokenizer, monkeypatch, capsys):
    args, real_save, calls = train_cli(tmp_path, world_tokenizer, 4, 2), torch.save, []

    def save(obj, f, *more, **kwargs):  # what torch.save raises when the disk fills
        calls.append(f)
        if len(calls) == 2:  # the second checkpoint's optimizer state
            raise RuntimeError("[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed writing "
                               "file data/0: file write failed")
        return real_save(obj, f, *more, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("showo train: error: disk full while writing ") and "optimizer.pt" in err
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-00000002"]  # no half folder
    monkeypatch.setattr(torch, "save", real_save)
    assert main(args) == 0  # space again: the same command goes on from step 2
    assert [step for step, _ in losses(tmp_path)] == [1, 2, 3, 4]
