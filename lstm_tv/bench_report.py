"""The bench's results: summaries over seeds and by cue distance, written as CSV, Markdown and a figure.

Its columns are the metric table's (:data:`lstm_tv.metrics.METRICS`): masked accuracy first, as the
headline, then the others in table order (all of them per run, the tracked ones in the summaries).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstm_tv.bench_data import GAP_SETTINGS
from lstm_tv.config import Config
from lstm_tv.fileio import write_text
from lstm_tv.metrics import METRICS, metric
from lstm_tv.model.cells import bench_cells

DISTANCE_BIN = 20  # frames per bin of the accuracy-against-distance curves


# ---------------------------------------------------------------------------------------------------
# Summaries: over seeds per (cell, gap setting), and per distance bin per cell



HEADLINE = metric("masked_accuracy")  # the frames that need memory: what the bench is about
# The other metrics of the table, in its order: every one per run, the tracked ones in the summaries.
OTHERS = [m for m in METRICS if m is not HEADLINE]
SUMMARY_METRICS = [m for m in OTHERS if m.tracked and m.source == "frames"]

SUMMARY_COLUMNS = ["cell", "gaps", "gap_min", "gap_max", "seeds", HEADLINE.key, f"{HEADLINE.key}_std",
                   *[m.key for m in SUMMARY_METRICS], "memory_params", "total_params", "train_seconds", "failed"]
RUN_COLUMNS = ["cell", "gaps", "gap_min", "gap_max", "seed", "status", HEADLINE.key, *[m.key for m in OTHERS],
               "masked_frames", "frames", "memory_params", "total_params", "train_seconds", "eval_seconds", "run_dir",
               "error"]
DISTANCE_COLUMNS = ["cell", "distance_from", "distance_to", "frames", "correct", "accuracy"]


def _values(results: list[dict], key: str) -> list[float]:
    return [float(r[key]) for r in results if r.get(key) is not None]


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def _std(values: list[float]) -> float:
    """Sample standard deviation over seeds; nan (an empty CSV cell) below two seeds: no spread measured."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


def summarise(results: list[dict], cells: list[str], gaps: list[str]) -> list[dict]:
    """One row per (cell, gap setting) that has results: means over seeds (and the masked spread)."""
    rows = []
    for g in gaps:
        for cell in cells:
            mine = [r for r in results if r["cell"] == cell and r["gaps"] == g]
            if not mine:
                continue
            ok = [r for r in mine if r["status"] == "ok"]
            masked = _values(ok, "masked_accuracy")
            rows.append({
                "cell": cell, "gaps": g, "gap_min": GAP_SETTINGS[g][0], "gap_max": GAP_SETTINGS[g][1],
                "seeds": len(ok), "masked_accuracy": _mean(masked), "masked_accuracy_std": _std(masked),
                **{k: _mean(_values(ok, k)) for k in (*[m.key for m in SUMMARY_METRICS], "train_seconds")},
                "memory_params": ok[0]["memory_params"] if ok else None,
                "total_params": ok[0]["total_params"] if ok else None,
                "failed": len(mine) - len(ok),
            })
    return rows


def pooled_by_distance(results: list[dict], cell: str) -> tuple[np.ndarray, np.ndarray]:
    """Masked frames and hits per distance of one cell, summed over its successful runs (both datasets)."""
    counts = [r["by_distance"] for r in results if r["cell"] == cell and r["status"] == "ok"]
    longest = max((len(c["frames"]) for c in counts), default=0)
    frames, correct = np.zeros(longest, np.int64), np.zeros(longest, np.int64)
    for c in counts:
        frames[:len(c["frames"])] += c["frames"]
        correct[:len(c["correct"])] += c["correct"]
    return frames, correct


def distance_rows(results: list[dict], cells: list[str], width: int = DISTANCE_BIN) -> list[dict]:
    """Masked accuracy per distance bin ``[from, to)`` and cell; bins without masked frames are left out."""
    rows = []
    for cell in cells:
        frames, correct = pooled_by_distance(results, cell)
        for lo in range(0, len(frames), width):
            n, k = int(frames[lo:lo + width].sum()), int(correct[lo:lo + width].sum())
            if n:
                rows.append({"cell": cell, "distance_from": lo, "distance_to": lo + width, "frames": n,
                             "correct": k, "accuracy": k / n})
    return rows


# ---------------------------------------------------------------------------------------------------
# Writing: CSV, Markdown, the terminal table and the figure


def _csv_text(columns: list[str], rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k)) for k in columns})
    return buf.getvalue()


def _csv_value(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def fmt_value(value, digits: int = 3) -> str:
    """A number for a table: ``digits`` decimals, a dash when missing (None or nan)."""
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


TABLE_HEADER = ["cell", "gaps", HEADLINE.label, *[m.label for m in SUMMARY_METRICS], "mem params", "params", "train s"]


def table_cells(row: dict) -> list[str]:
    """One summary row as the strings of :data:`TABLE_HEADER` (shared by the terminal and Markdown).

    ``mem params`` counts the memory cell and the linear head (what differs between cells), ``params``
    the whole model (the encoder is the same in every run).
    """
    masked = fmt_value(row["masked_accuracy"])
    if row["seeds"] > 1:
        masked += f" ± {fmt_value(row['masked_accuracy_std'])}"
    if row["failed"]:
        masked += f" ({row['failed']} failed)"
    params = [f"{row[k]:,}" if row[k] is not None else "–" for k in ("memory_params", "total_params")]
    scores = [fmt_value(row[m.key], 3 if m.scale == 1.0 else 1) for m in SUMMARY_METRICS]
    return [row["cell"], row["gaps"], masked, *scores, *params, fmt_value(row["train_seconds"], 0)]


def gap_text(gaps: list[str]) -> str:
    return ", ".join(f"{g} {GAP_SETTINGS[g][0]}-{GAP_SETTINGS[g][1]}" for g in gaps)


def markdown(rows: list[dict], dist_rows: list[dict], cells: list[str], gaps: list[str], base: Config,
             seeds: list[int], plot_name: str) -> str:
    """results.md: the summary table, accuracy per distance bin, and the budget the runs shared."""
    intro = (f"Test split of the synthetic TV dataset; gaps {gap_text(gaps)} frames; seeds "
             f"{', '.join(map(str, seeds))}. Masked accuracy is the accuracy on the ambiguous-canine frames "
             "(mean ± sample std over seeds); edit and F1@50 are on the 0-100 scale; mem params counts the "
             "memory cell and head, params the whole model; train s is the mean wall time of one training run.")
    lines = ["# lstm-tv bench: memory cells on short and long gaps", "", intro, "",
             *_markdown_table(TABLE_HEADER, [table_cells(r) for r in rows])]
    bins = sorted({(r["distance_from"], r["distance_to"]) for r in dist_rows})
    if bins:
        by_key = {(r["cell"], r["distance_from"]): r for r in dist_rows}
        table = [[f"{lo}-{hi - 1}"] + [f"{by_key[c, lo]['accuracy']:.3f} ({by_key[c, lo]['frames']})"
                                       if (c, lo) in by_key else "–" for c in cells] for lo, hi in bins]
        caption = ("Masked accuracy by frames since the last cue (both datasets and all seeds pooled; masked "
                   f"frames in brackets). Figure: `{plot_name}`.")
        lines += ["", caption, "", *_markdown_table(["frames since cue", *cells], table)]
    lines += ["", f"Budget shared by every run: {budget_text(base)}. Full config: `bench_config.yaml`.", ""]
    return "\n".join(lines)


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def budget_text(cfg: Config) -> str:
    """The budget of a bench config in one sentence (data, model, both training phases)."""
    m, t, s = cfg.model, cfg.train, cfg.synth
    data = f"{s.videos} videos x {s.frames} frames at {cfg.data.size} px per gap setting"
    model = (f"{m.encoder} encoder (width {m.width}, embed {m.embed}), hidden {m.hidden}, {m.layers} layer(s), "
             f"tdnn window {m.window}")
    steps = f"{t.steps_per_epoch} steps" if t.steps_per_epoch else "all training frames"
    phases = (f"{t.epochs} joint epochs x {steps} of {t.batch_size} clips x {t.clip_frames} frames "
              f"(tbptt {t.tbptt}, lr {t.lr}), then {t.memory_epochs} memory epochs (lr {t.memory_lr})")
    return f"{data}; {model}; {phases}"


def plot_results(path: Path, results: list[dict], rows: list[dict], cells: list[str], gaps: list[str],
                 window: int) -> None:
    """Left: masked accuracy against frames since the last cue, one line per cell. Right: per gap setting."""
    from lstm_tv import plots  # noqa: I001 - first: it selects the Agg backend (no display needed)
    import matplotlib.pyplot as plt

    fig, (ax, ax_bar) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [1.6, 1]})
    colours = {c: plt.get_cmap("tab10")(i) for i, c in enumerate(bench_cells())}
    for cell in cells:
        pts = distance_rows(results, [cell])
        if pts:
            ax.plot([(r["distance_from"] + r["distance_to"] - 1) / 2 for r in pts], [r["accuracy"] for r in pts],
                    marker="o", ms=4, label=cell, color=colours.get(cell))
    for k, g in enumerate(gaps):
        lo, hi = GAP_SETTINGS[g]
        # A silhouette after a gap of g frames starts at distance g + 1 and lasts up to 36 frames.
        ax.axvspan(lo + 1, hi + 1, color="grey", alpha=0.1, lw=0, label="silhouette onsets" if k == 0 else None)
    if "tdnn" in cells:
        ax.axvline(window, color=colours["tdnn"], ls=":", lw=1, label=f"tdnn window ({window})")
    ax.axhline(0.5, color="black", ls="--", lw=0.8, label="coin flip")
    ax.set_xlim(left=0)
    ax.set_xlabel("frames since the last cue")
    ax.set_ylabel("masked accuracy (test)")
    ax.set_ylim(0, 1.02)
    ax.set_title("per masked frame, seeds pooled")
    ax.legend(fontsize=8, ncol=2, loc="lower left")

    width = 0.8 / max(1, len(gaps))
    for j, g in enumerate(gaps):
        mine = {r["cell"]: r for r in rows if r["gaps"] == g}
        xs = [i + (j - (len(gaps) - 1) / 2) * width for i in range(len(cells))]
        ys = [mine[c]["masked_accuracy"] if c in mine else np.nan for c in cells]
        err = [np.nan_to_num(mine[c]["masked_accuracy_std"]) if c in mine else 0.0 for c in cells]
        ax_bar.bar(xs, ys, width, yerr=err, capsize=2, label=f"{g} ({GAP_SETTINGS[g][0]}-{GAP_SETTINGS[g][1]})")
    ax_bar.axhline(0.5, color="black", ls="--", lw=0.8)
    ax_bar.set_xticks(range(len(cells)), cells)
    ax_bar.set_ylim(0, 1.02)
    ax_bar.set_title("per gap setting (mean ± std over seeds)")
    ax_bar.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    plots.save(fig, path)


@dataclass
class BenchOutputs:
    """Where a bench wrote its results, and its summary rows."""

    csv: Path
    markdown: Path
    plot: Path
    runs_csv: Path
    distance_csv: Path
    rows: list[dict]
    results: list[dict]

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.results if r["status"] != "ok"]


def write_outputs(out: Path, results: list[dict], cells: list[str], gaps: list[str], base: Config,
                  seeds: list[int]) -> BenchOutputs:
    """(Re)write every table and the figure from the results so far (each file atomically)."""
    rows = summarise(results, cells, gaps)
    dist = distance_rows(results, cells)
    outputs = BenchOutputs(out / "results.csv", out / "results.md", out / "masked_accuracy_by_gap.png",
                           out / "runs.csv", out / "accuracy_by_distance.csv", rows, results)
    write_text(outputs.csv, _csv_text(SUMMARY_COLUMNS, rows))
    write_text(outputs.runs_csv, _csv_text(RUN_COLUMNS, results))
    write_text(outputs.distance_csv, _csv_text(DISTANCE_COLUMNS, dist))
    write_text(outputs.markdown, markdown(rows, dist, cells, gaps, base, seeds, outputs.plot.name))
    plot_results(outputs.plot, results, rows, cells, gaps, base.model.window)
    return outputs
