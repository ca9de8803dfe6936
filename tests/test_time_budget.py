"""``max_minutes``: a run sized from its measured step time (issue 34). It stops where the budget
is spent with its schedule finished and a final model (timed with a stand-in clock, so the sizing
is exact on a loaded machine too), records the step count it chose, and a kill and restart
continues exactly as a run given that count as ``max_steps``. A run whose pace slows is shortened to
end within its budget, and a kill and restart keeps the shortened lengths (issue 32)."""

import json
import math

import pytest
from conftest import losses, train_cli
from killed_at import StepClock
from test_robust_interruption import outcome, run

from showo.cli.main import main
from showo.training import trainer
from showo.training.time_budget import budget_steps, fit_steps, step_pace

LR, MIN_LR_RATIO, WARMUP = 3e-3, 0.1, 3  # conftest.small's learning rate and warm-up; the preset's ratio


def budgeted(output, tokenizer, minutes, every=1000, *extra):
    """The tiny test run, sized by ``minutes`` (``max_steps`` far above what they allow)."""
    return train_cli(output, tokenizer, 100000, every, f"max_minutes={minutes}", *extra)


def record(output):
    return json.loads((output / "time_budget.json").read_text())


def test_a_short_budget_stops_at_it_with_a_finished_schedule_and_a_final_model(tmp_path, world_tokenizer,
                                                                              capsys, monkeypatch):
    minutes, tick = 0.5, 0.5  # 30 s at 0.5 s a step
    monkeypatch.setattr(trainer, "time", StepClock(tick))
    assert main(budgeted(tmp_path, world_tokenizer, minutes)) == 0
    err = capsys.readouterr().err
    sized = record(tmp_path)
    # sized at the end of the last step whose successor's rate depends on the length, from the
    # steps after the two start-up ones: steps 3 and 4, 2 s after the start; 28 s left hold 56 steps
    assert sized["sized_at_step"] == WARMUP + 1 and sized["measured_steps"] == [3, WARMUP + 1]
    assert sized["seconds_per_step"] == pytest.approx(tick) and sized["elapsed_seconds"] == pytest.approx(4 * tick)
    assert sized["steps"] == sized["budget_steps"] == budget_steps(sized, minutes) == WARMUP + 1 + 56
    assert f"max_minutes={minutes:g}: {tick:.3g} s a step (steps 3-4) -> {sized['steps']} steps" in err
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, sized["steps"] + 1))  # stopped where the time is spent
    rates = [r["lr"] for r in rows]
    assert rates[:WARMUP + 1] == pytest.approx([LR / 3, 2 * LR / 3, LR, LR])
    assert all(a > b for a, b in zip(rates[WARMUP:], rates[WARMUP + 1:]))  # cosine, down all the way
    assert rates[-1] == pytest.approx(LR * MIN_LR_RATIO, rel=0.01)  # the schedule's end, not cut midway
    assert (tmp_path / "final" / "model.safetensors").is_file()


def test_a_kill_and_restart_continue_exactly_as_the_recorded_step_count_would(tmp_path, world_tokenizer):
    args = budgeted(tmp_path / "killed", world_tokenizer, 0.2, 4)
    clock = {"SHOWO_TEST_STEP_SECONDS": "0.5"}  # 4 steps in 2 s, then 10 s left: 20 more steps
    killed = run(args, clock, point="after-step:6")  # sized at step 4, checkpointed, killed past it
    assert killed.returncode == 137, killed.stderr[-2000:]
    chosen = record(tmp_path / "killed")
    assert chosen["steps"] == 24, chosen
    done = run(args)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "as sized when this run began" in done.stderr
    assert record(tmp_path / "killed") == chosen  # read back, not measured again
    assert main(train_cli(tmp_path / "fixed", world_tokenizer, chosen["steps"], 4)) == 0
    assert outcome(tmp_path / "killed") == outcome(tmp_path / "fixed")


def test_a_run_stopped_before_it_was_sized_measures_again_after_the_restart(tmp_path, world_tokenizer):
    args = budgeted(tmp_path, world_tokenizer, 0.05, 1)
    killed = run(args, point="after-step:2")  # checkpoint at step 1; killed in warm-up, at step 2's log
    assert killed.returncode == 137 and not (tmp_path / "time_budget.json").exists()
    done = run(args)
    assert done.returncode == 0, done.stderr[-2000:]
    sized = record(tmp_path)
    # steps 2 to 4 timed after the restart, the first two left out as start-up
    assert "resuming from step 1" in done.stdout
    assert sized["measured_steps"] == [4, 4] and sized["sized_at_step"] == 4
    assert f"{sized['seconds_per_step']:.3g} s a step (step 4) -> {sized['budget_steps']} steps" in done.stderr
    assert [s for s, _ in losses(tmp_path)] == list(range(1, sized["steps"] + 1))


@pytest.mark.parametrize("value, expected", [("0", "greater than 0"), ("-2", "greater than 0"),
                                             ("soon", "number"), ("nan", "valid number")])
def test_a_bad_max_minutes_is_refused_naming_the_field(tmp_path, world_tokenizer, capsys, value, expected):
    assert main(budgeted(tmp_path, world_tokenizer, value)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "max_minutes" in err and expected in err.lower(), err


def test_a_damaged_time_budget_file_is_refused_naming_file_and_key(tmp_path, world_tokenizer, capsys):
    args = budgeted(tmp_path, world_tokenizer, 0.05, 2)
    assert run(args, {"SHOWO_TEST_STEP_SECONDS": "0.1"}, point="after-step:5").returncode == 137  # sized: 30 steps
    good = record(tmp_path)
    damages = [({"seconds_per_step": 0}, "seconds_per_step should be > 0, got 0"),
               ({"resized": [{"at_step": 8}]}, "resized[0].steps should be a whole number >= 1, got None")]
    for damage, message in damages:
        (tmp_path / "time_budget.json").write_text(json.dumps({**good, **damage}))
        assert main(args) == 2
        err = capsys.readouterr().err
        assert f"time_budget.json: {message}" in err, err


def test_a_budget_added_to_a_run_past_its_warm_up_is_refused(tmp_path, world_tokenizer, capsys):
    assert main(train_cli(tmp_path, world_tokenizer, 6, 2)) == 0
    longer = train_cli(tmp_path, world_tokenizer, 100000, 2, "max_minutes=1")
    capsys.readouterr()
    assert main([*longer, "--allow-config-change"]) == 2
    err = capsys.readouterr().err
    assert "this run is at step 6, past its warm-up (3 steps), with no time_budget.json" in err


def test_the_pace_leaves_out_the_start_up_steps_when_it_can():
    assert step_pace([10.0, 11.0, 12.0, 13.0], started=0.0) == (1.0, 2)  # steps 3 and 4: 1 s each
    assert step_pace([10.0, 12.0], started=0.0) == (2.0, 1)  # only the first left out
    assert step_pace([10.0], started=4.0) == (6.0, 0)  # nothing to leave out
    with pytest.raises(ValueError, match="no step was timed"):
        step_pace([], started=0.0)
    sized = {"sized_at_step": 4, "elapsed_seconds": 20.0, "seconds_per_step": 0.5}
    assert budget_steps(sized, 1.0) == 4 + 80 and budget_steps(sized, 0.2) == 4  # the time already spent


def test_a_run_that_slows_down_is_shortened_to_end_within_its_budget(tmp_path, world_tokenizer, capsys,
                                                                   monkeypatch):
    # 0.5 s a step through warm-up (sized at step 4: 2 s spent, 28 s hold 56 more), then 1 s a step
    # from step 8: at the run's own pace it would take 60 steps and 58 s of a 30 s budget
    clock = StepClock(0.5, slower=(9, 1.0))
    monkeypatch.setattr(trainer, "time", clock)
    assert main(budgeted(tmp_path, world_tokenizer, 0.5)) == 0
    err = capsys.readouterr().err
    sized = record(tmp_path)
    assert sized["budget_steps"] == WARMUP + 1 + 56
    # checked every 6 steps: at step 10 steps 5-10 took 4.5 s (0.75 a step) and 6.5 s are spent, so 23.5 s
    # hold 31 more; at step 16 1 s a step and 12.5 s spent hold 17 more; later checks find it on time
    assert [(r["at_step"], r["steps"]) for r in sized["resized"]] == [(10, 41), (16, 33)]
    assert sized["resized"][0]["seconds_per_step"] == pytest.approx(0.75) and sized["steps"] == 33
    assert "0.75 s a step (steps 5-10), slower than 0.5 when sized -> 41 steps, not 60" in err
    assert clock.now - 1000.0 <= 30.0  # the whole loop, from its first clock reading, in the budget
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 34))
    rates = [r["lr"] for r in rows]
    assert all(a > b for a, b in zip(rates[WARMUP:], rates[WARMUP + 1:]))  # shortened: down all the way
    last = MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * 29 / 30))  # the cosine's last step
    assert rates[-1] == pytest.approx(LR * last, rel=1e-6)


def test_a_shortened_run_killed_and_restarted_ends_as_the_uninterrupted_one(tmp_path, world_tokenizer):
    slowing = {"SHOWO_TEST_STEP_SECONDS": "0.5,1.0@9"}  # as above: shortened at steps 10 and 16, to 33
    whole = run(budgeted(tmp_path / "whole", world_tokenizer, 0.5, 4), slowing, point="after-step:100000")
    assert whole.returncode == 0, whole.stderr[-2000:]
    args = budgeted(tmp_path / "killed", world_tokenizer, 0.5, 4)
    assert run(args, slowing, point="after-step:18").returncode == 137  # last checkpoint: step 16
    done = run(args)  # the real clock now: the recorded lengths are kept, not measured again
    assert done.returncode == 0, done.stderr[-2000:]
    assert "33 steps, as sized when this run began, shortened 2 time(s) as it ran" in done.stderr
    assert record(tmp_path / "killed") == record(tmp_path / "whole")
    assert outcome(tmp_path / "killed") == outcome(tmp_path / "whole")


def test_the_steps_that_fit_count_the_monitor_runs_among_them():
    assert fit_steps(4, 10.0, 0.5) == 24  # 20 steps of 0.5 s
    # the monitor every 5 steps at 2 s a run: steps 5-14 cost 5 s and the runs at 5 and 10 4 s; a 15th
    # step brings the run at 15: 5.5 + 6 = 11.5 s
    assert fit_steps(4, 10.0, 0.5, monitor_every=5, monitor_seconds=2.0) == 14
    assert fit_steps(4, 0.2, 0.5) == 4 and fit_steps(4, -3.0, 0.5) == 4  # nothing left: what is done
    sized = {"sized_at_step": 4, "elapsed_seconds": 20.0, "seconds_per_step": 0.5, "monitor_every": 10,
             "monitor_seconds": 5.0}
    assert budget_steps(sized, 1.0) == 44  # 40 s left: steps 5-44 (20 s), the runs at 10, 20, 30, 40 (20 s)
