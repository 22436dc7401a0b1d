"""``lstm-tv bench``: which memory cell carries a cue across a gap, measured on the synthetic TV dataset.

What it measures, and why: the story behind lstm-tv makes four claims about the ambiguous canine
(a silhouette whose class, wolf or dog, follows only from a cue seen ``gap`` frames earlier):

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

The tables and the figure (:mod:`lstm_tv.bench_report`) are rewritten after every run, so an
interrupted or partly failed bench keeps what it measured; a run that fails is reported, the others go on.
The datasets are :mod:`lstm_tv.bench_data`'s.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.markup import escape

from lstm_tv.bench_data import GAP_SETTINGS, BenchDataset, bench_dataset, config_hash
from lstm_tv.bench_report import (
    TABLE_HEADER,
    BenchOutputs,
    budget_text,
    fmt_value,
    gap_text,
    table_cells,
    write_outputs,
)
from lstm_tv.config import Config, from_dict, merge, parse_overrides, read_yaml, render_yaml
from lstm_tv.data.dataset import PreparedDataset
from lstm_tv.distributed import resolve_device
from lstm_tv.errors import ConfigError, LstmTvError
from lstm_tv.fileio import write_json, write_text
from lstm_tv.metrics import METRICS
from lstm_tv.model.cells import bench_cells, list_cells
from lstm_tv.scores import FrameScores
from lstm_tv.stream import load_model
from lstm_tv.training import fit
from lstm_tv.ui import QUIET, Bar, Reporter
from lstm_tv.validation import evaluate_model

QUICK_CELLS = ("none", "rnn", "lstm")  # --quick: no memory, plain recurrence, gated; every cell: bench_cells()

# The default budget, shared by every run (cell and seed aside). Smaller frames, embedding and memory
# than `lstm-tv train`'s default (32 px, 64) and a fixed number of joint steps keep one run of a fused
# cell to about 2-3 minutes on 2 CPU cores; the gap ranges, the frame count per video (which sets how
# many cue-gap-silhouette cycles fit) and the method (joint epochs, then the memory phase) are those of
# the real task. The memory phase is long because it is where the gap is learned: on 60-150 frame gaps
# an lstm with forget bias 1 (the default until 2026-12-07) is still at chance after 20 memory epochs and
# at ~0.94 after 60, and each memory epoch of a fused cell costs well under a second plus its validation.
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
RESULT_FILE = "bench_result.json"  # in each run's directory: its result, for --resume


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
        layer = read_yaml(config_file)
        tree = merge(tree, layer, source=str(config_file))
        _refuse_bench_keys(layer, f" in {config_file}", only_changed=True)
    if overrides:
        layer = parse_overrides(overrides)
        tree = merge(tree, layer)
        _refuse_bench_keys(layer, "", only_changed=False)
    return from_dict(tree)


def _refuse_bench_keys(layer: dict, where: str, *, only_changed: bool) -> None:
    defaults = Config().to_dict()
    hints = {"model.cell": "use --cells", "synth.gap_min": "use --gaps", "synth.gap_max": "use --gaps"}
    for dotted in BENCH_KEYS:
        section, key = dotted.split(".")
        if key not in layer.get(section, {}):
            continue
        if only_changed and layer[section][key] == defaults[section][key]:
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


def evaluate_run(checkpoint: Path, dataset: BenchDataset, device: str = "auto") -> dict:
    """Test metrics of a checkpoint, plus masked frames and hits counted per cue distance.

    Streams each test video through the model as ``lstm-tv evaluate`` does
    (:func:`~lstm_tv.validation.evaluate_model`), counting its masked frames by distance on the way.

    Returns:
        Every metric of the table the report holds, the frame counts, the parameter counts, and
        ``by_distance``: ``{"frames": [...], "correct": [...]}`` indexed by distance in frames.
    """
    data = PreparedDataset(dataset.prepared)
    dev = resolve_device(device)
    record, model = load_model(checkpoint, dev)
    longest = max((int(d.max()) for d in dataset.distances.values()), default=0)
    frames_at, correct_at = np.zeros(longest + 1, np.int64), np.zeros(longest + 1, np.int64)

    def count_by_distance(video, pred: np.ndarray) -> None:
        distance = dataset.distances[video.stem]
        masked = distance > 0
        frames_at[:] += np.bincount(distance[masked], minlength=longest + 1)
        correct_at[:] += np.bincount(distance[masked & (pred == data.labels(video))], minlength=longest + 1)

    scores = FrameScores(data.classes, data.classes.index(data.background))  # mAP, ECE, ... (the metric table)
    report = evaluate_model(model, data, data.split("test"), dev, on_video=count_by_distance, scores=scores,
                            temperature=record.temperature).compute(data.classes) | scores.report()
    memory, total = count_parameters(model)
    keep = [m.key for m in METRICS] + ["frames", "masked_frames", "videos"]
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
        shutil.rmtree(run_dir)  # a stale or unfinished run of this bench: fit() refuses to overwrite one
    start = time.perf_counter()
    try:
        fit(cfg, reporter=RunReporter(reporter.enabled))
        result["train_seconds"] = round(time.perf_counter() - start, 1)
        start = time.perf_counter()
        result.update(evaluate_run(run_dir / "best.ckpt", dataset, cfg.train.device))
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
    datasets = {g: bench_dataset(base, g, out / "data", reporter) for g in gaps}

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

    _report(reporter, outputs, gaps, n_seeds, len(specs), time.perf_counter() - start)
    return outputs


def _report(reporter: Reporter, outputs: BenchOutputs, gaps: list[str], seeds: int, runs: int, seconds: float) -> None:
    """The bench's table and where its files are; an error naming the runs that failed, if any did."""
    reporter.grid(f"memory bench: test split, gaps {gap_text(gaps)} frames, {seeds} seed(s)", TABLE_HEADER,
                  [table_cells(r) for r in outputs.rows])
    reporter.info(f"{runs} runs in {seconds:.0f} s; results: {outputs.csv}, "
                  f"{outputs.markdown}, {outputs.plot} (per run: {outputs.runs_csv})")
    if outputs.failed:
        names = ", ".join(f"{r['cell']}-{r['gaps']}-s{r['seed']}" for r in outputs.failed)
        raise LstmTvError(f"{len(outputs.failed)} of {runs} bench runs failed ({names}); the others' results "
                          f"are in {outputs.csv}; see error.txt in each failed run's directory")


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
    text = (f"masked {fmt_value(result.get('masked_accuracy'))}, frame {fmt_value(result['frame_accuracy'])}, "
            f"train {result['train_seconds']:.0f} s")
    return what + text + (" (reused)" if result.get("reused") else "")
