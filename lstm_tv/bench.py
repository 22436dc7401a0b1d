"""``lstm-tv bench``: which memory cell carries a cue across a gap, measured on the synthetic TV dataset.

What it measures, and why
-------------------------
The story behind lstm-tv makes four claims about the ambiguous canine (a silhouette whose class,
wolf or dog, follows only from a cue seen ``gap`` frames earlier):

* a frame-only model (``none``) cannot tell it at all: about a coin flip on the masked frames;
* a fixed window (``tdnn``, ``model.window`` frames) sees the cue only while it is inside the window;
* a plain RNN (``rnn``) forgets over long gaps (its gradients vanish across them);
* gated cells (``lstm``, ``peephole``, ``gru``) carry the cue across a hundred frames and more.

The bench tests them: it trains every cell with one budget (same data, encoder, epochs, steps, batch
and learning rate; only ``model.cell`` and ``train.seed`` differ) on two synthetic datasets that
differ only in the gap between cue and silhouette (``short``: 5-20 frames, ``long``: 60-150), then
evaluates each run's ``best.ckpt`` on the test videos. The headline number is the masked accuracy
(accuracy on the silhouette frames, the only frames that need memory); frame accuracy, edit and
F1@50 show that the rest of the task is learned alike. Every masked test frame is also binned by its
actual distance from the last cue (recomputed from the synthetic plan of its video and checked
against the stored mask), which gives accuracy against distance, one curve per cell.

Outputs (under ``--out``, default ``runs/bench``)::

    data/<gaps>-<hash>/raw, prepared   each dataset, generated and prepared once, reused by re-runs
    runs/<cell>-<gaps>-s<seed>/        one training run each (config.yaml, best.ckpt, metrics.csv, ...)
                                       plus bench_result.json (its test metrics and distance counts)
    bench_config.yaml                  the budget every run shares
    results.csv, results.md            one row per (cell, gap setting): mean and spread over seeds
    runs.csv                           one row per run
    accuracy_by_distance.csv           masked accuracy per distance bin and cell (seeds and datasets pooled)
    masked_accuracy_by_gap.png         the same as a figure, with the per-setting summary beside it

The tables and the figure are rewritten after every run, so an interrupted or partly failed bench
keeps what it measured; a run that fails is reported and the others go on.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
import re
import shutil
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.markup import escape

from lstm_tv.config import Config, from_dict, merge, parse_overrides, read_yaml, render_yaml
from lstm_tv.data import run_prepare, run_synth
from lstm_tv.data.dataset import PreparedDataset
from lstm_tv.data.synth import CUE_KINDS, VideoPlan, video_plan, video_stem
from lstm_tv.distributed import resolve_device
from lstm_tv.errors import ConfigError, DatasetError, LstmTvError
from lstm_tv.evaluate import FrameMetrics
from lstm_tv.fileio import write_json, write_text
from lstm_tv.model.cells import bench_cells, list_cells
from lstm_tv.stream import array_chunks, load_model, stream_logits
from lstm_tv.train import train
from lstm_tv.ui import QUIET, Bar, Reporter

# The two datasets: frames of ``unknown`` between the last cue and a silhouette (inclusive ranges).
GAP_SETTINGS: dict[str, tuple[int, int]] = {"short": (5, 20), "long": (60, 150)}

QUICK_CELLS = ("none", "rnn", "lstm")  # --quick: no memory, plain recurrence, gated; every cell: bench_cells()

# The default budget, shared by every run (cell and seed aside). Smaller frames and encoder than
# `lstm-tv train`'s default (32 px, width 16) and a fixed number of joint steps keep one run of a fused
# cell to about 2-3 minutes on 2 CPU cores; the gap ranges, the frame count per video (which sets how
# many cue-gap-silhouette cycles fit) and the method (joint epochs, then the memory phase) are those of
# the real task. The memory phase is long because it is where the gap is learned: on 60-150 frame gaps
# an lstm with the default forget bias is still at chance after 20 memory epochs and at ~0.94 after 60,
# and each memory epoch of a fused cell costs well under a second plus its validation.
BENCH_BUDGET = [
    "synth.videos=80",            # 56 train / 12 val / 12 test videos per gap setting
    "synth.frames=600",           # room for 2-3 long-gap silhouettes per video (~30 in the test split)
    "synth.size=32", "data.size=32",
    "model.width=16", "model.embed=64", "model.hidden=64",
    "train.epochs=8", "train.steps_per_epoch=30",  # joint phase: 8 x 30 steps of 8 clips x 256 frames
    "train.memory_epochs=60",     # then the memory alone, whole videos, full BPTT (default: 30)
]
# --quick: seconds per run on tiny data, to check the whole pipeline (the test suite runs it).
QUICK_BUDGET = [
    "synth.videos=6", "synth.frames=400", "synth.size=16", "data.size=16",
    "model.width=4", "model.embed=8", "model.hidden=8",
    "train.epochs=1", "train.steps_per_epoch=2", "train.batch_size=2", "train.clip_frames=64", "train.tbptt=32",
    "train.warmup=0", "train.memory_epochs=1", "train.workers=0", "train.amp=false",
]
# One seed by default: with peephole (a Python loop per frame, ~9 min a run) 6 x 2 runs already take
# ~40-55 min on 2 cores. --seeds N --resume adds seeds later and keeps the runs already done.
DEFAULT_SEEDS, QUICK_SEEDS = 1, 1

# Set by the bench for each run; a --config file or override may not change them.
BENCH_KEYS = ("model.cell", "synth.gap_min", "synth.gap_max", "data.dir", "data.raw", "run.dir", "run.name")

DISTANCE_BIN = 20  # frames per bin of the accuracy-against-distance curves
EVAL_CHUNK = 256   # frames per streamed chunk at evaluation (memory, not results, depends on it)

RESULT_FILE = "bench_result.json"


# ---------------------------------------------------------------------------------------------------
# The plan: budget, cells, gap settings, seeds


@dataclass(frozen=True)
class RunSpec:
    """One training run of the bench."""

    cell: str
    gaps: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.cell}-{self.gaps}-s{self.seed}"


def bench_config(config_file: str | Path | None = None, overrides: list[str] | None = None, *,
                 quick: bool = False) -> Config:
    """The budget every run shares: defaults <- bench budget (or --quick) <- ``config_file`` <- ``overrides``.

    Raises:
        ConfigError: an invalid key or value, or a key the bench sets per run (:data:`BENCH_KEYS`):
            named in an override, or given a non-default value in the file (a full copy of
            ``configs/default.yaml`` is fine: its values of those keys are the defaults, and ignored).
    """
    tree = merge(Config().to_dict(), parse_overrides(QUICK_BUDGET if quick else BENCH_BUDGET))
    if config_file is not None:
        update = read_yaml(config_file)
        tree = merge(tree, update, source=str(config_file))
        _refuse_bench_keys(update, f" in {config_file}", only_changed=True)
    if overrides:
        update = parse_overrides(overrides)
        tree = merge(tree, update)
        _refuse_bench_keys(update, "", only_changed=False)
    return from_dict(tree)


def _refuse_bench_keys(update: dict, where: str, *, only_changed: bool) -> None:
    defaults = Config().to_dict()
    hints = {"model.cell": "use --cells", "synth.gap_min": "use --gaps", "synth.gap_max": "use --gaps"}
    for dotted in BENCH_KEYS:
        section, key = dotted.split(".")
        if key not in update.get(section, {}):
            continue
        if only_changed and update[section][key] == defaults[section][key]:
            continue
        raise ConfigError(f"{dotted}{where}: set by the bench for each run; {hints.get(dotted, 'use --out')}")


def split_names(text: str | None) -> list[str] | None:
    """``"lstm, gru"`` -> ``["lstm", "gru"]`` (a comma-separated option); None stays None."""
    if text is None:
        return None
    return [name.strip() for name in text.split(",") if name.strip()]


def run_specs(cells: list[str], gaps: list[str], seeds: list[int]) -> list[RunSpec]:
    """Seed-major order, so a complete table (one seed) exists as early as possible."""
    return [RunSpec(cell, g, seed) for seed in seeds for g in gaps for cell in cells]


def config_hash(tree: dict) -> str:
    """A short, stable fingerprint of a nested config dict."""
    return hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()[:10]


# ---------------------------------------------------------------------------------------------------
# Datasets: one per gap setting, generated once


@dataclass
class BenchDataset:
    """A prepared dataset of one gap setting and, per test video, each frame's distance from the last cue."""

    gaps: str
    raw: Path
    prepared: Path
    cfg: Config
    distances: dict[str, np.ndarray] = field(default_factory=dict)  # stem -> (T,) int, 0 on unmasked frames


def dataset_config(base: Config, gaps: str, root: Path) -> Config:
    """``base`` with the gap range of ``gaps`` and the dataset's directories under ``root``."""
    gap_min, gap_max = GAP_SETTINGS[gaps]
    tree = base.to_dict()
    tree["synth"].update(gap_min=gap_min, gap_max=gap_max)
    # The directory name carries a hash of everything that shapes the data, so a changed budget
    # (another frame size, more videos) gets its own dataset instead of silently reusing an old one.
    shape = {"synth": tree["synth"], "data": {k: tree["data"][k] for k in ("size", "classes", "background")}}
    where = root / f"{gaps}-{config_hash(shape)}"
    tree["data"].update(raw=str(where / "raw"), dir=str(where / "prepared"))
    return from_dict(tree)


def ensure_dataset(base: Config, gaps: str, root: Path, reporter: Reporter) -> BenchDataset:
    """Generate and prepare the dataset of ``gaps`` under ``root`` unless a previous bench did.

    Both steps are atomic (a temporary directory renamed at the end), so a dataset that exists is whole.
    """
    cfg = dataset_config(base, gaps, root)
    raw, prepared = Path(cfg.data.raw), Path(cfg.data.dir)
    if (prepared / "manifest.json").is_file():
        reporter.info(f"{gaps} gaps: reusing {prepared}")
    else:
        if not raw.is_dir():
            reporter.info(f"{gaps} gaps ({cfg.synth.gap_min}-{cfg.synth.gap_max} frames): generating {raw}")
            run_synth(raw, cfg, reporter)
        run_prepare(raw, prepared, cfg, reporter)
        write_json(prepared.parent / "dataset.json", {"gaps": gaps, "synth": cfg.to_dict()["synth"],
                                                      "data_size": cfg.data.size})
    data = PreparedDataset(prepared)
    return BenchDataset(gaps, raw, prepared, cfg, masked_distances(data, cfg))


def cue_distances(plan: VideoPlan) -> np.ndarray:
    """Per frame of a synthetic video: frames since a cue was last on screen, on masked frames; else 0.

    The first frame after the cue's last frame is at distance 1, so a silhouette after a gap of g
    empty frames starts at distance g + 1.

    Args:
        plan: the video's synthetic plan.

    Raises:
        DatasetError: a silhouette has no cue of its own channel before it (the plan breaks the
            dataset's rules, so its distances would mean nothing).
    """
    distance = np.zeros(len(plan.mask), dtype=np.int64)
    cues = [e for e in plan.events if e.kind in CUE_KINDS]
    for event in (e for e in plan.events if e.ambiguous):
        before = [c for c in cues if c.end <= event.start]
        last = max(before, key=lambda c: c.end, default=None)
        if last is None or last.channel != event.channel:
            raise DatasetError(f"silhouette at frames {event.start}-{event.end} has no {event.channel} cue before it")
        distance[event.start:event.end] = np.arange(event.start, event.end) - (last.end - 1)
    return distance


def masked_distances(data: PreparedDataset, cfg: Config) -> dict[str, np.ndarray]:
    """Cue distances of every test video of a prepared synthetic dataset, checked against its masks.

    A prepared video's stem is the synthetic one (``tv_0007`` is video 7), so its plan can be drawn
    again from ``cfg.synth``; the plan's mask must equal the stored one, frame for frame.

    Raises:
        DatasetError: a stem is not a synthetic one, or a plan does not match the stored mask.
    """
    out = {}
    for video in data.split("test"):
        match = re.fullmatch(r"tv_(\d+)", video.stem)
        if not match or video_stem(int(match.group(1))) != video.stem:
            raise DatasetError(f"{data.root}: video {video.stem!r} is not a synthetic one (tv_NNNN)")
        plan = video_plan(cfg.synth, int(match.group(1)))
        stored = data.mask(video)
        if stored is None or stored.shape != plan.mask.shape or not np.array_equal(stored, plan.mask):
            raise DatasetError(f"{data.root}: the mask of {video.stem} does not match its synthetic plan; "
                               f"delete {data.root.parent} and re-run the bench")
        distance = cue_distances(plan)
        if not np.array_equal(distance > 0, plan.mask.astype(bool)):
            raise DatasetError(f"{data.root}: cue distances of {video.stem} do not cover exactly its masked frames")
        out[video.stem] = distance
    return out


# ---------------------------------------------------------------------------------------------------
# One run: train, then evaluate best.ckpt on the test split


class RunReporter(Reporter):
    """What a training run shows inside the bench: warnings and progress bars that vanish when done.

    Its per-epoch lines and summary table would bury the bench's own one line per run.
    """

    def __init__(self, enabled: bool):
        super().__init__(enabled, transient_bars=True)

    def info(self, message: str) -> None:
        pass

    def table(self, title: str, rows: list[tuple[str, str]]) -> None:
        pass

    def bar(self, description: str, total: int | None = None) -> Bar:
        # Off a terminal a finished bar cannot be erased and would leave a blank line per epoch.
        return Bar(self if self.err.is_terminal else QUIET, description, total)


def run_config(base: Config, spec: RunSpec, dataset: BenchDataset, run_dir: Path) -> Config:
    """The resolved config of one run: the shared budget plus this run's cell, seed, data and directory."""
    tree = dataset.cfg.to_dict()
    tree["model"]["cell"] = spec.cell
    tree["train"]["seed"] = spec.seed
    tree["run"]["dir"] = str(run_dir)
    return from_dict(tree)


def count_parameters(model) -> tuple[int, int]:
    """``(memory cell + head, whole model)`` parameter counts of a ``FrameClassifier``."""
    memory = sum(p.numel() for m in (model.cell, model.head) for p in m.parameters())
    return memory, sum(p.numel() for p in model.parameters())


def evaluate_run(checkpoint: Path, dataset: BenchDataset) -> dict:
    """Test metrics of a checkpoint, plus masked frames and hits counted per cue distance.

    Streams each test video through the model as ``lstm-tv evaluate`` does (state carried from chunk
    to chunk) and feeds the same :class:`~lstm_tv.evaluate.FrameMetrics`.

    Returns:
        The metrics of :meth:`FrameMetrics.compute` (minus per-class details), the parameter counts,
        and ``by_distance``: ``{"frames": [...], "correct": [...]}`` indexed by distance in frames.
    """
    data = PreparedDataset(dataset.prepared)
    ckpt, model = load_model(checkpoint, torch.device("cpu"))
    device = resolve_device(ckpt.config.train.device)
    model = model.to(device)
    metrics = FrameMetrics(len(data.classes), data.classes.index(data.background))
    longest = max((int(d.max()) for d in dataset.distances.values()), default=0)
    frames_at, correct_at = np.zeros(longest + 1, np.int64), np.zeros(longest + 1, np.int64)
    for video in data.split("test"):
        logits = torch.cat(list(stream_logits(model, array_chunks(data.frames(video), EVAL_CHUNK), device)))
        pred, true = logits.argmax(-1).numpy(), data.labels(video)
        metrics.update(pred, true, data.mask(video))
        distance = dataset.distances[video.stem]
        masked = distance > 0
        frames_at += np.bincount(distance[masked], minlength=longest + 1)
        correct_at += np.bincount(distance[masked & (pred == true)], minlength=longest + 1)
    report = metrics.compute(data.classes)
    memory, total = count_parameters(model)
    keep = ("frame_accuracy", "macro_f1", "masked_accuracy", "edit", "f1@10", "f1@25", "f1@50", "frames",
            "masked_frames", "videos")
    return {**{k: report[k] for k in keep if k in report}, "memory_params": memory, "total_params": total,
            "by_distance": {"frames": frames_at.tolist(), "correct": correct_at.tolist()}}


def train_and_evaluate(spec: RunSpec, base: Config, dataset: BenchDataset, runs_root: Path, *,
                       resume: bool, reporter: Reporter) -> dict:
    """Train one run and evaluate its best checkpoint; return its result (also saved in its run dir).

    Failures are returned as a result with ``status`` ``failed`` (the traceback goes to ``error.txt``
    in the run dir), so one broken run does not stop the bench. ``KeyboardInterrupt`` still stops it.
    """
    run_dir = runs_root / spec.name
    cfg = run_config(base, spec, dataset, run_dir)
    fingerprint = result_fingerprint(cfg)
    result = {"cell": spec.cell, "gaps": spec.gaps, "gap_min": cfg.synth.gap_min, "gap_max": cfg.synth.gap_max,
              "seed": spec.seed, "run_dir": str(run_dir), "config_hash": fingerprint}
    previous = _finished_result(run_dir, fingerprint) if resume else None
    if previous is not None:
        return {**previous, "reused": True}
    if run_dir.exists():
        shutil.rmtree(run_dir)  # a stale or unfinished run of this bench: train() refuses to overwrite one
    start = time.perf_counter()
    try:
        train(cfg, reporter=RunReporter(reporter.enabled))
        result["train_seconds"] = round(time.perf_counter() - start, 1)
        start = time.perf_counter()
        result.update(evaluate_run(run_dir / "best.ckpt", dataset))
        result["eval_seconds"] = round(time.perf_counter() - start, 1)
        result["status"] = "ok"
    except Exception as e:  # noqa: BLE001 - any failure of one run is recorded, and the bench goes on
        result.update(status="failed", error=str(e).splitlines()[0] if str(e) else type(e).__name__)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(run_dir / "error.txt", traceback.format_exc())
    write_json(run_dir / RESULT_FILE, result)
    return result


def result_fingerprint(cfg: Config) -> str:
    """What decides a run's result: its config without paths (the data's settings stay in it), so a
    bench moved or named by another path still recognises its finished runs."""
    tree = cfg.to_dict()
    del tree["run"], tree["data"]["dir"], tree["data"]["raw"]
    return config_hash(tree)


def _finished_result(run_dir: Path, fingerprint: str) -> dict | None:
    path = run_dir / RESULT_FILE
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return result if result.get("status") == "ok" and result.get("config_hash") == fingerprint else None


# ---------------------------------------------------------------------------------------------------
# Summaries: over seeds per (cell, gap setting), and per distance bin per cell


SUMMARY_COLUMNS = ["cell", "gaps", "gap_min", "gap_max", "seeds", "masked_accuracy", "masked_accuracy_std",
                   "frame_accuracy", "macro_f1", "edit", "f1@50", "memory_params", "total_params", "train_seconds",
                   "failed"]
RUN_COLUMNS = ["cell", "gaps", "gap_min", "gap_max", "seed", "status", "masked_accuracy", "frame_accuracy", "macro_f1",
               "edit", "f1@10", "f1@25", "f1@50", "masked_frames", "frames", "memory_params", "total_params",
               "train_seconds", "eval_seconds", "run_dir", "error"]
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
                **{k: _mean(_values(ok, k)) for k in ("frame_accuracy", "macro_f1", "edit", "f1@50", "train_seconds")},
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


def _fmt(value, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


TABLE_HEADER = ["cell", "gaps", "masked acc", "frame acc", "edit", "F1@50", "mem params", "params", "train s"]


def table_cells(row: dict) -> list[str]:
    """One summary row as the strings of :data:`TABLE_HEADER` (shared by the terminal and Markdown).

    ``mem params`` counts the memory cell and the linear head (what differs between cells), ``params``
    the whole model (the encoder is the same in every run).
    """
    masked = _fmt(row["masked_accuracy"])
    if row["seeds"] > 1:
        masked += f" ± {_fmt(row['masked_accuracy_std'])}"
    if row["failed"]:
        masked += f" ({row['failed']} failed)"
    params = [f"{row[k]:,}" if row[k] is not None else "–" for k in ("memory_params", "total_params")]
    return [row["cell"], row["gaps"], masked, _fmt(row["frame_accuracy"]),
            _fmt(row["edit"], 1), _fmt(row["f1@50"], 1), *params, _fmt(row["train_seconds"], 0)]


def _gap_text(gaps: list[str]) -> str:
    return ", ".join(f"{g} {GAP_SETTINGS[g][0]}-{GAP_SETTINGS[g][1]}" for g in gaps)


def markdown(rows: list[dict], dist_rows: list[dict], cells: list[str], gaps: list[str], base: Config,
             seeds: list[int], plot_name: str) -> str:
    """results.md: the summary table, accuracy per distance bin, and the budget the runs shared."""
    intro = (f"Test split of the synthetic TV dataset; gaps {_gap_text(gaps)} frames; seeds "
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


# ---------------------------------------------------------------------------------------------------
# The bench


def run_bench(out: str | Path = "runs/bench", *, cells: list[str] | None = None, gaps: list[str] | None = None,
              seeds: int | None = None, quick: bool = False, config_file: str | Path | None = None,
              overrides: list[str] | None = None, resume: bool = False,
              reporter: Reporter | None = None) -> BenchOutputs:
    """Train and test every cell on every gap setting with one budget; write tables and a figure.

    Args:
        out: the bench's directory (datasets, runs, results).
        cells: memory cells to compare (default: all six; with ``quick``: none, rnn, lstm).
        gaps: gap settings, keys of :data:`GAP_SETTINGS` (default: all).
        seeds: training seeds per (cell, gap setting), ``train.seed``, ``train.seed + 1``, ...
            (default: 1).
        quick: the tiny budget :data:`QUICK_BUDGET` instead of :data:`BENCH_BUDGET` (a smoke test).
        config_file: YAML merged onto the budget for every run.
        overrides: dotted ``KEY=VALUE`` overrides applied last, for every run.
        resume: keep runs that finished before with the same resolved config; train only the others.
        reporter: where messages, bars and the table go (default: silent).

    Returns:
        The paths written and the summary rows.

    Raises:
        ConfigError: bad overrides, or an override of a key the bench sets per run.
        LstmTvError: unknown cells or gap settings, or (after writing every result) when runs failed.
    """
    reporter = reporter or QUIET
    out = Path(out)
    cells = _checked("--cells", cells, QUICK_CELLS if quick else bench_cells(), list_cells())
    gaps = _checked("--gaps", gaps, tuple(GAP_SETTINGS), list(GAP_SETTINGS))
    n_seeds = seeds if seeds is not None else (QUICK_SEEDS if quick else DEFAULT_SEEDS)
    if n_seeds < 1:
        raise LstmTvError(f"--seeds: need at least 1, got {n_seeds}")
    base = bench_config(config_file, overrides, quick=quick)
    seed_list = [base.train.seed + i for i in range(n_seeds)]

    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "bench_config.yaml", render_yaml(base))
    specs = run_specs(cells, gaps, seed_list)
    reporter.info(f"bench: {len(cells)} cells ({', '.join(cells)}) x {len(gaps)} gap settings x {n_seeds} seed(s) "
                  f"= {len(specs)} runs into [bold]{out}[/]" + (" (--quick)" if quick else ""))
    reporter.info(f"budget of every run: {budget_text(base)}")
    datasets = {g: ensure_dataset(base, g, out / "data", reporter) for g in gaps}

    results: list[dict] = []
    start = time.perf_counter()
    with keep_latest_link():
        for i, spec in enumerate(specs, 1):
            result = train_and_evaluate(spec, base, datasets[spec.gaps], out / "runs", resume=resume,
                                        reporter=reporter)
            results.append(result)
            reporter.info(f"[{i}/{len(specs)}] {_result_line(spec, result)}")
            # Rewritten after every run: an interrupted bench keeps everything measured so far.
            outputs = write_outputs(out, results, cells, gaps, base, seed_list)

    reporter.grid(f"memory bench: test split, gaps {_gap_text(gaps)} frames, {n_seeds} seed(s)", TABLE_HEADER,
                  [table_cells(r) for r in outputs.rows])
    reporter.info(f"{len(specs)} runs in {time.perf_counter() - start:.0f} s; results: {outputs.csv}, "
                  f"{outputs.markdown}, {outputs.plot} (per run: {outputs.runs_csv})")
    if outputs.failed:
        names = ", ".join(f"{r['cell']}-{r['gaps']}-s{r['seed']}" for r in outputs.failed)
        raise LstmTvError(f"{len(outputs.failed)} of {len(specs)} bench runs failed ({names}); the others' results "
                          f"are in {outputs.csv}; see error.txt in each failed run's directory")
    return outputs


@contextlib.contextmanager
def keep_latest_link(link: Path = Path("runs/latest")) -> Iterator[None]:
    """Put ``runs/latest`` back as it was: every bench run repoints it (train does), and predict and
    evaluate would then default to a small bench model instead of the user's latest own run."""
    target = os.readlink(link) if link.is_symlink() else None
    try:
        yield
    finally:
        if target is None:
            if link.is_symlink():
                link.unlink()
        elif not link.is_symlink() or os.readlink(link) != target:
            tmp = link.with_name(f".latest.bench.{os.getpid()}")
            tmp.unlink(missing_ok=True)
            os.symlink(target, tmp)
            os.replace(tmp, link)  # atomic, as train's own update is


def _checked(option: str, names: list[str] | None, default: tuple[str, ...], valid: list[str]) -> list[str]:
    """``names`` (or ``default``) without repeats, each one of ``valid``."""
    names = list(dict.fromkeys(names)) if names is not None else list(default)
    if not names:
        raise LstmTvError(f"{option}: name at least one of {', '.join(valid)}")
    for name in names:
        if name not in valid:
            raise LstmTvError(f"{option}: unknown {name!r}; choose from {', '.join(valid)}")
    return names


def _result_line(spec: RunSpec, result: dict) -> str:
    what = f"{spec.cell} on {spec.gaps} gaps, seed {spec.seed}: "
    if result["status"] != "ok":
        return what + f"[red]failed[/] ({escape(result.get('error', ''))})"  # the message is not markup
    masked = result.get("masked_accuracy")
    text = (f"masked {_fmt(masked)}, frame {_fmt(result['frame_accuracy'])}, "
            f"train {result['train_seconds']:.0f} s")
    return what + text + (" (reused)" if result.get("reused") else "")
