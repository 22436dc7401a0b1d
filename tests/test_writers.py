"""Prediction writers: one interface for per-frame rows and per-segment outputs, chosen by format name."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from lstm_tv.errors import LstmTvError
from lstm_tv.stream import PredictedChunk
from lstm_tv.writers import (
    WRITERS,
    PredictionWriter,
    Segment,
    SegmentWriter,
    format_for,
    open_writer,
    prediction_suffixes,
)

CLASSES = ["cat", "dog", "none"]


def chunks_of(labels: list[int], sizes: list[int], fps: float = 10.0) -> list[PredictedChunk]:
    """Chunks whose frame f predicts ``labels[f]`` with probability 0.5 + f / 1000 (the rest spread evenly)."""
    out, start = [], 0
    for n in sizes:
        probs = np.full((n, len(CLASSES)), 0.0, np.float32)
        for j in range(n):
            f = start + j
            p = 0.5 + f / 1000
            probs[j] = (1 - p) / (len(CLASSES) - 1)
            probs[j, labels[f]] = p
        out.append(PredictedChunk(start, np.arange(start, start + n) / fps, probs))
        start += n
    return out


def written(fmt: str, chunks: list[PredictedChunk]) -> str:
    """What format ``fmt`` writes for ``chunks``, streamed to an open text file (as to stdout)."""
    file = io.StringIO()
    with open_writer(file, fmt, CLASSES) as writer:
        for chunk in chunks:
            writer.write(chunk)
    return file.getvalue()


def test_formats_are_chosen_by_name_and_suffix():
    assert list(WRITERS) == ["csv", "jsonl"] and prediction_suffixes() == (".csv", ".jsonl")
    assert format_for("a/b.CSV") == "csv" and format_for("x.jsonl") == "jsonl"
    with pytest.raises(LstmTvError, match=r"p\.txt: --out must end in \.csv or \.jsonl"):
        format_for("p.txt")


def test_csv_rows_are_exactly_the_documented_text():
    text = written("csv", chunks_of([0, 0, 2], [2, 1]))
    assert text == ("frame,time,label,confidence,p_cat,p_dog,p_none\n"
                    "0,0.0,cat,0.5,0.5,0.25,0.25\n"
                    "1,0.1,cat,0.501,0.501,0.2495,0.2495\n"
                    "2,0.2,none,0.502,0.249,0.249,0.502\n")


def test_jsonl_has_one_object_per_frame_keyed_as_the_csv_header():
    lines = written("jsonl", chunks_of([1, 0], [1, 1])).splitlines()
    assert [json.loads(line) for line in lines] == [
        {"frame": 0, "time": 0.0, "label": "dog", "confidence": 0.5, "p_cat": 0.25, "p_dog": 0.5, "p_none": 0.25},
        {"frame": 1, "time": 0.1, "label": "cat", "confidence": 0.501, "p_cat": 0.501, "p_dog": 0.2495,
         "p_none": 0.2495}]


def test_a_file_appears_only_when_the_video_is_done(tmp_path):
    path = tmp_path / "p.csv"
    with pytest.raises(RuntimeError), open_writer(path, "csv", CLASSES) as writer:
        writer.write(chunks_of([0], [1])[0])
        raise RuntimeError("decoding failed")
    assert list(tmp_path.iterdir()) == []                                     # nothing, not even a temporary file
    with open_writer(path, "csv", CLASSES) as writer:
        writer.write(chunks_of([0], [1])[0])
    assert path.read_text().splitlines()[1].startswith("0,0.0,cat")
    assert [p.name for p in tmp_path.iterdir()] == ["p.csv"]


class SegmentList(SegmentWriter):
    """A segment format defined in the test: one line per closed segment, and a count at the end."""

    def open(self) -> None:
        self.count = 0

    def write_segment(self, segment: Segment) -> None:
        self.count += 1
        self.file.write(f"{self.classes[segment.label]} {segment.start}-{segment.end} "
                        f"{segment.start_time:.2f}-{segment.end_time:.2f} {segment.confidence:.4f}\n")

    def close(self) -> None:
        super().close()
        self.file.write(f"{self.count} segments\n")


@pytest.mark.parametrize("sizes", [[7], [1] * 7, [3, 4], [2, 2, 3]])
def test_segments_are_maximal_runs_whatever_the_chunks(sizes):
    file = io.StringIO()
    writer: PredictionWriter = SegmentList(file, CLASSES, frame_time=0.1)
    writer.open()
    for chunk in chunks_of([0, 0, 1, 1, 1, 0, 2], sizes):
        writer.write(chunk)
    writer.close()
    assert file.getvalue().splitlines() == [
        "cat 0-2 0.00-0.20 0.5005",                                             # a run spanning a chunk boundary
        "dog 2-5 0.20-0.50 0.5030",
        "cat 5-6 0.50-0.60 0.5050",
        "none 6-7 0.60-0.70 0.5060",                                            # the last ends one frame later
        "4 segments"]
