"""Probability metrics of per-frame predictions: AP, mAP, cmAP, ECE, NLL, risk-coverage, detection delay.

Pure numpy, no I/O. The low-level functions take pooled arrays and return numbers (``nan`` where a
metric is undefined, e.g. AP of a class with no positive frame). :class:`FrameScores` pools videos one
at a time and builds the JSON-ready report (``None`` where undefined).

Conventions (the online action detection field: TRN, LSTR, MiniROAD report per-frame mAP and cmAP):

- Frames of all videos are pooled; AP of class ``c`` ranks every frame by ``probs[:, c]``; its positives
  are the frames whose true label is ``c``, its negatives all others (background and other classes).
- Tied scores form one threshold (as scikit-learn), so AP does not depend on the order of tied frames.
- mAP and cmAP are means over the non-background classes that have at least one positive frame.
"""

from __future__ import annotations

import numpy as np

ECE_BINS = 15  # equal-width bins on the top-class confidence (Guo et al. 2017; issue 13)
# Abstention thresholds P of the risk-coverage sweep: a frame is kept when its top probability >= P.
RISK_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(20))  # 0.00, 0.05, ..., 0.95
# Floor on the probability of the true class in NLL: prediction files round probabilities to 6
# decimals, so a true class may read 0 exactly; -log(1e-12) = 27.6 instead of infinity.
NLL_FLOOR = 1e-12


# ---------------------------------------------------------------------------------------------------
# Ranking metrics


def _threshold_counts(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative true and false positives at each distinct score, highest first.

    Returns:
        ``(tp, fp)``, each (D,) float64 for the D distinct scores: frames scored >= that score.
    """
    order = np.argsort(-scores, kind="stable")
    ranked_scores, ranked_pos = scores[order], positive[order]
    tp = np.cumsum(ranked_pos, dtype=np.float64)
    fp = np.arange(1, len(ranked_pos) + 1, dtype=np.float64) - tp
    # The last frame of each run of equal scores closes that threshold.
    last = np.r_[np.flatnonzero(np.diff(ranked_scores)), len(ranked_scores) - 1]
    return tp[last], fp[last]


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """Non-interpolated average precision, as scikit-learn's ``average_precision_score``.

    ``AP = sum_n (R_n - R_{n-1}) * P_n`` over the distinct score thresholds, highest first; without
    ties this is the mean, over the positive frames, of the precision at that frame's rank.

    Args:
        scores: (N,) score of each frame for the class.
        positive: (N,) bool, whether the frame belongs to the class.
    Returns:
        AP in [0, 1]; ``nan`` when there is no positive frame.
    """
    scores, positive = np.asarray(scores), np.asarray(positive, dtype=bool)
    if not positive.any():
        return float("nan")
    tp, fp = _threshold_counts(scores, positive)
    recall_step = np.diff(tp, prepend=0.0) / tp[-1]
    return float(np.sum(recall_step * tp / (tp + fp)))


def calibrated_average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """Calibrated AP of De Geest et al. 2016 ("Online Action Detection", TVSeries).

    Precision is replaced by the calibrated precision ``cPrec = TP / (TP + FP / w)`` (equivalently
    ``w*TP / (w*TP + FP)``), where ``w = negatives / positives`` of this class over all pooled frames
    (negatives: every frame whose true label is not the class, background included). This is the
    precision the ranking would have with as many negatives as positives, so classes of different
    frequency are comparable. ``cAP = sum_n (R_n - R_{n-1}) * cPrec_n`` over the distinct thresholds
    (without ties: the mean cPrec at the positive frames, as the TRN/LSTR evaluation code).

    Returns:
        cAP in [0, 1]; ``nan`` when there is no positive frame; 1.0 when there is no negative one.
    """
    scores, positive = np.asarray(scores), np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    if n_pos == 0:
        return float("nan")
    w = (len(positive) - n_pos) / n_pos
    if w == 0:
        return 1.0
    tp, fp = _threshold_counts(scores, positive)
    recall_step = np.diff(tp, prepend=0.0) / tp[-1]
    return float(np.sum(recall_step * tp / (tp + fp / w)))


def per_class_ap(probs: np.ndarray, labels: np.ndarray, *, calibrated: bool = False) -> np.ndarray:
    """(K,) AP (or cAP) of every class: frames ranked by ``probs[:, c]``, positives ``labels == c``.

    Args:
        probs: (N, K) class probabilities (any scores: only their order within a class matters).
        labels: (N,) true class indices.
    """
    metric = calibrated_average_precision if calibrated else average_precision
    return np.array([metric(probs[:, c], labels == c) for c in range(probs.shape[1])])


def mean_ap(ap: np.ndarray, background: int) -> float:
    """Mean of per-class APs over the non-background classes with positives (``nan`` if none)."""
    values = np.delete(np.asarray(ap, dtype=np.float64), background)
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else float("nan")


# ---------------------------------------------------------------------------------------------------
# Calibration and abstention


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class, ``-mean(log p[label])`` (floor ``NLL_FLOOR``)."""
    p_true = probs[np.arange(len(labels)), labels].astype(np.float64)
    return float(-np.mean(np.log(np.maximum(p_true, NLL_FLOOR))))


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reliability-diagram data on ``bins`` equal-width bins of the top-class confidence.

    Bin ``i`` holds confidences in ``(i/bins, (i+1)/bins]`` (a confidence of 0 falls in bin 0).

    Args:
        confidence: (N,) top-class probability of each frame.
        correct: (N,) bool, whether that top class is the true one.
    Returns:
        ``(mean_confidence, accuracy, count)``, each (bins,); the means are ``nan`` in empty bins.
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    inner_edges = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    index = np.digitize(confidence, inner_edges, right=True)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(index, weights=confidence, minlength=bins) / count
        accuracy = np.bincount(index, weights=np.asarray(correct, dtype=np.float64), minlength=bins) / count
    return mean_conf, accuracy, count


def ece(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: ``sum_b (n_b / N) * |accuracy_b - mean_confidence_b|`` over the bins."""
    mean_conf, accuracy, count = reliability(confidence, correct, bins)
    full = count > 0
    return float(np.sum(count[full] / count.sum() * np.abs(accuracy[full] - mean_conf[full])))


def risk_coverage(confidence: np.ndarray, correct: np.ndarray, thresholds=RISK_THRESHOLDS
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Abstaining below each threshold P: the share of frames abstained and the accuracy of the rest.

    A frame is abstained when its top probability is below P (``confidence < P``), kept otherwise.

    Returns:
        ``(abstained, accuracy)``, each (len(thresholds),); accuracy is ``nan`` where nothing is kept.
    """
    confidence, correct = np.asarray(confidence), np.asarray(correct, dtype=bool)
    kept = confidence[None, :] >= np.asarray(thresholds, dtype=np.float64)[:, None]  # (P, N)
    n_kept = kept.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = (kept & correct[None, :]).sum(axis=1) / n_kept
    return 1.0 - n_kept / len(confidence), accuracy


# ---------------------------------------------------------------------------------------------------
# Detection delay


def detection_delays(truth: np.ndarray, pred: np.ndarray, background: int) -> tuple[list[int], int]:
    """Frames from the start of each true non-background segment to its first correctly predicted frame.

    A segment is a maximal run of one true label; the background class and negative labels (ignored
    frames) make no segment.

    Returns:
        ``(delays, missed)``: one delay per segment with a correct frame, and the count of segments
        with none.
    """
    truth, pred = np.asarray(truth), np.asarray(pred)
    starts = np.flatnonzero(np.r_[True, truth[1:] != truth[:-1]])
    ends = np.r_[starts[1:], len(truth)]
    delays, missed = [], 0
    for start, end in zip(starts, ends, strict=True):
        label = truth[start]
        if label == background or label < 0:  # negative: ignored frames (padding), no segment
            continue
        hits = np.flatnonzero(pred[start:end] == label)
        if len(hits):
            delays.append(int(hits[0]))
        else:
            missed += 1
    return delays, missed


def delay_summary(delays_frames: list[float], delays_s: list[float] | None, missed: int) -> dict:
    """Median and 90th percentile (numpy's linear interpolation) of the delays, in frames and seconds.

    Returns:
        ``{segments, detected, missed, median_frames, p90_frames, median_s, p90_s}``; the statistics
        are ``None`` when no segment was detected, the seconds also when ``delays_s`` is None.
    """
    def stat(values, q):
        return float(np.percentile(values, q)) if values is not None and len(values) else None

    return {"segments": len(delays_frames) + missed, "detected": len(delays_frames), "missed": missed,
            "median_frames": stat(delays_frames, 50), "p90_frames": stat(delays_frames, 90),
            "median_s": stat(delays_s, 50), "p90_s": stat(delays_s, 90)}


# ---------------------------------------------------------------------------------------------------
# Pooling videos into one report


def _json_number(x) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x


class FrameScores:
    """Pool videos one call at a time; :meth:`report` gives every metric above as JSON-ready values.

    Memory: AP ranks every frame of a class at once, so the scores are kept, as float32 (T, K) chunks
    plus int32 labels and a float32 confidence and bool correctness: ``4K + 9`` bytes per frame (5
    classes: 29 B; 1e6 frames, 9 h at 30 fps: 29 MB), twice that while :meth:`report` joins the chunks.
    Detection delays reduce per video to one number per segment.

    Args:
        classes: class names, in the order of the probability columns.
        background: index of the background class (no segment, left out of mAP/cmAP).
    """

    def __init__(self, classes: list[str], background: int, *, bins: int = ECE_BINS,
                 thresholds=RISK_THRESHOLDS) -> None:
        self.classes, self.background, self.bins, self.thresholds = classes, background, bins, thresholds
        self._probs: list[np.ndarray] | None = []
        self._truth: list[np.ndarray] = []
        self._conf: list[np.ndarray] | None = []
        self._correct: list[np.ndarray] = []
        self._delays: list[int] = []
        self._delays_s: list[float] | None = []
        self._missed = 0
        self.skipped: dict[str, str] = {}

    def add(self, truth: np.ndarray, pred: np.ndarray, *, probs: np.ndarray | None = None,
            confidence: np.ndarray | None = None, fps: float | None = None, name: str = "a video") -> None:
        """Add one video.

        Args:
            truth: (T,) true class per frame; negative values are ignored frames, left out.
            pred: (T,) predicted class per frame (after any abstention): detection delay.
            probs: (T, K) class probabilities, for AP, cmAP, NLL (and ECE / risk-coverage on their
                top class); None for a tool that writes labels only.
            confidence: (T,) top-class probability, for ECE / risk-coverage when ``probs`` is None
                (the prediction ``pred`` is taken as the top class).
            fps: frames per second, for delays in seconds (None: frames only).
            name: how the report's ``skipped`` reasons name this video.
        """
        truth, pred = np.asarray(truth), np.asarray(pred)
        delays, missed = detection_delays(truth, pred, self.background)
        self._delays += delays
        self._missed += missed
        if fps and self._delays_s is not None:
            self._delays_s += [d / fps for d in delays]
        elif self._delays_s is not None:
            self._delays_s = None
            self.skipped["detection_delay_s"] = f"no frame rate for {name}"
        keep = truth >= 0
        truth = truth[keep]
        if probs is not None and self._probs is not None:
            probs = np.asarray(probs, dtype=np.float32)[keep]
            self._probs.append(probs)
            confidence, top = probs.max(axis=1), probs.argmax(axis=1)
        else:
            if self._probs is not None:
                self._probs = None
                for key in ("map", "cmap", "per_class_ap", "per_class_cap", "nll"):
                    self.skipped[key] = f"no class probabilities (p_<class> columns) for {name}"
            top = pred[keep]
            confidence = None if confidence is None else np.asarray(confidence, dtype=np.float32)[keep]
        if confidence is not None and self._conf is not None:
            self._conf.append(confidence)
            self._correct.append(top == truth)
        elif self._conf is not None:
            self._conf = None
            for key in ("ece", "reliability", "risk_coverage"):
                self.skipped[key] = f"no probabilities or confidence for {name}"
        self._truth.append(truth.astype(np.int32))

    def report(self) -> dict:
        """Every metric that the added videos allow; ``skipped`` names the others and why."""
        out: dict = {}
        truth = np.concatenate(self._truth) if self._truth else np.zeros(0, np.int32)
        if self._probs is not None and len(truth):
            probs = np.concatenate(self._probs)
            for per_class, mean, calibrated in (("per_class_ap", "map", False), ("per_class_cap", "cmap", True)):
                ap = per_class_ap(probs, truth, calibrated=calibrated)
                out[per_class] = {c: _json_number(v) for c, v in zip(self.classes, ap, strict=True)}
                out[mean] = _json_number(mean_ap(ap, self.background))
            out["nll"] = nll(probs, truth)
        if self._conf is not None and len(truth):
            conf, correct = np.concatenate(self._conf), np.concatenate(self._correct)
            out["ece"] = ece(conf, correct, self.bins)
            mean_conf, accuracy, count = reliability(conf, correct, self.bins)
            out["reliability"] = {"confidence": [_json_number(v) for v in mean_conf],
                                  "accuracy": [_json_number(v) for v in accuracy],
                                  "count": count.tolist()}
            abstained, kept_accuracy = risk_coverage(conf, correct, self.thresholds)
            out["risk_coverage"] = {"threshold": [float(t) for t in self.thresholds],
                                    "abstained": abstained.tolist(),
                                    "accuracy": [_json_number(v) for v in kept_accuracy]}
        out["detection_delay"] = delay_summary(self._delays, self._delays_s, self._missed)
        out["skipped"] = dict(self.skipped)
        return out
