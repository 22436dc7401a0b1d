"""``lstm-tv train``: fit the frame encoder and the memory on clips, validate on whole videos, summarise.

One epoch::

    clips (B, L, H, W, 3)  --split along time-->  chunks of train.tbptt frames
    for each chunk: logits, state = model(chunk, state)   # the memory flows on from the last chunk
                    loss.backward(); clip grads; step      # gradients stop at the chunk start
                    state = detach(state)                  # truncated back-propagation through time
    validate: stream every val video through the model with the state carried (as predict does)

The run itself is the library's :func:`lstm_tv.training.fit` (the engine in :mod:`lstm_tv.engine`,
the phases in :mod:`lstm_tv.phases`, the run directory in :mod:`lstm_tv.rundir`); this command adds
the summary table. Everything a run writes goes to its run directory (``config.yaml``, ``last.ckpt``,
``best.ckpt``, ``metrics.csv``, ``plots/``); ``--resume`` continues from ``last.ckpt`` alone.
"""

from __future__ import annotations

import os
from pathlib import Path

from lstm_tv.config import Config
from lstm_tv.metrics import TRACKED
from lstm_tv.rundir import Progress
from lstm_tv.training import fit
from lstm_tv.ui import QUIET, Reporter


def train(cfg: Config | None, *, resume: str | Path | None = None, reporter: Reporter | None = None) -> Path:
    """Train as ``cfg`` says, or continue the run of ``resume`` (a run directory or checkpoint, whose
    stored config is used; ``cfg`` is then ignored); print the summary; return the run directory.

    Under ``torchrun`` every rank calls this; rank 0 alone writes files and prints.
    """
    main = int(os.environ.get("RANK", "0")) == 0
    reporter = reporter or (Reporter() if main else QUIET)
    fitted = fit(cfg, resume=resume, reporter=reporter)
    if main:
        summary(reporter, fitted.run_dir, fitted.progress)
    return fitted.run_dir


def summary(reporter: Reporter, run_dir: Path, progress: Progress) -> None:
    """The table printed when training ends: the best epoch's validation metrics and the files written."""
    best = next((row for row in progress.history if row["epoch"] == progress.best_epoch), progress.history[-1])
    rows = [("best epoch", f"{progress.best_epoch} (validation metrics below)")]
    for m in TRACKED:
        if best.get(f"val_{m.key}") is not None:
            rows.append((m.label, m.format(best[f"val_{m.key}"])))
    rows += [("run", str(run_dir)), ("best checkpoint", str(run_dir / "best.ckpt")),
             ("last checkpoint", str(run_dir / "last.ckpt")), ("metrics", str(run_dir / "metrics.csv")),
             ("plots", str(run_dir / "plots"))]
    reporter.table("training finished", rows)
