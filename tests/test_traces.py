"""Bounded traces: per-frame rows of a video of any length kept as exact bin means in bounded memory."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstm_tv.traces import BoundedTrace


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 40), min_size=1, max_size=12), cap=st.integers(1, 6))
def test_bounded_trace_keeps_exact_bin_means_in_bounded_memory(sizes, cap):
    rng = np.random.default_rng(len(sizes))
    rows = rng.normal(size=(sum(sizes), 3))
    times = np.arange(len(rows)) / 24
    trace = BoundedTrace(3, cap)
    start = 0
    for n in sizes:                                                             # chunks of any size
        trace.add(times[start:start + n], rows[start:start + n])
        start += n
    b = trace.result()
    assert len(b.start) <= 2 * cap + 1 and b.count.sum() == len(rows)
    assert len(b.start) == len(rows) if len(rows) <= 2 * cap else len(b.start) >= cap
    assert b.start[0] == 0 and np.all(np.diff(b.start) == b.count[:-1])        # consecutive, no gap
    for s, n, mean, t in zip(b.start, b.count, b.mean, b.time, strict=True):
        np.testing.assert_allclose(mean, rows[s:s + n].mean(axis=0), atol=1e-12)
        assert t == times[s]
    assert trace.result(frame_time=1 / 24).edges[-1] == pytest.approx(times[-1] + 1 / 24)
