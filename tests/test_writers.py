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
TV_CLASSES = ["wolf", "dog", "bear", "goldfish", "unknown"]  # the synthetic data's


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
    assert list(WRITERS)[:2] == ["csv", "jsonl"] and prediction_suffixes() == (".csv", ".jsonl")
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


# ---------------------------------------------------------------------------------------------------
# Annotation tools: what predict writes for correction reads back through prepare as the same labels


def test_tool_formats_are_registered_but_not_picked_by_suffix():
    assert {"cvat", "labelstudio", "eaf", "mstcn", "activitynet"} <= set(WRITERS)
    assert prediction_suffixes() == (".csv", ".jsonl")           # .json/.txt/.xml need --format
    assert format_for("a.json", "labelstudio") == "labelstudio"
    with pytest.raises(LstmTvError, match="--format nope: unknown; choose from csv, jsonl"):
        format_for("a.csv", "nope")


def test_a_tool_writer_renders_the_streamed_runs_once_at_the_end(tmp_path):
    from lstm_tv.data.annotation_tools import ClassMap, cvat
    from lstm_tv.writers import VideoContext

    labels = [2, 0, 0, 1, 1, 1, 2, 0]
    text = io.StringIO()
    with open_writer(text, "cvat", CLASSES, frame_time=0.1, video=VideoContext("v.mp4", "none", 32, 24)) as w:
        for chunk in chunks_of(labels, [3, 5]):
            w.write(chunk)
            assert text.getvalue() == ""                            # one document: nothing before the end
    assert "<size>8</size>" in text.getvalue() and 'label="cat"' in text.getvalue()
    (tmp_path / "v.xml").write_text(text.getvalue())
    (entry,) = cvat.read(tmp_path / "v.xml", ClassMap(tuple(CLASSES), "none"), {})
    spans = [(s.label, int(s.start), int(s.end)) for s in entry.annotation.spans]
    assert sorted(spans) == [(0, 1, 3), (0, 7, 8), (1, 3, 6)]       # the background frames are left unlabelled


@pytest.mark.parametrize("fmt, labels_at", [("cvat", "labels/{stem}.xml"), ("labelstudio", "labels/{stem}.json"),
                                            ("eaf", "labels/{stem}.eaf"), ("activitynet", "labels/{stem}.json"),
                                            ("mstcn", "groundTruth/{stem}.txt")])
def test_predict_for_correction_reads_back_through_prepare(cli, tiny_run, tmp_path, fmt, labels_at):
    from lstm_tv.config import load_config
    from lstm_tv.data.dataset import PreparedDataset
    from lstm_tv.data.prepare import prepare_dataset
    from lstm_tv.scoring import read_predictions

    video = sorted((tiny_run["raw"] / "videos").glob("*.mp4"))[0]
    ckpt = tiny_run["ckpt"]
    out = tmp_path / "pre"
    out.mkdir()
    r = cli("predict", video, "--checkpoint", ckpt, "--out", out / "p.csv")
    assert r.code == 0, r.err
    predicted = read_predictions(out / "p.csv", TV_CLASSES).labels.tolist()
    # The raw layout of a user who imported the pre-labels into the tool and exported them unchanged.
    src = tmp_path / "raw"
    (src / "videos").mkdir(parents=True)
    (src / "videos" / video.name).write_bytes(video.read_bytes())
    target = src / labels_at.format(stem=video.stem)
    target.parent.mkdir(parents=True)
    r = cli("predict", video, "--checkpoint", ckpt, "--out", target.parent, "--format", fmt)
    assert r.code == 0, r.err
    assert target.is_file(), sorted(p.name for p in target.parent.iterdir())
    if fmt == "labelstudio":  # Label Studio exports what a person accepted as annotations, never predictions
        tasks = json.loads(target.read_text())
        tasks[0]["annotations"] = [{"result": tasks[0].pop("predictions")[0]["result"]}]
        target.write_text(json.dumps(tasks))
    if fmt == "mstcn":
        assert (src / "mapping.txt").read_text().splitlines()[:2] == ["0 wolf", "1 dog"]
    prepare_dataset(src, tmp_path / "prepared", load_config(None, ["data.size=16"]).data, workers=1)
    data = PreparedDataset(tmp_path / "prepared")
    assert data.labels(data.videos[0]).tolist() == predicted


# ---------------------------------------------------------------------------------------------------
# Events (predict --events): one JSON line per closed segment, flicker absorbed with --min-frames


def events(labels: list[int], sizes: list[int], min_frames: int = 1) -> list[tuple]:
    file = io.StringIO()
    with open_writer(file, "events", CLASSES, frame_time=0.1, min_frames=min_frames) as writer:
        for chunk in chunks_of(labels, sizes):
            writer.write(chunk)
    return [(e["label"], e["start"], e["end"], e["frames"]) for e in map(json.loads, file.getvalue().splitlines())]


def test_an_event_is_a_json_line_with_the_documented_keys():
    file = io.StringIO()
    with open_writer(file, "events", CLASSES, frame_time=0.1) as writer:
        writer.write(chunks_of([0, 0, 1], [3])[0])
        assert json.loads(file.getvalue()) == {"label": "cat", "start": 0, "end": 2, "start_time": 0.0,
                                               "end_time": 0.2, "frames": 2, "mean_confidence": 0.5005}
    assert json.loads(file.getvalue().splitlines()[1])["label"] == "dog"          # the open one, at the end
    assert "events" in WRITERS and "events" not in [format_for("a.jsonl")]       # .jsonl still picks rows


@pytest.mark.parametrize("sizes", [[15], [1] * 15, [4, 5, 6]])
@pytest.mark.parametrize("labels, min_frames, expected", [
    ([0, 0, 1, 1, 1, 0, 2], 1, [("cat", 0, 2, 2), ("dog", 2, 5, 3), ("cat", 5, 6, 1), ("none", 6, 7, 1)]),
    # a one-frame dog inside the cats does not end them; the two-frame dog run at the end joins the nones
    ([0, 0, 0, 0, 1, 0, 0, 0, 2, 2, 2, 2, 2, 1, 1], 3, [("cat", 0, 8, 8), ("none", 8, 15, 7)]),
    ([1, 0, 0, 0, 0], 3, [("cat", 0, 5, 5)]),              # flicker at the start joins the first segment
    ([0, 1, 0, 1, 2], 3, []),                                # nothing lasted 3 frames: no event
])
def test_min_frames_absorbs_shorter_runs_whatever_the_chunks(labels, min_frames, expected, sizes):
    cut, parts = 0, []
    for n in sizes:  # the same chunk sizes, cut to the labels' length
        if cut < len(labels):
            parts.append(min(n, len(labels) - cut))
            cut += parts[-1]
    assert events(labels, parts, min_frames) == expected


def test_a_segment_s_confidence_is_the_mean_over_its_own_label_s_frames():
    file = io.StringIO()
    with open_writer(file, "events", CLASSES, frame_time=0.1, min_frames=3) as writer:
        writer.write(chunks_of([0, 0, 0, 0, 1, 0, 0, 0], [8])[0])
    (event,) = map(json.loads, file.getvalue().splitlines())
    assert event["frames"] == 8 and event["mean_confidence"] == pytest.approx(0.5 + (0 + 1 + 2 + 3 + 5 + 6 + 7) / 7000)


def test_live_rows_mark_the_gap_and_keep_the_frame_numbers_and_a_gap_closes_the_segment():
    from lstm_tv.live_predict import LiveChunk

    probs = np.tile(np.array([[0.6, 0.2, 0.2]], np.float32), (2, 1))
    before = LiveChunk(0, np.array([0.0, 0.1]), probs, numbers=np.array([0, 1]))
    after = LiveChunk(5, np.array([3.0, 3.1]), probs, numbers=np.array([5, 7]), gap=True)  # 6 was dropped
    rows, segments = io.StringIO(), io.StringIO()
    with open_writer(rows, "csv", CLASSES, live=True) as w, open_writer(segments, "events", CLASSES) as e:
        for chunk in (before, after):
            w.write(chunk)
            e.write(chunk)
    lines = rows.getvalue().splitlines()
    assert lines[0].endswith(",gap") and [line.split(",")[0] for line in lines[1:]] == ["0", "1", "5", "7"]
    assert [line.split(",")[-1] for line in lines[1:]] == ["0", "0", "1", "0"]
    closed = map(json.loads, segments.getvalue().splitlines())
    got = [(s["start"], s["end"], s["end_time"], s["frames"]) for s in closed]
    assert got == [(0, 2, 0.2, 2), (5, 8, 3.2, 2)]          # closed at the gap; frames counts the decided ones
