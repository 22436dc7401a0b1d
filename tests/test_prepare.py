"""`lstm-tv prepare`: raw videos + labels -> a memory-mappable dataset, atomically, with clear errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import write_raw, write_video

from lstm_tv.config import DataConfig
from lstm_tv.data.dataset import PreparedDataset
from lstm_tv.data.prepare import prepare_dataset
from lstm_tv.errors import DatasetError, LabelError, VideoError

CFG = DataConfig(size=16)


def test_prepare_writes_frames_labels_masks_and_manifest(tmp_path):
    src = write_raw(tmp_path / "raw", {"a": 30, "b": 24, "c": 26}, csv_stems=("b",),
                    splits={"a": "train", "b": "val", "c": "test"})
    manifest = prepare_dataset(src, tmp_path / "out", CFG, workers=1)
    assert manifest["classes"] == CFG.classes and manifest["size"] == [16, 16] and manifest["fps"] == 24
    assert [(v["stem"], v["split"], v["frames"]) for v in manifest["videos"]] == [
        ("a", "train", 30), ("b", "val", 24), ("c", "test", 26)]
    data = PreparedDataset(tmp_path / "out")
    a = data.split("train")[0]
    frames = data.frames(a)
    assert isinstance(frames, np.memmap) and frames.shape == (30, 16, 16, 3) and frames.dtype == np.uint8
    assert data.labels(a).tolist() == [j % 5 for j in range(30)]
    assert data.mask(a).tolist() == [j % 2 for j in range(30)]
    # Segment labels: [0.5, 1.0) s is frames 12..23 at 24 fps; the rest is the background class.
    b = data.split("val")[0]
    assert data.labels(b).tolist() == [4] * 12 + [2] * 12
    assert np.allclose(data.times(b), np.arange(24) / 24)
    # Frames are the video's, resized: a flat colour stays a flat colour.
    assert frames[0].std(axis=(0, 1)).max() < 3
    assert json.loads((tmp_path / "out" / "manifest.json").read_text()) == manifest
    assert not (tmp_path / "out.partial").exists()


def test_parallel_workers_give_the_same_dataset(tmp_path):
    src = write_raw(tmp_path / "raw", {f"v{i}": 20 + i for i in range(4)})
    one = prepare_dataset(src, tmp_path / "one", CFG, workers=1)
    two = prepare_dataset(src, tmp_path / "two", CFG, workers=2)
    assert one["videos"] == two["videos"]
    for v in one["videos"]:
        a = (tmp_path / "one" / "videos" / v["stem"] / "frames.u8").read_bytes()
        assert a == (tmp_path / "two" / "videos" / v["stem"] / "frames.u8").read_bytes()


def test_splits_default_to_a_stable_hash(tmp_path):
    src = write_raw(tmp_path / "raw", {f"v{i}": 8 for i in range(6)}, masks=False)
    first = prepare_dataset(src, tmp_path / "p1", CFG, workers=1)
    write_video(src / "videos" / "new.mp4", 8)
    (src / "labels" / "new.txt").write_text("dog\n" * 8)
    second = prepare_dataset(src, tmp_path / "p2", CFG, workers=1)
    before = {v["stem"]: v["split"] for v in first["videos"]}
    after = {v["stem"]: v["split"] for v in second["videos"]}
    assert all(after[s] == before[s] for s in before)     # adding a video moves no other video
    assert PreparedDataset(tmp_path / "p1").mask(PreparedDataset(tmp_path / "p1").videos[0]) is None


def test_label_count_tolerance_and_error(tmp_path):
    src = write_raw(tmp_path / "raw", {"a": 20}, masks=False)
    (src / "labels" / "a.txt").write_text("dog\n" * 18)           # 2 short: padded, warned
    warnings = []
    prepare_dataset(src, tmp_path / "ok", CFG, workers=1, warn=warnings.append)
    assert PreparedDataset(tmp_path / "ok").labels(PreparedDataset(tmp_path / "ok").videos[0]).tolist() == [1] * 20
    assert any("18 labels for 20 frames; padded" in w for w in warnings)
    (src / "labels" / "a.txt").write_text("dog\n" * 17)           # 3 short: an error naming both counts
    with pytest.raises(LabelError, match=r"a.txt: 17 labels but the video has 20 decoded frames"):
        prepare_dataset(src, tmp_path / "bad", CFG, workers=1)
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("damage, error, message", [
    (lambda src: (src / "labels" / "a.txt").unlink(), DatasetError, "has no labels"),
    (lambda src: (src / "videos" / "a.mp4").unlink(), DatasetError, "has no video"),
    (lambda src: (src / "labels" / "a.txt").write_text("dog\ncat\n"), LabelError, "line 2: unknown class 'cat'"),
    (lambda src: (src / "videos" / "a.mp4").write_bytes(b""), VideoError, "empty file"),
    (lambda src: (src / "splits.csv").write_text("video,split\nzzz,train\n"), LabelError, "'zzz' is not in videos/"),
    (lambda src: (src / "labels" / "a.csv").write_text("start,end,label\n0,1,dog\n"), DatasetError,
     "two label files"),
])
def test_bad_raw_dataset_fails_with_one_line_and_no_output(tmp_path, damage, error, message):
    src = write_raw(tmp_path / "raw", {"a": 10, "b": 10}, masks=False)
    damage(src)
    with pytest.raises(error) as e:
        prepare_dataset(src, tmp_path / "out", CFG, workers=1)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()


def test_skip_unlabeled(tmp_path):
    src = write_raw(tmp_path / "raw", {"a": 10, "b": 10}, masks=False)
    (src / "labels" / "a.txt").unlink()
    warnings = []
    manifest = prepare_dataset(src, tmp_path / "out", CFG, workers=1, skip_unlabeled=True, warn=warnings.append)
    assert [v["stem"] for v in manifest["videos"]] == ["b"]
    assert any("left out" in w for w in warnings)


def test_existing_output_needs_overwrite(tmp_path):
    src = write_raw(tmp_path / "raw", {"a": 10}, masks=False)
    prepare_dataset(src, tmp_path / "out", CFG, workers=1)
    with pytest.raises(DatasetError, match="already exists; .* --overwrite"):
        prepare_dataset(src, tmp_path / "out", CFG, workers=1)
    manifest = prepare_dataset(src, tmp_path / "out", DataConfig(size=8), workers=1, overwrite=True)
    assert PreparedDataset(tmp_path / "out").size == (8, 8) and manifest["size"] == [8, 8]


@pytest.mark.parametrize("size, expected", [(12, [16, 12]), ([20, 10], [20, 10])])
def test_frames_keep_the_videos_aspect_unless_given_w_and_h(tmp_path, size, expected):
    # 32x24 videos: a short side of 12 keeps 4:3 (16x12); [W, H] is taken as given.
    src = write_raw(tmp_path / "raw", {"a": 10, "b": 12}, masks=False, width=32, height=24)
    manifest = prepare_dataset(src, tmp_path / "out", DataConfig(size=size), workers=1)
    data = PreparedDataset(tmp_path / "out")
    assert manifest["size"] == expected and list(data.size) == expected
    assert data.frames(data.videos[0]).shape == (10, expected[1], expected[0], 3)   # (T, H, W, 3)


def test_a_manifest_with_one_side_reads_as_square(tmp_path):
    src = write_raw(tmp_path / "raw", {"a": 10}, masks=False)
    prepare_dataset(src, tmp_path / "out", CFG, workers=1)
    path = tmp_path / "out" / "manifest.json"
    path.write_text(path.read_text().replace('"size": [\n    16,\n    16\n  ]', '"size": 16'))
    assert '"size": 16' in path.read_text()                # as datasets recorded it before non-square frames
    assert PreparedDataset(tmp_path / "out").size == (16, 16)


def test_interrupted_prepare_leaves_nothing_that_loads_and_resumes(tmp_path):
    src = write_raw(tmp_path / "raw", {"a": 10, "b": 12, "c": 14}, masks=False)
    (src / "labels" / "c.txt").write_text("dog\n" * 3)     # c fails after a and b are done
    with pytest.raises(LabelError):
        prepare_dataset(src, tmp_path / "out", CFG, workers=1)
    with pytest.raises(DatasetError, match="unfinished prepare"):
        PreparedDataset(tmp_path / "out")
    done_before = (tmp_path / "out.partial" / "videos" / "a" / "video.json").stat().st_mtime_ns
    (src / "labels" / "c.txt").write_text("dog\n" * 14)
    prepare_dataset(src, tmp_path / "out", CFG, workers=1)
    assert len(PreparedDataset(tmp_path / "out").videos) == 3
    assert not (tmp_path / "out.partial").exists()
    # The finished video was reused, not decoded again.
    assert (tmp_path / "out" / "videos" / "a" / "video.json").stat().st_mtime_ns == done_before


def test_corrupt_frames_file_is_refused(tmp_path):
    src = write_raw(tmp_path / "raw", {"a": 10}, masks=False)
    prepare_dataset(src, tmp_path / "out", CFG, workers=1)
    frames = tmp_path / "out" / "videos" / "a" / "frames.u8"
    frames.write_bytes(frames.read_bytes()[:-5])
    data = PreparedDataset(tmp_path / "out")
    with pytest.raises(DatasetError, match="frames.u8: has"):
        data.frames(data.videos[0])


def test_prepare_cli(tmp_path, cli):
    src = write_raw(tmp_path / "raw", {"a": 10, "b": 12}, masks=False)
    r = cli("prepare", src, tmp_path / "out", "data.size=8", "--workers", "1")
    assert r.code == 0, r
    assert "prepared 2 videos (22 frames" in r.out
    r = cli("prepare", src, tmp_path / "out2", "data.sise=8")
    assert r.code == 1 and "did you mean data.size" in r.err
    shutil.rmtree(src / "labels")
    r = cli("prepare", src, tmp_path / "out3")
    assert r.code == 1 and "has no labels" in r.err and len(r.err.strip().splitlines()) == 1
