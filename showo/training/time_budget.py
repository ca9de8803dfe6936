"""``max_minutes``: a run's length from its measured pace, kept to as the pace drifts.

The learning rates of steps 1 .. ``warmup_steps + 1`` (counted from 1) do not depend on the run's
length. A fresh run times those steps, leaving out the first START_UP_STEPS (allocations, the data
pipeline's start: the first step of the tiny preset takes 30x the others), and at the end of step
``warmup_steps + 1`` fixes the length: the steps done, plus as many as the minutes left hold at that
pace, with the capability monitor's runs (timed before the first step) on top. The budget counts
from the start of the training loop, the monitor's first run included.

A machine's pace drifts (on a shared 2-core VM it fell 17% within one run), so the sized run
compares its pace with the budget CHECKS times more: over the steps since the last check (the
monitor's time left out and counted apart), it projects the end, and where the end falls past the
budget it shortens the run to what fits, never lengthens it. The cosine schedule then ends at the new
length, its rate dropping a little at once. Each length is kept in OUTPUT/time_budget.json with the
step from which it holds (``resized``), written before the checkpoint that depends on it; a resumed
run reads the lengths back and keeps them, so it continues as the first run did (it checks no more:
the time before the restart is not known).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

START_UP_STEPS = 2
CHECKS = 10


def step_pace(step_ends: list[float], started: float) -> tuple[float, int]:
    """(seconds a step, steps left out): the mean time of the steps that ended at ``step_ends``
    (``started``: when the first began), leaving out the first START_UP_STEPS while at least one
    step remains after them; with fewer steps, start-up steps count and the pace comes out slow."""
    if not step_ends:
        raise ValueError("no step was timed")
    skipped = min(START_UP_STEPS, len(step_ends) - 1)
    since = started if skipped == 0 else step_ends[skipped - 1]
    return max((step_ends[-1] - since) / (len(step_ends) - skipped), 1e-9), skipped


def monitor_runs(done: int, steps: int, every: int | None) -> int:
    """How many times the monitor runs after step ``done`` up to step ``steps`` (every ``every`` steps)."""
    return steps // every - done // every if every else 0


def fit_steps(done: int, seconds_left: float, pace: float, monitor_every: int | None = None,
              monitor_seconds: float = 0.0) -> int:
    """The most steps (``done`` of them done) whose rest fits in ``seconds_left``: ``pace`` seconds a
    step, and ``monitor_seconds`` for each monitor run among them."""
    steps = done + max(0, math.floor(seconds_left / pace + 1e-9))
    cost = lambda n: (n - done) * pace + monitor_runs(done, n, monitor_every) * monitor_seconds
    while steps > done and cost(steps) > seconds_left + 1e-9:
        steps -= 1
    return steps


def budget_steps(record: dict[str, Any], max_minutes: float) -> int:
    """The steps ``max_minutes`` allows, from a time-budget record: those done when the run was sized
    (``sized_at_step``, ``elapsed_seconds`` after the loop began), plus as many as the minutes left
    hold at ``seconds_per_step`` and the monitor's cost. Pure arithmetic on the recorded numbers: a
    resumed run gets the same."""
    return fit_steps(int(record["sized_at_step"]), max_minutes * 60 - record["elapsed_seconds"],
                     record["seconds_per_step"], record.get("monitor_every"), record.get("monitor_seconds", 0.0))


def recorded_lengths(record: dict[str, Any], max_minutes: float, max_steps: int) -> list[tuple[int, int]]:
    """[(from step, length)]: the length the run was sized to, then each it was shortened to, as
    ``length_at`` reads them (``max_steps`` caps each)."""
    first = min(max_steps, budget_steps(record, max_minutes))
    return [(0, first)] + [(int(r["at_step"]), min(max_steps, int(r["steps"]))) for r in record.get("resized", [])]


def length_at(lengths: list[tuple[int, int]], step: int) -> int:
    """The run's length as the schedule reads it when it computes the rate after ``step`` steps."""
    return [n for at, n in lengths if at <= step][-1]


class TimeBudget:
    """The clock of a fresh run under ``max_minutes``: ``step_ended`` after each step's update (before
    the next rate is computed), ``monitor_ran`` after each monitor run. ``now`` reads the clock;
    ``slowest`` turns this process's numbers (seconds a step, elapsed, a monitor run's) into every
    process's largest, so that all size alike and stop together."""

    def __init__(self, max_minutes: float, warmup_steps: int, max_steps: int, monitor_every: int | None,
                 now: Callable[[], float], slowest: Callable[[list[float]], list[float]]):
        self.max_minutes, self.warmup_steps, self.max_steps = max_minutes, warmup_steps, max_steps
        self.monitor_every, self.now, self.slowest = monitor_every, now, slowest
        self.began = self.started = self.last_end = now()
        self.step_ends: list[float] = []
        self.monitor_seconds = 0.0
        self.record: dict[str, Any] | None = None
        self.lengths: list[tuple[int, int]] = []
        # once sized: the pace is checked every ``check_every`` steps, over the window since the last check
        self.check_every, self.next_check = 1, None
        self.window, self.window_overhead = (0, 0.0), 0.0

    @property
    def total_steps(self) -> int | None:
        return self.lengths[-1][1] if self.lengths else None

    def loop_began(self, monitored: bool) -> None:
        """The first step begins; ``monitored``: the monitor ran since the budget began, its cost."""
        if monitored:
            self.started = self.last_end = self.now()
            self.monitor_seconds = self.started - self.began

    def monitor_ran(self) -> None:
        """Left out of the pace, counted apart: before the run is sized, by moving the timed steps by its cost."""
        spent = self.now() - self.last_end
        self.monitor_seconds = spent
        if self.record is None:
            self.started += spent
            self.step_ends = [t + spent for t in self.step_ends]
        else:
            self.window_overhead += spent
        self.last_end += spent

    def step_ended(self, done: int) -> str | None:
        """After step ``done`` (counted from 1): sizes the run at the end of warm-up, checks it CHECKS times
        after; returns a line to print where the length was fixed or changed (``record`` holds the numbers)."""
        self.last_end = now = self.now()
        if self.record is None:
            self.step_ends.append(now)
            return self._size(done, now) if done > self.warmup_steps else None
        return self._check(done, now) if done == self.next_check else None

    def _size(self, done: int, now: float) -> str:
        seconds, skipped = step_pace(self.step_ends, self.started)
        seconds, elapsed, self.monitor_seconds = self.slowest([seconds, now - self.began, self.monitor_seconds])
        first = done - len(self.step_ends) + skipped + 1
        self.record = {"max_minutes": self.max_minutes, "seconds_per_step": seconds, "measured_steps": [first, done],
                       "elapsed_seconds": elapsed, "sized_at_step": done, "monitor_every": self.monitor_every,
                       "monitor_seconds": self.monitor_seconds}
        budget = budget_steps(self.record, self.max_minutes)
        steps = min(self.max_steps, budget)
        self.record.update(budget_steps=budget, max_steps=self.max_steps, steps=steps, resized=[])
        self.lengths = [(0, steps)]
        self.check_every = max(1, math.ceil((steps - done) / CHECKS))
        self._next_window(done, now)
        return sizing_line(self.record, skipped)

    def _next_window(self, done: int, now: float) -> None:
        self.window, self.window_overhead, self.next_check = (done, now), 0.0, done + self.check_every

    def _check(self, done: int, now: float) -> str | None:
        start, began = self.window
        pace = max((now - began - self.window_overhead) / (done - start), 1e-9)
        pace, elapsed, self.monitor_seconds = self.slowest([pace, now - self.began, self.monitor_seconds])
        self._next_window(done, now)
        fits = fit_steps(done, self.max_minutes * 60 - elapsed, pace, self.monitor_every, self.monitor_seconds)
        old = self.total_steps
        if fits >= old:
            return None
        self.lengths.append((done, fits))
        self.record["resized"].append({"at_step": done, "seconds_per_step": pace, "measured_steps": [start + 1, done],
                                       "elapsed_seconds": elapsed, "steps": fits})
        self.record["steps"] = fits
        return (f"max_minutes={self.max_minutes:g}: {pace:.3g} s a step (steps {start + 1}-{done}), slower than "
                f"{self.record['seconds_per_step']:.3g} when sized -> {fits} steps, not {old}")


def sizing_line(record: dict, skipped: int) -> str:
    """``max_minutes=2: 0.41 s a step (steps 3-101) -> 290 steps``, and what else shaped the length."""
    first, last = record["measured_steps"]
    steps, budget = record["steps"], record["budget_steps"]
    line = (f"max_minutes={record['max_minutes']:g}: {record['seconds_per_step']:.3g} s a step "
            f"({f'steps {first}-{last}' if first < last else f'step {first}'}) -> {budget} steps")
    if record.get("monitor_every"):
        line += f" (the monitor's {record['monitor_seconds']:.3g} s every {record['monitor_every']} steps counted)"
    if skipped < START_UP_STEPS:
        line += f" (warm-up too short to leave out {START_UP_STEPS} start-up steps: the pace may be slow)"
    if steps < budget:
        line += f"; max_steps={record['max_steps']} is smaller: {steps} steps"
    if steps <= record["sized_at_step"]:
        line += "; the time is spent by the end of warm-up: the run ends here, its learning rate never decays"
    return line
