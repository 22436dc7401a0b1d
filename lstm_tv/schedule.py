"""The phases of a run and when each ends, and an estimate of the time a run has left from measured epochs.

A run is joint epochs, then memory epochs (:mod:`lstm_tv.phases`). A phase ends by the first of three
rules, checked after each of its epochs (:func:`phase_end`):

* **plateau**: its validation metric (:data:`PHASE_METRIC`) has not improved by :data:`MIN_DELTA` for
  ``train.patience`` epochs a second time. The first such plateau lowers the phase's learning rate
  :data:`LR_DROP`-fold instead (like ``ReduceLROnPlateau``): a phase ends on a plateau only after it has
  settled into its minimum at the lower rate, however many epochs that takes. A phase's first epochs
  never count towards a plateau (``train.joint_grace`` of the joint phase's, :data:`MEMORY_GRACE` of the
  memory phase's: :func:`phase_grace`), fewer once its training loss shows it has learned
  (:func:`grace_epochs`);
* **time budget**: ``train.time`` minutes cover the whole run; each phase gets its :data:`PHASE_SHARE`
  of them plus what the phases before it left unused, and ends when its next epoch would overrun that
  (judged from its second epoch on: a first epoch does one-off work);
* **epoch limit**: ``train.epochs`` / ``train.memory_epochs``.

The plateau rule (and with it the learning-rate drop) and the epoch rule read only the metrics history,
so a resumed run ends where an uninterrupted one would. The time rule reads the epoch times the run
recorded (kept in ``last.ckpt``): a resumed run continues with the budget it had left; the time it
spent stopped does not count.

:class:`RemainingTime` times each epoch (training and validation together) and extrapolates: within
a phase every epoch does the same work, so the phase's typical epoch time times the epochs it has left,
plus the same for the phases still to come.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from lstm_tv.config import Config

# The validation metric each phase follows (its metrics.csv column, and its name in messages): the
# encoder learns what a frame shows (each frame classified on its own, as the joint phase's single-frame
# clips train it); the memory learns what the masked frames hide. A phase whose metric is missing
# (no masks; runs recorded before frames-alone accuracy) follows streamed frame accuracy.
PHASE_METRIC = {"joint": ("val_frame_accuracy_alone", "val frame accuracy (frames alone)"),
                "memory": ("val_masked_accuracy", "val masked accuracy")}
FALLBACK_METRIC = ("val_frame_accuracy", "val frame accuracy")
MIN_DELTA = 1e-3  # a smaller gain is noise (one frame in a thousand), not progress
LR_DROP = 0.1  # the learning rate's factor after a phase's first plateau
LR_DROPS = 1  # plateaus that lower the learning rate before one ends the phase
# Epochs at the start of the memory phase that never count towards a plateau (the joint phase's are
# train.joint_grace). A new memory cell learns a cue across a gap suddenly, after a flat stretch whose
# length varies with the embeddings and the seed: synthetic seed 301's memory stayed at chance for 3 epochs
# (450 steps), the plateau rule lowered its learning rate, and it never learned the cue (test masked
# accuracy 0.476); fresh memories on the same embeddings at the full rate learned it after 700-800 steps
# (test masked 1.000). Five epochs are at least 750 steps at the full rate, then `train.patience` epochs
# more before a drop.
MEMORY_GRACE = 5
# The grace ends sooner at the first epoch whose training loss is this many times below the phase's first
# epoch's: the memory has left its flat stretch (there its loss stays put: 0.13 for ~400 steps, then 0.005
# within 50). Under the recipe's forget-gate bias of 3 every memory of the sixth and seventh rounds' 18
# runs was there by its second epoch (loss 30-70x below the first's), and its validation metric never
# changed after its third: the five epochs of grace were five epochs of nothing (7 s each on synthetic data).
# In the joint phase the same fall means the encoder already fits its training frames.
LEARNED_FALL = 10.0
# Share of train.time per phase. Joint epochs cost the most (every frame through the CNN with gradients);
# memory epochs on cached embeddings are cheap, but the memory needs many of them.
PHASE_SHARE = {"joint": 0.6, "memory": 0.4}
EPOCH_KEYS = {"joint": "train.epochs", "memory": "train.memory_epochs"}


def phase_plan(cfg: Config) -> list[tuple[str, int]]:
    """``[(phase name, most epochs), ...]`` in the order they run (phases of 0 epochs left out)."""
    return [(name, n) for name, n in (("joint", cfg.train.epochs), ("memory", cfg.train.memory_epochs)) if n > 0]


def total_epochs(cfg: Config) -> int:
    """The most epochs a run can have: joint epochs followed by memory epochs."""
    return cfg.train.epochs + cfg.train.memory_epochs


def next_phase(cfg: Config, phases: list[dict]) -> str | None:
    """The phase the next epoch belongs to, given the phases so far (``[{"name", "ended", ...}]``,
    see :class:`~lstm_tv.rundir.Progress`); None when the last phase has ended."""
    names = [name for name, _ in phase_plan(cfg)]
    if not phases:
        return names[0]
    current = phases[-1]
    if not current["ended"]:
        return current["name"]
    later = names[names.index(current["name"]) + 1:]
    return later[0] if later else None


def stale_epochs(values: list[float | None]) -> int | None:
    """Epochs since the best of ``values`` (one per epoch, larger = better; a gain under MIN_DELTA
    does not count); None when an epoch has no value (no validation)."""
    best, stale = None, 0
    for value in values:
        if value is None:
            return None
        if best is None or value > best + MIN_DELTA:
            best, stale = value, 0
        else:
            stale += 1
    return stale


def plateaus(values: list[float | None], patience: int, grace: int = 0) -> tuple[int, bool]:
    """Replay a phase's metric (one value per epoch, larger = better): ``(learning-rate drops, ended)``.

    Every ``patience`` epochs without a gain of MIN_DELTA over the best so far count as one plateau;
    the first LR_DROPS plateaus lower the learning rate (the count starts again), the next ends the
    phase. The first ``grace`` epochs never count towards a plateau (they can still set the best).
    No patience, or an epoch without a value (no validation): no plateaus.
    """
    best, stale, drops = None, 0, 0
    if not patience or any(value is None for value in values):
        return 0, False
    for epoch, value in enumerate(values):
        if best is None or value > best + MIN_DELTA:
            best, stale = value, 0
            continue
        if epoch < grace:
            continue
        stale += 1
        if stale >= patience:
            if drops == LR_DROPS:
                return drops, True
            drops, stale = drops + 1, 0
    return drops, False


def phase_grace(cfg: Config, phase: str) -> int:
    """The most epochs at the start of ``phase`` that never count towards a plateau."""
    return {"joint": cfg.train.joint_grace, "memory": MEMORY_GRACE}[phase]


def grace_epochs(cfg: Config, phase: str, rows: list[dict]) -> int:
    """Epochs at the start of ``phase`` that never count towards a plateau, given its ``metrics.csv`` rows:
    :func:`phase_grace`, or the index of an earlier epoch whose ``train_loss`` is :data:`LEARNED_FALL`
    times below the phase's first epoch's (from that epoch on, every epoch counts)."""
    limit = phase_grace(cfg, phase)
    first = rows[0].get("train_loss") if rows else None
    if not first:
        return limit
    for epoch, row in enumerate(rows[1:limit], start=1):
        loss = row.get("train_loss")
        if loss is not None and loss * LEARNED_FALL <= first:
            return epoch
    return limit


def phase_plateaus(cfg: Config, phase: str, rows: list[dict]) -> tuple[str, int, bool]:
    """``(metric name, learning-rate drops, ended)`` of :func:`plateaus` over ``phase``'s metrics.csv rows,
    with its metric (:func:`phase_metric`) and grace (:func:`grace_epochs`)."""
    name, values = phase_metric(phase, rows)
    return name, *plateaus(values, cfg.train.patience, grace_epochs(cfg, phase, rows))


def lr_scale(cfg: Config, phase: str, rows: list[dict]) -> float:
    """The factor on ``phase``'s scheduled learning rate after the epochs of ``rows`` (its metrics.csv rows)."""
    return LR_DROP ** phase_plateaus(cfg, phase, rows)[1]


def phase_metric(phase: str, rows: list[dict]) -> tuple[str, list[float | None]]:
    """The name and per-epoch values of the metric ``phase`` follows, from its ``metrics.csv`` rows."""
    column, name = PHASE_METRIC[phase]
    if any(row.get(column) is None for row in rows):
        column, name = FALLBACK_METRIC
    return name, [row.get(column) for row in rows]


def allotment(cfg: Config, phase: str, used: dict[str, float]) -> float | None:
    """Seconds ``phase`` may use under ``train.time``: its share of the budget plus what the phases
    before it left unused (``used``: seconds each phase took); None without a budget."""
    if not cfg.train.time:
        return None
    names = [name for name, _ in phase_plan(cfg)]
    shares = [PHASE_SHARE[name] / sum(PHASE_SHARE[n] for n in names) for name in names]
    i = names.index(phase)
    if i == len(names) - 1:
        return cfg.train.time * 60 - sum(used.get(n, 0.0) for n in names[:i])
    return cfg.train.time * 60 * sum(shares[:i + 1]) - sum(used.get(n, 0.0) for n in names[:i])


def typical_epoch(seconds: list[float]) -> float:
    """The expected time of a phase's next epoch: the median of its epochs after the first (which does
    one-off work: warm-up, the memory phase's encoding), or the first when it is the only one."""
    return statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0]


def _over_budget(seconds: list[float], budget: float) -> bool:
    """Whether a phase that took ``seconds`` per epoch must stop to stay within ``budget``.

    After its first epoch alone a phase stops only once the budget is spent: that epoch's one-off work
    (the memory phase encodes every training video in it, then runs at thousands of frames/s) says
    nothing about the next. From the second on, it stops when a typical epoch more would overrun.
    """
    if len(seconds) == 1:
        return seconds[0] >= budget
    return sum(seconds) + typical_epoch(seconds) > budget


def phase_end(cfg: Config, phase: str, rows: list[dict], seconds: list[float], budget: float | None) -> str | None:
    """Why ``phase`` ends after its epochs so far, or None when it goes on.

    Args:
        rows: the phase's ``metrics.csv`` rows so far (validation values in ``val_*``).
        seconds: the wall time of each of those epochs.
        budget: the seconds it may use (:func:`allotment`), or None.
    """
    limit = dict(phase_plan(cfg))[phase]
    patience = cfg.train.patience
    name, drops, ended = phase_plateaus(cfg, phase, rows)
    if ended:
        return f"{name} did not improve for {patience} epochs" + (" at the lowered learning rate" if drops else "")
    if len(rows) >= limit:
        return f"epoch limit ({EPOCH_KEYS[phase]}={limit})"
    if budget is not None and _over_budget(seconds, budget):
        return f"time budget (train.time={cfg.train.time:g} min)"
    return None


@dataclass
class RemainingTime:
    """Estimates the seconds a run has left from the epoch times measured so far.

    A phase's first epoch does extra work (warm-up, the memory phase's one-off encoding of every
    training video), so once a phase has two or more epochs timed, its later epochs are estimated
    from the median of its epochs after the first (robust to a slow outlier); with one timed, from
    that one. A phase not timed yet is estimated from ``priors`` (seconds for its first epoch, and
    for each later one), or left out when it has none: the estimate is then a lower bound
    (:meth:`complete` says so).

    Args:
        plan: ``[(phase, epochs)]`` in running order (:func:`phase_plan`).
    """

    plan: list[tuple[str, int]]
    times: dict[str, list[float]] = field(default_factory=dict)
    one_off: dict[str, float] = field(default_factory=dict)  # seconds of a phase's first epoch done once only
    priors: dict[str, tuple[float, float]] = field(default_factory=dict)
    budget: float | None = None  # seconds the epochs timed from now on may take (train.time); None = no cap

    def record(self, phase: str, seconds: float, one_off: float = 0.0) -> None:
        """Add the wall time of one finished epoch of ``phase``, ``one_off`` seconds of it work that later
        epochs do not repeat (the memory phase's encoding of every video)."""
        self.times.setdefault(phase, []).append(float(seconds))
        self.one_off[phase] = self.one_off.get(phase, 0.0) + float(one_off)

    def set_prior(self, phase: str, first: float, later: float) -> None:
        """Guess the epoch times of ``phase`` before any of its epochs is timed."""
        self.priors[phase] = (float(first), float(later))

    def _typical(self, phase: str) -> float:
        timed = self.times[phase]
        return statistics.median(timed[1:]) if len(timed) > 1 else max(0.0, timed[0] - self.one_off.get(phase, 0.0))

    def _phase_left(self, phase: str, epochs: int) -> float | None:
        done = len(self.times.get(phase, []))
        left = epochs - done
        if left <= 0:
            return 0.0
        if done:
            return left * self._typical(phase)
        if phase in self.priors:
            first, later = self.priors[phase]
            return first + (left - 1) * later
        return None

    def seconds_left(self) -> float | None:
        """Estimated seconds until the last epoch ends; None before any epoch was timed."""
        if not self.times:
            return None
        parts = [self._phase_left(phase, epochs) for phase, epochs in self.plan]
        left = sum(p for p in parts if p is not None)
        if self.budget is not None:
            left = min(left, max(0.0, self.budget - sum(sum(t) for t in self.times.values())))
        return left

    def complete(self) -> bool:
        """Whether every phase with epochs left is in the estimate (timed or given a prior)."""
        return self.budget is not None or all(self._phase_left(phase, epochs) is not None
                                              for phase, epochs in self.plan)

    def text(self) -> str:
        """``~4m10s left`` (``>=`` when a phase is not in the estimate yet); empty before any epoch."""
        seconds = self.seconds_left()
        if seconds is None:
            return ""
        return f"{'~' if self.complete() else '>='}{format_duration(seconds)} left"


def format_duration(seconds: float) -> str:
    """``75`` -> ``1m15s``; ``4000`` -> ``1h06m``; under a minute: ``42s``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
