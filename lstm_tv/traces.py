"""Bounded per-frame summaries: timelines and explain figures of arbitrarily long videos in bounded memory.

A :class:`BoundedTrace` takes per-frame rows of numbers as the frames stream by and keeps them in at
most ``2 * cap`` bins of consecutive frames, doubling the bin width when it runs out; :class:`Binned`
is what it gives back for a figure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Binned:
    """Per-frame rows averaged over bins of consecutive frames (see :class:`BoundedTrace`).

    Attributes:
        start: (B,) first frame of each bin.
        time: (B,) time of each bin's first frame (seconds).
        count: (B,) frames in each bin.
        mean: (B, D) mean row of each bin.
        end_time: time just after the last frame (its time plus one frame).
    """

    start: np.ndarray
    time: np.ndarray
    count: np.ndarray
    mean: np.ndarray
    end_time: float

    @property
    def edges(self) -> np.ndarray:
        """(B + 1,) bin boundaries in seconds, for strips and step plots."""
        return np.append(self.time, self.end_time)


class BoundedTrace:
    """Keep per-frame rows of D numbers for a video of any length in bounded memory.

    Rows go into bins of ``stride`` consecutive frames (1 at first). When ``2 * cap`` bins are full,
    neighbouring bins are merged pairwise and ``stride`` doubles, so a video of N frames ends with
    between ``cap`` and ``2 * cap`` bins (or N bins of one frame when N <= 2 * cap): plenty of
    points for a figure, at most ``2 * cap * D`` numbers whatever the video's length.

    Args:
        width: D, numbers per frame.
        cap: half the most bins kept.
    """

    def __init__(self, width: int, cap: int = 2048) -> None:
        if cap < 1:
            raise ValueError(f"cap must be >= 1, got {cap}")
        self.width, self.cap, self.stride = width, cap, 1
        self._sum = np.zeros((2 * cap, width))
        self._start = np.zeros(2 * cap, dtype=np.int64)
        self._time = np.zeros(2 * cap)
        self._bins = 0
        self._partial = np.zeros(width)  # the bin being filled
        self._partial_count = 0
        self._partial_start, self._partial_time = 0, 0.0
        self.frames = 0
        self._last_time, self._step = 0.0, 0.0

    def add(self, times: np.ndarray, rows: np.ndarray) -> None:
        """Append consecutive frames: ``times`` (T,) in seconds and ``rows`` (T, D)."""
        rows = np.asarray(rows, dtype=np.float64).reshape(len(times), self.width)
        times = np.asarray(times, dtype=np.float64)
        i, n = 0, len(times)
        while i < n:
            if self._bins == 2 * self.cap:
                self._halve()
            if self._partial_count == 0:
                # Fast path: whole bins straight from the rows, (m * stride, D) -> (m, stride, D) -> (m, D).
                m = min((n - i) // self.stride, 2 * self.cap - self._bins)
                if m:
                    end = i + m * self.stride
                    b = slice(self._bins, self._bins + m)
                    self._sum[b] = rows[i:end].reshape(m, self.stride, self.width).sum(axis=1)
                    self._start[b] = self.frames + np.arange(i, end, self.stride)
                    self._time[b] = times[i:end:self.stride]
                    self._bins += m
                    i = end
                    continue
                self._partial_start, self._partial_time = self.frames + i, times[i]
            take = min(self.stride - self._partial_count, n - i)
            self._partial += rows[i:i + take].sum(axis=0)
            self._partial_count += take
            i += take
            if self._partial_count == self.stride:
                self._sum[self._bins] = self._partial
                self._start[self._bins], self._time[self._bins] = self._partial_start, self._partial_time
                self._bins += 1
                self._partial[:] = 0
                self._partial_count = 0
        if n:
            if n > 1:
                self._step = float(times[-1] - times[-2])
            elif self.frames:
                self._step = float(times[-1] - self._last_time)
            self._last_time = float(times[-1])
        self.frames += n

    def _halve(self) -> None:
        k = self._bins // 2  # _bins == 2 * cap: even
        self._sum[:k] = self._sum[0:2 * k:2] + self._sum[1:2 * k:2]
        self._start[:k] = self._start[0:2 * k:2]
        self._time[:k] = self._time[0:2 * k:2]
        self._bins = k
        self.stride *= 2

    def result(self, frame_time: float | None = None) -> Binned:
        """The bins so far (the partly filled last one included).

        Args:
            frame_time: how long the last frame lasts (1 / fps), for the end time; default: the
                spacing of the last two frames.
        """
        b = self._bins
        counts = np.full(b, self.stride, dtype=np.int64)
        sums, starts, times = self._sum[:b], self._start[:b], self._time[:b]
        if self._partial_count:
            sums = np.vstack([sums, self._partial])
            starts = np.append(starts, self._partial_start)
            times = np.append(times, self._partial_time)
            counts = np.append(counts, self._partial_count)
        step = frame_time or self._step or 1.0 / 25  # a one-frame video of unknown rate: any visible width
        return Binned(starts.copy(), times.copy(), counts, sums / np.maximum(counts, 1)[:, None],
                      self._last_time + step if self.frames else 0.0)


def draw_timeline(path, binned: Binned, classes, background: str | None, *, title: str, truth: bool = False) -> None:
    """The timeline figure of ``predict --timeline`` from a trace of rows ``probabilities (K), confidence
    [, truth one-hot (K)]``: the most probable label per bin, the confidence, and the truth strip."""
    from lstm_tv import plots  # deferred: matplotlib only when a figure is written

    k, classes = len(classes), list(classes)
    plots.prediction_timeline(
        path, binned.edges, binned.mean[:, :k].argmax(axis=1), binned.mean[:, k], classes,
        plots.class_colours(classes, background),
        truth=binned.mean[:, k + 1:].argmax(axis=1) if truth else None,  # most frequent per bin
        title=title)
