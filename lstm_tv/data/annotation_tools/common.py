"""What every annotation-format module shares: the per-video result, class mapping, files, predictions.

A reader turns a tool's file into :class:`VideoAnnotation` values: per-frame labels, or labelled spans
in frames or in seconds, already mapped to class indices. :func:`to_frame_labels` then gives the same
per-frame labels that a ``.txt``/``.csv`` gives (docs/formats.md §1), with the same tolerances, through the
functions of :mod:`lstm_tv.data.labels`. Writers render :class:`Predictions` as runs of one label.
"""

from __future__ import annotations

import json
import math
import xml.parsers.expat as expat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree as ET

import yaml

from lstm_tv.config import DataConfig
from lstm_tv.data import labels as label_files
from lstm_tv.errors import LabelError

# VideoAnnotation.unit: what its numbers count.
PER_FRAME, FRAME_SPANS, SECOND_SPANS = "per-frame", "frames", "seconds"


@dataclass(frozen=True)
class VideoAnnotation:
    """One video's labels as a file gives them, mapped to class indices (picklable, for prepare's workers).

    ``spans`` are half-open ``[start, end)`` in frames (from 0) or seconds; ``frame_labels`` is one
    index per frame. ``declared_frames`` is the frame count the file itself states, if any.
    """

    path: str
    unit: str
    spans: tuple[label_files.Segment, ...] = ()
    frame_labels: tuple[int, ...] = ()
    declared_frames: int | None = None
    split: str | None = None


@dataclass(frozen=True)
class Entry:
    """A reader's result for one video: the names it may go by (first match with a video wins)."""

    names: tuple[str, ...]
    annotation: VideoAnnotation


@dataclass(frozen=True)
class ClassMap:
    """Tool label -> class index: a class name itself, a ``data.class_map`` rename, or (by choice) background."""

    classes: tuple[str, ...]
    background: str
    renames: dict = field(default_factory=dict)
    unmapped: str = "error"

    @classmethod
    def from_config(cls, cfg: DataConfig) -> ClassMap:
        """From ``data.classes``, ``data.background``, ``data.class_map`` (mapping or YAML file), ``data.unmapped``."""
        renames = cfg.class_map if isinstance(cfg.class_map, dict) else _read_class_map(cfg.class_map, cfg.classes)
        return cls(tuple(cfg.classes), cfg.background, dict(renames), cfg.unmapped)

    def index(self, path: str | Path, where: str, name: str) -> int:
        """The class index of tool label ``name``; ``LabelError`` naming file, place and label if none."""
        name = str(name).strip()
        target = self.renames.get(name, name)
        if target in self.classes:
            return self.classes.index(target)
        if self.unmapped == "background":
            return self.classes.index(self.background)
        raise LabelError(f"{path}: {where}: label {name!r} is neither a class ({', '.join(self.classes)}) nor in "
                         f"data.class_map; map it (data.class_map='{{{name}: CLASS}}') or set data.unmapped=background")


def _read_class_map(path: str, classes: list[str]) -> dict[str, str]:
    """``data.class_map`` given as a YAML file of ``tool label: class`` lines ('' = no renames)."""
    if not path:
        return {}
    p = Path(path)
    try:
        tree = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LabelError(f"{p}: data.class_map file not found") from None
    except (yaml.YAMLError, UnicodeDecodeError, ValueError) as e:
        raise LabelError(f"{p}: data.class_map is not a readable YAML file ({str(e).splitlines()[0]})") from None
    if not isinstance(tree, dict):
        raise LabelError(f"{p}: data.class_map must be a YAML mapping of 'tool label: class' lines")
    for label, name in tree.items():
        if str(name) not in classes:
            raise LabelError(f"{p}: {label!r} -> {name!r}, which is not one of data.classes {classes}")
    return {str(k): str(v) for k, v in tree.items()}


# ---------------------------------------------------------------------------------------------------
# Spans -> per-frame labels


def frame_span(path, where: str, first, last, label: int) -> label_files.Segment:
    """A span from an inclusive first/last frame (as CVAT and Label Studio write them), checked."""
    first, last = number(path, where, first, "first frame"), number(path, where, last, "last frame")
    if first != int(first) or last != int(last):
        raise LabelError(f"{path}: {where}: frame numbers must be whole numbers, got {first}, {last}")
    label_files.check_interval(path, where, int(first), int(last), unit="frames", inclusive=True)
    return label_files.Segment(int(first), int(last) + 1, label, where)


def second_span(path, where: str, start, end, label: int) -> label_files.Segment:
    """A half-open span in seconds, checked as a ``.csv`` row is."""
    start, end = number(path, where, start, "start"), number(path, where, end, "end")
    label_files.check_interval(path, where, start, end)
    return label_files.Segment(start, end, label, where)


def number(path, where: str, value, what: str) -> float:
    """``value`` as a finite float, or ``LabelError`` naming it."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise LabelError(f"{path}: {where}: {what} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise LabelError(f"{path}: {where}: {what} must be a finite number, got {value!r}")
    return out


def span_annotation(path, unit: str, spans: list[label_files.Segment], *, declared_frames: int | None = None,
                    split: str | None = None) -> VideoAnnotation:
    """Check spans (two labels on one frame, a frame past the stated end) and wrap them."""
    slack = 0.0 if unit == FRAME_SPANS else label_files.TIME_SLACK
    spans = label_files.check_overlaps(path, spans, slack=slack, same_label_ok=True)
    if unit == FRAME_SPANS and declared_frames is not None:
        for s in spans:
            if s.end > declared_frames:
                raise LabelError(f"{path}: {s.where}: frame {int(s.end) - 1} is past the video's end "
                                 f"(the file says {declared_frames} frames, 0 to {declared_frames - 1})")
    return VideoAnnotation(str(path), unit, tuple(spans), declared_frames=declared_frames, split=split)


def to_frame_labels(ann: VideoAnnotation, times: list[float], background: int) -> tuple[list[int], list[str]]:
    """One class index per decoded frame (``times`` in seconds), and warnings.

    Per-frame labels and frame spans may be off the decoded count by ``labels.LENGTH_TOLERANCE`` frames
    (cut or padded, with a warning); more is an error naming the file. Second spans label each frame by
    its time, half-open, with ``labels.TIME_SLACK``, as a ``.csv`` does.
    """
    n, warnings = len(times), []
    if ann.unit == PER_FRAME:
        labels, warning = label_files.fit_length(list(ann.frame_labels), n, ann.path)
        return labels, [warning] if warning else []
    if ann.unit == SECOND_SPANS:
        late = [s.where for s in ann.spans if s.start > times[-1] + label_files.TIME_SLACK]
        if late:
            warnings.append(f"{ann.path}: {late[0]} (and {len(late) - 1} more) starts after the last frame "
                            f"({times[-1]:.3f} s); times are in seconds")
        return label_files.segments_to_frames(list(ann.spans), times, background), warnings
    if ann.declared_frames is not None:
        _, warning = label_files.fit_length([0] * ann.declared_frames, n, ann.path, what="frames in the file")
        warnings += [warning] if warning else []
    labels = [background] * n
    for s in ann.spans:
        if s.end > n + label_files.LENGTH_TOLERANCE:
            raise LabelError(f"{ann.path}: {s.where}: frames {int(s.start)}-{int(s.end) - 1} run past the video's "
                             f"end ({n} decoded frames, 0 to {n - 1})")
        for i in range(int(s.start), min(int(s.end), n)):
            labels[i] = s.label
    return labels, warnings


# ---------------------------------------------------------------------------------------------------
# Reading files


@dataclass
class XmlDoc:
    """A parsed XML file whose elements know their line (for one-line errors that point into the file)."""

    path: Path
    root: ET.Element
    lines: dict[int, int]

    def where(self, el: ET.Element, *attrs: str) -> str:
        """``line N <tag a="1">`` for messages."""
        shown = "".join(f' {a}="{el.get(a)}"' for a in attrs if el.get(a) is not None)
        return f"line {self.lines.get(id(el), '?')} <{el.tag}{shown}>"


def read_xml(path: Path) -> XmlDoc:
    """Parse an XML file (no DTD entities: nothing can expand), keeping each element's line number."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LabelError(f"{path}: file not found") from None
    parser = expat.ParserCreate()
    stack: list[ET.Element] = []
    roots: list[ET.Element] = []
    lines: dict[int, int] = {}

    def start(tag, attrs):
        el = ET.Element(tag, attrs)
        (stack[-1].append(el) if stack else roots.append(el))
        lines[id(el)] = parser.CurrentLineNumber
        stack.append(el)

    def text(chars):
        if stack and not len(stack[-1]):  # element text only; tails between children do not matter here
            stack[-1].text = (stack[-1].text or "") + chars

    def entity(*_):
        raise LabelError(f"{path}: line {parser.CurrentLineNumber}: XML entity declarations are not accepted")

    parser.StartElementHandler, parser.EndElementHandler = start, lambda tag: stack.pop()
    parser.CharacterDataHandler, parser.EntityDeclHandler = text, entity
    try:
        parser.Parse(data, True)
    except expat.ExpatError as e:
        raise LabelError(f"{path}: line {e.lineno}, column {e.offset + 1}: not well-formed XML "
                         f"({expat.ErrorString(e.code)})") from None
    return XmlDoc(path, roots[0], lines)


def read_json(path: Path):
    """A JSON file's value; malformed JSON is a ``LabelError`` with line and column."""
    text = label_files.read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise LabelError(f"{path}: line {e.lineno}, column {e.colno}: not valid JSON ({e.msg})") from None
    except RecursionError:
        raise LabelError(f"{path}: JSON nested too deeply") from None


# ---------------------------------------------------------------------------------------------------
# Predictions -> runs, for the writers


@dataclass(frozen=True)
class Predictions:
    """One video's predictions, as the format writers take them.

    Args:
        video: the video's file name as the tool knows it (``clip01.mp4``).
        labels: class index per decoded frame.
        confidences: the probability of that class per frame (0..1).
        classes: class names in model order.
        background: the class whose frames are left unlabelled (``None``: every frame is labelled).
        fps: frames per second; frame ``i`` is at ``times[i]`` or else ``i / fps`` seconds.
        width, height: the video's frame size in pixels (CVAT boxes cover the whole frame).
        times: decoded frame times in seconds (optional).
    """

    video: str
    labels: Sequence[int]
    confidences: Sequence[float]
    classes: Sequence[str]
    background: str | None
    fps: float
    width: int = 0
    height: int = 0
    times: Sequence[float] | None = None

    def time(self, frame: int) -> float:
        """Seconds at which ``frame`` starts; past the last decoded frame, counted on at 1/fps."""
        if self.times is not None and len(self.times):
            if frame < len(self.times):
                return float(self.times[frame])
            return float(self.times[-1]) + (frame - len(self.times) + 1) / self.fps
        return frame / self.fps

    @property
    def stem(self) -> str:
        return Path(self.video).stem


@dataclass(frozen=True)
class Run:
    """A maximal run of one predicted label: frames ``[start, stop)``, mean confidence."""

    start: int
    stop: int
    label: int
    confidence: float


def runs(pred: Predictions, *, keep_background: bool = False) -> list[Run]:
    """Maximal runs of one label, background runs left out unless ``keep_background``."""
    if len(pred.labels) != len(pred.confidences):
        raise ValueError(f"{len(pred.labels)} labels but {len(pred.confidences)} confidences")
    bg = list(pred.classes).index(pred.background) if pred.background is not None else None
    out: list[Run] = []
    start = 0
    for i in range(1, len(pred.labels) + 1):
        if i == len(pred.labels) or pred.labels[i] != pred.labels[start]:
            label = int(pred.labels[start])
            if keep_background or label != bg:
                conf = sum(float(c) for c in pred.confidences[start:i]) / (i - start)
                out.append(Run(start, i, label, conf))
            start = i
    return out
