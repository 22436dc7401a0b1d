"""Segments of per-frame labels and the segment metrics of one video: edit score and F1@k (pure numpy).

The temporal-action-segmentation convention of MS-TCN (Farha & Gall, 2019): a segment is a maximal
run of one label, the background class makes no segment, ``edit`` is a normalised Levenshtein
distance between the segment label sequences, and ``f1@k`` counts a predicted segment as a true
positive when it overlaps an unmatched true segment of its label with IoU >= k/100 (see
docs/formats.md §4). :mod:`lstm_tv.metrics` sums these over videos.

Label arrays are 1-D integer class indices, one per frame; ``background`` is the index of the
background class, or None when every class makes segments.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

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


def check_pair(pred: Any, true: Any) -> tuple[np.ndarray, np.ndarray]:
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
    return list(zip(values.tolist(), starts.tolist(), ends.tolist(), strict=False))


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
    pred, true = check_pair(pred, true)
    return _edit_from_labels(_segment_arrays(pred, background)[0], _segment_arrays(true, background)[0])


# ---------------------------------------------------------------------------------------------------
# Segment F1 at an IoU threshold


def check_overlap(overlap: float) -> float:
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
    for p, t, v in zip(pi[keep].tolist(), ti[keep].tolist(), iou[keep].tolist(), strict=False):
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
    pred, true = check_pair(pred, true)
    overlap = check_overlap(overlap)
    pred_segs, true_segs = _segment_arrays(pred, background), _segment_arrays(true, background)
    return _f1_counts_pairs(_overlap_pairs(pred_segs, true_segs), len(pred_segs[0]), len(true_segs[0]), overlap)


def f1_percent(tp: int, fp: int, fn: int) -> float:
    """F1 (0-100) from summed counts; 100 when there was no segment to find and none was predicted."""
    if tp + fp + fn == 0:
        return 100.0
    # 2PR / (P + R) with P = tp/(tp+fp), R = tp/(tp+fn) simplifies to this, and is 0 when tp is 0.
    return 100.0 * 2 * tp / (2 * tp + fp + fn)


def overlap_key(overlap: float) -> str:
    """The report key of the segment F1 at an IoU threshold: 0.5 -> ``f1@50``."""
    return f"f1@{round(overlap * 100):d}"


def video_scores(pred: np.ndarray, true: np.ndarray, background: int | None,
                 overlaps: Sequence[float]) -> tuple[float, list[tuple[int, int, int]]]:
    """The segment scores of one video: its edit score and ``(tp, fp, fn)`` at each overlap.

    ``pred`` and ``true`` must be checked already (:func:`check_pair`); the segments and their IoUs
    are computed once, only the matching depends on the threshold.
    """
    pred_segs, true_segs = _segment_arrays(pred, background), _segment_arrays(true, background)
    edit = _edit_from_labels(pred_segs[0], true_segs[0])
    pairs = _overlap_pairs(pred_segs, true_segs)
    counts = [_f1_counts_pairs(pairs, len(pred_segs[0]), len(true_segs[0]), k) for k in overlaps]
    return edit, counts
