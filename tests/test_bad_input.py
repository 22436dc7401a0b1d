"""Bad input through the CLI: one line naming the file (or key) and the problem, nothing left behind.

Users feed lstm-tv their own videos, labels, configs and checkpoints from elsewhere. Every row of the
tables below is one such input. The command must exit non-zero with ONE line on stderr that names
the file (or config key) and says what is wrong, print no traceback, and leave no output: the
output path does not exist, or no new file appeared. (``prepare`` keeps the videos it finished in
``OUT.partial/`` for a re-run, by design; that never loads as a dataset.) A crafted checkpoint must
also not run its code.

The last section is the other side: inputs that look odd but are valid, which ``prepare`` (and
``predict``, where it makes sense) must accept.
"""

from __future__ import annotations

import csv
import os
import shlex
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import TINY_TRAIN, write_audio_only, write_raw, write_video

from lstm_tv.checkpoint import checkpoint_payload, load_checkpoint, save_checkpoint
from lstm_tv.config import load_config
from lstm_tv.data.dataset import PreparedDataset
from lstm_tv.model.classifier import build_model

CLASSES = ["wolf", "dog", "bear", "goldfish", "unknown"]


# ---------------------------------------------------------------------------------------------------
# Helpers


def files_under(root: Path) -> set[str]:
    """Every file and directory below ``root``, as paths relative to it."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def assert_one_line_error(r, *needles: str) -> str:
    """Non-zero exit, no traceback, exactly one non-empty line on stderr holding every needle."""
    assert r.code != 0, r
    assert "Traceback" not in r.err + r.out, r.err
    lines = [line for line in r.err.splitlines() if line.strip()]
    assert len(lines) == 1, r.err
    assert lines[0].startswith("error: "), r.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def raw_dataset(root: Path) -> Path:
    """Two short labelled videos, ``a`` and ``b`` (12 frames, 32x32, 24 fps, per-frame .txt labels)."""
    return write_raw(root, {"a": 12, "b": 12}, masks=False)


def vfr_video(path: Path, pts_ms: list[int], size: int = 32) -> Path:
    """An MKV whose frames sit at the given times (milliseconds): a variable frame rate."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=1000)
        s.width, s.height, s.pix_fmt = size, size, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        for i, pts in enumerate(pts_ms):
            frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), 20 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = pts, s.codec_context.time_base
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def replace_labels(src: Path, name: str, content: str | bytes) -> None:
    """Swap ``labels/a.txt`` for ``labels/<name>`` with ``content``."""
    (src / "labels" / "a.txt").unlink()
    path = src / "labels" / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# ---------------------------------------------------------------------------------------------------
# Bad raw datasets: `lstm-tv prepare SRC OUT` refuses them


def _zero_byte(src):
    (src / "videos" / "a.mp4").write_bytes(b"")


def _truncated(src):
    write_video(src / "videos" / "a.mp4", 12)
    truncate(src / "videos" / "a.mp4")


def _truncated_mkv(src):
    # A Matroska file cut mid-stream still opens and decodes up to the cut: the label count gives it away.
    (src / "videos" / "a.mp4").unlink()
    rng = np.random.default_rng(0)
    with av.open(str(src / "videos" / "a.mkv"), "w") as c:
        s = c.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        for _ in range(48):
            for p in s.encode(av.VideoFrame.from_ndarray(rng.integers(0, 255, (32, 32, 3), np.uint8), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    (src / "labels" / "a.txt").write_text("dog\n" * 48)
    truncate(src / "videos" / "a.mkv")


def _text_as_mp4(src):
    (src / "videos" / "a.mp4").write_text("this is not a video\n" * 50)


def _audio_only(src):
    write_audio_only(src / "videos" / "a.mp4")


def _one_frame(src):
    write_video(src / "videos" / "a.mp4", 1)
    (src / "labels" / "a.txt").write_text("dog\n")


def _four_pixels(src):
    write_video(src / "videos" / "a.mp4", 12, width=4, height=4)


BAD_VIDEOS = [
    pytest.param(_zero_byte, ["videos/a.mp4: empty file (0 bytes)"], id="zero-byte video"),
    pytest.param(_truncated, ["videos/a.mp4: cannot open as video", "may be truncated"], id="truncated video (mp4)"),
    pytest.param(_text_as_mp4, ["videos/a.mp4: cannot open as video"], id="text file named .mp4"),
    pytest.param(_audio_only, ["videos/a.mp4: has no video stream"], id="audio-only file"),
    pytest.param(_one_frame, ["videos/a.mp4: only 1 frame", "at least 2 frames"], id="1-frame video"),
    pytest.param(_four_pixels, ["videos/a.mp4: frames of 4x4 px are too small"], id="4x4-pixel video"),
]

BAD_RAW = BAD_VIDEOS + [
    pytest.param(_truncated_mkv, ["labels/a.txt: 48 labels but the video has", "decoded frames"],
                 id="truncated video (mkv, cut mid-stream)"),
    pytest.param(lambda src: (src / "labels" / "a.txt").write_text("dog\n" * 5),
                 ["labels/a.txt: 5 labels but the video has 12 decoded frames"], id="labels: too few lines"),
    pytest.param(lambda src: (src / "labels" / "a.txt").write_text("dog\ncat\n" + "dog\n" * 10),
                 ["labels/a.txt: line 2: unknown class 'cat'", "expected one of wolf, dog"], id="labels: unknown class"),
    pytest.param(lambda src: (src / "labels" / "a.txt").write_bytes("dog\nb\xe4r\n".encode("latin-1") + b"dog\n" * 10),
                 ["labels/a.txt: not UTF-8 text"], id="labels: not UTF-8"),
    pytest.param(lambda src: replace_labels(src, "a.csv", "start,end,label\n0,0.3,dog\n0.2,0.4,bear\n"),
                 ["labels/a.csv: line 3 overlaps line 2"], id="segments: overlapping"),
    pytest.param(lambda src: replace_labels(src, "a.csv", "start,end,label\n-0.1,0.2,dog\n"),
                 ["labels/a.csv: line 2: negative time"], id="segments: negative time"),
    pytest.param(lambda src: replace_labels(src, "a.csv", "start,end,label\n0.3,0.1,dog\n"),
                 ["labels/a.csv: line 2: end 0.1 is not after start 0.3"], id="segments: end before start"),
    pytest.param(lambda src: replace_labels(src, "a.csv", "start,end,label\n" + "0" * 200_000 + "\n"),
                 ["labels/a.csv: line 2: not valid CSV (field larger than field limit"], id="segments: not CSV"),
    pytest.param(lambda src: replace_labels(src, "a.csv", "0,0.2,dog\n0.2,0.4,bear\n"),
                 ["labels/a.csv: line 1: header must be 'start,end,label'"], id="segments: missing header"),
    pytest.param(lambda src: (src / "labels" / "a.txt").unlink(),
                 ["videos/a.mp4 has no labels", "--skip-unlabeled"], id="video without labels"),
    pytest.param(lambda src: (src / "labels" / "c.txt").write_text("dog\n" * 12),
                 ["labels/c.txt has no video", "videos/c.<ext>"], id="labels without video"),
    pytest.param(lambda src: (src / "splits.csv").write_text("video,split\na,train\nzzz,val\n"),
                 ["splits.csv: line 3: video 'zzz' is not in videos/"], id="splits.csv: missing video"),
    pytest.param(lambda src: (src / "splits.csv").write_text("video,split\na,train\nb,dev\n"),
                 ["splits.csv: line 3: split 'dev' must be one of train, val, test"], id="splits.csv: unknown split"),
]


@pytest.mark.parametrize("damage, needles", BAD_RAW)
def test_prepare_refuses_bad_raw_data(cli, tmp_path, damage, needles):
    src = raw_dataset(tmp_path / "raw")
    damage(src)
    out = tmp_path / "out"
    r = cli("prepare", src, out, "data.size=16", "--workers", "1")
    assert_one_line_error(r, *needles)
    assert not out.exists()
    # Videos finished before the failure may wait in OUT.partial for a re-run, but nothing there loads.
    assert not list(tmp_path.glob("out.partial/manifest.json"))


@pytest.mark.parametrize("damage, needles", BAD_VIDEOS)
def test_predict_refuses_bad_videos(cli, tmp_path, inputs, damage, needles):
    src = raw_dataset(tmp_path / "raw")
    damage(src)
    out = tmp_path / "out"
    out.mkdir()
    r = cli("predict", src / "videos" / "a.mp4", "--checkpoint", inputs["root"] / "good.ckpt",
            "--out", out / "p.csv", "--annotate", out / "a.mp4", "--timeline", out / "t.png")
    assert_one_line_error(r, *needles)
    assert files_under(out) == set()                 # some fail only while decoding: their outputs are dropped


# ---------------------------------------------------------------------------------------------------
# Bad configs: config files and KEY=VALUE overrides, through `config show`, `prepare` and `train`

BAD_CONFIG = [
    pytest.param("config show", "train:\n  epoch: 3\n", [],
                 ["bad.yaml", "unknown key 'train.epoch'", "did you mean train.epochs?"], id="file: unknown key"),
    pytest.param("prepare", "model:\n  hidden: many\n", [],
                 ["model.hidden: expected int, got 'many'"], id="file: wrong type"),
    pytest.param("train", "train:\n  dropout: 0.5\n", [],
                 ["bad.yaml", "unknown key 'train.dropout'", "did you mean model.dropout?"], id="file: key in the wrong section"),
    pytest.param("train", "train:\n  lr: -1\n", [], ["train.lr: -1.0 is out of range; allowed [0.0, 10.0]"],
                 id="file: out-of-range value"),
    pytest.param("prepare", "train:\n  epochs: [3\n", [], ["bad.yaml: line 3 invalid YAML"], id="file: invalid YAML"),
    pytest.param("config show", "- train\n- model\n", [], ["bad.yaml: a config must be a mapping"], id="file: not a mapping"),
    pytest.param("config show", b"train:\n  lr: 0.1 # \xe9t\xe9\n", [], ["bad.yaml: not a UTF-8 text file"],
                 id="file: not UTF-8"),
    pytest.param("config show", None, ["train.epoch=3"], ["unknown key 'train.epoch'; did you mean train.epochs?"],
                 id="override: unknown key"),
    pytest.param("train", None, ["train.epochs=many"], ["train.epochs: expected int, got 'many' (str)"],
                 id="override: wrong type"),
    pytest.param("train", None, ["train.lr=1e6"], ["train.lr: 1000000.0 is out of range; allowed [0.0, 10.0]"],
                 id="override: absurd learning rate"),
    pytest.param("prepare", None, ["data.size=4"], ["data.size: 4 is out of range; allowed [8, 1024]"],
                 id="override: out-of-range value"),
    pytest.param("train", None, ["train.lr=.nan"], ["train.lr: nan is not a finite number"], id="override: NaN"),
    pytest.param("config show", None, ["data.classes=[a, b"], ["data.classes: cannot parse '[a, b' as a YAML value"],
                 id="override: invalid YAML"),
    pytest.param("config show", None, ["train.epochs=!!float many"], ["train.epochs: cannot parse '!!float many'"],
                 id="override: YAML tag that fails"),
    pytest.param("train", None, ["train.class_weights=[1, 1, .nan, 1, 1]"], ["train.class_weights[2]: nan is not a finite number"],
                 id="override: NaN inside a list"),
    pytest.param("train", None, ["train.class_weights=[0, 0, 0, 0, 0]"], ["train.class_weights", "at least one positive"],
                 id="override: all class weights zero"),
    pytest.param("train", None, ["model.cell=lstm", "train.nonfinite=ignore"],
                 ["train.nonfinite: 'ignore' is not one of stop, skip"], id="override: not one of the choices"),
    pytest.param("prepare", None, ["data.epochs"], ["override 'data.epochs' must look like KEY=VALUE"],
                 id="override: no '='"),
]


@pytest.mark.parametrize("command, file_text, overrides, needles", BAD_CONFIG)
def test_bad_configs_name_the_file_or_key(cli, tmp_path, monkeypatch, command, file_text, overrides, needles):
    monkeypatch.chdir(tmp_path)
    src = raw_dataset(tmp_path / "raw") if command == "prepare" else None
    args = command.split()
    if file_text is not None:
        config = tmp_path / "bad.yaml"
        config.write_bytes(file_text.encode() if isinstance(file_text, str) else file_text)
        args += ["--config", str(config)]
    if command == "prepare":
        args += [str(src), str(tmp_path / "out")]
    before = files_under(tmp_path)
    r = cli(*args, *overrides)
    assert_one_line_error(r, *needles)
    assert r.out == ""
    assert files_under(tmp_path) == before          # no out/, runs/ or data/ appeared


# ---------------------------------------------------------------------------------------------------
# Bad checkpoints, for every command that reads one


class RunsCode:
    """Unpickling this runs a shell command: what a malicious checkpoint carries."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def make_checkpoint(path: Path, classes: list[str] = CLASSES, **extra) -> Path:
    """An untrained tiny model as a checkpoint (what train writes, minus the training)."""
    names = ", ".join(classes)
    cfg = load_config(None, TINY_TRAIN + [f"data.classes=[{names}]", f"data.background={classes[-1]}"])
    torch.manual_seed(0)
    model = build_model(cfg.model, len(classes))
    save_checkpoint(path, checkpoint_payload(model, cfg, classes=classes, background=classes[-1], size=16, fps=24,
                                             **extra))
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Good inputs (a video, a checkpoint with training state) and the bad checkpoints made from it."""
    root = tmp_path_factory.mktemp("bad_ckpt")
    video = write_video(root / "clip.mp4", 12)
    good = make_checkpoint(root / "good.ckpt", optimizer={}, scheduler={}, progress={"epoch": 1})
    newer = load_checkpoint(good)
    newer["version"] = 99
    save_checkpoint(root / "newer.ckpt", newer)
    (root / "truncated.ckpt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    marker = root / "PWNED"
    torch.save({"format": "lstm-tv/checkpoint", "version": 1, "payload": RunsCode(f"touch {shlex.quote(str(marker))}")},
               root / "crafted.ckpt")
    make_checkpoint(root / "other_classes.ckpt", ["cat", "mouse", "none"])
    malformed = load_checkpoint(good)                # plain data, so it loads safely, but not what it should be
    malformed["classes"] = 5
    torch.save(malformed, root / "malformed.ckpt")
    foreign = load_checkpoint(good)                  # a training state from something else
    foreign.update(optimizer={"state": 5}, progress={"epoch": 1})
    save_checkpoint(root / "foreign_state.ckpt", foreign)
    return {"root": root, "video": video, "marker": marker}


CHECKPOINT_PROBLEMS = {
    "missing": ("missing.ckpt", "missing.ckpt: checkpoint not found"),
    "truncated": ("truncated.ckpt", "truncated.ckpt: not a readable checkpoint (truncated or corrupt"),
    "newer format": ("newer.ckpt", "newer.ckpt: written by a newer lstm-tv (checkpoint format 99"),
    "crafted to run code": ("crafted.ckpt", "crafted.ckpt: refused: it contains objects other than tensors"),
    "fields of the wrong type": ("malformed.ckpt", "malformed.ckpt: class list 5 is not a list of at least 2 names"),
}


def command_with(command: str, ckpt: Path, video: Path, data: Path, out: Path) -> list:
    """The command line of ``command`` reading ``ckpt`` and writing into the (empty) directory ``out``."""
    return {
        "evaluate": ["evaluate", ckpt, "--data", data, "--split", "train", "--report", out / "report.json",
                     "--plot", out / "confusion.png"],
        "predict": ["predict", video, "--checkpoint", ckpt, "--out", out / "p.csv", "--timeline", out / "t.png"],
        "export": ["export", ckpt, "--format", "torchscript", "--out", out / "model.pt"],
        "explain": ["explain", video, "--checkpoint", ckpt, "--out", out / "explain.png"],
        "train --resume": ["train", "--resume", ckpt],
    }[command]


BAD_CHECKPOINTS = [
    pytest.param(command, problem, id=f"{command}: {problem}")
    for command in ("evaluate", "predict", "export", "explain", "train --resume")
    for problem in CHECKPOINT_PROBLEMS
] + [pytest.param("evaluate", "from another class list", id="evaluate: from another class list"),
      pytest.param("train --resume", "a training state from elsewhere", id="train --resume: a training state from elsewhere")]


@pytest.mark.parametrize("command, problem", BAD_CHECKPOINTS)
def test_bad_checkpoints_are_refused(cli, tmp_path, monkeypatch, inputs, tiny_prepared, command, problem):
    monkeypatch.chdir(tmp_path)                      # train --resume would create runs/ here
    root = inputs["root"]
    if problem == "from another class list":
        name, needles = "other_classes.ckpt", ["other_classes.ckpt: trained on classes ['cat', 'mouse', 'none']",
                                               "evaluate on data with the same classes"]
    elif problem == "a training state from elsewhere":
        name, needles = "foreign_state.ckpt", ["foreign_state.ckpt: its training state cannot be restored"]
    else:
        name, message = CHECKPOINT_PROBLEMS[problem]
        needles = [message]
    out = tmp_path / "out"
    out.mkdir()
    before = files_under(root)
    r = cli(*command_with(command, root / name, inputs["video"], tiny_prepared, out))
    assert_one_line_error(r, *needles)
    assert files_under(out) == set() and files_under(tmp_path) == {"out"}
    assert files_under(root) == before               # nothing written beside the checkpoint either
    assert not inputs["marker"].exists()             # the crafted checkpoint's code never ran


# ---------------------------------------------------------------------------------------------------
# Valid but unusual inputs are accepted


def test_upper_case_extensions(cli, tmp_path, inputs):
    src = raw_dataset(tmp_path / "raw")
    (src / "videos" / "a.mp4").rename(src / "videos" / "a.MP4")
    (src / "labels" / "a.txt").rename(src / "labels" / "a.TXT")
    r = cli("prepare", src, tmp_path / "out", "data.size=16", "--workers", "1")
    assert r.code == 0, r
    data = PreparedDataset(tmp_path / "out")
    a = next(v for v in data.videos if v.stem == "a")
    assert data.labels(a).tolist() == [i % 5 for i in range(12)]
    r = cli("predict", src / "videos" / "a.MP4", "--checkpoint", inputs["root"] / "good.ckpt",
            "--labels", src / "labels" / "a.TXT", "--out", tmp_path / "p.csv")
    assert r.code == 0, r


def test_crlf_labels_with_a_trailing_blank_line(cli, tmp_path):
    src = raw_dataset(tmp_path / "raw")
    classes = [CLASSES[i % 5] for i in range(12)]
    (src / "labels" / "a.txt").write_bytes(("\r\n".join(classes) + "\r\n\r\n").encode())
    r = cli("prepare", src, tmp_path / "out", "data.size=16", "--workers", "1")
    assert r.code == 0, r
    data = PreparedDataset(tmp_path / "out")
    a = next(v for v in data.videos if v.stem == "a")
    assert data.labels(a).tolist() == [i % 5 for i in range(12)]


@pytest.mark.parametrize("lines, warning", [
    pytest.param(11, "11 labels for 12 frames; padded the end", id="1 label short"),
    pytest.param(14, "14 labels for 12 frames; cut the end", id="2 labels too many"),
])
def test_label_count_one_or_two_frames_off(cli, tmp_path, lines, warning):
    src = raw_dataset(tmp_path / "raw")
    (src / "labels" / "a.txt").write_text("dog\n" * (lines - 1) + "bear\n")
    r = cli("prepare", src, tmp_path / "out", "data.size=16", "--workers", "1")
    assert r.code == 0, r
    assert "warning:" in r.err and "labels/a.txt: " + warning in " ".join(r.err.split())
    data = PreparedDataset(tmp_path / "out")
    a = next(v for v in data.videos if v.stem == "a")
    expected = (["dog"] * (lines - 1) + ["bear"] + ["bear"] * 12)[:12]
    assert data.labels(a).tolist() == [CLASSES.index(c) for c in expected]


def read_predictions(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_portrait_video(cli, tmp_path, inputs):
    src = raw_dataset(tmp_path / "raw")
    write_video(src / "videos" / "a.mp4", 12, width=24, height=48)            # 1:2 portrait
    r = cli("prepare", src, tmp_path / "out", "data.size=16", "--workers", "1")
    assert r.code == 0, r
    data = PreparedDataset(tmp_path / "out")
    a = next(v for v in data.videos if v.stem == "a")
    assert data.frames(a).shape == (12, 32, 16, 3)      # short side 16, the 1:2 aspect kept (a comes first)
    r = cli("predict", src / "videos" / "a.mp4", "--checkpoint", inputs["root"] / "good.ckpt",
            "--out", tmp_path / "p.csv")
    assert r.code == 0, r
    assert len(read_predictions(tmp_path / "p.csv")) == 12


def test_variable_frame_rate_video_with_segment_labels(cli, tmp_path, inputs):
    src = raw_dataset(tmp_path / "raw")
    (src / "videos" / "a.mp4").unlink()
    # Frames at irregular times: 8 frames in 1 s, so a constant-rate guess (one per 1/7 s) would misplace them.
    times = [0.0, 0.1, 0.15, 0.4, 0.45, 0.5, 0.8, 1.0]
    vfr_video(src / "videos" / "a.mkv", [round(t * 1000) for t in times])
    replace_labels(src, "a.csv", "start,end,label\r\n0.12,0.45,bear\r\n0.45,0.9,dog\r\n")
    r = cli("prepare", src, tmp_path / "out", "data.size=16", "--workers", "1")
    assert r.code == 0, r
    data = PreparedDataset(tmp_path / "out")
    a = next(v for v in data.videos if v.stem == "a")
    assert np.allclose(data.times(a), times)
    # [0.12, 0.45) covers the frames at 0.15 and 0.4; [0.45, 0.9) those at 0.45, 0.5 and 0.8.
    expected = ["unknown", "unknown", "bear", "bear", "dog", "dog", "dog", "unknown"]
    assert data.labels(a).tolist() == [CLASSES.index(c) for c in expected]
    # predict reports each frame at its own time, and scores it against the same segment labels.
    r = cli("predict", src / "videos" / "a.mkv", "--checkpoint", inputs["root"] / "good.ckpt",
            "--labels", src / "labels" / "a.csv", "--out", tmp_path / "p.csv")
    assert r.code == 0, r
    rows = read_predictions(tmp_path / "p.csv")
    assert [int(row["frame"]) for row in rows] == list(range(8))
    assert np.allclose([float(row["time"]) for row in rows], times, atol=1e-3)


# ---------------------------------------------------------------------------------------------------
# Reporting a problem: --debug shows the traceback behind the one line


def test_debug_shows_the_traceback_instead_of_the_line(cli, tmp_path):
    from lstm_tv.errors import ConfigError

    r = cli("config", "show", "train.epoch=3")
    assert_one_line_error(r, "unknown key 'train.epoch'")
    with pytest.raises(ConfigError, match="unknown key 'train.epoch'"):   # raised on, for the traceback
        cli("config", "show", "train.epoch=3", "--debug")
