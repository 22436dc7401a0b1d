"""Evaluation: the per-frame and segment metrics, shared by train-time validation and `lstm-tv evaluate`.

Per-frame metrics (frame accuracy, per-class precision/recall/F1, macro-F1, the confusion matrix and
the accuracy on masked frames) pool every frame of every video, background included. Segment metrics
follow the temporal-action-segmentation convention of MS-TCN (Farha & Gall, 2019): a segment is a
maximal run of one label, the background class makes no segment, ``edit`` is a normalised Levenshtein
distance between the segment label sequences averaged over videos, and ``f1@k`` counts a predicted
segment as a true positive when it overlaps an unmatched true segment of its label with IoU >= k/100,
with TP/FP/FN summed over videos before the F1 (see docs/formats.md §4).

:class:`FrameMetrics` accumulates one video at a time in constant memory per video (a confusion
matrix, segment counts and one edit score per video). Its :meth:`FrameMetrics.state` is plain numbers
and lists, so processes that each evaluated part of a split can gather their states and combine them
with :meth:`FrameMetrics.from_states` into exactly the totals one process would have reached.

Label arrays are 1-D integer class indices, one per frame; ``background`` is the index of the
background class, or None when every class makes segments.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from lstm_tv import plots
from lstm_tv.data.dataset import PreparedDataset
from lstm_tv.distributed import resolve_device
from lstm_tv.errors import CheckpointError, DatasetError
from lstm_tv.fileio import check_parent, write_json
from lstm_tv.stream import array_chunks, load_model, stream_embeddings, stream_logits
from lstm_tv.ui import QUIET

DEFAULT_OVERLAPS = (0.10, 0.25, 0.50)  # the f1@10/25/50 thresholds reported in the literature


# ---------------------------------------------------------------------------------------------------
# Segments


def _as_labels(name: str, labels: Any) -> np.ndarray:
    """``labels`` as a 1-D integer array, or a ValueError naming the argument."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of per-frame class indices, got shape {arr.shape}")
    # An empty list arrives as float64; it holds no labels, so its dtype says nothing.
    if arr.size == 0:
        return arr.astype(np.int64)
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    return arr


def _check_pair(pred: Any, true: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both label arrays, checked to be 1-D integer arrays of one length (one label per frame)."""
    pred, true = _as_labels("pred", pred), _as_labels("true", true)
    if len(pred) != len(true):
        raise ValueError(f"pred and true must have one label per frame of the same video, "
                         f"got {len(pred)} and {len(true)} frames")
    return pred, true


def _segment_arrays(labels: np.ndarray, background: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segments of a checked 1-D label array as three int64 arrays: labels, starts, ends (half-open)."""
    n = len(labels)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    # A new run starts wherever a label differs from the one before it. Comparing neighbours instead of
    # np.diff keeps unsigned and bool labels safe (their difference wraps around or is refused).
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.concatenate(([0], change)).astype(np.int64)
    ends = np.concatenate((change, [n])).astype(np.int64)
    values = labels[starts].astype(np.int64)
    if background is not None:
        keep = values != background
        values, starts, ends = values[keep], starts[keep], ends[keep]
    return values, starts, ends


def segments(labels: np.ndarray, background: int | None) -> list[tuple[int, int, int]]:
    """Split per-frame labels into segments: maximal runs of one label.

    Args:
        labels: 1-D integer class index per frame.
        background: class whose runs are dropped (it makes no segment), or None to keep every run.

    Returns:
        ``(label, start, end)`` per segment in time order, ``end`` exclusive, as plain ints.
        ``[0, 0, 1, 4, 4]`` with background 4 gives ``[(0, 0, 2), (1, 2, 3)]``.

    Raises:
        ValueError: ``labels`` is not a 1-D integer array.
    """
    values, starts, ends = _segment_arrays(_as_labels("labels", labels), background)
    return list(zip(values.tolist(), starts.tolist(), ends.tolist()))


# ---------------------------------------------------------------------------------------------------
# Edit score


def _levenshtein_codes(a: np.ndarray, b: np.ndarray) -> int:
    """Levenshtein distance of two 1-D integer arrays, one DP row at a time in numpy."""
    if len(a) > len(b):
        a, b = b, a  # loop over the shorter sequence, vectorise over the longer: fewer, longer numpy steps
    m = len(b)
    if m == 0:
        return len(a)
    cols = np.arange(m + 1)
    row = cols.copy()  # distance from the empty prefix of a to each prefix of b
    for i, x in enumerate(a, start=1):
        # Deletion and substitution depend only on the previous row, so they vectorise...
        cand = np.empty(m + 1, dtype=np.int64)
        cand[0] = i
        cand[1:] = np.minimum(row[1:] + 1, row[:-1] + (b != x))
        # ...insertion chains along the row: D[j] = min_k (cand[k] + j - k) = j + cummin(cand - k)[j].
        row = cols + np.minimum.accumulate(cand - cols)
    return int(row[-1])


def levenshtein(a: Sequence, b: Sequence) -> int:
    """Edit distance: the fewest insertions, deletions and substitutions that turn ``a`` into ``b``.

    Args:
        a: A sequence of hashable items (segment labels, characters, ...).
        b: Another such sequence.

    Returns:
        The distance; ``levenshtein("kitten", "sitting") == 3``. O(len(a) * len(b)) time.
    """
    # Items become integer codes so the dynamic programme runs in numpy whatever the items are.
    codes: dict = {}
    a_codes = np.array([codes.setdefault(x, len(codes)) for x in a], dtype=np.int64)
    b_codes = np.array([codes.setdefault(x, len(codes)) for x in b], dtype=np.int64)
    return _levenshtein_codes(a_codes, b_codes)


def _edit_from_labels(pred_labels: np.ndarray, true_labels: np.ndarray) -> float:
    longest = max(len(pred_labels), len(true_labels))
    if longest == 0:
        return 100.0  # no segment to find and none predicted: nothing is out of order
    return 100.0 * (1.0 - _levenshtein_codes(pred_labels, true_labels) / longest)


def edit_score(pred: np.ndarray, true: np.ndarray, background: int | None) -> float:
    """Segmental edit score of one video: how well the order of predicted segments matches the truth.

    Args:
        pred: 1-D predicted class index per frame.
        true: 1-D true class index per frame, same length.
        background: class that makes no segment, or None.

    Returns:
        ``100 * (1 - levenshtein(pred_segment_labels, true_segment_labels) / max(len_pred, len_true))``
        in [0, 100]; 100.0 when neither has a segment.

    Raises:
        ValueError: the arrays are not 1-D integer arrays of one length.
    """
    pred, true = _check_pair(pred, true)
    return _edit_from_labels(_segment_arrays(pred, background)[0], _segment_arrays(true, background)[0])


# ---------------------------------------------------------------------------------------------------
# Segment F1 at an IoU threshold


def _check_overlap(overlap: float) -> float:
    # IoU 0 would let disjoint segments count as hits, so the threshold must be positive.
    if not 0.0 < overlap <= 1.0:
        raise ValueError(f"overlap must be an IoU fraction in (0, 1] such as 0.5, got {overlap}")
    return float(overlap)


def _overlap_pairs(pred_segs: tuple[np.ndarray, ...],
                   true_segs: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (predicted, true) pair of same-label segments that overlap, with its IoU, in pred order.

    Both families of segments are disjoint and sorted, so the true segments that overlap a predicted
    [s, e) form one contiguous range (those ending after s and starting before e), and there are at
    most P + T - 1 overlapping pairs in all: built with a few vectorised steps, not a P x T table.

    Returns:
        ``(pred_index, true_index, iou)`` arrays, sorted by pred index, then true index.
    """
    p_lab, p_start, p_end = pred_segs
    t_lab, t_start, t_end = true_segs
    lo = np.searchsorted(t_end, p_start, side="right")
    hi = np.searchsorted(t_start, p_end, side="left")
    count = np.maximum(hi - lo, 0)
    # (P,) ranges -> (pairs,): pred index repeated per overlapping true segment, true index counting up.
    pi = np.repeat(np.arange(len(p_lab)), count)
    first = np.cumsum(count) - count  # where each pred's run of pairs begins
    ti = lo[pi] + (np.arange(len(pi)) - first[pi])
    same = p_lab[pi] == t_lab[ti]
    pi, ti = pi[same], ti[same]
    inter = np.minimum(p_end[pi], t_end[ti]) - np.maximum(p_start[pi], t_start[ti])
    union = (p_end[pi] - p_start[pi]) + (t_end[ti] - t_start[ti]) - inter
    return pi, ti, inter / union


def _f1_counts_pairs(pairs: tuple[np.ndarray, np.ndarray, np.ndarray], num_pred: int, num_true: int,
                     overlap: float) -> tuple[int, int, int]:
    """TP, FP, FN from :func:`_overlap_pairs` at one IoU threshold."""
    pi, ti, iou = pairs
    # A predicted segment is a hit iff its best unmatched same-label IoU reaches the threshold, and then
    # that best is among the pairs that reach it; so pairs below the threshold can be dropped up front
    # (on a flickering prediction that is nearly all of them). Disjoint segments have IoU 0: never a hit.
    keep = iou >= overlap
    matched: set[int] = set()
    tp = 0
    best_t, best_iou, current = -1, -1.0, -1
    for p, t, v in zip(pi[keep].tolist(), ti[keep].tolist(), iou[keep].tolist()):
        if p != current:  # a new predicted segment: settle the previous one
            if best_t >= 0:
                matched.add(best_t)
                tp += 1
            best_t, best_iou, current = -1, -1.0, p
        if t not in matched and v > best_iou:  # strict: ties go to the earlier true segment
            best_t, best_iou = t, v
    if best_t >= 0:
        matched.add(best_t)
        tp += 1
    return tp, num_pred - tp, num_true - tp


def f1_counts(pred: np.ndarray, true: np.ndarray, background: int | None, overlap: float) -> tuple[int, int, int]:
    """Count segment hits and misses of one video at an IoU threshold (MS-TCN's F1@k).

    Each predicted segment, in time order, is matched to the still unmatched true segment of the same
    label with the highest IoU; it is a true positive when that IoU >= ``overlap`` (the true segment is
    then matched), else a false positive. True segments left unmatched are false negatives.

    Args:
        pred: 1-D predicted class index per frame.
        true: 1-D true class index per frame, same length.
        background: class that makes no segment, or None.
        overlap: IoU threshold as a fraction in (0, 1]: 0.1, 0.25 or 0.5 for F1@10/25/50.

    Returns:
        ``(tp, fp, fn)``.

    Raises:
        ValueError: the arrays are not 1-D integer arrays of one length, or ``overlap`` is out of range.
    """
    pred, true = _check_pair(pred, true)
    overlap = _check_overlap(overlap)
    pred_segs, true_segs = _segment_arrays(pred, background), _segment_arrays(true, background)
    return _f1_counts_pairs(_overlap_pairs(pred_segs, true_segs), len(pred_segs[0]), len(true_segs[0]), overlap)


def _f1_percent(tp: int, fp: int, fn: int) -> float:
    """F1 (0-100) from summed counts; 100 when there was no segment to find and none was predicted."""
    if tp + fp + fn == 0:
        return 100.0
    # 2PR / (P + R) with P = tp/(tp+fp), R = tp/(tp+fn) simplifies to this, and is 0 when tp is 0.
    return 100.0 * 2 * tp / (2 * tp + fp + fn)


def _overlap_key(overlap: float) -> str:
    return f"f1@{round(overlap * 100):d}"


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
        self.overlaps = tuple(_check_overlap(o) for o in overlaps)
        keys = [_overlap_key(o) for o in self.overlaps]
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

    def _check_range(self, name: str, labels: np.ndarray) -> None:
        if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
            bad = labels[(labels < 0) | (labels >= self.num_classes)][0]
            raise ValueError(f"{name} holds class index {bad}, outside [0, {self.num_classes})")

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
        pred, true = _check_pair(pred, true)
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

        # (T,) x (T,) -> (K*K,) -> (K, K): one bincount over true*K + pred instead of a Python loop.
        k = self.num_classes
        flat = true.astype(np.int64) * k + pred.astype(np.int64)
        self.confusion += np.bincount(flat, minlength=k * k).reshape(k, k)

        if mask is not None:
            self.masked_frames += int(mask.sum())
            self.masked_correct += int((pred[mask] == true[mask]).sum())

        pred_segs = _segment_arrays(pred, self.background)
        true_segs = _segment_arrays(true, self.background)
        self.edit_scores.append(_edit_from_labels(pred_segs[0], true_segs[0]))
        pairs = _overlap_pairs(pred_segs, true_segs)  # IoUs once; only the matching depends on the threshold
        for i, overlap in enumerate(self.overlaps):
            tp, fp, fn = _f1_counts_pairs(pairs, len(pred_segs[0]), len(true_segs[0]), overlap)
            self.tp[i] += tp
            self.fp[i] += fp
            self.fn[i] += fn

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
        self.tp = [a + b for a, b in zip(self.tp, other.tp)]
        self.fp = [a + b for a, b in zip(self.fp, other.fp)]
        self.fn = [a + b for a, b in zip(self.fn, other.fn)]
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
        present = (true_count + pred_count) > 0

        report: dict[str, Any] = {
            "frame_accuracy": float(hits.sum() / conf.sum()),
            "macro_f1": float(f1[present].mean()),
            "per_class": {
                name: {"precision": float(precision[i]), "recall": float(recall[i]),
                       "f1": float(f1[i]), "support": int(true_count[i])}
                for i, name in enumerate(class_names)
            },
            "confusion": conf.tolist(),
            # fsum is exactly rounded, so the mean does not depend on the order videos (or merged
            # accumulators) arrived in.
            "edit": math.fsum(self.edit_scores) / self.videos,
        }
        for i, overlap in enumerate(self.overlaps):
            report[_overlap_key(overlap)] = _f1_percent(self.tp[i], self.fp[i], self.fn[i])
        if self.masked_frames > 0:
            report["masked_accuracy"] = self.masked_correct / self.masked_frames
        report["frames"] = self.frames
        report["videos"] = self.videos
        report["masked_frames"] = self.masked_frames
        return report


# ---------------------------------------------------------------------------------------------------
# Evaluating a model: stream every video of a split through it with the state carried


def evaluate_model(model, data, videos, device, *, chunk: int = 256, dist=None, progress=None,
                   embeddings=None) -> FrameMetrics:
    """Stream each video of ``videos`` through ``model`` exactly as prediction does; accumulate metrics.

    Args:
        model: a ``FrameClassifier`` (put in eval mode here).
        data: the ``PreparedDataset`` the videos belong to.
        videos: the ``VideoRecord``s to evaluate.
        device: where the model runs.
        chunk: frames per streamed chunk (memory, not results, depends on it).
        dist: a ``Dist`` context: each rank evaluates every ``world``-th video and the ranks' metrics
            are combined, giving the same totals as one process.
        progress: called with ``(done, total, stem)`` after each video.
        embeddings: the videos' frame embeddings (T, F), one per video, when the encoder is frozen
            and they were computed already: only the memory and head then run (same result).
    Returns:
        The combined :class:`FrameMetrics` (call ``compute(class_names)`` for the report).
    """
    was_training = model.training
    model.eval()
    metrics = FrameMetrics(len(data.classes), data.classes.index(data.background))
    pairs = list(zip(videos, embeddings if embeddings is not None else [None] * len(videos)))
    mine = pairs[dist.rank::dist.world] if dist is not None else pairs
    with model.full_precision():  # the encoder's precision of evaluate and predict
        for i, (video, emb) in enumerate(mine):
            if emb is not None:
                logits = stream_embeddings(model, emb, chunk)
            else:
                logits = torch.cat(list(stream_logits(model, array_chunks(data.frames(video), chunk), device)))
            metrics.update(logits.argmax(-1).numpy(), data.labels(video), data.mask(video))
            if progress:
                progress(i + 1, len(mine), video.stem)
    model.train(was_training)
    if dist is not None and dist.active:
        metrics = FrameMetrics.from_states(dist.all_gather(metrics.state()))
    return metrics


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
        raise CheckpointError(f"{checkpoint}: trained at {ckpt.size} px but {data.root} is prepared at "
                              f"{data.size} px; prepare the data with data.size={ckpt.size}")
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
    plots.confusion_matrix(report["confusion"], data.classes, plot_path,
                           title=f"{split}: {checkpoint.name} (rows = truth)")
    reporter.info(f"confusion matrix: {plot_path}")
    return report


def print_report(report: dict, classes: list[str], reporter) -> None:
    """The summary and per-class tables of a report."""
    rows = [("videos / frames", f"{report['videos']} / {report['frames']}"),
            ("frame accuracy", f"{report['frame_accuracy']:.4f}"), ("macro-F1", f"{report['macro_f1']:.4f}")]
    if "masked_accuracy" in report:
        rows.append(("masked accuracy", f"{report['masked_accuracy']:.4f}  ({report['masked_frames']} frames)"))
    rows += [("edit", f"{report['edit']:.2f}")] + [(k, f"{report[k]:.2f}") for k in report if k.startswith("f1@")]
    reporter.table(f"{report.get('split', '')} metrics", rows)
    per_class = [[name, f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}", str(c["support"])]
                 for name, c in report["per_class"].items()]
    reporter.grid("per class", ["class", "precision", "recall", "F1", "support"], per_class)
