"""``lstm-tv evaluate``: the metrics of a checkpoint on one split, or of any tool's prediction files, as a table,
a JSON report and figures (confusion matrix, reliability diagram, risk-coverage curve).

The metrics are :mod:`lstm_tv.metrics`'s (frame and segment metrics) and :mod:`lstm_tv.scores`'s
(probability metrics); each video of a checkpoint is streamed through the model as ``predict`` streams it
(:func:`lstm_tv.validation.evaluate_model`), with the checkpoint's calibrated temperature. Prediction
files (``--pred``) are read and paired with a raw dataset's labels by :mod:`lstm_tv.scoring`. Both paths
end in the same report, print and figures (:func:`finish_report`).
"""

from __future__ import annotations

from pathlib import Path

from lstm_tv.config import Config
from lstm_tv.data.dataset import PreparedDataset
from lstm_tv.distributed import resolve_device
from lstm_tv.errors import CheckpointError, DatasetError
from lstm_tv.fileio import check_parent, write_json
from lstm_tv.metrics import METRICS, FrameMetrics, present
from lstm_tv.scores import FrameScores
from lstm_tv.scoring import load_scoring_set, probability_report
from lstm_tv.stream import load_model
from lstm_tv.ui import QUIET
from lstm_tv.validation import evaluate_model

SPLITS = ("train", "val", "test")
RISK_ROWS_EVERY = 0.1  # the printed risk-coverage table shows P = 0, 0.1, ..., 0.9 (the report has every P)


def evaluate_checkpoint(checkpoint, *, data_dir=None, split: str = "test", report_path=None, plot_path=None,
                        device: str = "auto", reporter=None) -> dict:
    """``lstm-tv evaluate CHECKPOINT``: metrics of a checkpoint on one split; table, JSON report, figures.

    Returns:
        The report dict (docs/formats.md §4) with ``checkpoint``, ``data``, ``split`` and ``temperature`` added.
    """
    reporter = reporter or QUIET
    if split not in SPLITS:
        raise DatasetError(f"--split {split!r}: choose train, val or test")
    for path in (report_path, plot_path):
        if path is not None:
            check_parent(path)
    checkpoint = Path(checkpoint)
    dev = resolve_device(device)
    ckpt, model = load_model(checkpoint, dev)
    data = PreparedDataset(data_dir or ckpt.config.data.dir)
    if data.classes != list(ckpt.classes):
        raise CheckpointError(f"{checkpoint}: trained on classes {list(ckpt.classes)} but {data.root} has "
                              f"{data.classes}; evaluate on data with the same classes")
    if data.size != ckpt.size:
        raise CheckpointError(f"{checkpoint}: trained at {ckpt.size[0]}x{ckpt.size[1]} px but {data.root} is "
                              f"prepared at {data.size[0]}x{data.size[1]} px; prepare the data with "
                              f"data.size=[{ckpt.size[0]},{ckpt.size[1]}]")
    videos = data.split(split)
    if not videos:
        raise DatasetError(f"{data.root}: no {split} videos to evaluate")
    scores = FrameScores(data.classes, data.classes.index(data.background))
    with reporter.bar(f"evaluate {split}", total=len(videos)) as bar:
        metrics = evaluate_model(model, data, videos, dev, progress=bar.update, scores=scores,
                                 temperature=ckpt.temperature)
    report = {"checkpoint": str(checkpoint), "data": str(data.root), "split": split,
              "temperature": ckpt.temperature, **metrics.compute(data.classes), **scores.report()}
    plot_path = Path(plot_path) if plot_path else checkpoint.parent / "plots" / f"confusion_{split}.png"
    finish_report(report, data.classes, reporter, report_path=report_path, plot_path=plot_path,
                  title=f"{split}: {checkpoint.name}", chosen=ckpt.config.predict.min_confidence)
    return report


def evaluate_predictions(pred_dir, labels_src, cfg: Config, *, split: str | None = None,
                         labels_format: str | None = None, report_path=None, plot_path=None, reporter=None) -> dict:
    """``lstm-tv evaluate --pred DIR --labels SRC``: score prediction files from any tool, without a checkpoint.

    Args:
        pred_dir: one prediction file per video stem (docs/formats.md §4, CSV or JSONL).
        labels_src: the raw dataset (docs/formats.md §1) whose labels and masks are the truth.
        cfg: the config; its ``data`` section gives the classes, background, class map and split ratios.
        split: score only this split's videos (``splits.csv``, else ``data.split_ratios``); None: all.
        labels_format: as ``prepare --labels-format`` (None: detected).

    Returns:
        The report dict, as :func:`evaluate_checkpoint`'s, with ``predictions``, ``labels`` and ``split``;
        ``skipped`` names the metrics the files allow no value for (label-only files: every score metric).

    Raises:
        PredictionError: a missing, extra or malformed prediction file, naming it (see :mod:`lstm_tv.scoring`).
    """
    reporter = reporter or QUIET
    for path in (report_path, plot_path):
        if path is not None:
            check_parent(path)
    pred_dir = Path(pred_dir)
    classes, background = list(cfg.data.classes), cfg.data.background
    scoring = load_scoring_set(pred_dir, labels_src, cfg.data, split=split, labels_format=labels_format)
    for warning in scoring.warnings:
        reporter.warn(warning)
    if scoring.left_out:
        reporter.info(f"{len(scoring.left_out)} prediction file(s) of videos outside the {split} split left out")
    frames = FrameMetrics(len(classes), classes.index(background))
    for video in scoring.videos:
        frames.update(video.prediction.labels, video.truth, video.mask)
    report = {"predictions": str(pred_dir), "labels": str(labels_src), "split": split or "all",
              **frames.compute(classes), **probability_report(scoring, classes, background)}
    plot_path = Path(plot_path) if plot_path else pred_dir / "plots" / f"confusion_{split or 'all'}.png"
    finish_report(report, classes, reporter, report_path=report_path, plot_path=plot_path,
                  title=f"{split or 'all'}: {pred_dir.name}", chosen=cfg.predict.min_confidence)
    return report


def finish_report(report: dict, classes: list[str], reporter, *, report_path, plot_path: Path, title: str,
                  chosen: float | None = None) -> None:
    """Print the report, write it as JSON (when asked) and draw its figures beside ``plot_path``.

    Figures: the confusion matrix at ``plot_path``; ``reliability_<split>.png`` and
    ``risk_coverage_<split>.png`` in the same folder when the report has their data.
    """
    chosen = chosen or None  # 0: predict never abstains, nothing to mark
    print_report(report, classes, reporter, chosen=chosen)
    if report_path is not None:
        write_json(report_path, report)
        reporter.info(f"report: {report_path}")
    plot_path.parent.mkdir(parents=True, exist_ok=True)
    from lstm_tv import plots, plots_scores  # deferred: matplotlib costs ~0.5 s of start-up, needed only here

    plots.confusion_matrix(report["confusion"], classes, plot_path, title=f"{title} (rows = truth)")
    reporter.info(f"confusion matrix: {plot_path}")
    split = report["split"]
    if "reliability" in report:
        path = plot_path.parent / f"reliability_{split}.png"
        plots_scores.reliability_diagram(report["reliability"], path, ece=report["ece"], title=title)
        reporter.info(f"reliability diagram: {path}")
    if "risk_coverage" in report:
        path = plot_path.parent / f"risk_coverage_{split}.png"
        plots_scores.risk_coverage_curve(report["risk_coverage"], path, chosen=chosen, title=title)
        reporter.info(f"risk-coverage curve: {path}")


def print_report(report: dict, classes: list[str], reporter, *, chosen: float | None = None) -> None:
    """The summary (every metric of :data:`~lstm_tv.metrics.METRICS` the report holds, the temperature and
    the detection delay), the per-class table, the risk-coverage table and what was skipped."""
    rows = [("videos / frames", f"{report['videos']} / {report['frames']}")]
    if "temperature" in report:
        rows.append(("temperature", f"{report['temperature']:.3f}"))
    for m in present(report, METRICS):
        text = m.format(report[m.key])
        if m.key == "masked_accuracy":
            text += f"  ({report['masked_frames']} frames)"
        rows.append((m.label, text))
    if "detection_delay" in report:
        rows.append(("detection delay", delay_text(report["detection_delay"])))
    reporter.table(f"{report.get('split', '')} metrics", rows)
    ap, cap = report.get("per_class_ap"), report.get("per_class_cap")
    header = ["class", "precision", "recall", "F1", "support"] + (["AP", "cAP"] if ap else [])
    per_class = []
    for name, c in report["per_class"].items():
        row = [name, f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}", str(c["support"])]
        if ap:
            row += [_fmt(ap[name]), _fmt(cap[name])]
        per_class.append(row)
    reporter.grid("per class", header, per_class)
    risk = report.get("risk_coverage")
    if risk:
        shown = [i for i, t in enumerate(risk["threshold"])
                 if abs(t / RISK_ROWS_EVERY - round(t / RISK_ROWS_EVERY)) < 1e-9 or t == chosen]
        reporter.grid("risk-coverage (abstain below P)", ["P", "abstained", "accuracy on kept"],
                      [[f"{risk['threshold'][i]:.2f}" + (" (chosen)" if risk["threshold"][i] == chosen else ""),
                        f"{100 * risk['abstained'][i]:.1f} %", _fmt(risk["accuracy"][i])] for i in shown])
    reasons: dict[str, list[str]] = {}
    for key, reason in report.get("skipped", {}).items():
        reasons.setdefault(reason, []).append(key)
    for reason, keys in reasons.items():
        reporter.warn(f"skipped {', '.join(keys)}: {reason}")


def delay_text(delay: dict) -> str:
    """``median 3 frames (0.12 s), p90 10 frames (0.42 s); 1 of 12 segments never detected``."""
    if delay["median_frames"] is None:
        text = "no segment detected"
    else:
        def part(stat):
            seconds = delay[f"{stat}_s"]
            return f"{delay[f'{stat}_frames']:.1f} frames" + (f" ({seconds:.2f} s)" if seconds is not None else "")

        text = f"median {part('median')}, p90 {part('p90')}"
    return text + f"; {delay['missed']} of {delay['segments']} segments never detected"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
