"""LoRA training runs (``lora.rank=...``): only the adapter learns and is written, alone, to
final/ and to every checkpoint; a killed run resumes exactly; the CLI loads the adapter."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import losses, train_cli
from safetensors.torch import load_file

from showo.cli.main import main
from showo.model import adapters
from showo.pipeline import ShowoPipeline

pytest.importorskip("peft")
HERE = Path(__file__).parent
STEPS, EVERY = 6, 3


@pytest.fixture(scope="module")
def base(tmp_path_factory, world_tokenizer):
    """A tiny model trained for a few steps: the frozen base of the LoRA runs."""
    folder = tmp_path_factory.mktemp("base")
    assert main(train_cli(folder, world_tokenizer, 4, 4)) == 0
    return folder / "final"


def lora_args(output, tokenizer, base, *extra):
    return train_cli(output, tokenizer, STEPS, EVERY, f"init_from={base}", "lora.rank=4", "lora.alpha=8",
                     "learning_rate=1e-2", *extra)


def run(args, point=None):
    command = [sys.executable, str(HERE / "killed_at.py"), point, *args] if point else \
        [sys.executable, "-m", "showo", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_a_lora_run_trains_and_writes_only_the_adapter(tmp_path, world_tokenizer, base, capsys):
    before = load_file(base / "model.safetensors")
    assert main(lora_args(tmp_path, world_tokenizer, base)) == 0
    assert "lora: rank 4 on ['q_proj', 'k_proj', 'v_proj', 'out_proj', 'fc1', 'fc2']" in capsys.readouterr().out
    values = [loss for _, loss in losses(tmp_path)]
    assert len(values) == STEPS and values[-1] < values[0]
    final = tmp_path / "final"
    assert sorted(p.name for p in final.iterdir()) == sorted(adapters.ADAPTER_FILES)
    assert json.loads((final / adapters.CONFIG_FILE).read_text())["base_model_name_or_path"] == str(base)
    checkpoint = tmp_path / "checkpoints" / "step-00000006" / "model"
    assert sorted(p.name for p in checkpoint.iterdir()) == sorted(adapters.ADAPTER_FILES)
    assert all(torch.equal(v, load_file(base / "model.safetensors")[k]) for k, v in before.items())  # untouched

    pipe = ShowoPipeline.from_pretrained(base, torch_dtype=torch.float32)
    plain = pipe.generate_codes(["a red circle"], steps=4, seed=0)
    pipe.load_adapter(final)
    adapted = pipe.generate_codes(["a red circle"], steps=4, seed=0)
    assert not torch.equal(plain, adapted)  # the adapter learned something

    out = tmp_path / "generated"
    argv = ["generate", "a red circle", "--model", str(base), "--steps", "4", "--dtype", "fp32", "--output"]
    assert main([*argv, str(out / "plain")]) == 0 and main([*argv, str(out / "lora"), "--adapter", str(final)]) == 0
    assert f"adapter {final}" in capsys.readouterr().err
    pictures = [(out / name / "00000.png").read_bytes() for name in ("plain", "lora")]
    assert pictures[0] != pictures[1]


def test_a_killed_lora_run_resumes_exactly(tmp_path, world_tokenizer, base):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert run(lora_args(whole, world_tokenizer, base)).returncode == 0
    died = run(lora_args(killed, world_tokenizer, base), point="after-step:4")
    assert died.returncode == 137, died.stderr[-1500:]
    done = run(lora_args(killed, world_tokenizer, base))
    assert done.returncode == 0, done.stderr[-2000:]
    assert losses(killed) == losses(whole)
    for name in adapters.ADAPTER_FILES:
        assert (killed / "final" / name).read_bytes() == (whole / "final" / name).read_bytes()


def test_lora_needs_a_model_to_adapt(tmp_path, world_tokenizer, capsys):
    assert main(train_cli(tmp_path, world_tokenizer, 2, 2, "lora.rank=4")) == 2
    assert "lora: adapters train on a Show-o model given by init_from" in capsys.readouterr().err
