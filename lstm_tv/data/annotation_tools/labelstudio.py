"""Label Studio JSON export of video tasks: ``labels/*.json`` (one project export, or one file per video).

Read from Label Studio's documentation (labelstud.io, 2024-25, Label Studio 1.13-1.20): "Label Studio
JSON format of annotated tasks" (guide/task_format: a list of tasks, each with ``data`` and
``annotations[].result[]``), the ``TimelineLabels`` tag (results of type ``timelinelabels``, ``value.ranges``
of ``{start, end}`` frames, 1-based and inclusive, and ``value.timelinelabels``), the ``VideoRectangle``
tag (``videorectangle``: ``value.sequence`` of keyframes ``{frame (1-based), enabled}``, ``value.labels``,
``value.framesCount``) and ``Labels`` on audio or video (``labels``: ``value.start``/``value.end`` in seconds).

A task's video is ``data.video`` (else the one value of ``data`` with a video extension); it is matched
to ``videos/<stem>.*`` by its file name, with Label Studio's upload prefix (``1a2b3c4d-``) removed and
local-storage URLs (``/data/local-files/?d=dir/clip.mp4``) decoded. The task's last annotation that was
not cancelled is its truth; ``predictions`` never are. Tasks without annotations are unlabelled.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from lstm_tv.data.annotation_tools.common import (
    FRAME_SPANS,
    SECOND_SPANS,
    ClassMap,
    Entry,
    Predictions,
    frame_span,
    read_json,
    runs,
    second_span,
    span_annotation,
)
from lstm_tv.data.video import VIDEO_EXTENSIONS
from lstm_tv.errors import LabelError

NAME = "labelstudio"
TITLE = "Label Studio JSON export"
SUFFIXES = (".json",)
PER_VIDEO = False  # a file may hold many tasks; each names its video
UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")  # Label Studio renames uploads to <8 hex>-<name>


def looks_like(value) -> bool:
    """A list of tasks or one task (a mapping with ``data``)."""
    return isinstance(value, dict) and "data" in value or isinstance(value, list)


def read(path: Path, mapper: ClassMap, options: dict) -> list[Entry]:
    """One entry per task with an annotation (see the module docstring)."""
    value = read_json(path)
    if isinstance(value, dict) and "database" in value:
        raise LabelError(f"{path}: an ActivityNet-style file (it has 'database'), not a {TITLE}")
    tasks = value if isinstance(value, list) else [value]
    if not looks_like(value) or not all(isinstance(t, dict) and isinstance(t.get("data"), dict) for t in tasks):
        raise LabelError(f"{path}: not a {TITLE}: expected a list of tasks, each a mapping with 'data'")
    entries = []
    for i, task in enumerate(tasks):
        where = f"task {task.get('id', i)}"
        annotations = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
        if not annotations:
            continue
        results = annotations[-1].get("result") or []
        if not isinstance(results, list):
            raise LabelError(f"{path}: {where}: 'result' must be a list of regions")
        unit, spans, frames = _spans(path, where, results, mapper)
        entries.append(Entry(_names(path, where, task["data"]), span_annotation(path, unit, spans,
                                                                                declared_frames=frames)))
    return entries


def _names(path: Path, where: str, data: dict) -> tuple[str, ...]:
    url = data.get("video")
    if not isinstance(url, str):
        videos = [v for v in data.values() if isinstance(v, str) and Path(urlparse(v).path).suffix.lower()
                  in VIDEO_EXTENSIONS]
        if len(videos) != 1:
            raise LabelError(f"{path}: {where}: no 'data.video'; cannot tell which video the task labels")
        url = videos[0]
    parsed = urlparse(url)
    name = Path(unquote(parse_qs(parsed.query).get("d", [parsed.path])[0])).name
    stem = Path(name).stem
    return (stem, UPLOAD_PREFIX.sub("", stem)) if UPLOAD_PREFIX.match(stem) else (stem,)


def _spans(path: Path, where: str, results: list, mapper: ClassMap):
    """(unit, spans, declared frame count or None) of one annotation's regions."""
    frame_spans, second_spans, frames = [], [], None
    for j, region in enumerate(results):
        rwhere = f"{where} region {region.get('id', j) if isinstance(region, dict) else j}"
        if not isinstance(region, dict) or not isinstance(region.get("value"), dict):
            raise LabelError(f"{path}: {rwhere}: a region must be a mapping with 'value'")
        kind, value = region.get("type"), region["value"]
        if kind == "timelinelabels":
            index = mapper.index(path, rwhere, _one_label(path, rwhere, value, "timelinelabels"))
            for r in value.get("ranges") or []:
                if not isinstance(r, dict):
                    raise LabelError(f"{path}: {rwhere}: each of 'ranges' must be {{start, end}}")
                frame_spans.append(frame_span(path, rwhere, _frame(path, rwhere, r.get("start")),
                                              _frame(path, rwhere, r.get("end")), index))
        elif kind == "videorectangle":
            index = mapper.index(path, rwhere, _one_label(path, rwhere, value, "labels"))
            frame_spans += _sequence_spans(path, rwhere, value, index)
            frames = value.get("framesCount", frames)
        elif kind == "labels" and "start" in value and "text" not in value:
            index = mapper.index(path, rwhere, _one_label(path, rwhere, value, "labels"))
            second_spans.append(second_span(path, rwhere, value.get("start"), value.get("end"), index))
    if frame_spans and second_spans:
        raise LabelError(f"{path}: {where}: mixes frame ranges and second ranges; label with one kind of control")
    if frames is not None and (not isinstance(frames, int) or frames < 1):
        raise LabelError(f"{path}: {where}: framesCount must be a whole number of frames, got {frames!r}")
    return (SECOND_SPANS, second_spans, None) if second_spans else (FRAME_SPANS, frame_spans, frames)


def _one_label(path: Path, where: str, value: dict, key: str) -> str:
    names = value.get(key)
    if not isinstance(names, list) or len(names) != 1 or not isinstance(names[0], str):
        raise LabelError(f"{path}: {where}: '{key}' must list exactly one label, got {names!r}")
    return names[0]


def _frame(path: Path, where: str, value) -> float:
    """A 1-based Label Studio frame number -> 0-based."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise LabelError(f"{path}: {where}: frame numbers must be numbers, got {value!r}")
    return value - 1


def _sequence_spans(path: Path, where: str, value: dict, index: int) -> list:
    """A videorectangle's visible frames: from an enabled keyframe on, up to a disabled one (inclusive)."""
    keys = value.get("sequence") or []
    if not all(isinstance(k, dict) and "frame" in k for k in keys):
        raise LabelError(f"{path}: {where}: each keyframe of 'sequence' needs a 'frame'")
    keys = sorted(keys, key=lambda k: k["frame"])
    spans, start = [], None
    for k in keys:
        f = _frame(path, where, k["frame"])
        start = f if start is None else start
        if not k.get("enabled", True):
            spans.append(frame_span(path, where, start, f, index))
            start = None
    if start is not None:
        last = value.get("framesCount")
        spans.append(frame_span(path, where, start, (last - 1) if isinstance(last, int) else keys[-1]["frame"] - 1,
                                index))
    return spans


def render(pred: Predictions, *, video_url: str | None = None, from_name: str = "videoLabels",
           to_name: str = "video", model_version: str = "lstm-tv") -> str:
    """A Label Studio task list (JSON) with the predictions as pre-annotations of one video.

    Import it into a project whose labeling config has ``<Video name="video" value="$video"/>`` and
    ``<TimelineLabels name="videoLabels" toName="video">`` with one ``<Label>`` per class. Each run of
    one non-background label is a ``timelinelabels`` region (frames 1-based, inclusive) whose ``score`` is
    the run's mean confidence; the prediction's ``score`` is the mean over the runs.

    Args:
        video_url: what ``data.video`` says (default: the video's file name; use the URL Label Studio
            serves the video at, e.g. ``/data/local-files/?d=new/clip.mp4``).
    """
    regions = [{"id": f"r{i}", "from_name": from_name, "to_name": to_name, "type": "timelinelabels",
                "value": {"ranges": [{"start": r.start + 1, "end": r.stop}],
                          "timelinelabels": [pred.classes[r.label]]},
                "score": round(r.confidence, 4)}
               for i, r in enumerate(runs(pred))]
    score = sum(r["score"] for r in regions) / len(regions) if regions else 0.0
    task = {"data": {to_name: video_url or pred.video},
            "predictions": [{"model_version": model_version, "score": round(score, 4), "result": regions}]}
    return json.dumps([task], indent=2) + "\n"
