"""Figures, written as PNG files with matplotlib's Agg backend (no display needed), atomically."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lstm_tv.fileio import atomic_path  # noqa: E402
from lstm_tv.metrics import TRACKED  # noqa: E402


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
    for m in TRACKED:
        if m.scale != 1.0:
            continue  # the 0-100 segment scores would flatten the fractions on a shared axis
        values = [row.get(f"val_{m.key}") for row in history]
        if any(v is not None and v != "" for v in values):
            ax_metric.plot(epochs, [np.nan if v in (None, "") else float(v) for v in values], marker=".", label=m.label)
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


# ---------------------------------------------------------------------------------------------------
# Per-frame labels over time (predict --timeline, explain)


def class_colours(classes: list[str], background: str | None = None) -> list[tuple[int, int, int]]:
    """One RGB colour (0-255) per class, the same in every figure and annotated video; background grey."""
    palette = plt.get_cmap("tab10").colors
    out, k = [], 0
    for name in classes:
        if name == background:
            out.append((150, 150, 150))
        else:
            out.append(tuple(int(round(255 * c)) for c in palette[k % len(palette)]))
            k += 1
    return out


def _strip(ax, edges: np.ndarray, labels: np.ndarray, colours: list[tuple[int, int, int]], name: str) -> None:
    """A colour strip: bin j of ``labels`` painted over [edges[j], edges[j+1]) in its class colour."""
    from matplotlib.colors import ListedColormap

    cmap = ListedColormap(np.asarray(colours) / 255.0)
    ax.pcolormesh(edges, [0, 1], np.asarray(labels)[None, :], cmap=cmap, vmin=-0.5, vmax=len(colours) - 0.5,
                  shading="flat", rasterized=True)
    ax.set_yticks([0.5], [name])
    ax.tick_params(axis="y", length=0)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)


def _legend(fig, classes: list[str], colours: list[tuple[int, int, int]]) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(color=np.asarray(c) / 255.0, label=name) for name, c in zip(classes, colours, strict=True)]
    fig.legend(handles=handles, loc="upper center", ncol=len(classes), frameon=False, bbox_to_anchor=(0.5, 1.0))


def prediction_timeline(path: str | Path, edges: np.ndarray, pred: np.ndarray, confidence: np.ndarray,
                        classes: list[str], colours: list[tuple[int, int, int]], *,
                        truth: np.ndarray | None = None, title: str = "") -> None:
    """Predicted labels over time as a colour strip, the confidence below, the truth as a second strip.

    Args:
        path: the figure file (.png, .pdf, .svg).
        edges: (B + 1,) bin boundaries in seconds (one bin per frame for short videos).
        pred: (B,) predicted class per bin; ``confidence`` (B,) its probability.
        classes: class names; ``colours`` their RGB colours (:func:`class_colours`).
        truth: (B,) true class per bin, or None.
        title: the figure's title.
    """
    strips = 1 if truth is None else 2
    fig, axes = plt.subplots(strips + 1, 1, figsize=(12, 1.0 + 0.45 * strips + 1.6), sharex=True,
                             gridspec_kw={"height_ratios": [0.45] * strips + [1.6]})
    if truth is not None:
        _strip(axes[0], edges, truth, colours, "true")
    _strip(axes[strips - 1], edges, pred, colours, "predicted")
    ax = axes[-1]
    ax.stairs(confidence, edges, color="black", linewidth=0.8)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("confidence")
    ax.set_xlabel("time (s)")
    ax.set_xlim(edges[0], edges[-1])
    axes[0].set_title(title, pad=22)
    _legend(fig, classes, colours)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    save(fig, path)


def explain_figure(path: str | Path, edges: np.ndarray, probs: np.ndarray, gates: dict[str, np.ndarray],
                   cell_norm: np.ndarray, units: np.ndarray, unit_ids: list[int], classes: list[str],
                   colours: list[tuple[int, int, int]], *, truth: np.ndarray | None = None, title: str = "") -> None:
    """The memory of an LSTM over a video, one panel per view, sharing the time axis.

    Panels: true (if given) and predicted label strips; class probabilities; the mean forget, input
    and output gate activations; the norm of the cell state ``c``; the units of ``c`` that change most.

    Args:
        path: the figure file.
        edges: (B + 1,) bin boundaries in seconds.
        probs: (B, K) class probabilities.
        gates: ``forget``, ``input``, ``output`` -> (B,) mean activation over the layer's units.
        cell_norm: (B,) Euclidean norm of ``c``.
        units: (B, U) values of the cell-state units ``unit_ids``.
        classes, colours: class names and their RGB colours.
        truth: (B,) true class per bin, or None.
        title: the figure's title.
    """
    strips = 1 if truth is None else 2
    ratios = [0.4] * strips + [1.5, 1.3, 1.0, 1.3]
    fig, axes = plt.subplots(len(ratios), 1, figsize=(12, 1.2 + sum(ratios) * 1.1), sharex=True,
                             gridspec_kw={"height_ratios": ratios})
    if truth is not None:
        _strip(axes[0], edges, truth, colours, "true")
    _strip(axes[strips - 1], edges, probs.argmax(axis=1), colours, "predicted")
    ax_p, ax_g, ax_n, ax_u = axes[strips:]
    for k, name in enumerate(classes):
        ax_p.stairs(probs[:, k], edges, color=np.asarray(colours[k]) / 255.0, linewidth=1.0, label=name)
    ax_p.set_ylim(0, 1.02)
    ax_p.set_ylabel("probability")
    gate_colours = {"forget": "tab:red", "input": "tab:green", "output": "tab:blue"}
    for name, values in gates.items():
        ax_g.stairs(values, edges, color=gate_colours.get(name), linewidth=1.0, label=f"{name} gate")
    ax_g.set_ylim(0, 1.02)
    ax_g.set_ylabel("mean gate")
    ax_g.legend(loc="upper right", fontsize=8, ncol=3, framealpha=0.7)
    ax_n.stairs(cell_norm, edges, color="black", linewidth=1.0)
    ax_n.set_ylabel("|c|")
    for j, unit in enumerate(unit_ids):
        ax_u.stairs(units[:, j], edges, linewidth=1.0, label=f"c[{unit}]")
    ax_u.axhline(0, color="grey", linewidth=0.5)
    ax_u.set_ylabel("cell units")
    if unit_ids:
        ax_u.legend(loc="upper right", fontsize=8, ncol=len(unit_ids), framealpha=0.7)
    ax_u.set_xlabel("time (s)")
    ax_u.set_xlim(edges[0], edges[-1])
    axes[0].set_title(title, pad=22)
    _legend(fig, classes, colours)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    save(fig, path)
