"""Prediction writers: what ``predict --out`` writes, one class per format, chosen by name.

Every writer consumes the :class:`~lstm_tv.stream.PredictedChunk` s of one video, in order, and writes
text to a file object it is given::

    writer = WRITERS["csv"](file, classes)
    writer.open()                 # header, if the format has one
    for chunk in predict_video(...):
        writer.write(chunk)       # rows as the frames stream by: memory does not grow with the video
    writer.close()                # footer, or the last segment

Two kinds fit this interface. Frame writers (``csv``, ``jsonl``; docs/formats.md, predictions) write
one row per decoded frame. Segment writers derive from :class:`SegmentWriter`, which turns the frame
labels into maximal runs of one label and hands each run to :meth:`SegmentWriter.write_segment` once
it has ended (the last one at :meth:`~PredictionWriter.close`): an events list or an annotation
tool's format is then one class with that method. :func:`open_writer` writes a file atomically (a
temporary file renamed when the video is done) or streams to an open text file, such as stdout.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Iterator, Sequence, TextIO

import numpy as np

from lstm_tv.errors import LstmTvError
from lstm_tv.stream import PredictedChunk

FIGURE_SUFFIXES = (".png", ".pdf", ".svg")  # what --timeline (predict) and --out (explain) may end in


@dataclass(frozen=True)
class VideoContext:
    """What a format may need to know of the video besides its frames (annotation tools do)."""

    name: str = ""             # the video's file name, as the tool knows it
    background: str | None = None
    width: int = 0
    height: int = 0


class PredictionWriter:
    """Interface of every writer: :meth:`open`, then :meth:`write` per chunk in order, then :meth:`close`.

    Args:
        file: an open text file (newline="\\n" for files: rows end in LF on every platform).
        classes: class names in the checkpoint's order.
        frame_time: how long one frame lasts (1 / fps), for formats that need the end of the last frame.
        video: the video's name, size and background class, for formats that record them.

    Class attributes:
        name: the format's name (``WRITERS`` key), set by :func:`register_writer`.
        suffix: the file ending of this format's files.
        by_suffix: whether ``--out FILE`` with that ending picks this format without ``--format``
            (False where an ending is shared: ``.json`` is Label Studio's and ActivityNet's).
    """

    name: ClassVar[str] = ""
    suffix: ClassVar[str] = ""
    by_suffix: ClassVar[bool] = True

    def __init__(self, file: TextIO, classes: Sequence[str], *, frame_time: float | None = None,
                 video: VideoContext | None = None) -> None:
        self.file, self.classes, self.frame_time = file, list(classes), frame_time
        self.video = video or VideoContext()

    def open(self) -> None:
        """Write what comes before the first frame (nothing by default)."""

    def write(self, chunk: PredictedChunk) -> None:
        """Write the predictions of the next consecutive frames of the video."""
        raise NotImplementedError

    def close(self) -> None:
        """Write what comes after the last frame (nothing by default); the caller closes the file."""


WRITERS: dict[str, type[PredictionWriter]] = {}


def register_writer(name: str):
    """Class decorator: make a :class:`PredictionWriter` subclass the format ``name``."""

    def wrap(cls: type[PredictionWriter]) -> type[PredictionWriter]:
        if name in WRITERS:
            raise ValueError(f"prediction format {name!r} is already registered")
        cls.name = name
        WRITERS[name] = cls
        return cls

    return wrap


def prediction_suffixes(fmt: str | None = None) -> tuple[str, ...]:
    """The file endings ``--out FILE`` accepts: ``fmt``'s, or those that pick a format by themselves
    (the first is the default for ``--out DIR``)."""
    if fmt is not None:
        return (WRITERS[fmt].suffix,)
    return tuple(cls.suffix for cls in WRITERS.values() if cls.by_suffix)


def format_for(path: str | Path, fmt: str | None = None) -> str:
    """``fmt`` when given (checked), else the format whose suffix ``path`` ends in (case-insensitive).

    Raises:
        LstmTvError: an unknown ``fmt``, or no format ends that way.
    """
    if fmt is not None:
        if fmt not in WRITERS:
            raise LstmTvError(f"--format {fmt}: unknown; choose from {', '.join(WRITERS)}")
        return fmt
    name = str(path).lower()
    matches = [cls for cls in WRITERS.values() if cls.by_suffix and name.endswith(cls.suffix)]
    if not matches:
        raise LstmTvError(f"{path}: --out must end in {' or '.join(prediction_suffixes())} "
                          f"(or be an existing directory; other formats with --format)")
    return max(matches, key=lambda cls: len(cls.suffix)).name


@contextlib.contextmanager
def open_writer(target: str | Path | TextIO, fmt: str, classes: Sequence[str], *,
                frame_time: float | None = None, video: VideoContext | None = None) -> Iterator[PredictionWriter]:
    """A writer of format ``fmt``, opened; closed when the block ends without an error.

    A path is written under a temporary name beside it and renamed into place at the end, so an
    error leaves no file that looks complete; an open text file (``sys.stdout``) is written as is.
    """
    from lstm_tv.fileio import atomic_path

    cls = WRITERS[fmt]
    if not isinstance(target, (str, Path)):
        writer = cls(target, classes, frame_time=frame_time, video=video)
        writer.open()
        yield writer
        writer.close()
        return
    path = Path(target)
    with atomic_path(path, suffix=path.suffix) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as file:
        writer = cls(file, classes, frame_time=frame_time, video=video)
        writer.open()
        yield writer
        writer.close()


# ---------------------------------------------------------------------------------------------------
# Frame rows: docs/formats.md, predictions


class FrameRowWriter(PredictionWriter):
    """One row per frame: ``frame, time, label, confidence, p_<class>...``; subclasses format the rows."""

    def __init__(self, file: TextIO, classes: Sequence[str], **context) -> None:
        super().__init__(file, classes, **context)
        self.keys = ["frame", "time", "label", "confidence"] + [f"p_{c}" for c in self.classes]

    def write(self, chunk: PredictedChunk) -> None:
        probs = np.round(chunk.probs.astype(np.float64), 6)  # 6 decimals: well below any meaningful difference
        conf = probs.max(axis=1).tolist()
        labels = chunk.labels.tolist()
        times = np.round(chunk.times, 6).tolist()
        lines = [self.format_row([chunk.start + j, times[j], self.classes[labels[j]], conf[j], *row])
                 for j, row in enumerate(probs.tolist())]
        self.file.write("\n".join(lines) + "\n")

    def format_row(self, values: list) -> str:
        """One frame's line (without its newline) from its values in :attr:`keys` order."""
        raise NotImplementedError


@register_writer("csv")
class CsvWriter(FrameRowWriter):
    """Comma-separated rows under a header line of the keys."""

    suffix = ".csv"

    def open(self) -> None:
        self.file.write(",".join(self.keys) + "\n")

    def format_row(self, values: list) -> str:
        return ",".join(map(str, values))


@register_writer("jsonl")
class JsonlWriter(FrameRowWriter):
    """One JSON object per line, keyed as the CSV's header."""

    suffix = ".jsonl"

    def format_row(self, values: list) -> str:
        return json.dumps(dict(zip(self.keys, values, strict=True)))


# ---------------------------------------------------------------------------------------------------
# Segments: maximal runs of one predicted label


@dataclass(frozen=True)
class Segment:
    """A maximal run of frames with one predicted label.

    Attributes:
        label: class index.
        start, end: first frame and one past the last (frame indices, from 0).
        start_time: time of the first frame; ``end_time``: when the last frame ends (the next
            segment's start, or the last frame's time plus one frame for the last segment).
        confidence: mean probability of the label over the run's frames.
    """

    label: int
    start: int
    end: int
    start_time: float
    end_time: float
    confidence: float

    @property
    def frames(self) -> int:
        return self.end - self.start


class SegmentWriter(PredictionWriter):
    """Base of per-segment formats: turns streamed frame labels into closed :class:`Segment` s.

    Only the open run is kept between chunks, so memory does not grow with the video. Subclasses
    implement :meth:`write_segment` (and may override :meth:`open` and :meth:`close`, calling this
    class's ``close`` first so the last segment is written).
    """

    def __init__(self, file: TextIO, classes: Sequence[str], **context) -> None:
        super().__init__(file, classes, **context)
        self._run: list | None = None  # [label, start, start_time, confidence sum, frames] of the open run
        self._end, self._last_time, self._step = 0, 0.0, 0.0

    def write(self, chunk: PredictedChunk) -> None:
        labels, conf, times = chunk.labels, chunk.confidence, chunk.times
        cuts = np.flatnonzero(np.diff(labels)) + 1  # first frame of each new run inside the chunk
        for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), len(labels)], strict=True):
            label = int(labels[a])
            if self._run is not None and self._run[0] != label:
                self._close_run(float(times[a]))
            if self._run is None:
                self._run = [label, chunk.start + a, float(times[a]), 0.0, 0]
            self._run[3] += float(conf[a:b].sum())
            self._run[4] += b - a
        if len(times) > 1:
            self._step = float(times[-1] - times[-2])
        elif self._end:
            self._step = float(times[-1]) - self._last_time
        self._end, self._last_time = chunk.start + len(chunk), float(times[-1])

    def _close_run(self, end_time: float) -> None:
        label, start, start_time, total, count = self._run
        self.write_segment(Segment(label, start, start + count, start_time, end_time, total / count))
        self._run = None

    def close(self) -> None:
        """Write the last, still open segment."""
        if self._run is not None:
            step = self.frame_time or self._step or 1.0 / 25  # a one-frame video of unknown rate: any width
            self._close_run(self._last_time + step)

    def write_segment(self, segment: Segment) -> None:
        """Write one closed segment."""
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------------
# Annotation tools: predictions as pre-annotations to correct (docs/annotation-tools.md)


class ToolWriter(PredictionWriter):
    """A video's predictions in an annotation tool's import format, rendered when the video ends.

    These formats are one document per video (XML, JSON), so the frames' labels and confidences are
    kept until :meth:`close` -- 6 bytes a frame (5 MB for ten hours at 24 fps), not the frames.
    """

    by_suffix = False
    render: ClassVar = None  # the annotation_tools module's render(Predictions) -> str

    def __init__(self, file: TextIO, classes: Sequence[str], **context) -> None:
        super().__init__(file, classes, **context)
        self._labels: list[np.ndarray] = []
        self._confidence: list[np.ndarray] = []
        self._times: list[np.ndarray] = []

    def write(self, chunk: PredictedChunk) -> None:
        self._labels.append(chunk.labels.astype(np.int16))
        self._confidence.append(chunk.confidence.astype(np.float32))
        self._times.append(chunk.times)

    def close(self) -> None:
        from lstm_tv.data.annotation_tools import Predictions

        times = np.concatenate(self._times) if self._times else np.zeros(0)
        fps = 1.0 / self.frame_time if self.frame_time else 25.0
        pred = Predictions(self.video.name, np.concatenate(self._labels).tolist() if self._labels else [],
                           np.concatenate(self._confidence).tolist() if self._confidence else [],
                           self.classes, self.video.background, fps, self.video.width, self.video.height,
                           times.tolist())
        self.file.write(type(self).render(pred))


def _register_tool_formats() -> None:
    """One :class:`ToolWriter` per format that ``lstm_tv.data.annotation_tools`` can write."""
    from lstm_tv.data.annotation_tools import WRITERS as TOOL_WRITERS

    for name, (render, suffix) in TOOL_WRITERS.items():
        register_writer(name)(type(f"{name.title()}Writer", (ToolWriter,),
                                   {"suffix": suffix, "render": staticmethod(render), "__doc__": render.__doc__}))


_register_tool_formats()

