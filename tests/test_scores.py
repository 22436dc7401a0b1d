"""Probability metrics on hand-made cases with known answers, and AP/mAP against scikit-learn."""

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from lstm_tv import scores as S

# ---------------------------------------------------------------------------------------------------
# AP, cAP, mAP


def test_ap_is_mean_precision_at_the_positive_ranks():
    # ranks 1..4, positives at 1 and 3: precisions 1/1 and 2/3
    ap = S.average_precision(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 1, 0], bool))
    assert ap == pytest.approx((1 + 2 / 3) / 2)


def test_ap_of_a_perfect_ranking_is_one_and_of_no_positive_is_nan():
    assert S.average_precision(np.array([0.9, 0.1, 0.2]), np.array([1, 0, 0], bool)) == 1.0
    assert math.isnan(S.average_precision(np.array([0.9, 0.1]), np.array([0, 0], bool)))


def test_tied_scores_are_one_threshold_whatever_their_order():
    # Both frames at 0.5: precision 1/2 at recall 1, not 1 or 1/2 depending on the sort.
    for positive in ([1, 0], [0, 1]):
        assert S.average_precision(np.array([0.5, 0.5]), np.array(positive, bool)) == 0.5


def test_calibrated_ap_scales_false_positives_by_the_negative_to_positive_ratio():
    # 2 positives, 4 negatives: w = 2. Rank 1: TP=1, FP=0 -> 1. Rank 3: TP=2, FP=1 -> 2 / (2 + 1/2) = 0.8.
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    positive = np.array([1, 0, 1, 0, 0, 0], bool)
    assert S.calibrated_average_precision(scores, positive) == pytest.approx((1 + 0.8) / 2)
    assert S.average_precision(scores, positive) == pytest.approx((1 + 2 / 3) / 2)


def test_calibrated_ap_equals_ap_when_classes_are_balanced_and_exceeds_it_when_rare():
    rng = np.random.default_rng(0)
    scores = rng.random(40)
    balanced = np.arange(40) % 2 == 0
    assert S.calibrated_average_precision(scores, balanced) == pytest.approx(S.average_precision(scores, balanced))
    rare = np.arange(40) % 5 == 0
    assert S.calibrated_average_precision(scores, rare) > S.average_precision(scores, rare)


def test_calibrated_ap_edge_cases():
    assert S.calibrated_average_precision(np.array([0.3, 0.2]), np.array([1, 1], bool)) == 1.0  # no negative
    assert math.isnan(S.calibrated_average_precision(np.array([0.3]), np.array([0], bool)))


@pytest.mark.parametrize("decimals", [None, 1])  # None: no ties; 1: many tied scores
def test_per_class_ap_and_map_match_scikit_learn(decimals):
    rng = np.random.default_rng(1)
    n, k, background = 600, 5, 4
    labels = rng.integers(0, k, n)
    probs = rng.dirichlet(np.ones(k), n) + 0.3 * np.eye(k)[labels]  # informative but imperfect scores
    probs /= probs.sum(axis=1, keepdims=True)
    if decimals is not None:
        probs = np.round(probs, decimals)
    ap = S.per_class_ap(probs, labels)
    expected = [average_precision_score(labels == c, probs[:, c]) for c in range(k)]
    np.testing.assert_allclose(ap, expected, rtol=1e-12)
    assert S.mean_ap(ap, background) == pytest.approx(np.mean(expected[:background]))


def test_map_leaves_out_the_background_and_classes_without_positives():
    assert S.mean_ap(np.array([0.5, np.nan, 0.9, 0.1]), background=3) == pytest.approx(0.7)
    assert math.isnan(S.mean_ap(np.array([np.nan, 0.2]), background=1))


# ---------------------------------------------------------------------------------------------------
# NLL, reliability, ECE, risk-coverage


def test_nll_is_the_mean_negative_log_probability_of_the_true_class():
    probs = np.array([[0.5, 0.5], [0.25, 0.75]])
    assert S.nll(probs, np.array([0, 1])) == pytest.approx(-(math.log(0.5) + math.log(0.75)) / 2)
    # A true class rounded to 0 in a file costs -log(NLL_FLOOR), not infinity.
    assert S.nll(np.array([[1.0, 0.0]]), np.array([1])) == pytest.approx(-math.log(S.NLL_FLOOR))


def test_reliability_bins_and_ece_on_a_hand_made_case():
    # 10 frames at 0.95 with 9 correct (gap 0.05), 4 frames at 0.25 with 1 correct (gap 0).
    conf = np.array([0.95] * 10 + [0.25] * 4)
    correct = np.array([True] * 9 + [False] + [True] + [False] * 3)
    mean_conf, accuracy, count = S.reliability(conf, correct)
    assert count[14] == 10 and count[3] == 4 and count.sum() == 14
    assert mean_conf[14] == pytest.approx(0.95) and accuracy[14] == pytest.approx(0.9)
    assert accuracy[3] == pytest.approx(0.25)
    assert np.isnan(mean_conf[0]) and np.isnan(accuracy[0])  # empty bin
    assert S.ece(conf, correct) == pytest.approx(10 / 14 * 0.05)


def test_reliability_bins_are_closed_on_the_right():
    _, _, count = S.reliability(np.array([0.0, 1.0, 0.5]), np.array([True, True, True]))
    assert count[0] == 1 and count[14] == 1 and count[7] == 1  # 0.5 is in (7/15, 8/15]


def test_ece_is_zero_when_confidence_matches_accuracy():
    conf = np.array([0.6] * 5 + [1.0] * 3)
    correct = np.array([True, True, True, False, False, True, True, True])
    assert S.ece(conf, correct) == pytest.approx(0.0, abs=1e-12)


def test_risk_coverage_abstains_below_each_threshold():
    conf = np.array([0.2, 0.5, 0.9, 0.95])
    correct = np.array([False, False, True, True])
    abstained, accuracy = S.risk_coverage(conf, correct, thresholds=(0.0, 0.5, 0.92, 1.0))
    np.testing.assert_allclose(abstained, [0.0, 0.25, 0.75, 1.0])
    np.testing.assert_allclose(accuracy[:3], [0.5, 2 / 3, 1.0])
    assert np.isnan(accuracy[3])  # nothing kept


# ---------------------------------------------------------------------------------------------------
# Detection delay


def test_detection_delay_per_segment_and_missed_segments():
    b, a, c = 0, 1, 2
    truth = np.array([b, b, a, a, a, b, c, c, b, a, a])
    pred = np.array([b, a, b, b, a, b, b, b, b, a, a])  # early 'a' at frame 1 is outside any 'a' segment
    delays, missed = S.detection_delays(truth, pred, background=b)
    assert delays == [2, 0] and missed == 1
    summary = S.delay_summary(delays, [d / 10 for d in delays], missed)
    assert summary == {"segments": 3, "detected": 2, "missed": 1, "median_frames": 1.0, "p90_frames": 1.8,
                       "median_s": pytest.approx(0.1), "p90_s": pytest.approx(0.18)}


def test_detection_delay_ignores_background_and_ignored_frames():
    truth = np.array([1, 1, 0, -1, -1])
    delays, missed = S.detection_delays(truth, np.array([0, 1, 0, 0, 0]), background=0)
    assert (delays, missed) == ([1], 0)
    empty = S.delay_summary([], None, 2)
    assert empty["segments"] == 2 and empty["median_frames"] is None and empty["p90_s"] is None


# ---------------------------------------------------------------------------------------------------
# FrameScores: pooling videos into one report

CLASSES = ["wolf", "dog", "unknown"]


def _video(rng, n):
    truth = np.repeat(rng.integers(0, 3, n // 10), 10)
    probs = rng.dirichlet(np.ones(3), len(truth)) + np.eye(3)[truth]
    return truth, probs / probs.sum(axis=1, keepdims=True)


def test_frame_scores_pools_videos_as_the_functions_do_on_the_concatenation():
    rng = np.random.default_rng(2)
    videos = [_video(rng, 80), _video(rng, 50)]
    acc = S.FrameScores(CLASSES, background=2)
    for truth, probs in videos:
        acc.add(truth, probs.argmax(axis=1), probs=probs, fps=25.0)
    report = acc.report()
    truth = np.concatenate([v[0] for v in videos])
    probs = np.concatenate([v[1] for v in videos]).astype(np.float32)
    ap = S.per_class_ap(probs, truth)
    assert report["per_class_ap"] == pytest.approx(dict(zip(CLASSES, ap, strict=True)))
    assert report["map"] == pytest.approx(S.mean_ap(ap, 2))
    assert report["cmap"] == pytest.approx(S.mean_ap(S.per_class_ap(probs, truth, calibrated=True), 2))
    correct = probs.argmax(axis=1) == truth
    assert report["ece"] == pytest.approx(S.ece(probs.max(axis=1), correct))
    assert report["nll"] == pytest.approx(S.nll(probs, truth))
    assert sum(report["reliability"]["count"]) == len(truth)
    assert report["risk_coverage"]["abstained"][0] == 0.0
    assert report["detection_delay"]["median_s"] is not None
    assert report["skipped"] == {}


def test_frame_scores_from_labels_only_skips_the_probability_metrics_and_says_so():
    acc = S.FrameScores(CLASSES, background=2)
    acc.add(np.array([0, 0, 1, 2]), np.array([0, 0, 2, 2]), name="a.csv")
    report = acc.report()
    assert set(report["skipped"]) == {"map", "cmap", "per_class_ap", "per_class_cap", "nll", "ece",
                                      "reliability", "risk_coverage", "detection_delay_s"}
    assert "a.csv" in report["skipped"]["map"]
    assert "map" not in report and "ece" not in report
    assert report["detection_delay"]["detected"] == 1 and report["detection_delay"]["missed"] == 1


def test_frame_scores_with_confidence_only_still_gets_calibration_metrics():
    acc = S.FrameScores(CLASSES, background=2)
    acc.add(np.array([0, 1, -1]), np.array([0, 0, 0]), confidence=np.array([0.9, 0.6, 0.99]), fps=10)
    report = acc.report()
    assert "map" in report["skipped"] and "ece" not in report["skipped"]
    # Two kept frames (the ignored one is left out): bin of 0.9 is right, bin of 0.6 wrong.
    assert report["ece"] == pytest.approx(0.5 * 0.1 + 0.5 * 0.6)
