"""When each phase of a run ends (on fake metric histories) and the remaining-time estimate (on fake timings)."""

from __future__ import annotations

import random

import pytest

from lstm_tv.config import load_config, render_yaml
from lstm_tv.schedule import (
    LEARNED_FALL,
    MEMORY_GRACE,
    RemainingTime,
    allotment,
    format_duration,
    grace_epochs,
    lr_scale,
    next_phase,
    phase_end,
    phase_plan,
    plateaus,
)


def test_phases_follow_the_config():
    cfg = load_config(None, ["train.epochs=2", "train.memory_epochs=3"])
    assert phase_plan(cfg) == [("joint", 2), ("memory", 3)]
    assert phase_plan(load_config(None, ["train.epochs=8", "train.memory_epochs=0"])) == [("joint", 8)]
    assert next_phase(cfg, []) == "joint"
    assert next_phase(cfg, [{"name": "joint", "ended": ""}]) == "joint"
    assert next_phase(cfg, [{"name": "joint", "ended": "epoch limit"}]) == "memory"
    assert next_phase(cfg, [{"name": "joint", "ended": "x"}, {"name": "memory", "ended": "y"}]) is None


def rows(column, values):
    return [{f"val_{column}": v} for v in values]


def test_a_first_plateau_lowers_the_learning_rate_and_a_second_ends_the_phase():
    assert plateaus([0.5, 0.7, 0.69, 0.7005, 0.65], patience=3) == (1, False)  # 0.7005 is within MIN_DELTA of 0.7
    assert plateaus([0.5, 0.6, 0.7], patience=3) == (0, False)
    # After the drop the count starts again, and a gain must beat the best before the drop.
    assert plateaus([0.7, 0.6, 0.6, 0.6, 0.69, 0.69, 0.69], patience=3) == (1, True)
    assert plateaus([0.7, 0.6, 0.6, 0.6, 0.8, 0.8, 0.8], patience=3) == (1, False)
    assert plateaus([0.5, None, 0.5, 0.5, 0.5], patience=3) == (0, False)     # no validation: no plateau
    assert plateaus([0.5] * 10, patience=0) == (0, False)                     # patience 0: every epoch runs


def test_epochs_of_grace_never_count_towards_a_plateau_but_can_set_the_best():
    flat = [0.5] * 6
    assert plateaus(flat, patience=3) == (1, False)
    assert plateaus(flat, patience=3, grace=5) == (0, False)  # only epoch 6 counted: 1 stale
    assert plateaus([0.5] * 8, patience=3, grace=5) == (1, False)
    # A cue learned in the last epoch of grace is the best the later epochs must beat.
    assert plateaus([0.5, 0.5, 0.5, 0.5, 1.0, 0.9, 0.9, 0.9], patience=3, grace=5) == (1, False)


def memory_rows(losses, masked):
    return [{"train_loss": loss, "val_masked_accuracy": m} for loss, m in zip(losses, masked, strict=True)]


def test_the_memory_phases_grace_ends_once_its_training_loss_has_fallen_tenfold():
    cfg = load_config(None, [])
    grace = MEMORY_GRACE
    # In its flat stretch a memory's loss stays put: the whole grace applies.
    flat = memory_rows([0.3, 0.13, 0.13, 0.12, 0.13, 0.13], [0.5] * 6)
    assert grace_epochs(cfg, "memory", flat) == grace
    # It learned the cue in its second epoch (loss 60x lower): from there on every epoch counts.
    learned = memory_rows([0.06, 0.001, 0.0005, 0.0003, 0.0002, 0.0001, 0.0001], [0.97] * 7)
    assert grace_epochs(cfg, "memory", learned) == 1
    assert grace_epochs(cfg, "memory", learned[:1]) == grace  # one epoch says nothing yet
    # Learned in the fourth epoch: the three before it keep their grace.
    late = memory_rows([0.3, 0.13, 0.13, 0.3 / LEARNED_FALL, 0.001], [0.5, 0.5, 0.5, 1.0, 1.0])
    assert grace_epochs(cfg, "memory", late) == 3
    assert grace_epochs(cfg, "memory", memory_rows([0.0, 0.0], [1.0, 1.0])) == grace  # nothing to fall from
    assert grace_epochs(cfg, "joint", learned) == 1  # the joint phase's grace ends the same way


def test_a_memory_that_has_learned_ends_after_two_plateaus_not_after_its_grace():
    cfg = load_config(None, ["train.patience=3", "train.memory_epochs=30"])
    learned = memory_rows([0.06, 0.001, 0.0005, 0.0003, 0.0002, 0.0001, 0.0001], [0.97] * 7)
    # Epochs 2-4 make a plateau (the learning rate is lowered from epoch 5 on), epochs 5-7 a second one:
    # 7 epochs instead of the 11 that five epochs of grace would have taken.
    assert [lr_scale(cfg, "memory", learned[:n]) for n in range(1, 8)] == [1.0] * 3 + [0.1] * 4
    assert [phase_end(cfg, "memory", learned[:n], [1.0] * n, None) for n in range(1, 7)] == [None] * 6
    assert (phase_end(cfg, "memory", learned, [1.0] * 7, None)
            == "val masked accuracy did not improve for 3 epochs at the lowered learning rate")
    still_flat = memory_rows([0.3] + [0.13] * 6, [0.5] * 7)
    assert phase_end(cfg, "memory", still_flat, [1.0] * 7, None) is None


def test_config_show_states_the_memory_phases_grace():
    # `lstm-tv config show` and configs/default.yaml tell users how many memory epochs never count.
    shown = render_yaml(load_config(None, []))
    assert f"memory phase's first {MEMORY_GRACE} epochs never count" in shown


def test_the_learning_rate_scale_follows_the_history_of_the_phase():
    cfg = load_config(None, ["train.patience=2", "train.joint_grace=0"])
    history = rows("frame_accuracy", [0.5, 0.8, 0.8, 0.8, 0.85])
    assert [lr_scale(cfg, "joint", history[:n]) for n in range(6)] == [1.0, 1.0, 1.0, 1.0, 0.1, 0.1]


def test_the_joint_phase_ends_when_frame_accuracy_stops_improving():
    cfg = load_config(None, ["train.epochs=20", "train.memory_epochs=30", "train.patience=2", "train.joint_grace=0"])
    history = rows("frame_accuracy", [0.5, 0.8, 0.9, 0.89, 0.9, 0.95, 0.95, 0.95])
    assert [phase_end(cfg, "joint", history[:n], [1.0] * n, None) for n in range(1, 8)] == [None] * 7
    assert (phase_end(cfg, "joint", history, [1.0] * 8, None)
            == "val frame accuracy did not improve for 2 epochs at the lowered learning rate")
    # The memory phase follows masked accuracy (and frame accuracy when the data has no masks); its first
    # MEMORY_GRACE epochs never count towards a plateau.
    grace = MEMORY_GRACE
    memory = [{"val_masked_accuracy": m, "val_frame_accuracy": f}
              for m, f in [(0.5, 0.9)] + [(0.6, 0.9)] * (grace - 1) + [(0.6, 0.95), (0.6, 0.97), (0.6, 0.98), (0.6, 0.98)]]
    n = len(memory)
    assert [phase_end(cfg, "memory", memory[:k], [1.0] * k, None) for k in range(1, n)] == [None] * (n - 1)
    assert (phase_end(cfg, "memory", memory, [1.0] * n, None)
            == "val masked accuracy did not improve for 2 epochs at the lowered learning rate")
    no_masks = [{"val_masked_accuracy": None, "val_frame_accuracy": 0.9}] * (grace + 4)
    assert (phase_end(cfg, "memory", no_masks, [1.0] * (grace + 4), None)
            == "val frame accuracy did not improve for 2 epochs at the lowered learning rate")


def test_the_joint_phases_first_epochs_never_count_towards_a_plateau():
    # Pictures-120 seed 703 of the ninth round: frames alone peaked at epoch 6 on 28 validation videos and
    # fell back while the training loss still fell; counted from the start, that noise lowered the rate after
    # epoch 9. With train.joint_grace=10 no epoch before the 11th counts: the rate stays up past epoch 12.
    alone = [0.738, 0.756, 0.759, 0.816, 0.859, 0.903, 0.871, 0.862, 0.842, 0.910, 0.915, 0.916]
    losses = [1.17, 0.90, 0.73, 0.63, 0.56, 0.51, 0.44, 0.39, 0.35, 0.28, 0.23, 0.22]
    history = [{"train_loss": loss, "val_frame_accuracy_alone": a} for loss, a in zip(losses, alone, strict=True)]
    counted = load_config(None, ["train.joint_grace=0"])
    assert [lr_scale(counted, "joint", history[:n]) for n in (8, 9, 12)] == [1.0, 0.1, 0.1]
    default = load_config(None, [])
    assert default.train.joint_grace == 10
    assert [lr_scale(default, "joint", history[:n]) for n in (8, 9, 12)] == [1.0, 1.0, 1.0]
    # Ten stale epochs after the grace would still make the two plateaus that end the phase.
    stale = history + [{"train_loss": 0.2, "val_frame_accuracy_alone": 0.9}] * 6
    assert phase_end(default, "joint", stale, [1.0] * len(stale), None) == (
        "val frame accuracy (frames alone) did not improve for 3 epochs at the lowered learning rate")


def test_the_epoch_limit_ends_a_phase_that_still_improves():
    cfg = load_config(None, ["train.epochs=3", "train.patience=0"])
    history = rows("frame_accuracy", [0.5, 0.6, 0.7])
    assert phase_end(cfg, "joint", history[:2], [1.0] * 2, None) is None
    assert phase_end(cfg, "joint", history, [1.0] * 3, None) == "epoch limit (train.epochs=3)"


def test_the_time_budget_is_shared_and_what_a_phase_leaves_goes_to_the_next():
    cfg = load_config(None, ["train.time=10", "train.epochs=100", "train.memory_epochs=100"])
    assert allotment(cfg, "joint", {}) == pytest.approx(360.0)           # 60% of 600 s
    assert allotment(cfg, "memory", {"joint": 100.0}) == pytest.approx(500.0)  # the rest of the run
    assert allotment(load_config(None, ["train.memory_epochs=0"]), "joint", {}) is None  # no budget
    assert allotment(load_config(None, ["train.time=10", "train.memory_epochs=0"]), "joint", {}) == 600.0
    history = rows("frame_accuracy", [0.1 * n for n in range(1, 8)])    # still improving
    # A first epoch of 60 s, later ones of 55 s: after 5 epochs (280 s) a sixth still fits in 360 s;
    # after 6 (335 s) a seventh would pass it.
    times = [60.0, 55.0, 55.0, 55.0, 55.0, 55.0]
    assert phase_end(cfg, "joint", history[:5], times[:5], 360.0) is None
    assert phase_end(cfg, "joint", history[:6], times, 360.0) == "time budget (train.time=10 min)"
    # A slow first epoch (the memory phase encodes every video in it) is no estimate of the next ones:
    # the phase goes on while budget is left, and stops once it is spent.
    assert phase_end(cfg, "memory", history[:1], [60.0], 70.0) is None
    assert phase_end(cfg, "memory", history[:2], [60.0, 2.0], 70.0) is None
    assert phase_end(cfg, "joint", history[:1], [400.0], 360.0) == "time budget (train.time=10 min)"


def test_the_estimate_never_passes_the_time_budget():
    clock = RemainingTime([("joint", 100)], budget=300.0)
    clock.record("joint", 50.0)
    assert clock.seconds_left() == 250.0 and clock.complete()


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


def test_a_first_epochs_one_off_work_is_not_counted_for_the_epochs_after_it():
    # The memory phase's first epoch encodes every video once (50 s here) and then trains (2 s): the
    # epochs after it are estimated at 2 s each, not 52.
    clock = RemainingTime([("memory", 11)])
    clock.record("memory", 52.0, one_off=50.0)
    assert clock.seconds_left() == pytest.approx(10 * 2.0)
