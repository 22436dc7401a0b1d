"""The MS-TCN layout of temporal action segmentation: ``groundTruth/``, ``mapping.txt``, ``splits/``.

Read from the layout of the MS-TCN code and data release (Farha & Gall, CVPR 2019, and the
Breakfast/50Salads/GTEA data it ships): ``groundTruth/<vid>.txt`` holds one class name per frame,
``mapping.txt`` lines ``<index> <name>``, ``splits/<subset>.split<K>.bundle`` one ``<vid>.txt`` per line.
Here the videos stay in ``SRC/videos/<vid>.*``; ``groundTruth/`` sits beside it.

Splits (when there is no ``splits.csv``): fold K is the smallest one in ``splits/``; its ``test`` bundle is
the test split, a ``val`` bundle (if any) the val split, and its ``train`` bundle is train, with
``val / (train + val)`` of ``data.split_ratios`` of it moved to val by the stable hash of the name (MS-TCN
has no val split, and training needs one to pick best.ckpt). Videos in no bundle get the usual hash.
"""

from __future__ import annotations

import re
from pathlib import Path

from lstm_tv.data import labels as label_files
from lstm_tv.data.annotation_tools.common import PER_FRAME, ClassMap, Entry, Predictions, VideoAnnotation
from lstm_tv.errors import LabelError

NAME = "mstcn"
TITLE = "MS-TCN layout (groundTruth/, mapping.txt, splits/)"
SUFFIXES = (".txt",)
GROUND_TRUTH, MAPPING, SPLITS_DIR = "groundTruth", "mapping.txt", "splits"
BUNDLE = re.compile(r"^(train|val|test)\.split(\d+)\.bundle$")


def is_layout(src: Path) -> bool:
    return (src / GROUND_TRUTH).is_dir()


def read_layout(src: Path, mapper: ClassMap, ratios: list[float]) -> list[Entry]:
    """One entry per ``groundTruth/<vid>.txt``, with its split from ``splits/`` (see the module docstring)."""
    names = _mapping(src / MAPPING) if (src / MAPPING).is_file() else None
    splits = _splits(src / SPLITS_DIR, ratios)
    entries = []
    for path in sorted((src / GROUND_TRUTH).iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix.lower() != ".txt":
            raise LabelError(f"{path}: {GROUND_TRUTH}/ holds <vid>.txt files, one class name per frame")
        entries.append(Entry((path.stem,), read_ground_truth(path, mapper, names, splits.get(path.stem))))
    return entries


def read_ground_truth(path: Path, mapper: ClassMap, names: set[str] | None, split: str | None) -> VideoAnnotation:
    """Per-frame labels of one ``groundTruth`` file; a name not in ``mapping.txt`` is an error."""
    labels = []
    for n, line in enumerate(label_files.read_lines(path), start=1):
        name = line.strip()
        if not name:
            raise LabelError(f"{path}: line {n} is blank; every frame needs a class name")
        if names is not None and name not in names:
            raise LabelError(f"{path}: line {n}: {name!r} is not in {MAPPING}")
        labels.append(mapper.index(path, f"line {n}", name))
    if not labels:
        raise LabelError(f"{path}: no labels; expected one class name per frame")
    return VideoAnnotation(str(path), PER_FRAME, frame_labels=tuple(labels), split=split)


def _mapping(path: Path) -> set[str]:
    names = set()
    for n, line in enumerate(label_files.read_lines(path), start=1):
        parts = line.split(maxsplit=1)
        if not parts:
            continue
        if len(parts) != 2 or not parts[0].isdigit():
            raise LabelError(f"{path}: line {n}: expected '<index> <name>', got {line!r}")
        names.add(parts[1].strip())
    return names


def _splits(folder: Path, ratios: list[float]) -> dict[str, str]:
    """``{vid: split}`` of the smallest fold in ``splits/`` (empty without one)."""
    bundles = [(int(m[2]), m[1], p) for p in sorted(folder.glob("*.bundle")) if (m := BUNDLE.match(p.name))] \
        if folder.is_dir() else []
    if not bundles:
        return {}
    fold = min(k for k, _, _ in bundles)
    train, val, _ = ratios
    out: dict[str, str] = {}
    for _, bundle, path in sorted(b for b in bundles if b[0] == fold):
        for line in label_files.read_lines(path):
            vid, subset = Path(line.strip()).stem, bundle
            if not vid:
                continue
            if subset == "train" and val > 0:  # a stable share of train becomes val (hash of the name alone)
                shares = [train / (train + val), val / (train + val), 0.0]
                subset = "val" if label_files.hash_split(vid, shares) == "val" else "train"
            out[vid] = subset
    return out


def render(pred: Predictions) -> str:
    """A ``groundTruth/<vid>.txt``: every frame's class name, background included (MS-TCN labels every frame)."""
    return "".join(f"{pred.classes[int(label)]}\n" for label in pred.labels)


def render_mapping(classes: list[str]) -> str:
    """``mapping.txt`` for ``classes``: ``<index> <name>`` lines."""
    return "".join(f"{i} {name}\n" for i, name in enumerate(classes))
