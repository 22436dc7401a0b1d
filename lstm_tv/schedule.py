"""The epochs of a run, phase by phase, and an estimate of the time a run has left from measured epochs.

A run is ``train.epochs`` joint epochs, then ``train.memory_epochs`` memory epochs (:mod:`lstm_tv.phases`).
:class:`RemainingTime` times each epoch (training and validation together) and extrapolates: within
a phase every epoch does the same work, so the phase's typical epoch time times the epochs it has left,
plus the same for the phases still to come.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from lstm_tv.config import Config


def phase_plan(cfg: Config) -> list[tuple[str, int]]:
    """``[(phase name, epochs), ...]`` in the order they run (phases of 0 epochs left out)."""
    return [(name, n) for name, n in (("joint", cfg.train.epochs), ("memory", cfg.train.memory_epochs)) if n > 0]


def total_epochs(cfg: Config) -> int:
    """Joint epochs followed by memory epochs."""
    return cfg.train.epochs + cfg.train.memory_epochs


def phase_of(cfg: Config, epoch: int) -> str:
    """The phase epoch ``epoch`` (from 1) belongs to."""
    return "joint" if epoch <= cfg.train.epochs else "memory"


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
    priors: dict[str, tuple[float, float]] = field(default_factory=dict)

    def record(self, phase: str, seconds: float) -> None:
        """Add the wall time of one finished epoch of ``phase``."""
        self.times.setdefault(phase, []).append(float(seconds))

    def set_prior(self, phase: str, first: float, later: float) -> None:
        """Guess the epoch times of ``phase`` before any of its epochs is timed."""
        self.priors[phase] = (float(first), float(later))

    def _typical(self, phase: str) -> float:
        timed = self.times[phase]
        return statistics.median(timed[1:]) if len(timed) > 1 else timed[0]

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
        return sum(p for p in parts if p is not None)

    def complete(self) -> bool:
        """Whether every phase with epochs left is in the estimate (timed or given a prior)."""
        return all(self._phase_left(phase, epochs) is not None for phase, epochs in self.plan)

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
