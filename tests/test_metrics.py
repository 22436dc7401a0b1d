"""The metric table and the accumulator over videos: hand-computed cases, error cases and properties."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstm_tv.metrics import FrameMetrics

A = np.array  # short, to keep the tables readable


def runs(*pieces: tuple[int, int]) -> np.ndarray:
    """Labels from (label, length) runs: runs((1, 3), (0, 2)) -> [1, 1, 1, 0, 0]."""
    return np.concatenate([np.full(n, lab, dtype=np.int64) for lab, n in pieces])


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


# ---------------------------------------------------------------------------------------------------
# the table


def test_every_key_the_accumulator_reports_has_one_row():
    from lstm_tv.metrics import METRICS, TRACKED, metric

    m = FrameMetrics(3, background=0)
    m.update(A([0, 1, 2]), A([0, 1, 1]), A([0, 1, 0]))
    report = m.compute(NAMES3)
    frame_rows = [row.key for row in METRICS if row.source == "frames"]
    scalar_keys = [k for k, v in report.items() if isinstance(v, float)]
    assert sorted(frame_rows) == sorted(scalar_keys)
    assert len({row.key for row in METRICS}) == len(METRICS)              # one row per key
    assert all(row.better in ("higher", "lower") for row in METRICS)
    assert set(TRACKED) <= set(METRICS) and metric("edit").scale == 100.0
    with pytest.raises(KeyError, match="no metric 'nope'"):
        metric("nope")


def test_rows_format_and_orient_their_values():
    from lstm_tv.metrics import Metric, metric, present

    assert metric("frame_accuracy").format(0.123456) == "0.1235"
    assert metric("f1@50").format(12.3456) == "12.35"
    loss = Metric("nll", "NLL", ".3f", better="lower", source="probabilities")
    assert loss.signed(0.2) > loss.signed(0.3)                            # lower is better: 0.2 wins
    assert metric("edit").signed(50.0) > metric("edit").signed(40.0)
    assert [m.key for m in present({"edit": 1.0, "masked_accuracy": None, "frame_accuracy": 0.5})] == [
        "frame_accuracy", "edit"]


def test_best_metric_choices_are_the_tracked_rows():
    import dataclasses

    from lstm_tv.config import TrainConfig
    from lstm_tv.metrics import TRACKED

    field = {f.name: f for f in dataclasses.fields(TrainConfig)}["best_metric"]
    assert set(field.metadata["choices"]) == {m.key for m in TRACKED}
