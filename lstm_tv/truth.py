"""A video's true labels, given to ``predict`` or ``explain`` with ``--labels``, read as its frames stream by."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from lstm_tv.data.labels import fit_length, read_frame_labels, read_segments, segments_to_frames
from lstm_tv.errors import LabelError


class TruthLabels:
    """A video's true labels from a per-frame ``.txt`` or a segment ``.csv`` (docs/formats.md, raw layout).

    Read before decoding, so a bad file fails before any work; :meth:`for_chunk` gives each
    chunk's labels as frames stream by (segments need the frame times), :meth:`finish` checks the
    frame count at the end with the tolerance of ``prepare``. Nothing per frame is kept beyond
    the file's own labels.
    """

    def __init__(self, path: str | Path, classes: Sequence[str], background: str) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix == ".txt":
            labels = read_frame_labels(self.path, list(classes))
            self.frame_labels: np.ndarray | None = np.asarray(labels, dtype=np.int64)
            self.segments = None
        elif suffix == ".csv":
            self.frame_labels, self.segments = None, read_segments(self.path, list(classes))
        elif self.path.is_file():
            raise LabelError(f"{self.path}: labels must be a per-frame .txt or a segment .csv")
        else:
            raise LabelError(f"{self.path}: file not found")
        self.num_classes, self.background = len(classes), list(classes).index(background)

    def check_count(self, frames: int) -> None:
        """Fail early when the container's frame count (0 = unknown) is far from the label count."""
        if self.frame_labels is not None and frames:
            fit_length(self.frame_labels.tolist(), frames, self.path)

    def for_chunk(self, start: int, times: np.ndarray) -> np.ndarray:
        """(T,) true class per frame of the chunk starting at frame ``start``."""
        if self.frame_labels is not None:
            # Frames past the end repeat the last label (prepare's tolerance; finish() checks the count).
            idx = np.minimum(np.arange(start, start + len(times)), len(self.frame_labels) - 1)
            labels = self.frame_labels[idx]
        else:
            labels = np.asarray(segments_to_frames(self.segments, times.tolist(), self.background), dtype=np.int64)
        return labels

    def one_hot(self, labels: np.ndarray) -> np.ndarray:
        """(T,) labels -> (T, K) one-hot rows: their bin means in a BoundedTrace are class shares."""
        return np.eye(self.num_classes)[labels]

    def finish(self, frames: int) -> str | None:
        """Check a ``.txt`` file's length against the decoded frame count.

        Returns:
            A warning for a difference of 1-2 frames (container rounding), else None.
        Raises:
            LabelError: more than 2 frames apart (as ``prepare``).
        """
        if self.frame_labels is None:
            return None
        return fit_length(self.frame_labels.tolist(), frames, self.path)[1]
