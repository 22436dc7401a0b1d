"""``lstm-tv evaluate``: the metrics of a checkpoint on one split, as a table, a JSON report and a confusion PNG.

The metrics are :mod:`lstm_tv.metrics`'s; each video is streamed through the model as ``predict``
streams it (:func:`lstm_tv.validation.evaluate_model`).
"""

from __future__ import annotations

from pathlib import Path

from lstm_tv.data.dataset import PreparedDataset
from lstm_tv.distributed import resolve_device
from lstm_tv.errors import CheckpointError, DatasetError
from lstm_tv.fileio import check_parent, write_json
from lstm_tv.metrics import METRICS, present
from lstm_tv.stream import load_model
from lstm_tv.ui import QUIET
from lstm_tv.validation import evaluate_model


def evaluate_checkpoint(checkpoint, *, data_dir=None, split: str = "test", report_path=None, plot_path=None,
                        device: str = "auto", reporter=None) -> dict:
    """``lstm-tv evaluate``: metrics of a checkpoint on one split; table, JSON report, confusion PNG.

    Returns:
        The report dict (docs/formats.md §4) with ``checkpoint``, ``data`` and ``split`` added.
    """
    reporter = reporter or QUIET
    if split not in ("train", "val", "test"):
        raise DatasetError(f"--split {split!r}: choose train, val or test")
    for path in (report_path, plot_path):
        if path is not None:
            check_parent(path)
    checkpoint = Path(checkpoint)
    dev = resolve_device(device)
    ckpt, model = load_model(checkpoint, dev)
    cfg = ckpt.config
    data = PreparedDataset(data_dir or cfg.data.dir)
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
    with reporter.bar(f"evaluate {split}", total=len(videos)) as bar:
        metrics = evaluate_model(model, data, videos, dev, progress=bar.update)
    report = {"checkpoint": str(checkpoint), "data": str(data.root), "split": split, **metrics.compute(data.classes)}
    print_report(report, data.classes, reporter)
    if report_path is not None:
        write_json(report_path, report)
        reporter.info(f"report: {report_path}")
    plot_path = Path(plot_path) if plot_path else checkpoint.parent / "plots" / f"confusion_{split}.png"
    plot_path.parent.mkdir(parents=True, exist_ok=True)
    from lstm_tv import plots  # deferred: matplotlib costs ~0.5 s of start-up, needed only here, at the end

    plots.confusion_matrix(report["confusion"], data.classes, plot_path,
                           title=f"{split}: {checkpoint.name} (rows = truth)")
    reporter.info(f"confusion matrix: {plot_path}")
    return report


def print_report(report: dict, classes: list[str], reporter) -> None:
    """The summary (every metric of :data:`~lstm_tv.metrics.METRICS` the report holds) and per-class tables."""
    rows = [("videos / frames", f"{report['videos']} / {report['frames']}")]
    for m in present(report, METRICS):
        text = m.format(report[m.key])
        if m.key == "masked_accuracy":
            text += f"  ({report['masked_frames']} frames)"
        rows.append((m.label, text))
    reporter.table(f"{report.get('split', '')} metrics", rows)
    per_class = [[name, f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}", str(c["support"])]
                 for name, c in report["per_class"].items()]
    reporter.grid("per class", ["class", "precision", "recall", "F1", "support"], per_class)
