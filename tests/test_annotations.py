"""Annotation-tool formats: hand-written samples that follow each tool's documentation, class mapping,
round trips (predictions -> a tool's file -> prepare's labels), and bad files refused in one line."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from conftest import write_video

from lstm_tv.config import DataConfig
from lstm_tv.data.annotation_tools import FORMATS, WRITERS, ClassMap, Predictions, collect, to_frame_labels
from lstm_tv.data.annotation_tools import mstcn as M
from lstm_tv.data.dataset import PreparedDataset
from lstm_tv.data.prepare import prepare_dataset
from lstm_tv.errors import DatasetError, LabelError

CLASSES = ["wolf", "dog", "bear", "goldfish", "unknown"]
W, D, B, G, U = range(5)
CFG = DataConfig(size=16, classes=CLASSES, background="unknown", class_map={"Canis lupus": "wolf"})
TIMES = [i / 24 for i in range(10)]  # 10 frames at 24 fps


def labels_of(src, stem="a", cfg=CFG, fmt=None, times=TIMES):
    """Per-frame labels that prepare would store for ``stem`` (without decoding: frame times given)."""
    found, _ = collect(src, [stem], cfg, fmt)
    return to_frame_labels(found[stem], times, CLASSES.index(cfg.background))[0]


def put(root, name, text):
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


CVAT = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <task>
      <id>5</id><name>a</name><size>10</size><mode>interpolation</mode><overlap>5</overlap>
      <labels><label><name>Canis lupus</name><attributes></attributes></label>
              <label><name>dog</name><attributes></attributes></label></labels>
      <original_size><width>640</width><height>480</height></original_size>
    </task>
  </meta>
  <track id="0" label="Canis lupus" source="manual">
    <box frame="2" xtl="1" ytl="1" xbr="9" ybr="9" outside="0" occluded="0" keyframe="1"></box>
    <box frame="3" xtl="1" ytl="1" xbr="9" ybr="9" outside="0" occluded="0" keyframe="0"></box>
    <box frame="5" xtl="1" ytl="1" xbr="9" ybr="9" outside="1" occluded="0" keyframe="1"></box>
  </track>
  <track id="1" label="Canis lupus"><polygon frame="3" points="1,1;2,2;3,1" outside="0" occluded="0" keyframe="1"/>
    <polygon frame="4" points="1,1;2,2;3,1" outside="1" occluded="0" keyframe="1"/></track>
  <track id="2" label="dog">
    <skeleton frame="7" keyframe="1"><points label="1" outside="0" occluded="0" keyframe="1" points="1,1"/></skeleton>
  </track>
  <tag frame="0" label="bear" source="manual"></tag>
</annotations>
"""


def test_cvat_tracks_tags_and_outside(tmp_path):
    put(tmp_path, "labels/a.xml", CVAT)
    # Track 0 from frame 2 until outside at 5; track 1 (same label) overlaps it; the dog skeleton runs
    # from 7 to the task's end; the tag marks frame 0 alone; the rest is background.
    assert labels_of(tmp_path) == [B, U, W, W, W, U, U, D, D, D]


LABEL_STUDIO = [
    {"id": 7, "data": {"video": "/data/upload/3/1a2b3c4d-a.mp4"},
     "annotations": [
         {"id": 1, "was_cancelled": True, "result": []},
         {"id": 2, "result": [
             {"id": "x", "type": "timelinelabels", "from_name": "videoLabels", "to_name": "video",
              "value": {"ranges": [{"start": 3, "end": 5}], "timelinelabels": ["Canis lupus"]}},
             {"id": "y", "type": "videorectangle", "from_name": "box", "to_name": "video",
              "value": {"framesCount": 10, "labels": ["dog"], "sequence": [
                  {"frame": 7, "enabled": True, "x": 1, "y": 1, "width": 5, "height": 5, "time": 0.25},
                  {"frame": 8, "enabled": False, "x": 1, "y": 1, "width": 5, "height": 5, "time": 0.29}]}}]}],
     "predictions": [{"result": [{"type": "timelinelabels", "value": {"ranges": [{"start": 1, "end": 10}],
                                                                       "timelinelabels": ["bear"]}}]}]},
    {"id": 8, "data": {"video": "/data/local-files/?d=clips/b.mp4"}, "annotations": []},
]


def test_label_studio_timeline_and_video_rectangles(tmp_path):
    put(tmp_path, "labels/project.json", json.dumps(LABEL_STUDIO))
    # Frames 3-5 (1-based, inclusive) are 2-4; the rectangle is on at frame 7 and off after frame 8;
    # the cancelled annotation and the predictions are not truth; task 8 has no annotation: unlabelled.
    assert labels_of(tmp_path) == [U, U, W, W, W, U, D, D, U, U]
    found, _ = collect(tmp_path, ["a", "b"], CFG)
    assert set(found) == {"a"}


def test_label_studio_seconds_labels(tmp_path):
    task = {"data": {"video": "a.mp4"}, "annotations": [{"result": [
        {"type": "labels", "value": {"start": 0.125, "end": 0.25, "labels": ["goldfish"]}}]}]}
    put(tmp_path, "labels/a.json", json.dumps(task))
    assert labels_of(tmp_path) == [U, U, U, G, G, G, U, U, U, U]  # [0.125, 0.25) s: frames 3, 4, 5 at 24 fps


EAF = """<?xml version="1.0" encoding="UTF-8"?>
<ANNOTATION_DOCUMENT AUTHOR="" DATE="2024-05-01T10:00:00+02:00" FORMAT="3.0" VERSION="3.0"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="http://www.mpi.nl/tools/elan/EAFv3.0.xsd">
  <HEADER MEDIA_FILE="" TIME_UNITS="milliseconds">
    <MEDIA_DESCRIPTOR MEDIA_URL="file:///data/a.mp4" MIME_TYPE="video/mp4" RELATIVE_MEDIA_URL="./a.mp4"/>
    <PROPERTY NAME="lastUsedAnnotationId">3</PROPERTY>
  </HEADER>
  <TIME_ORDER>
    <TIME_SLOT TIME_SLOT_ID="ts1" TIME_VALUE="42"/>
    <TIME_SLOT TIME_SLOT_ID="ts2" TIME_VALUE="125"/>
    <TIME_SLOT TIME_SLOT_ID="ts3" TIME_VALUE="292"/>
    <TIME_SLOT TIME_SLOT_ID="ts4" TIME_VALUE="375"/>
  </TIME_ORDER>
  <TIER LINGUISTIC_TYPE_REF="default-lt" TIER_ID="behaviour">
    <ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID="a1" TIME_SLOT_REF1="ts1" TIME_SLOT_REF2="ts2">
      <ANNOTATION_VALUE>Canis lupus</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION>
    <ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID="a2" TIME_SLOT_REF1="ts3" TIME_SLOT_REF2="ts4">
      <ANNOTATION_VALUE>bear</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION>
  </TIER>
  <TIER LINGUISTIC_TYPE_REF="default-lt" TIER_ID="notes">
    <ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID="a3" TIME_SLOT_REF1="ts1" TIME_SLOT_REF2="ts4">
      <ANNOTATION_VALUE>windy</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION>
  </TIER>
  <LINGUISTIC_TYPE GRAPHIC_REFERENCES="false" LINGUISTIC_TYPE_ID="default-lt" TIME_ALIGNABLE="true"/>
</ANNOTATION_DOCUMENT>
"""


def test_eaf_reads_the_named_tier_in_milliseconds(tmp_path):
    put(tmp_path, "labels/a.eaf", EAF)
    # 42-125 ms covers frames 1, 2 (at 41.7 and 83.3 ms: within the 0.5 ms slack); 292-375 ms frames 7, 8.
    assert labels_of(tmp_path, cfg=replace(CFG, eaf_tier="behaviour")) == [U, W, W, U, U, U, U, B, B, U]


def test_mstcn_layout_with_mapping_and_splits(tmp_path):
    put(tmp_path, "groundTruth/a.txt", "SIL\nSIL\ncrack_egg\ncrack_egg\n" + "SIL\n" * 6)
    put(tmp_path, "groundTruth/b.txt", "SIL\n" * 10)
    put(tmp_path, "mapping.txt", "0 SIL\n1 crack_egg\n")
    put(tmp_path, "splits/train.split1.bundle", "a.txt\n")
    put(tmp_path, "splits/test.split1.bundle", "b.txt\n")
    put(tmp_path, "splits/test.split2.bundle", "a.txt\n")  # fold 2 is not the one read
    cfg = replace(CFG, class_map={"SIL": "unknown", "crack_egg": "goldfish"}, split_ratios=[1.0, 0.0, 0.0])
    found, _ = collect(tmp_path, ["a", "b"], cfg)
    assert to_frame_labels(found["a"], TIMES, U)[0] == [U, U, G, G] + [U] * 6
    assert (found["a"].split, found["b"].split) == ("train", "test")
    put(tmp_path, "groundTruth/b.txt", "SIL\nstir\n")
    with pytest.raises(LabelError, match=r"b.txt: line 2: 'stir' is not in mapping.txt"):
        collect(tmp_path, ["a", "b"], cfg)


def test_activitynet_segments_subsets_and_ids(tmp_path):
    db = {"version": "VERSION 1.3", "taxonomy": [], "database": {
        "a": {"subset": "validation", "duration": 0.42, "url": "https://www.youtube.com/watch?v=a",
              "annotations": [{"segment": [0.0833, 0.2083], "label": "Canis lupus"}]},
        "b": {"subset": "testing", "duration": 0.42, "annotations": []},
        "zz": {"subset": "training", "duration": 9.0, "annotations": []}}}
    put(tmp_path, "labels/anet.json", json.dumps(db))
    found, warnings = collect(tmp_path, ["a", "v_b"], CFG)
    assert to_frame_labels(found["a"], TIMES, U)[0] == [U, U, W, W, W, U, U, U, U, U]
    assert (found["a"].split, found["v_b"].split) == ("val", "test")
    assert any("1 of its videos are not in" in w and "'zz'" in w for w in warnings)


@pytest.mark.parametrize("class_map, unmapped, outcome", [
    ({"Canis lupus": "wolf"}, "error", [W, W]),
    ({}, "error", "label 'Canis lupus' is neither a class"),
    ({}, "background", [U, U]),
])
def test_class_map_and_unmapped_labels(tmp_path, class_map, unmapped, outcome):
    task = {"data": {"video": "a.mp4"}, "annotations": [{"result": [
        {"type": "timelinelabels", "value": {"ranges": [{"start": 1, "end": 2}], "timelinelabels": ["Canis lupus"]}}]}]}
    path = put(tmp_path, "labels/a.json", json.dumps(task))
    cfg = replace(CFG, class_map=class_map, unmapped=unmapped)
    if isinstance(outcome, str):
        with pytest.raises(LabelError) as e:
            labels_of(tmp_path, cfg=cfg)
        assert str(path) in str(e.value) and outcome in str(e.value) and "\n" not in str(e.value)
    else:
        assert labels_of(tmp_path, cfg=cfg, times=TIMES[:2]) == outcome


def test_class_map_from_a_yaml_file(tmp_path):
    put(tmp_path, "map.yaml", "Canis lupus: wolf\nUrsus arctos: bear\n")
    mapper = ClassMap.from_config(replace(CFG, class_map=str(tmp_path / "map.yaml")))
    assert (mapper.index("f", "x", "Ursus arctos"), mapper.index("f", "x", "dog")) == (B, D)
    put(tmp_path, "map.yaml", "Canis lupus: coyote\n")
    with pytest.raises(LabelError, match=r"map.yaml: 'Canis lupus' -> 'coyote', which is not one of data.classes"):
        ClassMap.from_config(replace(CFG, class_map=str(tmp_path / "map.yaml")))


# ---------------------------------------------------------------------------------------------------
# Round trips: predictions -> the tool's file -> the same per-frame labels

PRED = Predictions(video="a.mp4", labels=[U, W, W, W, U, D, D, B, B, B], confidences=[0.9, 0.8, 0.6, 0.7, 0.5] * 2,
                   classes=CLASSES, background="unknown", fps=24, width=32, height=32)


def write_prediction(root, fmt, pred=PRED):
    """Render ``pred`` and place it where prepare looks, as the tool would give it back after an
    annotator accepted every pre-annotation unchanged."""
    render, suffix = WRITERS[fmt]
    text = render(pred)
    if fmt == "labelstudio":  # accepting a prediction in Label Studio makes it the task's annotation
        tasks = json.loads(text)
        tasks[0]["annotations"] = [{"result": tasks[0].pop("predictions")[0]["result"]}]
        text = json.dumps(tasks)
    if fmt == "mstcn":
        put(root, "mapping.txt", M.render_mapping(list(pred.classes)))
        return put(root, f"groundTruth/{pred.stem}.txt", text)
    return put(root, f"labels/{pred.stem}{suffix}", text)


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_render_then_read_gives_back_the_labels(tmp_path, fmt):
    write_prediction(tmp_path, fmt)
    assert labels_of(tmp_path) == list(PRED.labels)


def test_writers_keep_confidence_and_leave_out_background():
    xml = WRITERS["cvat"][0](PRED)
    assert xml.count("<track ") == 3 and 'label="unknown"' not in xml
    assert '<attribute name="confidence">0.70</attribute>' in xml      # wolf run: mean of 0.8, 0.6, 0.7
    task = json.loads(WRITERS["labelstudio"][0](PRED))[0]
    regions = task["predictions"][0]["result"]
    assert [(r["value"]["ranges"], r["score"]) for r in regions][0] == ([{"start": 2, "end": 4}], 0.7)
    assert "a-confidence" not in WRITERS["eaf"][0](PRED) and "labels-confidence" in WRITERS["eaf"][0](PRED)


def test_round_trip_through_prepare_on_real_videos(tmp_path):
    # Three tiny videos labelled in three tools' files, one prepare run detecting each file's format.
    src = tmp_path / "raw"
    for i, fmt in enumerate(["cvat", "eaf", "labelstudio"]):
        stem = f"v{i}"
        write_video(src / "videos" / f"{stem}.mp4", 10, seed=i)
        write_prediction(src, fmt, replace(PRED, video=f"{stem}.mp4"))
    prepare_dataset(src, tmp_path / "out", CFG, workers=1)
    data = PreparedDataset(tmp_path / "out")
    assert {v.stem: data.labels(v).tolist() for v in data.videos} == {f"v{i}": list(PRED.labels) for i in range(3)}


# ---------------------------------------------------------------------------------------------------
# Bad files: one line naming the file and the element (with its line for XML), nothing written

CVAT_HEAD = ('<?xml version="1.0"?>\n<annotations><version>1.1</version>\n'
             '<meta><task><size>10</size></task></meta>\n')
LS_TASK = {"data": {"video": "a.mp4"}, "annotations": [{"result": [
    {"id": "r1", "type": "timelinelabels", "value": {"ranges": [{"start": 5, "end": 3}], "timelinelabels": ["dog"]}}]}]}
BAD = [
    ("a.xml", CVAT_HEAD + "<track id='0' label='dog'><box frame='1' outside='0'>\n", None,
     ["line 5, column 1: not well-formed XML"]),
    ("a.xml", EAF, "cvat", ["line 2 <ANNOTATION_DOCUMENT>", "not CVAT for video 1.1", "looks like an ELAN"]),
    ("a.xml", CVAT_HEAD + "<track id='0' label='dog'>\n<box frame='12' outside='0'/></track></annotations>", None,
     ['line 5 <box frame="12">', "frame 12 is past the video's end (the file says 10 frames"]),
    ("a.xml", CVAT_HEAD + "<track id='0' label='dog'><box frame='0' outside='0'/></track>\n"
     "<track id='1' label='bear'><box frame='4' outside='0'/></track></annotations>", None,
     ['line 5 <track id="1" label="bear"> overlaps line 4 <track id="0" label="dog">']),
    ("a.xml", CVAT_HEAD + "<track id='0' label='cat'><box frame='0' outside='0'/></track></annotations>", None,
     ['line 4 <track id="0">: label \'cat\' is neither a class']),
    ("a.json", '[{"data": {"video": "a.mp4"}, ', None, ["line 1, column", "not valid JSON"]),
    ("a.json", json.dumps(LS_TASK), None, ["task 0 region r1: end 2 is before start 4"]),
    ("a.json", json.dumps({"database": {"a": {"annotations": [{"segment": [-1, 0.2], "label": "dog"}]}}}), None,
     ["database['a'] annotation 0: negative time (-1.0, 0.2)"]),
    ("a.json", json.dumps({"database": {}}), "labelstudio", ["an ActivityNet-style file", "not a Label Studio"]),
    ("a.json", json.dumps([LS_TASK]), "activitynet", ["no top-level 'database'", "looks like a Label Studio export"]),
    ("a.eaf", EAF, None, ["2 independent tiers ('behaviour', 'notes')", "data.eaf_tier"]),
    ("a.eaf", EAF.replace('TIME_VALUE="375"', 'TIME_VALUE="100"'), "eaf:behaviour",
     ['line 17 <ALIGNABLE_ANNOTATION ANNOTATION_ID="a2">: end 0.1 is not after start 0.292']),
    ("a.txt", "dog\n" * 10, "cvat", ["a .txt file, but --labels-format cvat reads .xml files"]),
]


@pytest.mark.parametrize("name, content, fmt, messages", BAD, ids=[f"{b[0]}-{b[3][0][:30]}" for b in BAD])
def test_bad_annotation_files_fail_in_one_line_and_write_nothing(tmp_path, name, content, fmt, messages):
    src = tmp_path / "raw"
    write_video(src / "videos" / "a.mp4", 10)
    path = put(src, f"labels/{name}", content)
    fmt, _, tier = (fmt or "").partition(":")
    cfg = replace(CFG, eaf_tier=tier)
    with pytest.raises((LabelError, DatasetError)) as e:
        prepare_dataset(src, tmp_path / "out", cfg, workers=1, labels_format=fmt or None)
    text = str(e.value)
    assert str(path) in text and "\n" not in text and all(m in text for m in messages), text
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_eaf_without_the_named_tier(tmp_path):
    path = put(tmp_path, "labels/a.eaf", EAF)
    with pytest.raises(LabelError) as e:
        labels_of(tmp_path, cfg=replace(CFG, eaf_tier="Behaviour"))
    assert str(e.value) == f"{path}: no <TIER TIER_ID='Behaviour'> (data.eaf_tier); its tiers are 'behaviour', 'notes'"


def test_frames_past_the_decoded_end_are_an_error_beyond_the_tolerance(tmp_path):
    task = {"data": {"video": "a.mp4"}, "annotations": [{"result": [
        {"id": "r", "type": "timelinelabels",
         "value": {"ranges": [{"start": 9, "end": 14}], "timelinelabels": ["dog"]}}]}]}
    put(tmp_path, "labels/a.json", json.dumps(task))
    # 2 frames over the 12 decoded frames: cut, as .txt files are; 4 over 10 is an error.
    assert labels_of(tmp_path, times=[i / 24 for i in range(12)])[-4:] == [D] * 4
    with pytest.raises(LabelError, match=r"region r: frames 8-13 run past the video's end \(10 decoded frames"):
        labels_of(tmp_path)


def test_every_format_is_registered_with_its_suffixes():
    assert set(FORMATS) == {"native", "cvat", "labelstudio", "eaf", "mstcn", "activitynet"}
    assert set(WRITERS) <= set(FORMATS) and all(m.SUFFIXES for m in FORMATS.values())
