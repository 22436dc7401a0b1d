"""lstm-tv's own labels (docs/formats.md §1): ``labels/<stem>.txt`` per frame or ``labels/<stem>.csv`` segments.

Names in these files are class names themselves; ``data.class_map`` is for the tools' labels.
"""

from __future__ import annotations

from pathlib import Path

from lstm_tv.data import labels as label_files
from lstm_tv.data.annotation_tools.common import PER_FRAME, SECOND_SPANS, ClassMap, Entry, VideoAnnotation

NAME = "native"
TITLE = "lstm-tv .txt/.csv labels"
SUFFIXES = (".txt", ".csv")
PER_VIDEO = True


def read(path: Path, mapper: ClassMap, options: dict) -> list[Entry]:
    """The file parsed by :mod:`lstm_tv.data.labels`, as an entry for its stem."""
    classes = list(mapper.classes)
    if path.suffix.lower() == ".txt":
        ann = VideoAnnotation(str(path), PER_FRAME, frame_labels=tuple(label_files.read_frame_labels(path, classes)))
    else:
        ann = VideoAnnotation(str(path), SECOND_SPANS, spans=tuple(label_files.read_segments(path, classes)))
    return [Entry((path.stem,), ann)]
