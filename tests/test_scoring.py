"""Scoring prediction files of any tool against a raw dataset's labels (hand-written files in tmp_path)."""

import io
import json
import math

import numpy as np
import pytest

from lstm_tv.config import DataConfig
from lstm_tv.errors import LabelError, PredictionError
from lstm_tv.scoring import load_scoring_set, probability_report, read_predictions
from lstm_tv.stream import PredictedChunk
from lstm_tv.writers import open_writer

CLASSES = ["wolf", "dog", "unknown"]
RATIOS = [0.7, 0.15, 0.15]
DATA = DataConfig(classes=CLASSES, background="unknown", split_ratios=RATIOS)
HEADER = "frame,time,label,confidence,p_wolf,p_dog,p_unknown"


def raw_dataset(root, labels: dict[str, str], masks: dict[str, str] | None = None, splits: str | None = None):
    """A raw dataset layout (docs/formats.md §1); the videos are empty files: scoring never decodes them."""
    (root / "videos").mkdir(parents=True)
    (root / "labels").mkdir()
    for name, text in labels.items():
        stem = name.rsplit(".", 1)[0]
        (root / "videos" / f"{stem}.mp4").write_bytes(b"")
        (root / "labels" / name).write_text(text)
    if masks:
        (root / "masks").mkdir()
        for stem, text in masks.items():
            (root / "masks" / f"{stem}.txt").write_text(text)
    if splits:
        (root / "splits.csv").write_text(splits)
    return root


def csv_rows(labels, probs=None, fps=10.0):
    """Prediction CSV text: one row per frame, probabilities optional."""
    lines = [HEADER if probs is not None else "frame,time,label"]
    for i, label in enumerate(labels):
        row = [str(i), f"{i / fps:.6f}", label]
        if probs is not None:
            row += [str(max(probs[i]))] + [str(p) for p in probs[i]]
        lines.append(",".join(row))
    return "\n".join(lines) + "\n"


def report_of(pred, src):
    return probability_report(load_scoring_set(pred, src, DATA), CLASSES, "unknown")


@pytest.fixture
def dataset(tmp_path):
    """Video a: per-frame labels and a mask; video b: segment labels (seconds)."""
    src = raw_dataset(tmp_path / "src", {"a.txt": "wolf\nwolf\ndog\nunknown\n",
                                         "b.csv": "start,end,label\n0.1,0.3,dog\n"},
                      masks={"a": "0\n1\n0\n0\n"}, splits="video,split\na,test\nb,test\n")
    pred = tmp_path / "pred"
    pred.mkdir()
    probs_a = [[0.7, 0.2, 0.1], [0.4, 0.5, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]]
    (pred / "a.csv").write_text(csv_rows(["wolf", "dog", "dog", "unknown"], probs_a))
    rows_b = [{"frame": i, "time": i / 10, "label": lab} for i, lab in enumerate(["unknown", "unknown", "dog", "dog"])]
    (pred / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows_b))
    return src, pred


def test_pairs_prediction_files_with_per_frame_and_segment_labels_and_masks(dataset):
    src, pred = dataset
    scoring = load_scoring_set(pred, src, DATA, split="test")
    a, b = scoring.videos
    assert (a.stem, b.stem) == ("a", "b")
    assert a.truth.tolist() == [0, 0, 1, 2] and a.prediction.labels.tolist() == [0, 1, 1, 2]
    assert a.mask.tolist() == [False, True, False, False]
    np.testing.assert_allclose(a.prediction.probs[1], [0.4, 0.5, 0.1])
    assert a.prediction.fps == pytest.approx(10.0)
    # b's segment [0.1, 0.3) covers the frames at 0.1 and 0.2 s; the rest is background.
    assert b.truth.tolist() == [2, 1, 1, 2] and b.mask is None and b.prediction.probs is None
    assert scoring.left_out == [] and scoring.warnings == []


def test_a_label_only_file_is_scored_on_what_needs_no_scores_and_the_rest_is_named(dataset):
    src, pred = dataset
    report = report_of(pred, src)
    assert "b.jsonl" in report["skipped"]["map"] and "b.jsonl" in report["skipped"]["ece"]
    assert "map" not in report and "nll" not in report
    # a: wolf segment [0, 2) first right at frame 0, dog at frame 2 right; b: dog [1, 3) first right at frame 2.
    delay = report["detection_delay"]
    assert (delay["segments"], delay["detected"], delay["missed"]) == (3, 3, 0)
    assert delay["p90_frames"] == pytest.approx(0.8) and delay["p90_s"] == pytest.approx(0.08)


def test_probabilities_give_the_probability_metrics(tmp_path):
    src = raw_dataset(tmp_path / "src", {"a.txt": "wolf\ndog\nunknown\n"})
    (tmp_path / "pred").mkdir()
    probs = [[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.1, 0.1, 0.8]]
    (tmp_path / "pred" / "a.csv").write_text(csv_rows(["wolf", "dog", "unknown"], probs))
    report = report_of(tmp_path / "pred", src)
    assert report["skipped"] == {}
    assert report["map"] == 1.0 and report["cmap"] == 1.0  # every class's own frame ranks first
    assert report["nll"] == pytest.approx(-(math.log(0.8) + math.log(0.6) + math.log(0.8)) / 3, rel=1e-6)


def test_a_split_scores_only_its_videos_and_leaves_the_others_out(dataset):
    src, pred = dataset
    (src / "splits.csv").write_text("video,split\na,test\nb,train\n")
    scoring = load_scoring_set(pred, src, DATA, split="test")
    assert [v.stem for v in scoring.videos] == ["a"] and scoring.left_out == [pred / "b.jsonl"]


def test_labels_one_or_two_frames_off_are_fitted_with_a_warning(dataset):
    src, pred = dataset
    (src / "labels" / "a.txt").write_text("wolf\nwolf\ndog\n")  # 3 labels, 4 rows: last label repeated
    scoring = load_scoring_set(pred, src, DATA)
    assert scoring.videos[0].truth.tolist() == [0, 0, 1, 1]
    assert len(scoring.warnings) == 1 and "a.txt" in scoring.warnings[0]


def test_our_own_writer_reads_back(tmp_path):
    probs = np.array([[0.2, 0.7, 0.1], [0.05, 0.05, 0.9]], dtype=np.float32)
    text = io.StringIO()
    with open_writer(text, "csv", CLASSES) as writer:
        writer.write(PredictedChunk(0, np.array([0.0, 0.04]), probs))
    (tmp_path / "v.csv").write_text(text.getvalue())
    read = read_predictions(tmp_path / "v.csv", CLASSES)
    assert read.labels.tolist() == [1, 2] and read.fps == pytest.approx(25.0)
    np.testing.assert_allclose(read.probs, probs, atol=1e-6)
    np.testing.assert_allclose(read.confidence, [0.7, 0.9], atol=1e-6)


def test_probability_columns_in_another_order_are_matched_by_name(tmp_path):
    (tmp_path / "v.csv").write_text("frame,time,label,p_unknown,p_dog,p_wolf\n0,0,dog,0.1,0.6,0.3\n")
    np.testing.assert_allclose(read_predictions(tmp_path / "v.csv", CLASSES).probs, [[0.3, 0.6, 0.1]])


BAD_FILES = [
    ("frame,time,label\n0,0,cat\n", "line 2: unknown label 'cat'"),
    (f"{HEADER}\n0,0,wolf,0.5,nan,0.5,0.5\n", "line 2: probability 'nan' is not a finite number"),
    (f"{HEADER}\n0,0,wolf,0.5,0.5,0.5,0.0\n1,0.1,wolf,0.9,1.1,-0.1,0.0\n", "line 3: negative probability"),
    (f"{HEADER}\n0,0,wolf,0.5,0.5,0.2,0.0\n", "line 2: probabilities sum to 0.7"),
    ("frame,time,label,confidence\n0,0,wolf,1.5\n", "line 2: confidence 1.5 is not in"),
    ("frame,time,label\n0,0,wolf\n2,0.1,wolf\n", "line 3: frame 2, expected 1"),
    ("frame,time,label\n0,0.5,wolf\n1,0.1,wolf\n", "line 3: time goes back"),
    ("frame,time,label\n0,soon,wolf\n", "line 2: time 'soon' is not a finite number"),
    ("frame,time,label,p_wolf\n0,0,wolf,1\n", "has p_wolf but no p_dog"),
    ("frame,time,label,score\n0,0,wolf,1\n", "unexpected column 'score'"),
    ("frame,label\n0,wolf\n", "no time column"),
    ("frame,time,label\n", "no rows"),
    ("frame,time,label\n0,0,wolf\n1,0.1\n", "line 3: 2 fields, the header has 3"),
]


@pytest.mark.parametrize("text, message", BAD_FILES)
def test_a_malformed_prediction_file_is_one_line_naming_file_and_line(tmp_path, text, message):
    path = tmp_path / "v.csv"
    path.write_text(text)
    with pytest.raises(PredictionError, match="v.csv") as err:
        read_predictions(path, CLASSES)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("text, message", [
    ('{"frame": 0, "time": 0, "label": "wolf"}\n{"frame": 1, "time": 0.1}\n', "line 2: keys"),
    ('{"frame": 0, "time": 0, "label": "wolf"}\nnot json\n', "line 2: not valid JSON"),
    ('{"frame": 0, "time": null, "label": "wolf"}\n', "line 1: time None is not a finite number"),
])
def test_a_malformed_jsonl_file_names_its_line(tmp_path, text, message):
    (tmp_path / "v.jsonl").write_text(text)
    with pytest.raises(PredictionError, match=message):
        read_predictions(tmp_path / "v.jsonl", CLASSES)


def test_a_missing_prediction_file_is_named(dataset):
    src, pred = dataset
    (pred / "b.jsonl").unlink()
    with pytest.raises(PredictionError, match=r"b\.csv: missing .*1 of 2 missing"):
        load_scoring_set(pred, src, DATA)


def test_an_extra_prediction_file_is_named(dataset):
    src, pred = dataset
    (pred / "c.csv").write_text("frame,time,label\n0,0,wolf\n")
    with pytest.raises(PredictionError, match=r"c\.csv: no labelled video 'c'"):
        load_scoring_set(pred, src, DATA)


def test_two_files_for_one_stem_are_refused(dataset):
    src, pred = dataset
    (pred / "a.jsonl").write_text("")
    with pytest.raises(PredictionError, match="two prediction files for 'a'"):
        load_scoring_set(pred, src, DATA)


@pytest.mark.parametrize("labels, mask, named", [
    ("wolf\n" * 9, "0\n" * 4, "a.txt"),  # 9 labels for 4 rows
    ("wolf\n" * 4, "0\n" * 8, "a.txt"),  # mask of 8 for 4 rows: the mask file is named
])
def test_a_wrong_row_count_names_the_prediction_and_the_labels(dataset, labels, mask, named):
    src, pred = dataset
    (src / "labels" / "a.txt").write_text(labels)
    (src / "masks" / "a.txt").write_text(mask)
    with pytest.raises(PredictionError, match=r"a\.csv: 4 rows but .*a\.txt has \d+ (labels|mask values)"):
        load_scoring_set(pred, src, DATA)


def test_a_bad_label_file_fails_as_prepare_would(dataset):
    src, pred = dataset
    (src / "labels" / "a.txt").write_text("wolf\ncat\ndog\nunknown\n")
    with pytest.raises(LabelError, match="line 2: unknown class 'cat'"):
        load_scoring_set(pred, src, DATA)
