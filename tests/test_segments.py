"""Segments, edit score and F1@k of one video: hand-computed cases, error cases and properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstm_tv.segments import edit_score, f1_counts, levenshtein, segments

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


@pytest.mark.parametrize("fn, args, match", [
    (edit_score, (A([0, 1]), A([0]), 0), "same video"),
    (f1_counts, (A([0, 1]), A([0]), 0, 0.5), "same video"),
    (f1_counts, (A([0, 1]), A([0, 1]), 0, 50), "overlap"),
    (segments, (A([[0, 1]]), None), "1-D"),
])
def test_functions_reject_bad_input(fn, args, match):
    with pytest.raises(ValueError, match=match):
        fn(*args)
