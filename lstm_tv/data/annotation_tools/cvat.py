"""CVAT "CVAT for video 1.1" XML: one ``labels/<stem>.xml`` per video (the ``annotations.xml`` of a task export).

Read from CVAT's documentation "XML annotation format", Version 1.1, section Interpolation
(docs.cvat.ai/docs/other/xml_format, 2024-25). The file is ``<annotations>`` with ``<version>1.1``,
``<meta><task>`` (``<size>`` frames, ``<labels>``, ``<original_size>``) and then ``<track label=...>``
elements whose shapes (``<box>``, ``<polygon>``, ``<polyline>``, ``<points>``, ``<ellipse>``, ``<mask>``,
``<cuboid>``, ``<skeleton>``) carry ``frame``, ``outside`` and ``keyframe``; ``<tag frame label>`` marks one frame.

A track covers frame f when its last shape at or before f is not ``outside``; after its last shape it
goes on to the end of the task (CVAT's own rule). Frames no track covers are background; two tracks of
different labels on one frame are an error (two of one label are fine: two wolves are still wolf).
"""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

from lstm_tv.data.annotation_tools.common import (
    FRAME_SPANS,
    ClassMap,
    Entry,
    Predictions,
    XmlDoc,
    frame_span,
    number,
    read_xml,
    runs,
    span_annotation,
)
from lstm_tv.errors import LabelError

NAME = "cvat"
TITLE = "CVAT for video 1.1 XML"
SUFFIXES = (".xml",)
PER_VIDEO = True  # one file per video, named by its stem
CONFIDENCE = "confidence"  # the attribute the writer stores each run's mean confidence in


def read(path: Path, mapper: ClassMap, options: dict) -> list[Entry]:
    """Per-frame spans of one CVAT for video 1.1 file (see the module docstring)."""
    doc = read_xml(path)
    task = _task(doc)
    size = int(_int(doc, task.find("size"), "size"))
    spans = []
    for track in doc.root.iter("track"):
        label = track.get("label")
        if label is None:
            raise LabelError(f"{path}: {doc.where(track, 'id')}: track without a label attribute")
        index = mapper.index(path, doc.where(track, "id"), label)
        spans += _track_spans(doc, track, index, size)
    for tag in doc.root.findall("tag"):
        where = doc.where(tag, "frame", "label")
        if tag.get("label") is None or tag.get("frame") is None:
            raise LabelError(f"{path}: {where}: a tag needs frame and label attributes")
        f = number(path, where, tag.get("frame"), "frame")
        spans.append(frame_span(path, where, f, f, mapper.index(path, where, tag.get("label"))))
    return [Entry((path.stem,), span_annotation(path, FRAME_SPANS, spans, declared_frames=size))]


def _task(doc: XmlDoc) -> ET.Element:
    """``<meta><task>`` (or ``<job>``) of a video export; other CVAT and non-CVAT files are refused."""
    root, path = doc.root, doc.path
    if root.tag != "annotations":
        hint = "; this looks like an ELAN .eaf" if root.tag == "ANNOTATION_DOCUMENT" else ""
        raise LabelError(f"{path}: {doc.where(root)}: not {TITLE} (the root element must be <annotations>){hint}")
    version = (root.findtext("version") or "").strip()
    if version not in ("1.0", "1.1"):
        raise LabelError(f"{path}: <version> is {version or 'missing'!r}; expected {TITLE}")
    if root.find("image") is not None:
        raise LabelError(f"{path}: {doc.where(root.find('image'))}: a 'CVAT for images' export; "
                         f"export the task as 'CVAT for video 1.1'")
    meta = root.find("meta")
    task = None if meta is None else meta.find("task")
    task = meta.find("job") if task is None and meta is not None else task
    if task is None:
        project = meta is not None and meta.find("project") is not None
        what = "a project export (several tasks); export each task" if project else "no <meta><task>"
        raise LabelError(f"{path}: {what}; expected {TITLE} of one video task")
    start = (task.findtext("start_frame") or "0").strip()
    frame_filter = (task.findtext("frame_filter") or "").strip()
    if start not in ("", "0") or frame_filter:
        raise LabelError(f"{path}: the task starts at frame {start} or skips frames ({frame_filter!r}); "
                         f"lstm-tv needs a task made of every frame of the whole video")
    return task


def _int(doc: XmlDoc, el: ET.Element | None, what: str) -> int:
    if el is None:
        raise LabelError(f"{doc.path}: <{what}> is missing from <meta><task>; expected {TITLE}")
    value = number(doc.path, doc.where(el), (el.text or "").strip(), what)
    if value != int(value) or value < 1:
        raise LabelError(f"{doc.path}: {doc.where(el)}: {what} must be a whole number of frames, got {el.text!r}")
    return int(value)


def _outside(shape: ET.Element) -> bool:
    """A skeleton has no ``outside`` of its own: it is outside when all its points are."""
    if shape.tag == "skeleton":
        points = list(shape)
        return bool(points) and all(p.get("outside") == "1" for p in points)
    return shape.get("outside") == "1"


def _track_spans(doc: XmlDoc, track: ET.Element, index: int, size: int) -> list:
    """Half-open frame spans where ``track`` is visible."""
    path, where = doc.path, doc.where(track, "id", "label")
    shapes = []
    for shape in track:
        if shape.get("frame") is None:
            continue
        f = number(path, doc.where(shape, "frame"), shape.get("frame"), "frame")
        if f != int(f) or f < 0:
            raise LabelError(f"{path}: {doc.where(shape, 'frame')}: frame must be a whole number >= 0")
        if f >= size:
            raise LabelError(f"{path}: {doc.where(shape, 'frame')}: frame {int(f)} is past the video's end "
                             f"(the file says {size} frames, 0 to {size - 1})")
        shapes.append((int(f), _outside(shape)))
    shapes.sort()
    spans, start = [], None
    for f, outside in shapes:
        if outside and start is not None:
            if f > start:
                spans.append(frame_span(path, where, start, f - 1, index))
            start = None
        elif not outside and start is None:
            start = f
    if start is not None:
        spans.append(frame_span(path, where, start, size - 1, index))
    return spans


def render(pred: Predictions) -> str:
    """CVAT for video 1.1 XML of the predictions, for "Upload annotations" into the video's task.

    Each run of one non-background label becomes a track of one full-frame box, visible from the run's
    first frame and ``outside`` from the frame after it; the run's mean confidence is the box attribute
    ``confidence`` (declared on every label as a number 0..1, so CVAT can filter the unsure ones).
    """
    n = len(pred.labels)
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    task = ET.SubElement(ET.SubElement(root, "meta"), "task")
    for key, value in [("name", pred.stem), ("size", n), ("mode", "interpolation"), ("overlap", 0),
                       ("start_frame", 0), ("stop_frame", n - 1), ("frame_filter", "")]:
        ET.SubElement(task, key).text = str(value)
    labels = ET.SubElement(task, "labels")
    for name in pred.classes:
        if name == pred.background:
            continue
        label = ET.SubElement(labels, "label")
        ET.SubElement(label, "name").text = name
        ET.SubElement(label, "type").text = "any"
        attr = ET.SubElement(ET.SubElement(label, "attributes"), "attribute")
        for key, value in [("name", CONFIDENCE), ("mutable", "False"), ("input_type", "number"),
                           ("default_value", "0"), ("values", "0;1;0.01")]:
            ET.SubElement(attr, key).text = value
    size = ET.SubElement(task, "original_size")
    ET.SubElement(size, "width").text, ET.SubElement(size, "height").text = str(pred.width), str(pred.height)
    ET.SubElement(task, "source").text = pred.video
    box = {"occluded": "0", "xtl": "0.00", "ytl": "0.00", "xbr": f"{pred.width:.2f}", "ybr": f"{pred.height:.2f}",
           "z_order": "0"}
    for i, run in enumerate(runs(pred)):
        track = ET.SubElement(root, "track", {"id": str(i), "label": pred.classes[run.label], "source": "auto"})
        shown = ET.SubElement(track, "box", {"frame": str(run.start), "outside": "0", "keyframe": "1", **box})
        ET.SubElement(shown, "attribute", {"name": CONFIDENCE}).text = f"{run.confidence:.2f}"
        if run.stop < n:
            ET.SubElement(track, "box", {"frame": str(run.stop), "outside": "1", "keyframe": "1", **box})
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
