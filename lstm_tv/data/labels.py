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


def read_text(path: Path) -> str:
    """A UTF-8 text file (a BOM is dropped); a missing or non-UTF-8 file is a ``LabelError`` naming it."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise LabelError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise LabelError(f"{path}: not UTF-8 text (invalid byte at offset {e.start}); save it as UTF-8") from None


def read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 text file without line endings (LF or CRLF); trailing blank lines dropped."""
    lines = read_text(path).splitlines()
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
    for n, line in enumerate(read_lines(path), start=1):
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
    for n, line in enumerate(read_lines(path), start=1):
        value = line.strip()
        if value not in ("0", "1"):
            raise LabelError(f"{path}: line {n}: {value!r} is not 0 or 1")
        out.append(int(value))
    if not out:
        raise LabelError(f"{path}: empty mask; expected one 0 or 1 per frame")
    return out


@dataclass(frozen=True)
class Segment:
    """A labelled interval, half-open ``[start, end)``, in seconds (or frames where a caller says so)."""

    start: float
    end: float
    label: int
    where: str  # the place in its file for messages: "line 4", "line 9 <track id=\"2\">"


def check_interval(path: str | Path, where: str, start: float, end: float, *, unit: str = "s",
                   inclusive: bool = False) -> None:
    """Raise ``LabelError`` unless ``start``/``end`` are finite, non-negative and in order.

    ``inclusive`` intervals (a first and a last frame) may have ``end == start``; half-open ones may not.
    """
    what = "times are seconds from the first frame" if unit == "s" else "frames count from 0"
    if not (math.isfinite(start) and math.isfinite(end)):
        raise LabelError(f"{path}: {where}: start and end must be finite numbers")
    if start < 0 or end < 0:
        raise LabelError(f"{path}: {where}: negative {'time' if unit == 's' else 'frame'} ({start}, {end}); {what}")
    if end < start or (end == start and not inclusive):
        raise LabelError(f"{path}: {where}: end {end} is {'before' if inclusive else 'not after'} start {start}")


def check_overlaps(path: str | Path, segments: list[Segment], *, slack: float = TIME_SLACK,
                   same_label_ok: bool = False) -> list[Segment]:
    """Sort ``segments`` by start; raise ``LabelError`` naming both places if two overlap.

    With ``same_label_ok`` two segments of one label may overlap (an annotation tool's two tracks of
    the same class in view at once say the same thing); different labels on one frame never may.
    """
    segments = sorted(segments, key=lambda s: s.start)
    open_by_label: dict[int, Segment] = {}  # per label, the segment reaching furthest so far
    for b in segments:
        for a in open_by_label.values():
            if b.start < a.end - slack and not (same_label_ok and a.label == b.label):
                raise LabelError(f"{path}: {b.where} overlaps {a.where} ([{b.start}, {b.end}) starts before "
                                 f"{a.end}); segments must not overlap")
        if same_label_ok:
            if b.label not in open_by_label or b.end > open_by_label[b.label].end:
                open_by_label[b.label] = b
        elif not open_by_label or b.end > next(iter(open_by_label.values())).end:
            open_by_label = {b.label: b}
    return segments


def read_segments(path: str | Path, classes: list[str]) -> list[Segment]:
    """Segment labels: a CSV with header ``start,end,label``; seconds, half-open ``[start, end)``.

    Raises:
        LabelError: missing/other header, a bad number, negative time, end not after start,
            unknown label, or two overlapping segments (both lines named).
    """
    path = Path(path)
    lines = read_lines(path)
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
        check_interval(path, f"line {n}", start, end)
        name = row[2].strip()
        if name not in index:
            raise LabelError(f"{path}: line {n}: unknown class {name!r}; expected one of {', '.join(classes)}")
        segments.append(Segment(start, end, index[name], f"line {n}"))
    return check_overlaps(path, segments)


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
    rows = _csv_rows(path, read_lines(path))
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
