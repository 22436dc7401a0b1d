"""Parsers for the label, mask and splits files of a raw dataset (docs/formats.md §1).

Each parser either returns clean values or raises ``LabelError`` whose one line names the file, the
line and what is expected. They never see video: frame counts and frame times are passed in.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path

from lstm_tv.errors import LabelError

SPLITS = ("train", "val", "test")
# A .txt label or mask file may differ from the decoded frame count by this many frames at the end
# (containers round durations); the last value is repeated or cut, with a warning.
LENGTH_TOLERANCE = 2
# Segment boundaries are compared with frame times with this slack (seconds), so that boundaries
# written with a few decimals (1/24 s = 0.041667) still fall on the intended frame.
TIME_SLACK = 5e-4


def _read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 text file without line endings (LF or CRLF); trailing blank lines dropped."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise LabelError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise LabelError(f"{path}: not UTF-8 text (invalid byte at offset {e.start}); save it as UTF-8") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _csv_rows(path: Path, lines: list[str]) -> list[list[str]]:
    """Rows of a CSV file's lines; malformed CSV (e.g. a field beyond csv's size limit) is a LabelError."""
    reader = csv.reader(io.StringIO("\n".join(lines)))
    try:
        return list(reader)
    except csv.Error as e:
        raise LabelError(f"{path}: line {reader.line_num}: not valid CSV ({e})") from None


def read_frame_labels(path: str | Path, classes: list[str]) -> list[int]:
    """Per-frame labels: line i (from 0) is the class name of decoded frame i.

    Returns:
        Class indices, one per line.
    Raises:
        LabelError: unreadable file, a blank line, or a name that is not in ``classes`` (1-based line).
    """
    path = Path(path)
    index = {name: i for i, name in enumerate(classes)}
    out = []
    for n, line in enumerate(_read_lines(path), start=1):
        name = line.strip()
        if not name:
            raise LabelError(f"{path}: line {n} is blank; every frame needs a class ({', '.join(classes)})")
        if name not in index:
            raise LabelError(f"{path}: line {n}: unknown class {name!r}; expected one of {', '.join(classes)}")
        out.append(index[name])
    if not out:
        raise LabelError(f"{path}: no labels; expected one class name per frame")
    return out


def read_mask(path: str | Path) -> list[int]:
    """Per-frame mask: line i is 1 where frame i needs memory to be classified, else 0."""
    path = Path(path)
    out = []
    for n, line in enumerate(_read_lines(path), start=1):
        value = line.strip()
        if value not in ("0", "1"):
            raise LabelError(f"{path}: line {n}: {value!r} is not 0 or 1")
        out.append(int(value))
    if not out:
        raise LabelError(f"{path}: empty mask; expected one 0 or 1 per frame")
    return out


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    label: int
    line: int


def read_segments(path: str | Path, classes: list[str]) -> list[Segment]:
    """Segment labels: a CSV with header ``start,end,label``; seconds, half-open ``[start, end)``.

    Raises:
        LabelError: missing/other header, a bad number, negative time, end not after start,
            unknown label, or two overlapping segments (both lines named).
    """
    path = Path(path)
    lines = _read_lines(path)
    if not lines:
        raise LabelError(f"{path}: empty file; expected a header 'start,end,label' and one row per segment")
    rows = _csv_rows(path, lines)
    header = [h.strip().lower() for h in rows[0]]
    if header != ["start", "end", "label"]:
        raise LabelError(f"{path}: line 1: header must be 'start,end,label', got {','.join(rows[0])!r}")
    index = {name: i for i, name in enumerate(classes)}
    segments = []
    for n, row in enumerate(rows[1:], start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != 3:
            raise LabelError(f"{path}: line {n}: expected 3 fields start,end,label, got {len(row)}")
        try:
            start, end = float(row[0]), float(row[1])
        except ValueError:
            raise LabelError(f"{path}: line {n}: start and end must be seconds, got {row[0]!r}, {row[1]!r}") from None
        if not (math.isfinite(start) and math.isfinite(end)):
            raise LabelError(f"{path}: line {n}: start and end must be finite numbers")
        if start < 0 or end < 0:
            raise LabelError(f"{path}: line {n}: negative time ({start}, {end}); times are seconds from the first frame")
        if end <= start:
            raise LabelError(f"{path}: line {n}: end {end} is not after start {start}")
        name = row[2].strip()
        if name not in index:
            raise LabelError(f"{path}: line {n}: unknown class {name!r}; expected one of {', '.join(classes)}")
        segments.append(Segment(start, end, index[name], n))
    segments.sort(key=lambda s: s.start)
    for a, b in zip(segments, segments[1:]):
        if b.start < a.end - TIME_SLACK:
            raise LabelError(f"{path}: line {b.line} overlaps line {a.line} "
                             f"([{b.start}, {b.end}) starts before {a.end}); segments must not overlap")
    return segments


def segments_to_frames(segments: list[Segment], times: list[float], background: int) -> list[int]:
    """Label every frame by the segment containing its time; uncovered frames get ``background``."""
    labels = [background] * len(times)
    # Frames and segments are both sorted by time: one merge-like sweep.
    j = 0
    for seg in segments:
        while j < len(times) and times[j] + TIME_SLACK < seg.start:
            j += 1
        k = j
        while k < len(times) and times[k] + TIME_SLACK < seg.end:
            labels[k] = seg.label
            k += 1
        j = k
    return labels


def fit_length(values: list[int], frames: int, path: str | Path, what: str = "labels") -> tuple[list[int], str | None]:
    """Match a per-frame list to the decoded frame count.

    A difference of up to ``LENGTH_TOLERANCE`` frames (container rounding) is absorbed by repeating or
    cutting the last value, with a warning; anything larger is an error naming both counts.

    Returns:
        ``(values, warning_or_None)``.
    """
    diff = len(values) - frames
    if diff == 0:
        return values, None
    if abs(diff) > LENGTH_TOLERANCE:
        raise LabelError(f"{path}: {len(values)} {what} but the video has {frames} decoded frames; "
                         f"expected one line per frame")
    fixed = values[:frames] if diff > 0 else values + [values[-1]] * (-diff)
    return fixed, f"{path}: {len(values)} {what} for {frames} frames; {'cut' if diff > 0 else 'padded'} the end"


def read_splits(path: str | Path, stems: list[str]) -> dict[str, str]:
    """``splits.csv``: header ``video,split``; video is a stem or a file name; split in train/val/test.

    Returns:
        ``{stem: split}`` for the videos it names (others fall back to :func:`hash_split`).
    """
    path = Path(path)
    rows = _csv_rows(path, _read_lines(path))
    if not rows or [h.strip().lower() for h in rows[0]] != ["video", "split"]:
        raise LabelError(f"{path}: line 1: header must be 'video,split'")
    known = set(stems)
    out = {}
    for n, row in enumerate(rows[1:], start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != 2:
            raise LabelError(f"{path}: line {n}: expected 2 fields video,split, got {len(row)}")
        video, split = row[0].strip(), row[1].strip().lower()
        stem = video if video in known else Path(video).stem
        if stem not in known:
            raise LabelError(f"{path}: line {n}: video {video!r} is not in videos/ (or has no labels)")
        if split not in SPLITS:
            raise LabelError(f"{path}: line {n}: split {row[1].strip()!r} must be one of {', '.join(SPLITS)}")
        if stem in out and out[stem] != split:
            raise LabelError(f"{path}: line {n}: video {video!r} is listed twice with different splits")
        out[stem] = split
    return out


def hash_split(stem: str, ratios: list[float]) -> str:
    """A stable split for a stem: a hash of the name alone, so adding videos never moves another."""
    u = int.from_bytes(hashlib.sha1(stem.encode("utf-8")).digest()[:8], "big") / 2**64
    edge = 0.0
    for split, ratio in zip(SPLITS, ratios):
        edge += ratio
        if u < edge:
            return split
    return SPLITS[-1]
