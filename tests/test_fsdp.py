"""sharding = "fsdp": FSDP2 over 2 CPU processes (gloo) trains as DDP does, gathers the whole model for
the monitor, samples and final/, and its sharded checkpoints resume on 2 processes exactly and on
another number of processes with model, optimiser and schedule exact."""

import math
import shutil
from pathlib import Path

import pytest
import torch
from conftest import small, train_cli
from safetensors.torch import load_file
from test_training_runs import run_module

from showo.training.config import build_config
from showo.training.metrics import read_metrics
from showo.training.presets import train_preset
from showo.training.runs import open_run

STEPS, EVERY = 4, 2
# The monitor (before the first step and at the last) and samples (every 2 steps) run on the main process's
# whole copy of the model: under FSDP every process takes part in gathering it.
WATCHED = ("monitor.every=4", "monitor.prompts_per_category=1", "monitor.questions=2", "transformer.sample_every=2")
ROOT = Path(__file__).resolve().parents[1]


def launch(output, tokenizer, processes, *extra, steps=STEPS):
    args = ["showo", *train_cli(output, tokenizer, steps, EVERY, *WATCHED, *extra)]
    if processes > 1:
        args = ["torch.distributed.run", "--standalone", "--nproc_per_node", str(processes), "-m", *args]
    proc = run_module(args)
    assert proc.wait(300) == 0, proc.stderr.read().decode()[-3000:]
    return output


def trainer_on(output, tokenizer, steps=STEPS):
    """The run in ``output`` opened in this process (one process, no process group), as the CLI opens it."""
    overrides = small(tokenizer, *WATCHED, "sharding=fsdp", f"max_steps={steps}", f"checkpoint_every={EVERY}")
    return open_run(build_config(train_preset("tiny"), None, overrides), output)


def copy_up_to(source, target, step):
    """``source``'s run as it was after the checkpoint of ``step``: later checkpoints and final/ left out."""
    shutil.copytree(source, target)
    shutil.rmtree(target / "final")
    for folder in (target / "checkpoints").glob("step-*"):
        if int(folder.name.removeprefix("step-")) > step:
            shutil.rmtree(folder)
    return target


def rows(output, key):
    return {r["step"]: r[key] for r in read_metrics(output) if key in r}


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory, world_tokenizer):
    return launch(tmp_path_factory.mktemp("fsdp") / "run", world_tokenizer, 2, "sharding=fsdp")


def test_fsdp_gives_the_losses_of_ddp_on_two_processes(tmp_path, world_tokenizer, fsdp_run):
    ddp = launch(tmp_path / "ddp", world_tokenizer, 2)
    losses = rows(fsdp_run, "loss")
    assert list(losses) == list(range(1, STEPS + 1))
    assert rows(ddp, "loss") == pytest.approx(losses, rel=1e-5)
    # before the first step both measure the same weights: the same numbers
    before = [{k: v for k, v in read_metrics(run)[0].items() if k != "monitor/seconds"} for run in (ddp, fsdp_run)]
    assert before[0]["step"] == 0 and before[0] == before[1]
    assert list(rows(fsdp_run, "monitor/world_vqa_accuracy")) == [0, STEPS]
    assert {p.name for p in (fsdp_run / "samples").iterdir()} == {"step-00000002.png", "step-00000004.png"}
    # final/ is a whole model, gathered from the shards: the weights DDP reached. The keys' norm bias has no
    # true gradient (softmax ignores a shift shared by every key): Adam turns its rounding noise into steps
    # of up to the learning rate (3e-3), so it differs by ~1e-4 after 4 steps, where all else agrees to 1e-6.
    whole, gathered = (load_file(run / "final" / "model.safetensors") for run in (ddp, fsdp_run))
    assert whole.keys() == gathered.keys()
    for name, tensor in whole.items():
        atol = STEPS * 3e-3 if name.endswith("k_norm.bias") else 1e-5
        torch.testing.assert_close(gathered[name], tensor, rtol=1e-4, atol=atol)
    checkpoint = fsdp_run / "checkpoints" / "step-00000004"
    assert {"__0_0.distcp", "__1_0.distcp", ".metadata"} <= {p.name for p in (checkpoint / "sharded").iterdir()}
    assert not (checkpoint / "model").exists() and not (checkpoint / "optimizer.pt").exists()


def test_a_sharded_run_resumes_on_as_many_processes_exactly(tmp_path, world_tokenizer, fsdp_run):
    resumed = launch(copy_up_to(fsdp_run, tmp_path / "resumed", 2), world_tokenizer, 2, "sharding=fsdp")
    assert rows(resumed, "loss") == rows(fsdp_run, "loss")  # steps 3 and 4 too, bit for bit


def test_two_processes_shards_load_whole_on_one(tmp_path, world_tokenizer, fsdp_run):
    """Read on one process, the step-4 checkpoint of two holds the weights that were gathered into final/,
    and the optimiser state DCP's own converter reads from the shards."""
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    trainer = trainer_on(copy_up_to(fsdp_run, tmp_path / "one", STEPS), world_tokenizer)
    assert trainer.step == STEPS and not trainer.sharded
    final = load_file(fsdp_run / "final" / "model.safetensors")
    state = trainer.model.state_dict()
    assert final.keys() == state.keys() and all(torch.equal(state[k], v) for k, v in final.items())
    dcp_to_torch_save(fsdp_run / "checkpoints" / "step-00000004" / "sharded", tmp_path / "saved.pt")
    saved = torch.load(tmp_path / "saved.pt", weights_only=False)["optimizer"]
    names = {p: n for n, p in trainer.model.named_parameters()}
    optimizer = trainer.optimizer.optimizer  # accelerate's wrapper
    assert len(optimizer.state) == len(names)  # a moment for every weight
    for param, moments in optimizer.state.items():
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(moments[key], saved[f"state.model.{names[param]}.{key}"])
    assert trainer.scheduler.last_epoch == STEPS


def test_sharded_checkpoints_go_from_two_processes_to_one_and_back(tmp_path, world_tokenizer, fsdp_run):
    # 2 -> 1: from step 2, one process trains step 3 (its data streams start again) and writes a checkpoint
    one = copy_up_to(fsdp_run, tmp_path / "one", 2)
    trainer = trainer_on(one, world_tokenizer)
    assert trainer.step == 2
    trainer.run(max_steps=3)
    lr = rows(fsdp_run, "lr")
    assert rows(one, "lr") == {s: lr[s] for s in (1, 2, 3)}  # the schedule goes on where it was
    assert math.isfinite(rows(one, "loss")[3]) and rows(one, "loss")[2] == rows(fsdp_run, "loss")[2]
    written = load_file(one / "final" / "model.safetensors")  # step 3's weights, from one process
    # 1 -> 2: two processes read the step-3 checkpoint that one wrote, shard it, and gather it into final/
    shutil.rmtree(one / "final")
    launch(one, world_tokenizer, 2, "sharding=fsdp", "--allow-config-change", steps=3)  # max_steps 4 -> 3
    again = load_file(one / "final" / "model.safetensors")
    assert written.keys() == again.keys() and all(torch.equal(again[k], v) for k, v in written.items())


@pytest.mark.parametrize("override, message", [
    ("sharding=fdsp", "sharding: input should be 'fsdp', got 'fdsp'"),
    ("mixed_precision=fp16", "sharding: 'fsdp' with mixed_precision = \"fp16\" is not supported"),
    ("lora.rank=4", "sharding: 'fsdp' with lora is not supported"),
])
def test_bad_sharding_configs_are_refused_naming_the_field(world_tokenizer, override, message):
    overrides = small(world_tokenizer, "sharding=fsdp", "init_from=somewhere", override)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        build_config(train_preset("tiny"), None, overrides)


def test_the_shipped_accelerate_configs_parse():
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    from showo.model.phi import Block

    parser = launch_command_parser()
    fsdp, _, _ = _validate_launch_command(parser.parse_args(
        ["--config_file", str(ROOT / "docs/accelerate/fsdp2.yaml"), "-m", "showo", "train"]))
    env = prepare_multi_gpu_env(fsdp)
    assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_VERSION"] == "2"
    assert env["FSDP_TRANSFORMER_CLS_TO_WRAP"] == Block.__name__
    zero2, _, _ = _validate_launch_command(parser.parse_args(
        ["--config_file", str(ROOT / "docs/accelerate/deepspeed_zero2.yaml"), "-m", "showo", "train"]))
    assert zero2.use_deepspeed and zero2.zero_stage == 2 and zero2.gradient_accumulation_steps == 1
