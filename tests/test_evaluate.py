"""Per-frame and segment metrics: hand-computed cases, error cases and properties."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstm_tv.evaluate import FrameMetrics, edit_score, f1_counts, levenshtein, segments

A = np.array  # short, to keep the tables readable


def runs(*pieces: tuple[int, int]) -> np.ndarray:
    """Labels from (label, length) runs: runs((1, 3), (0, 2)) -> [1, 1, 1, 0, 0]."""
    return np.concatenate([np.full(n, lab, dtype=np.int64) for lab, n in pieces])


# ---------------------------------------------------------------------------------------------------
# segments


@pytest.mark.parametrize("labels, background, expected", [
    ([], None, []),
    ([2], None, [(2, 0, 1)]),
    ([0, 0, 1, 1, 1, 0], None, [(0, 0, 2), (1, 2, 5), (0, 5, 6)]),
    ([0, 0, 1, 1, 1, 0], 0, [(1, 2, 5)]),
    ([4, 4, 4], 4, []),
    ([4, 4, 4], None, [(4, 0, 3)]),
    ([0, 4, 0], 4, [(0, 0, 1), (0, 2, 3)]),  # background splits a label into two segments
    ([1, 2, 1, 2], 3, [(1, 0, 1), (2, 1, 2), (1, 2, 3), (2, 3, 4)]),
    (A([3, 2, 3], dtype=np.uint8), None, [(3, 0, 1), (2, 1, 2), (3, 2, 3)]),  # unsigned: no wrap-around
])
def test_segments(labels, background, expected):
    got = segments(np.asarray(labels, dtype=getattr(labels, "dtype", np.int64)), background)
    assert got == expected
    assert all(type(x) is int for seg in got for x in seg)


@given(st.lists(st.integers(0, 3), max_size=40), st.one_of(st.none(), st.integers(0, 3)))
def test_segments_rebuild_the_labels(labels, background):
    labels = np.array(labels, dtype=np.int64)
    fill = -1 if background is None else background
    rebuilt = np.full(len(labels), fill)
    prev_end = None
    for lab, start, end in segments(labels, background):
        assert start < end and lab != background
        assert prev_end is None or start >= prev_end
        rebuilt[start:end] = lab
        prev_end = end
    assert (rebuilt == labels).all()


# ---------------------------------------------------------------------------------------------------
# levenshtein and edit score


@pytest.mark.parametrize("a, b, expected", [
    ("kitten", "sitting", 3),
    ("sitting", "kitten", 3),
    ("saturday", "sunday", 3),
    ("flaw", "lawn", 2),
    ("", "", 0),
    ("", "abc", 3),
    ("abc", "", 3),
    ("abc", "abc", 0),
    ([1, 2, 3], [3, 2, 1], 2),
    ([0, 1, 0], [0, 0], 1),
])
def test_levenshtein(a, b, expected):
    assert levenshtein(a, b) == expected


def _levenshtein_reference(a, b) -> int:
    """The textbook full-table dynamic programme."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
    return d[-1][-1]


@given(st.lists(st.integers(0, 3), max_size=12), st.lists(st.integers(0, 3), max_size=12))
def test_levenshtein_matches_the_textbook_table(a, b):
    assert levenshtein(a, b) == _levenshtein_reference(a, b)


# Class 2 is the background in these cases.
@pytest.mark.parametrize("pred, true, expected", [
    # true segments [0, 1, 0], predicted [0, 0]: one deletion -> 100 * (1 - 1/3)
    (runs((0, 2), (2, 2), (0, 2)), runs((0, 2), (1, 2), (0, 2)), 100 * (1 - 1 / 3)),
    (runs((0, 2), (1, 2), (0, 2)), runs((0, 2), (1, 2), (0, 2)), 100.0),
    # timing does not matter to edit, only order
    (runs((0, 1), (1, 4), (0, 1)), runs((0, 2), (1, 2), (0, 2)), 100.0),
    (runs((2, 6)), runs((2, 6)), 100.0),                      # no segments on either side
    (runs((2, 6)), runs((0, 3), (1, 3)), 0.0),                # nothing predicted
    (runs((0, 3), (1, 3)), runs((2, 6)), 0.0),                # nothing true
    (runs((1, 3), (0, 3)), runs((0, 3), (1, 3)), 0.0),        # two substitutions of two
])
def test_edit_score(pred, true, expected):
    assert edit_score(pred, true, background=2) == pytest.approx(expected)


# ---------------------------------------------------------------------------------------------------
# segment F1 counts


# Class 0 is the background unless the case says None.
F1_CASES = [
    # id, pred, true, background, overlap, (tp, fp, fn)
    ("exact", runs((0, 1), (1, 3), (0, 1)), runs((0, 1), (1, 3), (0, 1)), 0, 0.5, (1, 0, 0)),
    # true [0,10), pred [4,10): IoU 6/10 = 0.6
    ("iou 0.6 at 0.5", runs((0, 4), (1, 6), (0, 2)), runs((1, 10), (0, 2)), 0, 0.5, (1, 0, 0)),
    # true [2,12), pred [6,14): inter 6, union 12 -> IoU exactly 0.5, and >= counts
    ("iou 0.5 at 0.5", runs((0, 6), (1, 8), (0, 2)), runs((0, 2), (1, 10), (0, 4)), 0, 0.5, (1, 0, 0)),
    # true [0,10), pred [6,10): IoU 4/10 = 0.4: a miss at 0.5 (FP and FN), a hit at 0.25
    ("iou 0.4 at 0.5", runs((0, 6), (1, 4)), runs((1, 10)), 0, 0.5, (0, 1, 1)),
    ("iou 0.4 at 0.25", runs((0, 6), (1, 4)), runs((1, 10)), 0, 0.25, (1, 0, 0)),
    # right place, wrong label: the prediction is an FP and the truth an FN, at any threshold
    ("wrong label", runs((2, 5), (0, 1)), runs((1, 5), (0, 1)), 0, 0.1, (0, 1, 1)),
    # over-segmented: [0,5) takes the true [0,10) (IoU 0.5); [6,10) finds it matched -> FP
    ("over-segmented", runs((1, 5), (0, 1), (1, 4)), runs((1, 10)), 0, 0.5, (1, 1, 0)),
    ("over-segmented 0.1", runs((1, 5), (0, 1), (1, 4)), runs((1, 10)), 0, 0.1, (1, 1, 0)),
    # the first piece [0,2) is too small at 0.5 (IoU 0.2) and matches nothing; [3,10) (IoU 0.7) does
    ("small piece first", runs((1, 2), (0, 1), (1, 7)), runs((1, 10)), 0, 0.5, (1, 1, 0)),
    # one prediction over two true segments of its label takes the one with the higher IoU:
    # vs [0,4): 2/15; vs [5,15): 10/13
    ("highest iou", runs((0, 2), (1, 13)), runs((1, 4), (0, 1), (1, 10)), 0, 0.5, (1, 0, 1)),
    # Matching is among *unmatched* true segments (docs/formats.md): [5,13) overlaps the matched [0,10)
    # most (IoU 5/13) but takes the unmatched [11,20) (IoU 2/15 >= 0.1).
    ("unmatched only", runs((1, 4), (0, 1), (1, 8), (0, 7)), runs((1, 10), (0, 1), (1, 9)), 0, 0.1, (2, 0, 0)),
    # a tie goes to the earlier true segment (as np.argmax in MS-TCN): [2,7) has IoU 2/7 with both [0,4)
    # and [5,9); taking [0,4) leaves [5,9) for [8,9) (IoU 1/4)
    ("tie goes to earlier", runs((0, 2), (1, 5), (0, 1), (1, 1), (0, 1)), runs((1, 4), (0, 1), (1, 4), (0, 1)),
     0, 0.25, (2, 0, 0)),
    # without a background every run is a segment: pred (0,[0,3)) (1,[3,4)), true (0,[0,2)) (1,[2,4))
    ("no background", A([0, 0, 0, 1]), A([0, 0, 1, 1]), None, 0.5, (2, 0, 0)),
    ("no background strict", A([0, 0, 0, 1]), A([0, 0, 1, 1]), None, 0.75, (0, 2, 2)),
    ("all background", runs((0, 5)), runs((0, 5)), 0, 0.5, (0, 0, 0)),
    ("prediction only", runs((0, 2), (3, 3)), runs((0, 5)), 0, 0.5, (0, 1, 0)),
    ("truth only", runs((0, 5)), runs((0, 2), (3, 3)), 0, 0.5, (0, 0, 1)),
]


@pytest.mark.parametrize("pred, true, background, overlap, expected",
                         [c[1:] for c in F1_CASES], ids=[c[0] for c in F1_CASES])
def test_f1_counts(pred, true, background, overlap, expected):
    got = f1_counts(pred, true, background, overlap)
    assert got == expected
    assert all(type(x) is int for x in got)


def _f1_counts_reference(pred, true, background, overlap):
    """The definition read literally: a full IoU table against every true segment, one pred at a time."""
    p, t = segments(pred, background), segments(true, background)
    matched = [False] * len(t)
    tp = 0
    for lab, s, e in p:
        best, best_iou = None, -1.0
        for j, (tlab, ts, te) in enumerate(t):
            if tlab != lab or matched[j]:
                continue
            inter = max(0, min(e, te) - max(s, ts))
            iou = inter / ((e - s) + (te - ts) - inter)
            if iou > best_iou:
                best, best_iou = j, iou
        if best is not None and best_iou >= overlap:
            matched[best] = True
            tp += 1
    return tp, len(p) - tp, len(t) - tp


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 6)), min_size=1, max_size=15),
       st.lists(st.tuples(st.integers(0, 3), st.integers(1, 6)), min_size=1, max_size=15),
       st.one_of(st.none(), st.integers(0, 3)), st.sampled_from([0.1, 0.25, 0.5, 0.75, 1.0]))
def test_f1_counts_match_the_literal_definition(pred_runs, true_runs, background, overlap):
    true = runs(*true_runs)
    pred = np.resize(runs(*pred_runs), len(true))  # same length as the truth, runs cut or repeated
    assert f1_counts(pred, true, background, overlap) == _f1_counts_reference(pred, true, background, overlap)


# ---------------------------------------------------------------------------------------------------
# the accumulator

NAMES3 = ["a", "b", "c"]


def test_f1_at_k_sums_counts_over_videos():
    m = FrameMetrics(3, background=0)
    m.update(runs((1, 5), (0, 1), (1, 4)), runs((1, 10)))   # at 0.5: tp 1, fp 1, fn 0
    m.update(runs((2, 5), (0, 1)), runs((1, 5), (0, 1)))    # at 0.5: tp 0, fp 1, fn 1
    report = m.compute(NAMES3)
    # summed: tp 1, fp 2, fn 1 -> P 1/3, R 1/2 -> F1 0.4 (a per-video mean would give (2/3 + 0) / 2)
    assert report["f1@50"] == pytest.approx(40.0)
    assert report["f1@10"] == pytest.approx(40.0)
    assert report["edit"] == pytest.approx((50.0 + 0.0) / 2)  # [1,1] vs [1]: 1 - 1/2; [2] vs [1]: 0
    assert report["videos"] == 2 and report["frames"] == 16


def test_confusion_rows_are_truth():
    m = FrameMetrics(3, background=None)
    m.update(A([0, 1, 1, 1]), A([0, 0, 1, 2]))
    assert m.compute(NAMES3)["confusion"] == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]


def test_per_frame_metrics_by_hand():
    m = FrameMetrics(4, background=3)
    m.update(A([0, 1, 1, 1]), A([0, 0, 1, 2]))
    r = m.compute(["a", "b", "c", "d"])
    assert r["frame_accuracy"] == pytest.approx(2 / 4)
    # a: P 1, R 1/2, F1 2/3.  b: P 1/3, R 1, F1 1/2.  c: never predicted -> P 0 (undefined), R 0, F1 0.
    # d: in neither truth nor prediction -> left out of the mean.
    assert r["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert r["per_class"]["a"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert r["per_class"]["b"] == pytest.approx({"precision": 1 / 3, "recall": 1.0, "f1": 0.5, "support": 1})
    assert r["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert r["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_frame_accuracy_pools_frames_not_videos():
    m = FrameMetrics(2, background=None)
    m.update(A([0, 0, 0, 0, 0, 0, 0, 0]), A([0, 0, 0, 0, 0, 0, 0, 0]))  # 8/8
    m.update(A([1, 1]), A([0, 0]))                                    # 0/2
    assert m.compute(["x", "y"])["frame_accuracy"] == pytest.approx(8 / 10)  # not (1 + 0) / 2


def test_masked_accuracy_only_on_mask_frames():
    m = FrameMetrics(3, background=0)
    m.update(A([1, 2, 2, 1]), A([1, 1, 2, 2]), mask=A([0, 1, 1, 1]))   # mask frames: 2 wrong, 2 right, 1 wrong
    m.update(A([1, 1]), A([1, 1]), mask=A([True, False]))             # one right
    m.update(A([2, 2]), A([1, 1]))                                    # no mask: not counted
    r = m.compute(NAMES3)
    assert r["masked_frames"] == 4
    assert r["masked_accuracy"] == pytest.approx(2 / 4)
    assert r["frame_accuracy"] == pytest.approx(4 / 8)


@pytest.mark.parametrize("mask", [None, A([0, 0, 0])])
def test_masked_accuracy_absent_without_mask_frames(mask):
    m = FrameMetrics(3, background=0)
    m.update(A([1, 1, 2]), A([1, 1, 1]), mask=mask)
    r = m.compute(NAMES3)
    assert "masked_accuracy" not in r
    assert r["masked_frames"] == 0


def _is_plain(x) -> bool:
    if isinstance(x, dict):
        return all(type(k) is str and _is_plain(v) for k, v in x.items())
    if isinstance(x, list):
        return all(_is_plain(v) for v in x)
    return type(x) in (int, float, str, bool) or x is None


def test_report_is_plain_json():
    m = FrameMetrics(3, background=0)
    m.update(A([1, 2, 2, 0], dtype=np.uint8), A([1, 1, 2, 0], dtype=np.int32), mask=A([1, 0, 1, 0]))
    r = m.compute(NAMES3)
    assert _is_plain(r)
    assert json.loads(json.dumps(r)) == r
    for key in ("frame_accuracy", "macro_f1", "per_class", "confusion", "edit", "f1@10", "f1@25", "f1@50",
                "masked_accuracy", "frames", "videos", "masked_frames"):
        assert key in r


VIDEOS = [
    (runs((1, 5), (0, 1), (1, 4)), runs((1, 10)), A([0, 0, 1, 1, 1, 0, 0, 0, 1, 1])),
    (runs((2, 5), (0, 3)), runs((1, 5), (0, 1), (2, 2)), None),
    (runs((0, 2), (1, 13)), runs((1, 4), (0, 1), (1, 10)), np.ones(15, dtype=int)),
    (A([2, 1, 2, 1, 2]), A([2, 2, 2, 1, 1]), A([1, 0, 1, 0, 1])),
]


@pytest.mark.parametrize("split", [1, 2, 3])
def test_merged_accumulators_equal_one(split):
    whole = FrameMetrics(3, background=0)
    for v in VIDEOS:
        whole.update(*v)
    first, second = FrameMetrics(3, background=0), FrameMetrics(3, background=0)
    for v in VIDEOS[:split]:
        first.update(*v)
    for v in VIDEOS[split:]:
        second.update(*v)
    # the states travel between processes as plain data: a JSON round trip must not change them
    states = [json.loads(json.dumps(first.state())), json.loads(json.dumps(second.state()))]
    assert FrameMetrics.from_states(states).compute(NAMES3) == whole.compute(NAMES3)
    # merged in the other order, as a gather may deliver them
    assert FrameMetrics.from_states(states[::-1]).compute(NAMES3) == whole.compute(NAMES3)
    assert first.merge(second).compute(NAMES3) == whole.compute(NAMES3)


def test_merging_an_empty_accumulator_changes_nothing():
    m = FrameMetrics(3, background=0)
    m.update(*VIDEOS[0])
    before = m.compute(NAMES3)
    assert m.merge(FrameMetrics(3, background=0)).compute(NAMES3) == before


@pytest.mark.parametrize("other", [
    FrameMetrics(4, background=0),
    FrameMetrics(3, background=None),
    FrameMetrics(3, background=0, overlaps=(0.5,)),
])
def test_merge_refuses_different_setups(other):
    with pytest.raises(ValueError, match="cannot merge"):
        FrameMetrics(3, background=0).merge(other)


def test_custom_overlaps_name_their_keys():
    m = FrameMetrics(3, background=0, overlaps=(0.75,))
    m.update(A([0, 1, 1, 1]), A([0, 1, 1, 1]))
    r = m.compute(NAMES3)
    assert r["f1@75"] == 100.0 and "f1@50" not in r


# ---------------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize("pred, true, mask, match", [
    (A([[0, 1]]), A([[0, 1]]), None, "1-D"),
    (A([0, 1, 1]), A([0, 1]), None, "same video"),
    (A([0, 1]), A([0, 1]), A([1, 0, 1]), "mask must have one value per frame"),
    (A([0, 1]), A([0, 1]), A([[1, 0]]), "mask must have one value per frame"),
    (A([0, 1]), A([0, 1]), A([1, 2]), "only 0 and 1"),
    (A([0.0, 1.0]), A([0, 1]), None, "integer class indices"),
    (A([0, 3]), A([0, 1]), None, r"pred holds class index 3, outside \[0, 3\)"),
    (A([0, 1]), A([-1, 1]), None, r"true holds class index -1"),
    (A([], dtype=int), A([], dtype=int), None, "at least one frame"),
])
def test_update_rejects_bad_input(pred, true, mask, match):
    m = FrameMetrics(3, background=0)
    with pytest.raises(ValueError, match=match):
        m.update(pred, true, mask)
    assert m.videos == 0 and m.frames == 0  # a refused video leaves no trace


def test_compute_without_videos_raises():
    with pytest.raises(ValueError, match="no videos were evaluated"):
        FrameMetrics(3, background=0).compute(NAMES3)


def test_compute_needs_one_name_per_class():
    m = FrameMetrics(3, background=0)
    m.update(A([0, 1]), A([0, 1]))
    with pytest.raises(ValueError, match="need 3 class names"):
        m.compute(["a", "b"])


@pytest.mark.parametrize("kwargs, match", [
    ({"num_classes": 0, "background": None}, "num_classes"),
    ({"num_classes": 3, "background": 3}, "background"),
    ({"num_classes": 3, "background": -1}, "background"),
    ({"num_classes": 3, "background": 0, "overlaps": (0.0,)}, "overlap"),
    ({"num_classes": 3, "background": 0, "overlaps": (50,)}, "overlap"),
    ({"num_classes": 3, "background": 0, "overlaps": (0.5, 0.5)}, "distinct"),
])
def test_constructor_rejects_bad_setup(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FrameMetrics(**kwargs)


@pytest.mark.parametrize("fn, args, match", [
    (edit_score, (A([0, 1]), A([0]), 0), "same video"),
    (f1_counts, (A([0, 1]), A([0]), 0, 0.5), "same video"),
    (f1_counts, (A([0, 1]), A([0, 1]), 0, 50), "overlap"),
    (segments, (A([[0, 1]]), None), "1-D"),
])
def test_functions_reject_bad_input(fn, args, match):
    with pytest.raises(ValueError, match=match):
        fn(*args)


def test_from_states_rejects_nothing_and_broken_states():
    with pytest.raises(ValueError, match="no metrics states"):
        FrameMetrics.from_states([])
    state = FrameMetrics(3, background=0).state()
    del state["tp"]
    with pytest.raises(ValueError, match="missing key 'tp'"):
        FrameMetrics.from_state(state)
    state = FrameMetrics(3, background=0).state()
    state["confusion"] = [[0, 0], [0, 0]]
    with pytest.raises(ValueError, match="does not fit"):
        FrameMetrics.from_state(state)


# ---------------------------------------------------------------------------------------------------
# properties


@st.composite
def labelled_video(draw):
    """(num_classes, background, true, pred, mask) with labels in [0, K)."""
    k = draw(st.integers(2, 5))
    background = draw(st.one_of(st.none(), st.integers(0, k - 1)))
    n = draw(st.integers(1, 60))
    # runs of labels, as videos have, rather than i.i.d. noise only
    true = np.repeat(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)),
                     draw(st.lists(st.integers(1, 6), min_size=n, max_size=n)))
    pred = np.array(draw(st.lists(st.integers(0, k - 1), min_size=len(true), max_size=len(true))))
    mask = np.array(draw(st.lists(st.integers(0, 1), min_size=len(true), max_size=len(true))))
    return k, background, true, pred, mask


@settings(max_examples=150, deadline=None)
@given(labelled_video())
def test_perfect_prediction_scores_perfectly(video):
    k, background, true, _, mask = video
    m = FrameMetrics(k, background)
    m.update(true.copy(), true, mask)
    r = m.compute([f"c{i}" for i in range(k)])
    assert r["frame_accuracy"] == 1.0
    assert r["macro_f1"] == pytest.approx(1.0)
    assert r["edit"] == 100.0
    assert r["f1@10"] == r["f1@25"] == r["f1@50"] == 100.0
    assert r.get("masked_accuracy", 1.0) == 1.0


@settings(max_examples=100, deadline=None)
@given(labelled_video(), labelled_video())
def test_scores_stay_in_range(video, other):
    k, background, true, pred, mask = video
    m = FrameMetrics(k, background)
    m.update(pred, true, mask)
    # a second video of another length, its labels folded into [0, K)
    m.update(other[3] % k, other[2] % k)
    r = m.compute([f"c{i}" for i in range(k)])
    for key in ("edit", "f1@10", "f1@25", "f1@50"):
        assert 0.0 <= r[key] <= 100.0
    for key in ("frame_accuracy", "macro_f1"):
        assert 0.0 <= r[key] <= 1.0
    # looser thresholds can only find more hits
    assert r["f1@10"] >= r["f1@25"] >= r["f1@50"]
    assert sum(map(sum, r["confusion"])) == r["frames"] == len(true) + len(other[2])
