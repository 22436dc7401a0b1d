"""The remaining-time estimate of a run, on fake epoch timings."""

from __future__ import annotations

import random

import pytest

from lstm_tv.config import load_config
from lstm_tv.schedule import RemainingTime, format_duration, phase_of, phase_plan


def test_phases_follow_the_config():
    cfg = load_config(None, ["train.epochs=2", "train.memory_epochs=3"])
    assert phase_plan(cfg) == [("joint", 2), ("memory", 3)]
    assert [phase_of(cfg, e) for e in range(1, 6)] == ["joint", "joint", "memory", "memory", "memory"]
    assert phase_plan(load_config(None, ["train.memory_epochs=0"])) == [("joint", 8)]


def test_nothing_to_say_before_the_first_epoch():
    clock = RemainingTime([("joint", 3)])
    assert clock.seconds_left() is None and clock.text() == ""


def test_the_first_epoch_of_a_phase_is_left_out_once_later_ones_are_timed():
    clock = RemainingTime([("joint", 5), ("memory", 10)])
    clock.record("joint", 30.0)                  # warm-up makes the first epoch slow
    assert clock.seconds_left() == 4 * 30.0 and not clock.complete()
    assert clock.text().startswith(">=")         # the memory phase is not timed yet: a lower bound
    clock.record("joint", 20.0)
    clock.record("joint", 21.0)
    assert clock.seconds_left() == pytest.approx(2 * 20.5)
    for _ in range(2):
        clock.record("joint", 20.0)
    clock.record("memory", 12.0)                 # encodes every video once
    assert clock.complete() and clock.seconds_left() == pytest.approx(9 * 12.0)
    clock.record("memory", 2.0)
    assert clock.seconds_left() == pytest.approx(8 * 2.0) and clock.text() == "~16s left"


def test_a_prior_stands_in_for_a_phase_not_timed_yet():
    clock = RemainingTime([("joint", 2), ("memory", 4)])
    clock.record("joint", 10.0)
    clock.set_prior("memory", first=6.0, later=1.0)
    assert clock.complete() and clock.seconds_left() == pytest.approx(10.0 + 6.0 + 3 * 1.0)


@pytest.mark.parametrize("seed", range(5))
def test_estimates_are_within_a_quarter_of_the_truth_on_noisy_timings(seed):
    # Fake runs: a slow first epoch per phase, then epochs with +-15% noise (a busy machine). After
    # the second epoch of each phase, the estimate of the time left in that phase is right within 25%.
    rng = random.Random(seed)
    plan = [("joint", 8), ("memory", 30)]
    base = {"joint": 100.0, "memory": 3.0}
    times = {p: [base[p] * 2.5] + [base[p] * rng.uniform(0.85, 1.15) for _ in range(n - 1)] for p, n in plan}
    clock = RemainingTime(plan)
    for phase, n in plan:
        for done in range(1, n):
            clock.record(phase, times[phase][done - 1])
            truth = sum(times[phase][done:]) + (sum(times["memory"]) if phase == "joint" else 0.0)
            estimate = clock.seconds_left() + (sum(times["memory"]) if phase == "joint" else 0.0)
            if done >= 2:
                assert abs(estimate - truth) <= 0.25 * truth, (phase, done, estimate, truth)
        clock.record(phase, times[phase][-1])
    assert clock.seconds_left() == 0.0


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (42.4, "42s"), (75, "1m15s"), (3599, "59m59s"), (4000, "1h06m")])
def test_durations_read_as_people_say_them(seconds, text):
    assert format_duration(seconds) == text
