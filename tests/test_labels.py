"""Label, mask and splits parsers: clean values or one LabelError naming file and line."""

from __future__ import annotations

import pytest

from lstm_tv.data import labels as L
from lstm_tv.errors import LabelError

CLASSES = ["wolf", "dog", "bear", "goldfish", "unknown"]


def write(tmp_path, name, content: str | bytes):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@pytest.mark.parametrize("content, expected", [
    ("wolf\ndog\nunknown\n", [0, 1, 4]),
    ("wolf\r\ndog\r\nunknown\r\n", [0, 1, 4]),            # CRLF
    ("wolf\ndog\nunknown\n\n\n", [0, 1, 4]),              # trailing blank lines
    ("wolf\ndog\nunknown", [0, 1, 4]),                    # no final newline
    (" bear \ngoldfish\n", [2, 3]),                       # stray spaces
    ("\ufeffwolf\ndog\n".encode("utf-8"), [0, 1]),       # BOM
])
def test_frame_labels_accepted(tmp_path, content, expected):
    assert L.read_frame_labels(write(tmp_path, "a.txt", content), CLASSES) == expected


@pytest.mark.parametrize("content, message", [
    ("wolf\ncat\n", "line 2: unknown class 'cat'"),
    ("wolf\n\ndog\n", "line 2 is blank"),
    ("", "no labels"),
    (b"wolf\n\xff\xfe\n", "not UTF-8"),
])
def test_frame_labels_refused(tmp_path, content, message):
    path = write(tmp_path, "a.txt", content)
    with pytest.raises(LabelError) as e:
        L.read_frame_labels(path, CLASSES)
    assert str(path) in str(e.value) and message in str(e.value)


def test_mask(tmp_path):
    assert L.read_mask(write(tmp_path, "m.txt", "0\n1\r\n1\n")) == [0, 1, 1]
    with pytest.raises(LabelError, match="line 2: '2' is not 0 or 1"):
        L.read_mask(write(tmp_path, "m.txt", "0\n2\n"))


def test_segments_to_frames_half_open_with_background():
    times = [i / 24 for i in range(48)]
    segs = [L.Segment(0.5, 1.0, 2, "line 2"), L.Segment(1.0, 1.25, 0, "line 3")]
    labels = L.segments_to_frames(segs, times, background=4)
    assert labels[:12] == [4] * 12               # [0, 0.5) uncovered
    assert labels[12:24] == [2] * 12             # [0.5, 1.0): frames 12..23
    assert labels[24:30] == [0] * 6              # [1.0, 1.25): frames 24..29
    assert labels[30:] == [4] * 18


def test_segments_rounded_to_microseconds_hit_the_intended_frames(tmp_path):
    # 1/24 s written as 0.041667 (a bit late) must still start at frame 1.
    path = write(tmp_path, "s.csv", "start,end,label\n0.041667,0.125000,dog\n")
    labels = L.segments_to_frames(L.read_segments(path, CLASSES), [i / 24 for i in range(5)], 4)
    assert labels == [4, 1, 1, 4, 4]


@pytest.mark.parametrize("content, message", [
    ("begin,end,label\n0,1,dog\n", "header must be 'start,end,label'"),
    ("0,1,dog\n", "header must be"),
    ("start,end,label\n0,1,dog\n0.5,2,wolf\n", "line 3 overlaps line 2"),
    ("start,end,label\n-1,1,dog\n", "line 2: negative time"),
    ("start,end,label\n2,1,dog\n", "line 2: end 1.0 is not after start 2.0"),
    ("start,end,label\n1,1,dog\n", "is not after start"),
    ("start,end,label\n0,1,cat\n", "line 2: unknown class 'cat'"),
    ("start,end,label\n0,x,dog\n", "line 2: start and end must be seconds"),
    ("start,end,label\n0,1\n", "line 2: expected 3 fields"),
    ("start,end,label\nnan,1,dog\n", "finite"),
    ("", "empty file"),
])
def test_segments_refused(tmp_path, content, message):
    path = write(tmp_path, "s.csv", content)
    with pytest.raises(LabelError) as e:
        L.read_segments(path, CLASSES)
    assert str(path) in str(e.value) and message in str(e.value)


def test_segments_touching_and_unsorted_are_fine(tmp_path):
    path = write(tmp_path, "s.csv", "start,end,label\r\n1,2,wolf\r\n0,1,dog\r\n\r\n")
    assert [(s.start, s.end, s.label) for s in L.read_segments(path, CLASSES)] == [(0, 1, 1), (1, 2, 0)]


@pytest.mark.parametrize("n_values, frames, ok", [(10, 10, True), (11, 10, True), (12, 10, True),
                                                  (9, 10, True), (8, 10, True), (13, 10, False), (7, 10, False)])
def test_fit_length_tolerates_two_frames(n_values, frames, ok):
    values = list(range(n_values))
    if ok:
        fixed, warning = L.fit_length(values, frames, "x.txt")
        assert len(fixed) == frames and fixed[:min(n_values, frames)] == values[:frames]
        assert (warning is None) == (n_values == frames)
    else:
        with pytest.raises(LabelError, match=f"x.txt: {n_values} labels but the video has {frames} decoded frames"):
            L.fit_length(values, frames, "x.txt")


def test_splits_file(tmp_path):
    stems = ["a", "b", "c"]
    path = write(tmp_path, "splits.csv", "video,split\na.mp4,train\nb,TEST\n")
    assert L.read_splits(path, stems) == {"a": "train", "b": "test"}
    with pytest.raises(LabelError, match="line 2: video 'zzz' is not in videos/"):
        L.read_splits(write(tmp_path, "splits.csv", "video,split\nzzz,train\n"), stems)
    with pytest.raises(LabelError, match="line 2: split 'dev' must be one of train, val, test"):
        L.read_splits(write(tmp_path, "splits.csv", "video,split\na,dev\n"), stems)
    with pytest.raises(LabelError, match="header must be 'video,split'"):
        L.read_splits(write(tmp_path, "splits.csv", "name,split\na,train\n"), stems)


def test_hash_split_is_stable_and_follows_ratios():
    stems = [f"video_{i}" for i in range(3000)]
    splits = [L.hash_split(s, [0.7, 0.15, 0.15]) for s in stems]
    assert splits == [L.hash_split(s, [0.7, 0.15, 0.15]) for s in stems]
    share = {k: splits.count(k) / len(splits) for k in L.SPLITS}
    assert abs(share["train"] - 0.7) < 0.03 and abs(share["val"] - 0.15) < 0.03
    # Adding videos never moves an existing one: the split depends on the stem alone.
    assert L.hash_split("video_1", [0.7, 0.15, 0.15]) == splits[1]
    assert {L.hash_split(s, [1.0, 0.0, 0.0]) for s in stems[:50]} == {"train"}
