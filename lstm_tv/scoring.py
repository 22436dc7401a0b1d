"""Score prediction files from any tool against a raw dataset's labels, without a checkpoint.

A folder holds one prediction file per video stem, in lstm-tv's format (docs/formats.md §4): CSV with the
header ``frame,time,label[,confidence][,p_<class>...]``, or JSON lines with those keys. The ``p_``
columns (all classes or none, in any order) and ``confidence`` are optional: a tool that writes labels
only is scored on every metric that needs no scores. Each file is paired with the raw dataset's
``labels/<stem>.txt|.csv`` and ``masks/<stem>.txt`` (docs/formats.md §1), read by :mod:`lstm_tv.data.labels`;
videos and splits are found as ``prepare`` finds them. Every error is one line naming the file (and line).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstm_tv.config import DataConfig
from lstm_tv.data import annotation_tools
from lstm_tv.data import labels as label_files
from lstm_tv.data.annotation_tools.common import PER_FRAME
from lstm_tv.data.prepare import assign_splits, discover
from lstm_tv.errors import DatasetError, LabelError, PredictionError
from lstm_tv.scores import FrameScores

PREDICTION_SUFFIXES = (".csv", ".jsonl")
REQUIRED_COLUMNS = ("frame", "time", "label")
# |sum of a row's p_ columns - 1| allowed: files round each probability to 6 decimals.
PROB_SUM_TOLERANCE = 1e-3


@dataclass
class PredictionFile:
    """One prediction file, checked.

    Attributes:
        times: (T,) seconds of each frame.
        labels: (T,) predicted class indices (the ``label`` column).
        confidence: (T,) float32 ``confidence`` column, or None.
        probs: (T, K) float32 ``p_<class>`` columns in the order of ``classes``, or None.
    """

    path: Path
    times: np.ndarray
    labels: np.ndarray
    confidence: np.ndarray | None
    probs: np.ndarray | None

    @property
    def fps(self) -> float | None:
        """Frame rate from the median time step (None for a single frame or constant times)."""
        step = float(np.median(np.diff(self.times))) if len(self.times) > 1 else 0.0
        return 1.0 / step if step > 0 else None


def _rows(path: Path) -> tuple[list[str], list[int], list[list]]:
    """The column names, line numbers and values of every non-blank row of a CSV or JSONL file.

    Raises:
        PredictionError: unreadable, not UTF-8, not CSV/JSON, or a row whose fields differ from the header.
    """
    try:
        f = open(path, encoding="utf-8-sig", newline="")
    except OSError as e:
        raise PredictionError(f"{path}: cannot read ({e.strerror})") from None
    header: list[str] = []
    lines: list[int] = []
    rows: list[list] = []
    n = 0
    with f:
        try:
            if path.suffix.lower() == ".csv":
                reader = csv.reader(f)
                header = [h.strip() for h in next(reader, [])]
                for row in reader:
                    if len(row) > 1 or (row and row[0].strip()):
                        lines.append(reader.line_num)
                        rows.append(row)
            else:
                for n, line in enumerate(f, start=1):
                    if line.strip():
                        obj = json.loads(line)
                        if not isinstance(obj, dict):
                            raise PredictionError(f"{path}: line {n}: expected a JSON object per line")
                        header = header or list(obj)
                        if obj.keys() != set(header):
                            raise PredictionError(f"{path}: line {n}: keys {sorted(obj)} differ from the "
                                                  f"first line's {sorted(header)}")
                        lines.append(n)
                        rows.append([obj[key] for key in header])
        except UnicodeDecodeError:
            raise PredictionError(f"{path}: not UTF-8 text") from None
        except json.JSONDecodeError as e:
            raise PredictionError(f"{path}: line {n}: not valid JSON ({e.msg})") from None
        except csv.Error as e:
            raise PredictionError(f"{path}: line {reader.line_num}: not valid CSV ({e})") from None
    short = next((i for i, row in enumerate(rows) if len(row) != len(header)), None)
    if short is not None:
        raise PredictionError(f"{path}: line {lines[short]}: {len(rows[short])} fields, the header has {len(header)}")
    return header, lines, rows


def _columns(path: Path, header: list[str], classes: list[str]) -> list[str]:
    """Check the header; return the ``p_`` column names in the order of ``classes`` (empty: none)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise PredictionError(f"{path}: no {', '.join(missing)} column; expected the header "
                              f"frame,time,label[,confidence][,p_<class>...]")
    allowed = set(REQUIRED_COLUMNS) | {"confidence"} | {f"p_{c}" for c in classes}
    unknown = [c for c in header if c not in allowed]
    if unknown:
        raise PredictionError(f"{path}: unexpected column {unknown[0]!r}; expected frame,time,label,confidence "
                              f"and p_<class> for the classes {', '.join(classes)}")
    if len(set(header)) != len(header):
        raise PredictionError(f"{path}: a column appears twice in the header")
    prob_columns = [f"p_{c}" for c in classes]
    present = [c for c in prob_columns if c in header]
    if present and len(present) != len(prob_columns):
        absent = [c for c in prob_columns if c not in header]
        raise PredictionError(f"{path}: has {present[0]} but no {absent[0]}; give a p_ column for every class or none")
    return present


def _numbers(path: Path, lines: list[int], columns: list[tuple], what: str) -> np.ndarray:
    """(C, T) float64 of C columns of cells; a non-number or non-finite cell names its line."""
    try:
        out = np.array(columns, dtype=np.float64)
        if np.isfinite(out).all():
            return out
    except (TypeError, ValueError):
        pass
    first_bad = []
    for column in columns:
        for i, cell in enumerate(column):
            try:
                ok = bool(np.isfinite(float(cell)))
            except (TypeError, ValueError):
                ok = False
            if not ok:
                first_bad.append((i, cell))
                break
    i, cell = min(first_bad, key=lambda bad: bad[0])
    raise PredictionError(f"{path}: line {lines[i]}: {what} {cell!r} is not a finite number")


def _label_indices(path: Path, lines: list[int], names: tuple, classes: list[str]) -> np.ndarray:
    """(T,) class index of each ``label`` cell (surrounding spaces allowed); an unknown name names its line."""
    index = {name: i for i, name in enumerate(classes)}
    out = [index.get(name, -1) for name in names]
    for i, value in enumerate(out):
        if value < 0:
            out[i] = index.get(str(names[i]).strip(), -1)
            if out[i] < 0:
                raise PredictionError(f"{path}: line {lines[i]}: unknown label {names[i]!r}; "
                                      f"expected one of {', '.join(classes)}")
    return np.asarray(out, dtype=np.int64)


def read_predictions(path: str | Path, classes: list[str]) -> PredictionFile:
    """Read and check one prediction file (CSV or JSONL, docs/formats.md §4).

    Raises:
        PredictionError: a missing or unexpected column, no rows, a row with too few or many fields,
            ``frame`` not 0, 1, 2, ... in order, times going back, an unknown label, a confidence
            outside [0, 1], or probabilities that are not finite, negative, or do not sum to 1 --
            each naming the file and line.
    """
    path = Path(path)
    header, lines, rows = _rows(path)
    prob_columns = _columns(path, header, classes)
    if not rows:
        raise PredictionError(f"{path}: no rows; expected one row per decoded frame")
    col = dict(zip(header, zip(*rows, strict=True), strict=True))  # name -> (T,) cells
    frames = _numbers(path, lines, [col["frame"]], "frame")[0]
    wrong = np.flatnonzero(frames != np.arange(len(frames)))
    if len(wrong):
        i = wrong[0]
        raise PredictionError(f"{path}: line {lines[i]}: frame {col['frame'][i]}, expected {i}; "
                              f"one row per decoded frame, in order from 0")
    times = _numbers(path, lines, [col["time"]], "time")[0]
    back = np.flatnonzero(np.diff(times) < 0)
    if len(back):
        raise PredictionError(f"{path}: line {lines[back[0] + 1]}: time goes back; times must not decrease")
    labels = _label_indices(path, lines, col["label"], classes)
    confidence = probs = None
    if "confidence" in header:
        confidence = _numbers(path, lines, [col["confidence"]], "confidence")[0]
        bad = np.flatnonzero((confidence < 0) | (confidence > 1))
        if len(bad):
            raise PredictionError(f"{path}: line {lines[bad[0]]}: confidence {confidence[bad[0]]} is not in [0, 1]")
        confidence = confidence.astype(np.float32)
    if prob_columns:
        # (K, T) -> (T, K)
        probs = _check_probs(path, lines, _numbers(path, lines, [col[c] for c in prob_columns], "probability").T)
    return PredictionFile(path, times, labels, confidence, probs)


def _check_probs(path: Path, lines: list[int], probs: np.ndarray) -> np.ndarray:
    """(T, K) float32 probabilities, refused with the line when negative or not summing to 1."""
    negative = np.flatnonzero((probs < 0).any(axis=1))
    if len(negative):
        raise PredictionError(f"{path}: line {lines[negative[0]]}: negative probability; p_ columns must be >= 0")
    sums = probs.sum(axis=1)
    off = np.flatnonzero(np.abs(sums - 1) > PROB_SUM_TOLERANCE)
    if len(off):
        raise PredictionError(f"{path}: line {lines[off[0]]}: probabilities sum to {sums[off[0]]:.6g}, not 1; "
                              f"p_ columns must be a distribution over the classes")
    return probs.astype(np.float32)


# ---------------------------------------------------------------------------------------------------
# Pairing prediction files with a raw dataset's labels


@dataclass
class ScoredVideo:
    """One video's predictions beside its truth, all (T,) per frame.

    Attributes:
        truth: true class indices from the labels file (segments labelled at the file's frame times).
        mask: bool, True where the frame needs memory (``masks/<stem>.txt``), or None.
    """

    stem: str
    prediction: PredictionFile
    labels_path: str
    truth: np.ndarray
    mask: np.ndarray | None


@dataclass
class ScoringSet:
    """The videos to score, with what the caller should print.

    Attributes:
        left_out: prediction files of videos in other splits, not scored.
        warnings: label or mask files 1-2 lines off the row count (padded or cut, as ``prepare``).
    """

    videos: list[ScoredVideo]
    left_out: list[Path]
    warnings: list[str]


def _fitted(values: list[int], pred: PredictionFile, path: Path, what: str) -> tuple[np.ndarray, str | None]:
    """``values`` fitted to the prediction's row count with prepare's tolerance; else an error naming both."""
    rows = len(pred.labels)
    try:
        fixed, warning = label_files.fit_length(values, rows, path, what)
    except LabelError:
        raise PredictionError(f"{pred.path}: {rows} rows but {path} has {len(values)} {what}; "
                              f"expected one row per decoded frame") from None
    return np.asarray(fixed, dtype=np.int64), warning


def _truth(annotation, pred: PredictionFile, background: int) -> tuple[np.ndarray, list[str]]:
    """(T,) true classes of a prediction file's frames, from any label form ``prepare`` reads (per-frame
    labels, segments or an annotation tool's file), segments labelled at the prediction file's times."""
    if annotation.unit == PER_FRAME:
        labels, warning = _fitted(list(annotation.frame_labels), pred, Path(annotation.path), "labels")
        return labels, [warning] if warning else []
    frames, warnings = annotation_tools.to_frame_labels(annotation, pred.times.tolist(), background)
    return np.asarray(frames, dtype=np.int64), warnings


def _prediction_files(pred_dir: Path) -> dict[str, Path]:
    """``{stem: path}`` of the .csv/.jsonl files in ``pred_dir``; two files of one stem is an error."""
    if not pred_dir.is_dir():
        raise PredictionError(f"{pred_dir}: prediction directory not found")
    found: dict[str, Path] = {}
    for p in sorted(pred_dir.iterdir()):
        if p.name.startswith(".") or not p.is_file() or p.suffix.lower() not in PREDICTION_SUFFIXES:
            continue
        if p.stem in found:
            raise PredictionError(f"{p} and {found[p.stem]}: two prediction files for {p.stem!r}; keep one")
        found[p.stem] = p
    return found


def load_scoring_set(pred_dir: str | Path, src: str | Path, cfg: DataConfig, *, split: str | None = None,
                     skip_unlabeled: bool = False, labels_format: str | None = None) -> ScoringSet:
    """Pair ``pred_dir/<stem>.csv|.jsonl`` with the labels (and masks) of the raw dataset ``src``.

    Args:
        pred_dir: one prediction file per video stem.
        src: raw dataset (docs/formats.md §1); its videos are found, and split, as ``prepare`` does.
        cfg: the ``data`` settings: classes, background, split ratios (for videos ``splits.csv`` does not
            name), and the class map of annotation-tool labels.
        split: score only the videos of this split (``train``/``val``/``test``); None: every video.
        skip_unlabeled: leave out videos without labels instead of failing (as ``prepare --skip-unlabeled``).
        labels_format: the label format (``prepare --labels-format``); None: detected from the files.
    Returns:
        A :class:`ScoringSet`, videos sorted by stem.
    Raises:
        PredictionError: a missing prediction file, one for no video of ``src``, a malformed one, or
            a row count that does not match its labels or mask.
        DatasetError, LabelError: as ``prepare`` for ``src`` itself.
    """
    pred_dir, src = Path(pred_dir), Path(src)
    if split is not None and split not in label_files.SPLITS:
        raise DatasetError(f"--split {split}: must be one of {', '.join(label_files.SPLITS)}")
    classes, background = list(cfg.classes), cfg.classes.index(cfg.background)
    pairs, warnings = discover(src, cfg, skip_unlabeled=skip_unlabeled, labels_format=labels_format)
    splits = assign_splits(src, pairs, list(cfg.split_ratios))
    files = _prediction_files(pred_dir)
    known = {p[0] for p in pairs}
    extra = sorted(set(files) - known)
    if extra:
        raise PredictionError(f"{files[extra[0]]}: no labelled video {extra[0]!r} in {src / 'videos'}; "
                              f"remove the file or add the video and its labels")
    wanted = [p for p in pairs if split is None or splits[p[0]] == split]
    missing = [stem for stem, *_ in wanted if stem not in files]
    if missing:
        raise PredictionError(f"{pred_dir / missing[0]}.csv: missing (no .csv or .jsonl for this "
                              f"{split or 'dataset'} video; {len(missing)} of {len(wanted)} missing)")
    if not wanted:
        raise DatasetError(f"{src}: no video in the {split} split")
    videos = []
    for stem, _video, annotation, mask_path in wanted:
        pred = read_predictions(files[stem], classes)
        truth, more = _truth(annotation, pred, background)
        mask = mask_warning = None
        if mask_path is not None:
            mask, mask_warning = _fitted(label_files.read_mask(mask_path), pred, mask_path, "mask values")
            mask = mask.astype(bool)
        warnings += more + ([mask_warning] if mask_warning else [])
        videos.append(ScoredVideo(stem, pred, annotation.path, truth, mask))
    left_out = [files[stem] for stem, *_ in pairs if stem in files and all(v.stem != stem for v in videos)]
    return ScoringSet(videos, left_out, warnings)


def probability_report(scoring: ScoringSet, classes: list[str], background: str) -> dict:
    """The :class:`lstm_tv.scores.FrameScores` report of a scoring set: AP, mAP, cmAP, ECE, NLL,
    reliability, risk-coverage and detection delay, with ``skipped`` naming what the files lack.

    Detection delay uses the ``label`` column (what the tool decided, abstentions included); ECE and
    risk-coverage use the top ``p_`` class where given, else ``label`` and ``confidence``.
    """
    acc = FrameScores(classes, classes.index(background))
    for v in scoring.videos:
        p = v.prediction
        acc.add(v.truth, p.labels, probs=p.probs, confidence=p.confidence, fps=p.fps, name=str(p.path))
    return acc.report()
