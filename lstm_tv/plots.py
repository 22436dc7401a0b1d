"""Figures, written as PNG files with matplotlib's Agg backend (no display needed), atomically."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lstm_tv.fileio import atomic_path  # noqa: E402


def save(fig, path: str | Path) -> None:
    """Save ``fig`` to ``path`` (format from the suffix) atomically and close it."""
    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    plt.close(fig)


def learning_curves(history: list[dict], path: str | Path) -> None:
    """Training loss and validation metrics per epoch (``metrics.csv`` rows as dicts)."""
    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_loss.plot(epochs, [row["train_loss"] for row in history], marker=".", label="train loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.set_yscale("log")
    ax_loss.legend()
    for key, label in [("val_frame_accuracy", "frame accuracy"), ("val_masked_accuracy", "masked accuracy"),
                       ("val_macro_f1", "macro-F1")]:
        values = [row.get(key) for row in history]
        if any(v is not None and v != "" for v in values):
            ax_metric.plot(epochs, [np.nan if v in (None, "") else float(v) for v in values], marker=".", label=label)
    ax_metric.set_xlabel("epoch")
    ax_metric.set_ylim(0, 1.02)
    ax_metric.set_title("validation")
    ax_metric.legend(loc="lower right")
    fig.tight_layout()
    save(fig, path)


def confusion_matrix(confusion: list[list[int]], classes: list[str], path: str | Path, title: str = "") -> None:
    """Row-normalised confusion matrix (rows = truth) with the frame counts written in each cell."""
    conf = np.asarray(confusion, dtype=np.float64)
    rates = conf / np.maximum(conf.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(classes), 0.8 + 0.7 * len(classes)))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{int(conf[i, j])}", ha="center", va="center", fontsize=8,
                    color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion (rows = truth)")
    fig.tight_layout()
    save(fig, path)
