"""Labels from annotation tools, and predictions back into them.

One module per format, each with ``NAME``, ``TITLE``, ``SUFFIXES``, a reader ``read(path, mapper, options)``
that returns :class:`~lstm_tv.data.annotation_tools.common.Entry` values (labels mapped to class indices and
checked), and a writer ``render(pred) -> str`` of :class:`~lstm_tv.data.annotation_tools.common.Predictions`:

=============  ==============================================  =====================================
name           files                                           read as
=============  ==============================================  =====================================
native         labels/<stem>.txt, labels/<stem>.csv            docs/formats.md §1 (no writer here)
cvat           labels/<stem>.xml (CVAT for video 1.1)          frame spans of tracks and tags
labelstudio    labels/*.json (Label Studio export)             frame spans (or seconds) per task
eaf            labels/<stem>.eaf (ELAN)                        second spans of one tier
mstcn          groundTruth/<vid>.txt, mapping.txt, splits/     one class name per frame
activitynet    labels/*.json with "database"                   second spans per video id
=============  ==============================================  =====================================

:func:`collect` finds and reads every label file of a raw dataset before any video is decoded.
"""

from __future__ import annotations

from pathlib import Path

from lstm_tv.config import DataConfig
from lstm_tv.data.annotation_tools import activitynet, cvat, eaf, labelstudio, mstcn, native
from lstm_tv.data.annotation_tools.common import (
    ClassMap,
    Entry,
    Predictions,
    VideoAnnotation,
    read_json,
    to_frame_labels,
)
from lstm_tv.errors import DatasetError, LabelError

__all__ = ["FORMATS", "WRITERS", "ClassMap", "Predictions", "VideoAnnotation", "collect", "detect", "to_frame_labels"]

FORMATS = {m.NAME: m for m in (native, cvat, labelstudio, eaf, mstcn, activitynet)}
# The formats a tool imports predictions from: name -> (render function, file suffix).
WRITERS = {"cvat": (cvat.render, ".xml"), "labelstudio": (labelstudio.render, ".json"),
           "eaf": (eaf.render, ".eaf"), "mstcn": (mstcn.render, ".txt"), "activitynet": (activitynet.render, ".json")}
LABEL_SUFFIXES = sorted({s for m in FORMATS.values() for s in m.SUFFIXES} | {".xml", ".eaf", ".json"})


def detect(path: Path):
    """The format module that reads ``path``, from its suffix (and for ``.json`` its top level); else None."""
    suffix = path.suffix.lower()
    if suffix in native.SUFFIXES:
        return native
    if suffix == ".json":
        return activitynet if activitynet.looks_like(read_json(path)) else labelstudio
    return {".xml": cvat, ".eaf": eaf}.get(suffix)


def collect(src: Path, stems: list[str], cfg: DataConfig, fmt: str | None = None
            ) -> tuple[dict[str, VideoAnnotation], list[str]]:
    """Read every label file of ``src`` and match it to the video stems.

    Args:
        src: raw dataset directory (``labels/`` or the MS-TCN ``groundTruth/`` beside ``videos/``).
        stems: the stems of ``videos/``.
        cfg: ``data`` settings (classes, background, class_map, unmapped, eaf_tier, split_ratios).
        fmt: a name of :data:`FORMATS`, or None to detect each file's format.
    Returns:
        ``({stem: annotation}, warnings)``; stems without labels are absent.
    Raises:
        LabelError, DatasetError: a bad file, a file of another format than ``fmt``, labels without a
            video, or two label sources for one video.
    """
    if fmt is not None and fmt not in FORMATS:
        raise DatasetError(f"--labels-format {fmt!r} is not one of {', '.join(FORMATS)}")
    mapper, options = ClassMap.from_config(cfg), {"eaf_tier": cfg.eaf_tier}
    ldir = src / "labels"
    found: list[tuple[bool, Entry]] = []  # (one file per video?, entry)
    if fmt == "mstcn" or (fmt is None and mstcn.is_layout(src)):
        if not mstcn.is_layout(src):
            raise DatasetError(f"{src}: no {mstcn.GROUND_TRUTH}/ directory; --labels-format mstcn reads "
                               f"{mstcn.GROUND_TRUTH}/<vid>.txt beside videos/")
        if ldir.is_dir() and any(not p.name.startswith(".") for p in ldir.iterdir()):
            raise DatasetError(f"{src}: has both labels/ and {mstcn.GROUND_TRUTH}/; keep one")
        found = [(True, e) for e in mstcn.read_layout(src, mapper, cfg.split_ratios)]
    else:
        for path in sorted(ldir.iterdir()) if ldir.is_dir() else []:
            if path.name.startswith(".") or not path.is_file() or path.suffix.lower() not in LABEL_SUFFIXES:
                continue
            module = FORMATS[fmt] if fmt else detect(path)
            if path.suffix.lower() not in module.SUFFIXES:
                raise LabelError(f"{path}: a {path.suffix} file, but --labels-format {fmt} reads "
                                 f"{'/'.join(module.SUFFIXES)} files ({module.TITLE})")
            found += [(module.PER_VIDEO, e) for e in module.read(path, mapper, options)]
    return _match(src, stems, found)


def _match(src: Path, stems: list[str], found: list[tuple[bool, Entry]]
           ) -> tuple[dict[str, VideoAnnotation], list[str]]:
    """Give each entry the first of its names that is a video stem; per-video files must match one."""
    known, out, unmatched = set(stems), {}, {}
    for per_video, entry in found:
        ann = entry.annotation
        name = next((n for n in entry.names if n in known), None)
        if name is None:
            if per_video:
                raise DatasetError(f"{ann.path} has no video {src / 'videos' / entry.names[0]}.<ext>; "
                                   f"add the video or remove the labels")
            unmatched.setdefault(ann.path, []).append(entry.names[0])
            continue
        if name in out:
            what = f"{ann.path}: labels {name!r} twice" if out[name].path == ann.path else \
                f"{out[name].path} and {ann.path}: two label files for {name!r}"
            raise DatasetError(f"{what}; keep one")
        out[name] = ann
    warnings = [f"{path}: {len(names)} of its videos are not in {src / 'videos'} (e.g. {names[0]!r}); left out"
                for path, names in unmatched.items()]
    return out, warnings
