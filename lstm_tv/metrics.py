"""The metrics of a model's per-frame predictions: the one table of metrics, and their accumulator (pure numpy).

:data:`METRICS` is the one list of the metrics lstm-tv reports. Training's log line and ``metrics.csv``,
the learning curves, ``train.best_metric``'s choices, ``evaluate``'s report and ``bench`` all read it;
adding a metric is one row here plus the code that computes it. A row names the accumulator that
computes its value (``source``): :class:`FrameMetrics` computes the ``frames`` rows; a row whose
value comes from another accumulator (probability metrics, say) names that one, and its report keys
are merged into the same report dict. A consumer shows the rows whose key a report holds.

Per-frame metrics (frame accuracy, per-class precision/recall/F1, macro-F1, the confusion matrix and
the accuracy on masked frames) pool every frame of every video, background included. Segment metrics
(:mod:`lstm_tv.segments`) are per video: ``edit`` is averaged over videos, and ``f1@k`` sums TP/FP/FN
over videos before the F1 (see docs/formats.md §4).

:class:`FrameMetrics` accumulates one video at a time in constant memory per video (a confusion
matrix, segment counts and one edit score per video). Its :meth:`FrameMetrics.state` is plain numbers
and lists, so processes that each evaluated part of a split can gather their states and combine them
with :meth:`FrameMetrics.from_states` into exactly the totals one process would have reached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from lstm_tv.segments import check_overlap, check_pair, f1_percent, overlap_key, video_scores

DEFAULT_OVERLAPS = (0.10, 0.25, 0.50)  # the f1@10/25/50 thresholds reported in the literature


# ---------------------------------------------------------------------------------------------------
# The table


@dataclass(frozen=True)
class Metric:
    """One reported metric.

    Attributes:
        key: its key in reports (``report[key]``), ``train.best_metric`` and ``metrics.csv`` (``val_<key>``).
        label: its name for people (tables, plots).
        fmt: how reports print it (a format spec).
        better: ``higher`` or ``lower``: which way is an improvement.
        scale: the best possible value's order (1.0 for fractions, 100.0 for the 0-100 segment scores).
        short: its name in training's one line per epoch; empty: not on that line.
        tracked: followed per epoch: a ``metrics.csv`` column, a choice of ``train.best_metric``,
            in the learning curves (fractions), the training summary and the bench's tables.
        source: the accumulator whose report holds it (``frames``: :class:`FrameMetrics`; ``validation``:
            training's validation adds it).
    """

    key: str
    label: str
    fmt: str
    better: str = "higher"
    scale: float = 1.0
    short: str = ""
    tracked: bool = True
    source: str = "frames"

    def format(self, value: float) -> str:
        """``value`` as reports print it."""
        return format(value, self.fmt)

    def signed(self, value: float) -> float:
        """``value`` oriented so that larger is better (for comparing epochs)."""
        return float(value) if self.better == "higher" else -float(value)


METRICS: tuple[Metric, ...] = (
    Metric("frame_accuracy", "frame accuracy", ".4f", short="acc"),
    Metric("macro_f1", "macro-F1", ".4f", short="F1"),
    Metric("masked_accuracy", "masked accuracy", ".4f", short="masked"),  # only when the data has masks
    # Each frame classified with the memory empty: the encoder's progress, which the joint phase follows
    # (its single-frame clips never train the memory to carry state). Training's validation alone has it.
    Metric("frame_accuracy_alone", "frame accuracy, frames alone", ".4f", short="alone", source="validation"),
    Metric("edit", "edit", ".2f", scale=100.0),
    Metric("f1@10", "F1@10", ".2f", scale=100.0, tracked=False),
    Metric("f1@25", "F1@25", ".2f", scale=100.0, tracked=False),
    Metric("f1@50", "F1@50", ".2f", scale=100.0),
    # Probability metrics (lstm_tv.scores.FrameScores, from the calibrated probabilities): evaluate and
    # bench report them; validation during training does not compute them, so they are not tracked.
    Metric("map", "mAP", ".4f", tracked=False, source="scores"),
    Metric("cmap", "cmAP", ".4f", tracked=False, source="scores"),
    Metric("ece", "ECE", ".4f", better="lower", tracked=False, source="scores"),
    Metric("nll", "NLL", ".4f", better="lower", tracked=False, source="scores"),
)
TRACKED: tuple[Metric, ...] = tuple(m for m in METRICS if m.tracked)


def metric(key: str) -> Metric:
    """The row of ``key``.

    Raises:
        KeyError: no metric has that key.
    """
    for row in METRICS:
        if row.key == key:
            return row
    raise KeyError(f"no metric {key!r}; metrics: {', '.join(m.key for m in METRICS)}")


def present(report: dict, rows: Sequence[Metric] = METRICS) -> list[Metric]:
    """The rows of ``rows`` whose value ``report`` holds (not None), in table order."""
    return [m for m in rows if report.get(m.key) is not None]


# ---------------------------------------------------------------------------------------------------
# The accumulator


class FrameMetrics:
    """Accumulates per-frame and segment metrics over videos, one video per :meth:`update`.

    Memory is a K x K confusion matrix, three counters per overlap and one float per video (its edit
    score), whatever the length of the videos.

    Args:
        num_classes: K, the number of classes; labels are indices in [0, K).
        background: index of the background class (makes no segment), or None.
        overlaps: IoU thresholds (fractions in (0, 1]) of the reported segment F1 scores.

    Raises:
        ValueError: ``num_classes`` < 1, ``background`` not in [0, K), or an overlap out of range.
    """

    def __init__(self, num_classes: int, background: int | None, overlaps: Sequence[float] = DEFAULT_OVERLAPS):
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.num_classes = int(num_classes)
        if background is not None and not 0 <= int(background) < self.num_classes:
            raise ValueError(f"background must be a class index in [0, {self.num_classes}) or None, got {background}")
        self.background = None if background is None else int(background)
        self.overlaps = tuple(check_overlap(o) for o in overlaps)
        keys = [overlap_key(o) for o in self.overlaps]
        if len(set(keys)) != len(keys):
            raise ValueError(f"overlaps must give distinct f1@k keys, got {list(self.overlaps)}")
        self.confusion = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)  # rows = truth
        self.edit_scores: list[float] = []  # one per video, kept so merged averages are exact
        self.tp = [0] * len(self.overlaps)
        self.fp = [0] * len(self.overlaps)
        self.fn = [0] * len(self.overlaps)
        self.masked_frames = 0
        self.masked_correct = 0

    def __repr__(self) -> str:
        return (f"FrameMetrics(num_classes={self.num_classes}, background={self.background}, "
                f"overlaps={self.overlaps}, videos={self.videos}, frames={self.frames})")

    @property
    def videos(self) -> int:
        """Videos seen so far."""
        return len(self.edit_scores)

    @property
    def frames(self) -> int:
        """Frames seen so far, over all videos."""
        return int(self.confusion.sum())

    # --- adding a video -----------------------------------------------------------------------------

    def update(self, pred: np.ndarray, true: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Add one whole video.

        Segments are video-level, so a video must arrive in one call (not chunk by chunk) and two
        videos must never be concatenated into one call.

        Args:
            pred: 1-D predicted class index per frame, shape (T,).
            true: 1-D true class index per frame, shape (T,).
            mask: optional 1-D 0/1 (or bool) array, shape (T,): 1 where the frame's class follows only
                from earlier frames. Only ``masked_accuracy`` uses it.

        Raises:
            ValueError: shapes differ or are not 1-D, the video is empty, a label is outside [0, K),
                or the mask holds values other than 0 and 1.
        """
        pred, true, mask = self._checked_video(pred, true, mask)
        # (T,) x (T,) -> (K*K,) -> (K, K): one bincount over true*K + pred instead of a Python loop.
        k = self.num_classes
        flat = true.astype(np.int64) * k + pred.astype(np.int64)
        self.confusion += np.bincount(flat, minlength=k * k).reshape(k, k)
        if mask is not None:
            self.masked_frames += int(mask.sum())
            self.masked_correct += int((pred[mask] == true[mask]).sum())
        edit, counts = video_scores(pred, true, self.background, self.overlaps)
        self.edit_scores.append(edit)
        for i, (tp, fp, fn) in enumerate(counts):
            self.tp[i] += tp
            self.fp[i] += fp
            self.fn[i] += fn

    def _checked_video(self, pred, true, mask) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """One video's arrays, checked as :meth:`update` promises; the mask as bool (or None)."""
        pred, true = check_pair(pred, true)
        if len(true) == 0:
            raise ValueError("a video must have at least one frame, got pred and true of length 0")
        self._check_range("pred", pred)
        self._check_range("true", true)
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != true.shape:
                raise ValueError(f"mask must have one value per frame, shape {true.shape}, got shape {mask.shape}")
            if not np.isin(mask, (0, 1)).all():
                raise ValueError("mask must hold only 0 and 1 (or False and True)")
            mask = mask.astype(bool)
        return pred, true, mask

    def _check_range(self, name: str, labels: np.ndarray) -> None:
        if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
            bad = labels[(labels < 0) | (labels >= self.num_classes)][0]
            raise ValueError(f"{name} holds class index {bad}, outside [0, {self.num_classes})")

    # --- combining accumulators (one per process in distributed validation) ----------------------

    def state(self) -> dict:
        """Everything accumulated, as plain ints, floats, None and lists (picklable, JSON-safe).

        Returns:
            A dict that :meth:`from_state` / :meth:`from_states` turn back into an accumulator.
        """
        return {
            "num_classes": self.num_classes,
            "background": self.background,
            "overlaps": list(self.overlaps),
            "confusion": self.confusion.tolist(),
            "edit_scores": list(self.edit_scores),
            "tp": list(self.tp),
            "fp": list(self.fp),
            "fn": list(self.fn),
            "masked_frames": self.masked_frames,
            "masked_correct": self.masked_correct,
        }

    @classmethod
    def from_state(cls, state: dict) -> FrameMetrics:
        """Rebuild an accumulator from :meth:`state`.

        Raises:
            ValueError: the state is missing a key or its parts do not fit together.
        """
        try:
            metrics = cls(state["num_classes"], state["background"], state["overlaps"])
            confusion = np.asarray(state["confusion"], dtype=np.int64)
            n = len(metrics.overlaps)
            counts = [list(map(int, state[key])) for key in ("tp", "fp", "fn")]
            edit_scores = [float(x) for x in state["edit_scores"]]
            masked = int(state["masked_frames"]), int(state["masked_correct"])
        except KeyError as e:
            raise ValueError(f"metrics state is missing key {e.args[0]!r}") from None
        k = metrics.num_classes
        if confusion.shape != (k, k) or any(len(c) != n for c in counts):
            raise ValueError(f"metrics state does not fit together: confusion shape {confusion.shape} for "
                             f"{k} classes, counts of length {[len(c) for c in counts]} for {n} overlaps")
        metrics.confusion = confusion
        metrics.tp, metrics.fp, metrics.fn = counts
        metrics.edit_scores = edit_scores
        metrics.masked_frames, metrics.masked_correct = masked
        return metrics

    @classmethod
    def from_states(cls, states: Sequence[dict]) -> FrameMetrics:
        """Combine the states of accumulators that saw disjoint sets of videos.

        Args:
            states: :meth:`state` of each accumulator (e.g. one per process, gathered).

        Returns:
            An accumulator equal to one that was fed all their videos.

        Raises:
            ValueError: ``states`` is empty or the accumulators were set up differently.
        """
        if not states:
            raise ValueError("no metrics states to combine")
        merged = cls.from_state(states[0])
        for state in states[1:]:
            merged.merge(cls.from_state(state))
        return merged

    def merge(self, other: FrameMetrics) -> FrameMetrics:
        """Add another accumulator's videos to this one (in place).

        Args:
            other: An accumulator with the same classes, background and overlaps.

        Returns:
            ``self``, for chaining.

        Raises:
            ValueError: the two accumulators were set up differently.
        """
        mine = (self.num_classes, self.background, self.overlaps)
        theirs = (other.num_classes, other.background, other.overlaps)
        if mine != theirs:
            raise ValueError(f"cannot merge metrics set up differently: (num_classes, background, overlaps) "
                             f"{mine} vs {theirs}")
        self.confusion = self.confusion + other.confusion
        self.edit_scores = self.edit_scores + other.edit_scores
        self.tp = [a + b for a, b in zip(self.tp, other.tp, strict=False)]
        self.fp = [a + b for a, b in zip(self.fp, other.fp, strict=False)]
        self.fn = [a + b for a, b in zip(self.fn, other.fn, strict=False)]
        self.masked_frames += other.masked_frames
        self.masked_correct += other.masked_correct
        return self

    # --- the report ---------------------------------------------------------------------------------

    def compute(self, class_names: list[str]) -> dict:
        """The metrics over every video added so far, ready for ``json.dump``.

        Args:
            class_names: K names, in class-index order; they key ``per_class``.

        Returns:
            A dict of plain Python numbers and lists:

            - ``frame_accuracy``: correct frames / all frames, pooled over videos, in [0, 1].
            - ``macro_f1``: mean F1 over the classes present in truth or prediction, in [0, 1].
            - ``per_class``: ``{name: {precision, recall, f1, support}}`` for every class; a ratio whose
              denominator is 0 is 0.0; ``support`` is the number of true frames of the class.
            - ``confusion``: K x K list of lists, ``confusion[true][pred]`` = frame count.
            - ``edit``: mean segmental edit score over videos, in [0, 100].
            - ``f1@10``, ``f1@25``, ``f1@50`` (one per overlap): segment F1 from TP/FP/FN summed over
              videos, in [0, 100]; 100 when no video has a true or predicted segment.
            - ``masked_accuracy``: accuracy on frames whose mask is 1, in [0, 1]; only present when
              at least one such frame was seen.
            - ``frames``, ``videos``, ``masked_frames``: how much was evaluated.

        Raises:
            ValueError: no video was added, or ``class_names`` does not have K names.
        """
        if self.videos == 0:
            raise ValueError("no videos were evaluated: metrics need at least one video (is the split empty?)")
        if len(class_names) != self.num_classes:
            raise ValueError(f"need {self.num_classes} class names, got {len(class_names)}: {list(class_names)}")
        report: dict[str, Any] = self._per_frame(class_names)
        # fsum is exactly rounded, so the mean does not depend on the order videos (or merged
        # accumulators) arrived in.
        report["edit"] = math.fsum(self.edit_scores) / self.videos
        for i, overlap in enumerate(self.overlaps):
            report[overlap_key(overlap)] = f1_percent(self.tp[i], self.fp[i], self.fn[i])
        if self.masked_frames > 0:
            report["masked_accuracy"] = self.masked_correct / self.masked_frames
        report["frames"] = self.frames
        report["videos"] = self.videos
        report["masked_frames"] = self.masked_frames
        return report

    def _per_frame(self, class_names: list[str]) -> dict[str, Any]:
        """Frame accuracy, macro-F1, the per-class scores and the confusion matrix."""
        conf = self.confusion
        hits = np.diag(conf).astype(np.float64)
        true_count = conf.sum(axis=1)  # rows = truth
        pred_count = conf.sum(axis=0)
        # Undefined ratios (a class never predicted, never present) are 0.0, as sklearn's zero_division=0.
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(pred_count > 0, hits / pred_count, 0.0)
            recall = np.where(true_count > 0, hits / true_count, 0.0)
            f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        # Like sklearn's default labels: a class absent from both truth and prediction is left out of the
        # mean, so a split without bears is not punished for never predicting one.
        seen = (true_count + pred_count) > 0
        return {
            "frame_accuracy": float(hits.sum() / conf.sum()),
            "macro_f1": float(f1[seen].mean()),
            "per_class": {
                name: {"precision": float(precision[i]), "recall": float(recall[i]),
                       "f1": float(f1[i]), "support": int(true_count[i])}
                for i, name in enumerate(class_names)
            },
            "confusion": conf.tolist(),
        }
