"""A training run's directory: where it is, what each epoch writes there, and how ``--resume`` restores it.

Everything a run writes goes to its run directory (``config.yaml``, ``last.ckpt``, ``best.ckpt``,
``metrics.csv``, ``plots/``); ``--resume`` continues from ``last.ckpt`` alone. :class:`Progress`
is where the run stands (epochs done, the best epoch, the ``metrics.csv`` rows).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from lstm_tv.checkpoint import checkpoint_payload, load_record, save_checkpoint
from lstm_tv.config import Config
from lstm_tv.errors import CheckpointError, LstmTvError
from lstm_tv.fileio import write_text
from lstm_tv.metrics import TRACKED, metric

# metrics.csv: one row per epoch; the validation columns are the tracked rows of the metric table.
METRIC_COLUMNS = ["epoch", "phase", "train_loss", *[f"val_{m.key}" for m in TRACKED], "lr", "frames_per_s",
                  "skipped_steps", "seconds"]


# What last.ckpt holds beyond the weights for use (best.ckpt leaves it out): what --resume needs to continue.
TRAINING_STATE = ("optimizer", "scheduler", "weight_average")


@dataclass
class Progress:
    """What ``--resume`` needs besides weights and optimiser: where the run stands."""

    epoch: int = 0                      # epochs completed
    best_value: list[float] | None = None  # best [train.best_metric, frame accuracy] so far, larger = better
    best_epoch: int = 0
    stale_epochs: int = 0               # epochs since the best one
    history: list[dict] = field(default_factory=list)  # metrics.csv rows
    # The phases so far, in order: {"name", "seconds": [wall time per epoch], "ended": why it ended, or ""}.
    phases: list[dict] = field(default_factory=list)

    def phase_rows(self) -> list[dict]:
        """The ``metrics.csv`` rows of the current (last) phase."""
        current = self.phases[-1]
        return self.history[len(self.history) - len(current["seconds"]):]

    def used(self) -> dict[str, float]:
        """Seconds each phase has taken so far."""
        return {p["name"]: sum(p["seconds"]) for p in self.phases}

    def record(self, row: dict, value: list[float] | None) -> bool:
        """Add an epoch's ``metrics.csv`` row and its :func:`best_values`; True when it is the best epoch so
        far of the latest phase (``best.ckpt`` then follows it).

        The first epoch of a phase is always the best so far: each phase starts from where the one before
        ended and trains what that one did not (the memory phase: carrying the state from frame to frame,
        which a joint phase on single frames never trains), so an earlier phase's epoch is never the model
        to keep. Compared across phases, a joint epoch whose untrained memory happened to guess well on
        a few validation videos could beat every trained one (seen on 30-video data: best.ckpt was joint
        epoch 3, test frame accuracy 0.55).
        """
        new_phase = not self.history or self.history[-1]["phase"] != row["phase"]
        self.history.append(row)
        self.epoch = row["epoch"]
        # A tie goes to the later epoch: where validation cannot tell two epochs apart (synthetic data: masked
        # and frame accuracy 1.0 from the first memory epoch on), the one trained longer is kept, not the
        # first to reach the ceiling (synthetic seed 301: test masked accuracy 0.972 after memory epoch 1,
        # 0.984 after memory epoch 7, both 1.0 on validation).
        improved = value is None or self.best_value is None or new_phase or value >= self.best_value
        if improved:
            self.best_value, self.best_epoch, self.stale_epochs = value, self.epoch, 0
        else:
            self.stale_epochs += 1
        return improved


def run_directory(cfg: Config) -> Path:
    """``run.dir`` if set, else the first free ``runs/<name>``, ``runs/<name>2``, ..."""
    if cfg.run.dir:
        path = Path(cfg.run.dir)
        if (path / "last.ckpt").exists():
            raise LstmTvError(f"{path}: already holds a run; continue it with --resume {path}, or set another run.dir")
        return path
    base = Path("runs") / cfg.run.name
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{cfg.run.name}{n}")
    return path


def point_latest(run_dir: Path) -> None:
    """Make ``runs/latest`` a symlink to ``run_dir`` (what predict and evaluate use by default)."""
    runs = Path("runs")
    runs.mkdir(exist_ok=True)
    target = os.path.relpath(run_dir.resolve(), runs.resolve())
    tmp = runs / f".latest.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, runs / "latest")


def best_values(cfg: Config, report: dict | None, reporter, warned: list) -> tuple[str, list[float] | None]:
    """The validation values that decide ``best.ckpt``: ``[train.best_metric, frame accuracy]``, compared
    in that order, so that a tie (masked accuracy at 1.0 for many epochs) goes to the better frames
    (and a tie in both to the later epoch: :meth:`Progress.record`).
    Each is oriented so that larger is better (:meth:`~lstm_tv.metrics.Metric.signed`). The metric
    falls back to frame accuracy when the data has no masks (warning once, through ``warned``)."""
    if report is None:
        return cfg.train.best_metric, None
    if report.get("frame_accuracy") is None:  # a joint epoch before a memory phase measures frames alone only
        return "frame_accuracy_alone", [metric("frame_accuracy_alone").signed(report["frame_accuracy_alone"])]
    name = cfg.train.best_metric
    if report.get(name) is None:
        if not warned:
            reporter.warn(f"train.best_metric={name} is not available (no masks in the validation videos); "
                          f"using frame_accuracy")
            warned.append(True)
        name = "frame_accuracy"
    return name, [metric(name).signed(report[name]), metric("frame_accuracy").signed(report["frame_accuracy"])]


def write_metrics_csv(path: Path, history: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in METRIC_COLUMNS})
    write_text(path, buf.getvalue())


def save_epoch(run_dir: Path, model, cfg: Config, data, opt, progress: Progress, report: dict | None,
               improved: bool, curves: bool = True) -> None:
    """Write what an epoch leaves: ``last.ckpt`` (resumable), ``best.ckpt`` and its confusion matrix when
    ``improved``, ``metrics.csv``, and with ``curves`` the learning curves."""
    from lstm_tv import plots  # deferred: matplotlib costs ~0.5 s of start-up, needed only once an epoch is done

    payload = checkpoint_payload(
        model, cfg, classes=data.classes, background=data.background, size=data.size, fps=data.fps,
        epoch=progress.epoch, metrics=report or {},
        optimizer=opt.optimizer.state_dict(), scheduler=opt.scheduler.state_dict(),
        progress=asdict(progress), rng={"torch": torch.get_rng_state()},
        # The model holds the average of its weights (joint phase, train.ema); resuming needs the trained ones too.
        **({"weight_average": opt.average.state_dict()} if opt.average is not None else {}),
    )
    if improved:
        for_use = {k: v for k, v in payload.items() if k not in TRAINING_STATE}
        save_checkpoint(run_dir / "best.ckpt", for_use)  # no optimiser state: for using
        if report is not None and "confusion" in report:
            plots.confusion_matrix(report["confusion"], data.classes, run_dir / "plots" / "confusion_best.png",
                                   title=f"validation, epoch {progress.epoch} (rows = truth)")
    save_checkpoint(run_dir / "last.ckpt", payload)
    write_metrics_csv(run_dir / "metrics.csv", progress.history)
    if curves:
        plots.learning_curves(progress.history, run_dir / "plots" / "learning_curves.png")


def store_temperature(path: Path, temperature: float) -> None:
    """Rewrite the checkpoint at ``path`` (atomically) with the calibrated softmax ``temperature``."""
    record = dataclasses.replace(load_record(path), temperature=float(temperature))
    save_checkpoint(path, record.to_payload())


def check_training_state(ckpt: dict, path: Path) -> None:
    """What ``--resume`` needs from a checkpoint, checked before any data is touched.

    Raises:
        LstmTvError: the checkpoint holds weights only (a best.ckpt).
        CheckpointError: its training state is incomplete or of another shape than lstm-tv writes.
    """
    if "optimizer" not in ckpt or "progress" not in ckpt:
        raise LstmTvError(f"{path}: has no training state to resume from; resume from a run's last.ckpt")
    progress, optimizer, rng = ckpt["progress"], ckpt["optimizer"], ckpt.get("rng")
    keys = ("epoch", "best_value", "best_epoch", "stale_epochs", "history")
    ok = (isinstance(progress, dict) and all(k in progress for k in keys)
          and isinstance(progress["epoch"], int) and isinstance(progress["history"], list)
          and isinstance(optimizer, dict) and isinstance(optimizer.get("state"), dict)
          and isinstance(optimizer.get("param_groups"), list) and isinstance(ckpt.get("scheduler"), dict)
          and isinstance(rng, dict) and isinstance(rng.get("torch"), torch.Tensor)
          and _weight_average_ok(ckpt.get("weight_average", {"trained": {}, "updates": 0})))
    if not ok:
        raise CheckpointError(f"{path}: its training state cannot be restored (incomplete, or not written by "
                              f"lstm-tv train); resume from a run's own last.ckpt")


def _weight_average_ok(state) -> bool:
    return (isinstance(state, dict) and isinstance(state.get("updates"), int) and isinstance(state.get("trained"), dict)
            and all(isinstance(v, torch.Tensor) for v in state["trained"].values()))


def restore(ckpt: dict, path: Path, model, opt) -> Progress:
    """Load weights, optimiser, schedule and random state from a ``last.ckpt``; return its progress.

    Raises:
        CheckpointError: its state does not fit this model and optimiser (a last.ckpt from elsewhere).
    """
    try:
        model.load_state_dict(ckpt["model"])
        if opt.average is not None:  # the model now holds the average; without a stored state it starts from it
            opt.average.load_state_dict(ckpt.get("weight_average") or {"trained": model.state_dict(), "updates": 0})
        opt.optimizer.load_state_dict(ckpt["optimizer"])
        opt.scheduler.load_state_dict(ckpt["scheduler"])
        p = ckpt["progress"]
        progress = Progress(p["epoch"], p["best_value"], p["best_epoch"], p["stale_epochs"], list(p["history"]),
                            list(p.get("phases") or phases_of_history(p["history"])))
        torch.set_rng_state(ckpt["rng"]["torch"])
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CheckpointError(f"{path}: its training state cannot be restored ({type(e).__name__}: "
                              f"{reason}); resume from a run's own last.ckpt") from None
    return progress


def phases_of_history(history: list[dict]) -> list[dict]:
    """The phases of a checkpoint written before runs recorded them (fixed epoch counts): each phase's
    epochs from the rows, their times from the rows' training seconds, every phase but the last ended."""
    phases: list[dict] = []
    for row in history:
        if not phases or phases[-1]["name"] != row["phase"]:
            if phases:
                phases[-1]["ended"] = "epoch limit"
            phases.append({"name": row["phase"], "seconds": [], "ended": ""})
        phases[-1]["seconds"].append(float(row.get("seconds") or 0.0))
    return phases
