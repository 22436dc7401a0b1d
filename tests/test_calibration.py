"""Temperature scaling: T recovers a known over-/under-confidence, and never makes NLL worse."""

import numpy as np
import pytest

from lstm_tv import scores
from lstm_tv.calibration import TEMPERATURE_BOUNDS, apply_temperature, fit_temperature, temperature_nll
from lstm_tv.errors import LstmTvError


def calibrated_data(n=20000, k=5, seed=0):
    """Logits and labels drawn from softmax(logits): calibrated by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, (n, k))
    probs = apply_temperature(logits, 1.0).astype(np.float64)
    labels = (probs.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return logits, labels


def top_ece(probs, labels):
    return scores.ece(probs.max(axis=1), probs.argmax(axis=1) == labels)


def test_calibrated_logits_get_a_temperature_of_one():
    logits, labels = calibrated_data()
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("factor", [3.0, 0.5])  # over-confident, under-confident
def test_scaled_logits_get_the_scale_back_and_ece_drops(factor):
    logits, labels = calibrated_data()
    scaled = logits * factor
    t = fit_temperature(scaled, labels)
    assert t == pytest.approx(factor, rel=0.05)
    before, after = top_ece(apply_temperature(scaled, 1.0), labels), top_ece(apply_temperature(scaled, t), labels)
    assert after < before / 3 and after < 0.02
    assert temperature_nll(scaled, labels, t) < temperature_nll(scaled, labels)


def test_the_fitted_temperature_is_the_minimum_of_nll():
    logits, labels = calibrated_data(n=5000, seed=1)
    logits = logits * 2.0
    t = fit_temperature(logits, labels)
    best = temperature_nll(logits, labels, t)
    for nearby in (t * 0.98, t * 1.02, 1.0):
        assert temperature_nll(logits, labels, nearby) >= best


def test_ignored_frames_are_skipped():
    logits, labels = calibrated_data(n=4000, seed=2)
    junk = np.random.default_rng(3).normal(0, 50, (1000, logits.shape[1]))
    with_ignored = np.concatenate([logits, junk]), np.concatenate([labels, np.full(500, -1), np.full(500, -100)])
    assert fit_temperature(*with_ignored) == pytest.approx(fit_temperature(logits, labels), rel=1e-9)


def test_degenerate_data_stays_within_bounds():
    # Perfectly separated and always right: sharper is always better, T goes to the lower bound.
    labels = np.arange(100) % 3
    separated = 5.0 * np.eye(3)[labels]
    assert fit_temperature(separated, labels) == pytest.approx(TEMPERATURE_BOUNDS[0], rel=1e-3)
    # Constant logits say nothing: every T is the same, and 1 is returned.
    assert fit_temperature(np.zeros((10, 4)), np.arange(10) % 4) == 1.0


def test_float32_logits_give_the_same_temperature_as_float64():
    logits, labels = calibrated_data(n=5000, seed=4)
    assert fit_temperature(logits.astype(np.float32) * 3, labels) == pytest.approx(fit_temperature(logits * 3, labels),
                                                                                    rel=1e-5)


def test_apply_temperature_is_softmax_of_logits_over_t():
    logits = np.array([[2.0, 0.0, -1.0], [1000.0, 0.0, 0.0]])  # second row would overflow a naive exp
    probs = apply_temperature(logits, 2.0)
    e = np.exp(np.array([1.0, 0.0, -0.5]))
    np.testing.assert_allclose(probs[0], e / e.sum(), rtol=1e-6)
    np.testing.assert_allclose(probs[1], [1.0, 0.0, 0.0], atol=1e-7)
    with pytest.raises(ValueError):
        apply_temperature(logits, 0.0)


def test_no_labelled_frame_is_a_one_line_error():
    with pytest.raises(LstmTvError, match="no labelled frames"):
        fit_temperature(np.zeros((3, 2)), np.full(3, -100))
