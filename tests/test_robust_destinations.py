"""Writing a model folder never destroys what showo did not write: each case checks the message
and that every file at the destination (and at the source) is byte-identical afterwards."""

import os
import stat

import pytest
import torch
from conftest import TINY, build_tiny_pipeline, write_released_folder

from showo import ShowoModel
from showo.cli.main import main
from showo.model.released_checkpoint import ours_to_released


def snapshot(folder):
    """Every file under ``folder`` (hidden ones too) with its bytes."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def no_temporaries(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith((".tmp", ".old"))]


@pytest.fixture
def released(tmp_path, tiny_model):
    folder = write_released_folder(tmp_path / "released", ours_to_released(tiny_model.state_dict()),
                                   "pytorch_model.safetensors")
    return folder


def test_a_folder_showo_did_not_write_is_refused_and_kept(tmp_path, tiny_model):
    target = tmp_path / "thesis"
    target.mkdir()
    (target / "thesis.txt").write_text("four years of work")
    before = snapshot(target)
    with pytest.raises(ValueError, match="holds files showo did not write"):
        tiny_model.save_pretrained(target)
    with pytest.raises(ValueError, match="holds files showo did not write"):
        tiny_model.save_pretrained(target, overwrite=True)  # overwrite is for showo folders only
    assert snapshot(target) == before and not no_temporaries(tmp_path)


def test_a_showo_folder_is_replaced_only_when_asked(tmp_path, tiny_model):
    target = tmp_path / "model"
    ShowoModel(TINY).save_pretrained(target)
    before = snapshot(target)
    with pytest.raises(ValueError, match=r"a showo model is already there; pass overwrite=True \(--overwrite\)"):
        tiny_model.save_pretrained(target)
    assert snapshot(target) == before
    tiny_model.save_pretrained(target, overwrite=True)
    assert snapshot(target) != before and not no_temporaries(tmp_path)


def test_a_showo_folder_with_a_users_file_in_it_is_not_replaced(tmp_path, tiny_model):
    target = tmp_path / "model"
    tiny_model.save_pretrained(target)
    (target / "NOTES.md").write_text("my notes")
    before = snapshot(target)
    with pytest.raises(ValueError, match=r"holds \['NOTES.md'\], which replacing it would delete"):
        tiny_model.save_pretrained(target, overwrite=True)
    assert snapshot(target) == before


def test_an_empty_folder_is_taken_and_keeps_the_users_mode(tmp_path, tiny_model):
    target = tmp_path / "empty"
    target.mkdir(mode=0o755)
    old = os.umask(0o022)
    try:
        tiny_model.save_pretrained(target)
        build_tiny_pipeline().save_pretrained(tmp_path / "pipe")
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o755  # not mkdtemp's 0700
    assert stat.S_IMODE((tmp_path / "pipe").stat().st_mode) == 0o755
    assert stat.S_IMODE((target / "model.safetensors").stat().st_mode) == 0o644  # not mkstemp's 0600
    assert ShowoModel.from_pretrained(target).config == TINY


def test_a_file_as_destination_is_refused(tmp_path, tiny_model):
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    with pytest.raises(ValueError, match="is a file"):
        tiny_model.save_pretrained(notes)
    assert notes.read_text() == "keep me" and not no_temporaries(tmp_path)


def test_pipeline_save_refuses_before_writing_anything(tmp_path):
    target = tmp_path / "pipe"
    target.mkdir()
    (target / "data.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="holds files showo did not write"):
        build_tiny_pipeline().save_pretrained(target)
    assert snapshot(target) == {target.relative_to(target) / "data.csv": b"a,b\n"} and not no_temporaries(tmp_path)


@pytest.mark.parametrize("where", ["same", "inside", "parent", "file", "foreign"])
def test_convert_refuses_every_destination_it_must_not_touch(tmp_path, released, capsys, where):
    (tmp_path / "notes.txt").write_text("notes")
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "a.txt").write_text("a")
    destination = {"same": released, "inside": released / "sub", "parent": tmp_path / "released" / "..",
                   "file": tmp_path / "notes.txt", "foreign": tmp_path / "theirs"}[where]
    before = snapshot(tmp_path)
    assert main(["convert", str(released), str(destination)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("showo convert: error: ") and err.count("\n") == 1
    assert {"same": "is the source folder", "inside": "is the source folder", "parent": "did not write",
            "file": "is a file", "foreign": "did not write"}[where] in err
    assert snapshot(tmp_path) == before  # the released weights and everything beside them intact


def test_convert_replaces_its_own_output_only_with_overwrite(tmp_path, released, llm_config_dir, capsys):
    out, llm = tmp_path / "ours", ["--llm-config", str(llm_config_dir)]
    assert main(["convert", str(released), str(out), *llm]) == 0
    first = snapshot(out)
    assert main(["convert", str(released), str(out), *llm]) == 2
    assert "--overwrite" in capsys.readouterr().err and snapshot(out) == first
    assert main(["convert", str(released), str(out), *llm, "--overwrite"]) == 0
    assert snapshot(out) == first  # the same weights written again
    assert not no_temporaries(tmp_path)


def test_a_failed_write_leaves_the_old_folder_and_no_temporary(tmp_path, tiny_model, monkeypatch):
    target = tmp_path / "model"
    ShowoModel(TINY).save_pretrained(target)
    before = snapshot(target)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("showo.model.checkpoint_io.save_file", full_disk)
    with pytest.raises(OSError, match=r"disk full while writing .*model\.safetensors \(.* MiB free there\)"):
        tiny_model.save_pretrained(target, overwrite=True)
    assert snapshot(target) == before and not no_temporaries(tmp_path) and not no_temporaries(target)


def test_disk_full_in_torch_save_is_reported_as_disk_full(tmp_path, monkeypatch):
    from showo.model.checkpoint_io import atomic_write

    def torch_full(obj, path):  # what torch.save raises when the disk fills
        raise RuntimeError("[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")

    target = tmp_path / "optimizer.pt"
    target.write_bytes(b"last good")
    with pytest.raises(OSError, match="disk full while writing"):
        atomic_write(target, lambda tmp: torch_full({"a": torch.zeros(1)}, tmp))
    assert target.read_bytes() == b"last good" and not no_temporaries(tmp_path)
