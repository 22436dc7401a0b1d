"""Prediction writers: what ``predict --out`` writes, one class per format, chosen by name.

Every writer consumes the :class:`~lstm_tv.stream.PredictedChunk` s of one video, in order, and writes
text to a file object it is given::

    writer = WRITERS["csv"](file, classes)
    writer.open()                 # header, if the format has one
    for chunk in predict_video(...):
        writer.write(chunk)       # rows as the frames stream by: memory does not grow with the video
    writer.close()                # footer, or the last segment

Frame writers (``csv``, ``jsonl``) write a row per decoded frame; segment writers (:class:`SegmentWriter`:
``events``) a line per maximal run of one label once it ends; tool writers (:class:`ToolWriter`: ``cvat``,
``labelstudio``, ``eaf``, ``mstcn``, ``activitynet``) one document per video at the end. :func:`open_writer`
writes a file atomically (renamed when the video is done) or streams to an open text file such as stdout.
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

    def flush(self) -> None:
        """Push what is written so far to the file (a live run does after every chunk)."""
        self.file.flush()


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
                frame_time: float | None = None, video: VideoContext | None = None,
                **options) -> Iterator[PredictionWriter]:
    """A writer of format ``fmt``, opened; closed when the block ends without an error.

    A path is written under a temporary name beside it and renamed into place at the end, so an
    error leaves no file that looks complete; an open text file (``sys.stdout``, a live run's file)
    is written as is. ``options`` go to the format's class (``live=`` for frame rows, ``min_frames=``
    for segment formats).
    """
    from lstm_tv.fileio import atomic_path

    cls = WRITERS[fmt]
    if not isinstance(target, (str, Path)):
        writer = cls(target, classes, frame_time=frame_time, video=video, **options)
        writer.open()
        yield writer
        writer.close()
        return
    path = Path(target)
    with atomic_path(path, suffix=path.suffix) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as file:
        writer = cls(file, classes, frame_time=frame_time, video=video, **options)
        writer.open()
        yield writer
        writer.close()


# ---------------------------------------------------------------------------------------------------
# Frame rows: docs/formats.md, predictions


class FrameRowWriter(PredictionWriter):
    """One row per frame: ``frame, time, label, confidence, p_<class>...``; subclasses format the rows."""

    def __init__(self, file: TextIO, classes: Sequence[str], *, live: bool = False, **context) -> None:
        super().__init__(file, classes, **context)
        self.keys = ["frame", "time", "label", "confidence"] + [f"p_{c}" for c in self.classes]
        self.live = live
        if live:  # 1 on the first frame after a gap (a reconnect: the model's memory starts again), else 0
            self.keys.append("gap")

    def write(self, chunk: PredictedChunk) -> None:
        probs = np.round(chunk.probs.astype(np.float64), 6)  # 6 decimals: well below any meaningful difference
        conf = probs.max(axis=1).tolist()
        labels = chunk.labels.tolist()
        times = np.round(chunk.times, 6).tolist()
        numbers = chunk.frame_numbers.tolist()
        rows = [[numbers[j], times[j], self.classes[labels[j]], conf[j], *row] for j, row in enumerate(probs.tolist())]
        if self.live:
            for j, row in enumerate(rows):
                row.append(int(j == 0 and chunk.after_gap))
        self.file.write("\n".join(map(self.format_row, rows)) + "\n")

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
    """A maximal run of frames with one predicted label (flicker shorter than ``min_frames`` absorbed).

    Attributes:
        label: class index.
        start, end: first frame and one past the last (frame numbers, from 0).
        start_time: time of the first frame; ``end_time``: when the last frame ends (the next
            segment's start, or the last frame's time plus one frame for the last segment).
        confidence: mean probability of the label over the run's frames that have that label.
        count: frames decided inside it (``end - start`` unless live --realtime dropped some).
    """

    label: int
    start: int
    end: int
    start_time: float
    end_time: float
    confidence: float
    count: int = 0

    @property
    def frames(self) -> int:
        return self.count or self.end - self.start


@dataclass
class _Run:
    """Consecutive frames being gathered into a segment: ``labelled`` of them have ``label``, ``count`` in all."""

    label: int
    start: int
    start_time: float
    confidence: float  # sum over the labelled frames
    labelled: int
    count: int

    def extend(self, other: "_Run") -> None:
        self.confidence += other.confidence
        self.labelled += other.labelled
        self.count += other.count


class SegmentWriter(PredictionWriter):
    """Base of per-segment formats: turns streamed frame labels into closed :class:`Segment` s.

    With ``min_frames`` N > 1, a run of another label shorter than N frames is flicker: it does not
    end the open segment but is absorbed into it (its frames count in the segment's ``count``, not in
    its confidence). A segment closes once a different label has lasted N frames, so it is written N
    frames after its end at the latest; a segment that itself never reached N frames (at the start,
    or after a gap) is absorbed into the one after it. N = 1: maximal runs, nothing absorbed.

    A chunk that follows a gap (a live source reconnected) first closes the open segment at the last
    frame before the gap. Only the open run and one candidate are kept between chunks, so memory does
    not grow with the video. Subclasses implement :meth:`write_segment` (and may override
    :meth:`open` and :meth:`close`, calling this class's ``close`` first so the last segment is written).
    """

    def __init__(self, file: TextIO, classes: Sequence[str], *, min_frames: int = 1, **context) -> None:
        super().__init__(file, classes, **context)
        if min_frames < 1:
            raise LstmTvError(f"--min-frames {min_frames}: must be at least 1 (1 = every run is a segment)")
        self.min_frames = min_frames
        self._open: _Run | None = None       # the segment being extended
        self._candidate: _Run | None = None  # a run of another label, shorter than min_frames so far
        self._next, self._last_time, self._step = 0, 0.0, 0.0  # one past the last frame number; its time

    def write(self, chunk: PredictedChunk) -> None:
        if chunk.after_gap:
            self._end_segment()
        labels, conf, times, numbers = chunk.labels, chunk.confidence, chunk.times, chunk.frame_numbers
        cuts = np.flatnonzero(np.diff(labels)) + 1  # first frame of each new run inside the chunk
        for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), len(labels)], strict=True):
            self._add(_Run(int(labels[a]), int(numbers[a]), float(times[a]), float(conf[a:b].sum()), b - a, b - a))
        if len(times) > 1:
            self._step = float(times[-1] - times[-2])
        elif self._next:
            self._step = float(times[-1]) - self._last_time
        self._next, self._last_time = int(numbers[-1]) + 1, float(times[-1])

    def _add(self, run: _Run) -> None:
        current, candidate = self._open, self._candidate
        if current is None:
            self._open = run
            return
        if candidate is not None and run.label == candidate.label:
            candidate.extend(run)
        else:
            if candidate is not None:  # flicker that did not last: its frames stay in the open segment
                current.count += candidate.count
                self._candidate = None
            if run.label == current.label:
                current.extend(run)
                return
            candidate = self._candidate = run
        if candidate.labelled >= self.min_frames:  # the new label has lasted: the open segment ends
            if current.labelled >= self.min_frames:
                self._close(current, candidate.start, candidate.start_time)
            else:  # the open one was flicker itself: it becomes the start of the new segment
                candidate.start, candidate.start_time = current.start, current.start_time
                candidate.count += current.count
            self._open, self._candidate = candidate, None

    def _close(self, run: _Run, end: int, end_time: float) -> None:
        self.write_segment(Segment(run.label, run.start, end, run.start_time, end_time,
                                   run.confidence / run.labelled, run.count))

    def _end_segment(self) -> None:
        """Close the open segment at the last frame seen (the end of the video, or a gap)."""
        current, candidate = self._open, self._candidate
        self._open = self._candidate = None
        if current is None:
            return
        if candidate is not None:
            current.count += candidate.count
        if current.labelled >= self.min_frames:  # else the whole stretch was flicker: nothing lasted
            step = self.frame_time or self._step or 1.0 / 25  # a one-frame video of unknown rate: any width
            self._close(current, self._next, self._last_time + step)

    def close(self) -> None:
        """Write the last, still open segment."""
        self._end_segment()

    def write_segment(self, segment: Segment) -> None:
        """Write one closed segment."""
        raise NotImplementedError


@register_writer("events")
class EventsWriter(SegmentWriter):
    """One JSON line per closed segment, written as soon as it closes (``predict --events``):
    ``label, start, end, start_time, end_time, frames, mean_confidence`` (docs/formats.md, events)."""

    suffix = ".jsonl"
    by_suffix = False  # .jsonl picks the frame rows

    def write_segment(self, segment: Segment) -> None:
        self.file.write(json.dumps({"label": self.classes[segment.label], "start": segment.start, "end": segment.end,
                                    "start_time": round(segment.start_time, 6), "end_time": round(segment.end_time, 6),
                                    "frames": segment.frames, "mean_confidence": round(segment.confidence, 6)}) + "\n")


# ---------------------------------------------------------------------------------------------------
# Annotation tools: predictions as pre-annotations to correct (docs/annotation-tools.md)


class ToolWriter(PredictionWriter):
    """A video's predictions in an annotation tool's import format, rendered when the video ends.

    These formats are one document per video (XML, JSON), so the frames' labels and confidences are
    kept until :meth:`close` -- 14 bytes a frame (12 MB for ten hours at 24 fps), not the frames.
    """

    by_suffix = False
    render: ClassVar = None  # the annotation_tools module's render(Predictions) -> str

    def __init__(self, file: TextIO, classes: Sequence[str], **context) -> None:
        super().__init__(file, classes, **context)
        # Per chunk: labels (int16), confidences (float32) and times (float64), joined at close().
        self._labels, self._confidence, self._times = [], [], []

    def write(self, chunk: PredictedChunk) -> None:
        self._labels.append(chunk.labels.astype(np.int16))
        self._confidence.append(chunk.confidence.astype(np.float32))
        self._times.append(chunk.times)

    def close(self) -> None:
        from lstm_tv.data.annotation_tools import Predictions

        def joined(parts: list[np.ndarray]) -> list:
            return np.concatenate(parts).tolist() if parts else []

        fps = 1.0 / self.frame_time if self.frame_time else 25.0
        pred = Predictions(self.video.name, joined(self._labels), joined(self._confidence), self.classes,
                           self.video.background, fps, self.video.width, self.video.height, joined(self._times))
        self.file.write(type(self).render(pred))


def _register_tool_formats() -> None:
    """One :class:`ToolWriter` per format that ``lstm_tv.data.annotation_tools`` can write."""
    from lstm_tv.data.annotation_tools import WRITERS as TOOL_WRITERS

    for name, (render, suffix) in TOOL_WRITERS.items():
        register_writer(name)(type(f"{name.title()}Writer", (ToolWriter,),
                                   {"suffix": suffix, "render": staticmethod(render), "__doc__": render.__doc__}))


_register_tool_formats()

