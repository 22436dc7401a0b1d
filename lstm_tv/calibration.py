"""Temperature scaling (Guo et al. 2017): one T > 0 per model, fitted on validation logits by NLL.

Calibrated probabilities are ``softmax(logits / T)``: the ranking of classes (and so every label and
AP) is unchanged, only how sure the model says it is. ``NLL(beta)`` with ``beta = 1 / T`` is convex
(log-sum-exp of a linear function minus a linear term), so a safeguarded Newton search on ``beta`` finds
its single minimum in a handful of passes over the logits: deterministic, no optimiser state, no torch.
"""

from __future__ import annotations

import numpy as np

from lstm_tv.errors import LstmTvError

# Search range for T. Below 0.05 or above 20 the data is degenerate (perfectly separated, or logits
# carry no information); the bound is then returned rather than a runaway value.
TEMPERATURE_BOUNDS = (0.05, 20.0)
_MAX_STEPS = 100
_TOLERANCE = 1e-7  # relative change of T at which the search stops (float32 logits carry ~1e-7)


def _labelled(logits, labels) -> tuple[np.ndarray, np.ndarray]:
    """Float32 logits shifted so each row's maximum is 0 (softmax is shift-free), for labelled frames only.

    Float32 because numpy's float32 exp is ~10x faster than float64's on large negative logits; the
    means below accumulate in float64, and T agrees with a float64 search to ~1e-8.
    """
    logits, labels = np.asarray(logits), np.asarray(labels)
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"need logits (N, K) and labels (N,), got {logits.shape} and {labels.shape}")
    if labels.size and labels.max() >= logits.shape[1]:
        raise ValueError(f"label {labels.max()} out of range for {logits.shape[1]} classes")
    keep = labels >= 0  # negative labels are ignored frames (padding: -100, or -1)
    z = logits[keep].astype(np.float32)
    return z - z.max(axis=1, keepdims=True), labels[keep]


def _softmax(z: np.ndarray) -> np.ndarray:
    """Row softmax of (N, K) logits."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _gradient(z: np.ndarray, z_true: np.ndarray, beta: float) -> tuple[float, float]:
    """First and second derivative of the mean NLL of ``softmax(beta * z)`` with respect to beta.

    ``d/dbeta = mean(E_p[z] - z_true)``, ``d2/dbeta2 = mean(Var_p[z]) >= 0`` with ``p = softmax(beta z)``.
    """
    e = np.exp(np.float32(beta) * z)  # rows' maximum is 0 and beta > 0: no overflow, no shift needed
    ones = np.ones(z.shape[1], dtype=np.float32)
    ez = e * z
    # Row sums as matrix-vector products: numpy's sum over a short last axis is several times slower.
    norm = e @ ones
    mean_z = (ez @ ones) / norm
    return (float(np.mean(mean_z - z_true, dtype=np.float64)),
            float(np.mean((ez * z) @ ones / norm - mean_z ** 2, dtype=np.float64)))


def fit_temperature(logits, labels, *, bounds: tuple[float, float] = TEMPERATURE_BOUNDS) -> float:
    """The temperature T minimising the mean NLL of ``softmax(logits / T)`` on the labelled frames.

    Args:
        logits: (N, K) validation logits (numpy, or a CPU tensor).
        labels: (N,) true class indices; negative values (ignored frames) are skipped.
        bounds: the range searched; T is clipped to it when the minimum lies outside.
    Returns:
        T > 0; 1.0 when the logits carry no information (all rows constant) or when every frame's top
        class is right: then the NLL only falls as T -> 0, so the fit would push T to its lower bound and
        make every later mistake near-certain (seen on the synthetic data, whose validation split a trained
        model gets 100% right). Such a split holds no evidence about over-confidence, so T stays 1.
    Raises:
        LstmTvError: no labelled frame to fit on.
    """
    z, y = _labelled(logits, labels)
    if not len(y):
        raise LstmTvError("temperature: no labelled frames to fit on (is the validation split empty?)")
    if not z.any():  # every row constant: every T gives the same (uniform) probabilities
        return 1.0
    if (z.argmax(axis=1) == y).all():
        return 1.0
    z_true = z[np.arange(len(y)), y]
    # Newton on beta = 1/T from T = 1 inside a bracket that shrinks on every step (g increases with
    # beta: the NLL is convex); a step leaving the bracket is replaced by bisection, so it never diverges.
    # Usually 3-8 passes over the logits; a minimum beyond the bounds ends at (within 0.1% of) the bound.
    lo, hi = 1.0 / bounds[1], 1.0 / bounds[0]
    beta = min(max(1.0, lo), hi)
    for _ in range(_MAX_STEPS):
        g, h = _gradient(z, z_true, beta)
        if g == 0:
            break
        lo, hi = (beta, hi) if g < 0 else (lo, beta)
        step = beta - g / h if h > 0 else np.nan
        beta = step if lo <= step <= hi else 0.5 * (lo + hi)
        if abs(g) <= _TOLERANCE * h * beta or hi - lo <= _TOLERANCE * beta:
            break
    return float(1.0 / beta)


def apply_temperature(logits, temperature: float) -> np.ndarray:
    """(N, K) calibrated probabilities ``softmax(logits / temperature)`` as float32."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z = np.asarray(logits, dtype=np.float64) / temperature
    return _softmax(z).astype(np.float32)


def temperature_nll(logits, labels, temperature: float = 1.0) -> float:
    """Mean NLL of the true class under ``softmax(logits / temperature)`` (negative labels skipped)."""
    z, y = _labelled(logits, labels)
    z = z.astype(np.float64) / temperature
    log_norm = np.log(np.sum(np.exp(z), axis=1))  # rows' maximum is 0: no overflow
    return float(np.mean(log_norm - z[np.arange(len(y)), y]))
