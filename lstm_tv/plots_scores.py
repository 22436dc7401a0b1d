"""Figures of the probability metrics: reliability diagram and risk-coverage curve, as PNG (or PDF/SVG).

They draw the JSON-ready dicts of :meth:`lstm_tv.scores.FrameScores.report` (``reliability`` and
``risk_coverage``), so a report file can be re-plotted without the model. matplotlib is imported inside
each function (it costs ~0.5 s of start-up that commands not drawing should not pay); a bare
``matplotlib.figure.Figure`` renders with Agg and touches no pyplot state or display.
"""

from __future__ import annotations

from pathlib import Path

from lstm_tv.fileio import atomic_path


def _save(fig, path: str | Path) -> None:
    """Write ``fig`` to ``path`` atomically, the format from the suffix."""
    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")


def _nan(values) -> list[float]:
    return [float("nan") if v is None else float(v) for v in values]


def reliability_diagram(reliability: dict, path: str | Path, *, ece: float | None = None, title: str = "") -> None:
    """Accuracy against confidence per bin, beside the diagonal of perfect calibration, and bin counts.

    Args:
        reliability: ``{"confidence": [...], "accuracy": [...], "count": [...]}``, one value per
            equal-width bin (None in empty bins), as :func:`lstm_tv.scores.reliability` makes them.
        path: output file (.png, .pdf or .svg).
        ece: shown in the title when given.
    """
    from matplotlib.figure import Figure  # deferred: start-up time

    count = list(reliability["count"])
    bins = len(count)
    width = 1.0 / bins
    centres = [(i + 0.5) * width for i in range(bins)]
    fig = Figure(figsize=(4.6, 5.2))
    ax, ax_count = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.bar(centres, _nan(reliability["accuracy"]), width=width * 0.95, color="#4c72b0", label="accuracy")
    # The gap from each bin's mean confidence: red above the bar is over-confidence.
    ax.bar(centres, [c - a for c, a in zip(_nan(reliability["confidence"]), _nan(reliability["accuracy"]),
                                             strict=True)],
           bottom=_nan(reliability["accuracy"]), width=width * 0.95, color="#c44e52", alpha=0.3, edgecolor="#c44e52",
           label="gap to confidence")
    ax.plot([0, 1], [0, 1], color="black", linewidth=1, linestyle="--", label="calibrated")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left", fontsize=8)
    heading = title or "reliability"
    ax.set_title(f"{heading} (ECE {ece:.3f})" if ece is not None else heading)
    ax_count.bar(centres, count, width=width * 0.95, color="grey")
    ax_count.set_yscale("log" if max(count, default=0) > 100 else "linear")
    ax_count.set_xlabel("confidence (top-class probability)")
    ax_count.set_ylabel("frames")
    fig.tight_layout()
    _save(fig, path)


def risk_coverage_curve(risk: dict, path: str | Path, *, chosen: float | None = None, title: str = "") -> None:
    """Accuracy of the frames kept against the share kept, one point per abstention threshold P.

    Args:
        risk: ``{"threshold": [...], "abstained": [...], "accuracy": [...]}`` (accuracy None where
            nothing is kept), as :func:`lstm_tv.scores.risk_coverage` makes them.
        path: output file (.png, .pdf or .svg).
        chosen: a threshold to mark (e.g. ``predict --min-confidence``), when it is one of the sweep.
    """
    from matplotlib.figure import Figure  # deferred: start-up time

    coverage = [1.0 - a for a in risk["abstained"]]
    accuracy = _nan(risk["accuracy"])
    fig = Figure(figsize=(5.2, 3.8))
    ax = fig.subplots()
    ax.plot(coverage, accuracy, marker=".", color="#4c72b0")
    last_x = None
    for t, x, y in zip(risk["threshold"], coverage, accuracy, strict=True):
        # Label every 0.2 of P, skipping empty points (nan) and points on top of the last label.
        if y == y and round(t * 100) % 20 == 0 and (last_x is None or abs(x - last_x) > 0.05):
            ax.annotate(f"P={t:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
            last_x = x
    if chosen is not None and chosen in risk["threshold"]:
        i = risk["threshold"].index(chosen)
        ax.plot([coverage[i]], [accuracy[i]], marker="o", markersize=9, markerfacecolor="none", color="#c44e52",
                label=f"chosen P={chosen:g}")
        ax.legend(loc="lower left", fontsize=8)
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("coverage (share of frames kept)")
    ax.set_ylabel("accuracy on frames kept")
    ax.set_title(title or "risk-coverage")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
