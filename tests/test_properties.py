"""Property-based tests: the parsers of user input never fail with anything but lstm-tv's own errors.

Whatever a label, mask, splits or config file holds, and whatever ``KEY=VALUE`` a user types, the
parser either returns something valid or raises an ``LstmTvError`` subclass (which the CLI prints as
one line). Any other exception would be a traceback for the user. Valid inputs, written with any line
endings, a BOM or trailing blank lines, parse to exactly what they say.
"""

from __future__ import annotations

import math

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lstm_tv.config import Config, all_keys, from_dict, load_config, parse_overrides, render_yaml
from lstm_tv.data.labels import SPLITS, TIME_SLACK, read_frame_labels, read_mask, read_segments, read_splits
from lstm_tv.errors import ConfigError, LabelError

CLASSES = ["wolf", "dog", "bear", "goldfish", "unknown"]
STEMS = ["a", "b", "clip 1", "tv_0001"]

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """One file rewritten by every example (a file per example would only cost time)."""
    return tmp_path_factory.mktemp("properties") / "input"


def write(path, content: str | bytes):
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    return path


# ---------------------------------------------------------------------------------------------------
# Inputs: anything at all, and text built from the pieces these files are made of (so that examples
# get past the header and reach the interesting lines)

NEWLINES = st.sampled_from(["\n", "\r\n", "\r", "\n\n", "\u2028", "\x0b"])
TOKENS = st.sampled_from(CLASSES + ["start,end,label", "video,split", "start", "end", "label", "0", "1", "0.5", "-1",
                                    "1e400", "nan", "inf", "-0", "1.5e-3", "train", "val", "test", "dev", "a", "b",
                                    "clip 1.mp4", "tv_0001", "", " ", ",", ",,", '"', '"a,b"', "\ufeff", "\x00", "Wolf",
                                    "dog ", "\t", "é", "zebra"])
LINE = st.lists(st.one_of(TOKENS, st.text(max_size=6)), max_size=4).map(",".join) | st.lists(TOKENS, max_size=3).map("".join)


@st.composite
def crafted_text(draw) -> str:
    lines = draw(st.lists(LINE, max_size=12))
    out = ""
    for line in lines:
        out += line + draw(NEWLINES)
    return out


ANY_CONTENT = st.one_of(st.binary(max_size=300), st.text(max_size=300), crafted_text(),
                        crafted_text().map(lambda t: "\ufeff" + t), crafted_text().map(lambda t: t.encode("latin-1", "replace")))


# ---------------------------------------------------------------------------------------------------
# Label, mask and splits parsers


@FAST
@given(content=ANY_CONTENT)
def test_frame_labels_parse_or_raise_label_error(scratch, content):
    try:
        labels = read_frame_labels(write(scratch, content), CLASSES)
    except LabelError as e:
        assert str(scratch) in str(e) and "\n" not in str(e)
        return
    assert labels and all(0 <= i < len(CLASSES) for i in labels)


@FAST
@given(content=ANY_CONTENT)
def test_masks_parse_or_raise_label_error(scratch, content):
    try:
        mask = read_mask(write(scratch, content))
    except LabelError as e:
        assert str(scratch) in str(e) and "\n" not in str(e)
        return
    assert mask and set(mask) <= {0, 1}


@FAST
@given(content=ANY_CONTENT)
@example(content="start,end,label\n" + "0" * 200_000)      # one field beyond the csv module's size limit
@example(content='start,end,label\n"0,1,dog\n')           # a quote never closed
def test_segments_parse_or_raise_label_error(scratch, content):
    try:
        segments = read_segments(write(scratch, content), CLASSES)
    except LabelError as e:
        assert str(scratch) in str(e) and "\n" not in str(e)
        return
    for s in segments:
        assert math.isfinite(s.start) and math.isfinite(s.end) and 0 <= s.start < s.end
        assert 0 <= s.label < len(CLASSES)
    for a, b in zip(segments, segments[1:], strict=False):
        assert a.start <= b.start and b.start >= a.end - TIME_SLACK      # sorted, not overlapping


@FAST
@given(content=ANY_CONTENT)
@example(content="video,split\n" + "a" * 200_000)
def test_splits_parse_or_raise_label_error(scratch, content):
    try:
        splits = read_splits(write(scratch, content), STEMS)
    except LabelError as e:
        assert str(scratch) in str(e) and "\n" not in str(e)
        return
    assert set(splits) <= set(STEMS) and set(splits.values()) <= set(SPLITS)


@FAST
@given(labels=st.lists(st.sampled_from(CLASSES), min_size=1, max_size=50),
       newline=st.sampled_from(["\n", "\r\n"]), bom=st.booleans(), trailing=st.integers(0, 3))
def test_valid_frame_labels_parse_exactly_with_any_line_ending(scratch, labels, newline, bom, trailing):
    text = ("\ufeff" if bom else "") + newline.join(labels) + newline * (1 + trailing)
    assert read_frame_labels(write(scratch, text), CLASSES) == [CLASSES.index(c) for c in labels]


@FAST
@given(cuts=st.lists(st.integers(0, 10_000), min_size=2, max_size=12, unique=True),
       names=st.lists(st.sampled_from(CLASSES), min_size=11, max_size=11), newline=st.sampled_from(["\n", "\r\n"]))
def test_valid_segments_parse_exactly(scratch, cuts, names, newline):
    cuts = sorted(cuts)
    rows = [(cuts[i] / 1000, cuts[i + 1] / 1000, names[i]) for i in range(len(cuts) - 1)]
    text = newline.join(["start,end,label"] + [f"{s},{e},{n}" for s, e, n in reversed(rows)]) + newline
    segments = read_segments(write(scratch, text), CLASSES)
    assert [(s.start, s.end, CLASSES[s.label]) for s in segments] == rows


# ---------------------------------------------------------------------------------------------------
# KEY=VALUE overrides and config files

KEYS = all_keys()
JUNK = ["", " ", "[", "]", "{", "}", "!!float x", "!!int x", "!!timestamp x", "!!binary x", "!!bool maybe",
        "!!python/object:os.system", "!!python/name:os.system", "!!set {a}", "&a [*a]", "*a", ".nan", ".inf",
        "-.inf", "1e400", "-1", "0", "1", "2.5", "1e-3", "true", "null", "~", "[1, 2]", "[a, b, c]", "[1, .nan]",
        "[0, 0, 0, 0, 0]", "{a: 1}", "'quoted'", '"dq"', "yes", "no", "0x10", "0o7", "1_000", "2024-01-01", "\x00",
        "%", "@", "`", "|", ">", "- a", "a: b", "# c", "'", '"', "'a\"", "[" * 3000, "{" * 3000]
VALUE = st.one_of(st.text(max_size=30), st.sampled_from(JUNK),
                  st.lists(st.one_of(st.sampled_from(JUNK), st.text(max_size=5)), max_size=4).map(" ".join))
KEY = st.one_of(st.sampled_from(KEYS), st.text(max_size=20), st.sampled_from(KEYS).map(lambda k: k + "s"),
                st.sampled_from(KEYS).map(lambda k: " " + k.upper()))
ITEM = st.one_of(st.builds(lambda k, v: f"{k}={v}", KEY, VALUE), st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS), VALUE),
                 st.text(max_size=30))


def check_valid(cfg: Config) -> None:
    """A config that loaded is valid, and survives being written out (`config show`) and read back."""
    assert isinstance(cfg, Config)
    assert from_dict(cfg.to_dict()) == cfg
    assert from_dict(yaml.safe_load(render_yaml(cfg))) == cfg


@FAST
@given(items=st.lists(ITEM, max_size=4))
def test_overrides_parse_or_raise_config_error(items):
    try:
        parse_overrides(items)
        cfg = load_config(None, items)
    except ConfigError as e:
        assert "\n" not in str(e)
        return
    check_valid(cfg)


@FAST
@given(key=st.sampled_from(KEYS), value=VALUE)
def test_every_key_with_a_junk_value_parses_or_names_the_key(key, value):
    try:
        cfg = load_config(None, [f"{key}={value}"])
    except ConfigError as e:
        assert key.split(".")[0] in str(e) and "\n" not in str(e)
        return
    check_valid(cfg)


@FAST
@given(content=st.one_of(st.binary(max_size=200), st.text(max_size=200),
                         st.dictionaries(st.sampled_from(["data", "train", "model", "run", "synth", "x"]),
                                         st.dictionaries(st.sampled_from([k.split(".")[1] for k in KEYS] + ["zzz"]),
                                                         st.sampled_from(JUNK[:-2]), max_size=3), max_size=3)
                         .map(lambda d: "\n".join(f"{s}:\n" + "".join(f"  {k}: {v}\n" for k, v in kv.items())
                                                  for s, kv in d.items()))))
def test_config_files_load_or_raise_config_error(scratch, content):
    try:
        cfg = load_config(write(scratch, content))
    except ConfigError as e:
        assert "\n" not in str(e)
        return
    check_valid(cfg)
