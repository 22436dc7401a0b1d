"""ActivityNet-style JSON (ActivityNet 1.3, and THUMOS14 converted to it): one file for many videos.

Read from the ActivityNet 1.3 release's ``activity_net.v1-3.min.json`` layout as its README and the
ActivityNet evaluation kit describe it: ``{"version", "taxonomy", "database": {<video id>: {"subset":
"training"|"validation"|"testing", "duration": s, "url", "annotations": [{"segment": [start, end],
"label": name}]}}}``, times in seconds. Each segment is a half-open ``[start, end)`` span, as a
``.csv`` row. A video id matches ``videos/<id>.*`` or ``videos/v_<id>.*`` (the usual download names).

Subsets map to splits (when there is no ``splits.csv``): training -> train, validation -> val, testing
-> test. Videos of the file that are not in ``videos/`` are left out with one warning.
"""

from __future__ import annotations

import json
from pathlib import Path

from lstm_tv.data.annotation_tools.common import (
    SECOND_SPANS,
    ClassMap,
    Entry,
    Predictions,
    read_json,
    runs,
    second_span,
    span_annotation,
)
from lstm_tv.errors import LabelError

NAME = "activitynet"
TITLE = "ActivityNet-style JSON"
SUFFIXES = (".json",)
PER_VIDEO = False
SUBSETS = {"training": "train", "validation": "val", "testing": "test"}


def looks_like(value) -> bool:
    return isinstance(value, dict) and "database" in value


def read(path: Path, mapper: ClassMap, options: dict) -> list[Entry]:
    """One entry per video id of ``database`` (see the module docstring)."""
    value = read_json(path)
    if not looks_like(value):
        hint = "; this looks like a Label Studio export" if isinstance(value, list) else ""
        raise LabelError(f"{path}: not {TITLE}: no top-level 'database'{hint}")
    if not isinstance(value["database"], dict):
        raise LabelError(f"{path}: 'database' must map video ids to their annotations")
    entries = []
    for vid, video in value["database"].items():
        where = f"database[{vid!r}]"
        if not isinstance(video, dict) or not isinstance(video.get("annotations", []), list):
            raise LabelError(f"{path}: {where}: expected a mapping with an 'annotations' list")
        subset = video.get("subset")
        if subset is not None and subset not in SUBSETS:
            raise LabelError(f"{path}: {where}: subset {subset!r} must be one of {', '.join(SUBSETS)}")
        spans = []
        for j, ann in enumerate(video.get("annotations", [])):
            awhere = f"{where} annotation {j}"
            segment = ann.get("segment") if isinstance(ann, dict) else None
            if not isinstance(segment, list) or len(segment) != 2:
                raise LabelError(f"{path}: {awhere}: 'segment' must be [start, end] in seconds")
            index = mapper.index(path, awhere, str(ann.get("label", "")))
            spans.append(second_span(path, awhere, segment[0], segment[1], index))
        annotation = span_annotation(path, SECOND_SPANS, spans, split=SUBSETS.get(subset))
        entries.append(Entry((str(vid), f"v_{vid}"), annotation))
    return entries


def render(pred: Predictions) -> str:
    """An ActivityNet-style ``database`` of one video: each non-background run a segment with its ``score``."""
    annotations = [{"segment": [round(pred.time(r.start), 3), round(pred.time(r.stop), 3)],
                    "label": pred.classes[r.label], "score": round(r.confidence, 4)} for r in runs(pred)]
    video = {"duration": round(pred.time(len(pred.labels)), 3), "annotations": annotations}
    return json.dumps({"version": "lstm-tv predictions", "database": {pred.stem: video}}, indent=2) + "\n"
