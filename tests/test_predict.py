"""`lstm-tv predict`: per-frame labels streamed in constant memory, written atomically, with clear errors."""

from __future__ import annotations

import csv
import json
import os
import random
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_video

from lstm_tv.checkpoint import load_checkpoint, save_checkpoint
from lstm_tv.data.video import count_frames, probe, read_frames
from lstm_tv.errors import VideoError
from lstm_tv.stream import decode_chunks, load_model, predict_video, prefetch

CPU = torch.device("cpu")
CLASSES = ["wolf", "dog", "bear", "goldfish", "unknown"]


@pytest.fixture(scope="module")
def trained(tiny_run):
    """The session's tiny trained model: its checkpoint and a raw video + labels."""
    video = sorted((tiny_run["raw"] / "videos").glob("*.mp4"))[0]
    labels = next(p for p in (tiny_run["raw"] / "labels").glob(f"{video.stem}.*"))
    return {**tiny_run, "video": video, "labels": labels}


@pytest.fixture(scope="module")
def model(trained):
    return load_model(trained["ckpt"], CPU)


def files_in(path: Path) -> set[str]:
    return {p.name for p in path.iterdir()}


# ---------------------------------------------------------------------------------------------------
# The streaming library


def test_streamed_probabilities_equal_one_full_forward(trained, model):
    ckpt, net = model
    video = trained["video"]
    whole = np.stack([rgb for rgb, _ in read_frames(video, ckpt.size)])    # what prepare stores
    with torch.inference_mode():
        expected = torch.softmax(net(torch.from_numpy(whole)[None])[0][0], -1).numpy()
    chunks = list(predict_video(net, video, ckpt.size, CPU, batch=7))      # 7 does not divide 160
    assert [c.start for c in chunks] == list(range(0, len(whole), 7))
    probs = np.concatenate([c.probs for c in chunks])
    assert probs.shape == (len(whole), 5)
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    times = np.concatenate([c.times for c in chunks])
    assert times[0] == 0 and np.allclose(np.diff(times), 1 / 24, atol=1e-4)


def test_model_frames_are_decoded_exactly_as_prepare_decodes_them(trained):
    video = trained["video"]
    frames = np.concatenate([c.frames for c in decode_chunks(video, 16, 50, originals=True)])
    np.testing.assert_array_equal(frames, np.stack([rgb for rgb, _ in read_frames(video, 16)]))
    big = next(decode_chunks(video, 16, 4, originals=True)).originals
    assert big.shape == (4, 32, 32, 3)                                         # the video's own size
    capped = [len(c) for c in decode_chunks(video, 16, 64, originals=True, max_bytes=10 * 32 * 32 * 3)]
    assert capped[:3] == [10, 10, 10] and sum(capped) == 160                   # full-size frames bound the chunk


def test_annotating_does_not_change_the_predictions(trained, model):
    ckpt, net = model
    plain = np.concatenate([c.probs for c in predict_video(net, trained["video"], 16, CPU, batch=32)])
    with_originals = list(predict_video(net, trained["video"], 16, CPU, batch=32, originals=True))
    np.testing.assert_array_equal(plain, np.concatenate([c.probs for c in with_originals]))


@pytest.mark.parametrize("batch", [10, 2])                                  # 2: chunks where the model never runs
def test_stride_runs_the_model_on_every_nth_frame_and_repeats_its_last_prediction(trained, model, batch):
    ckpt, net = model
    video = trained["video"]
    probs = np.concatenate([c.probs for c in predict_video(net, video, 16, CPU, batch=batch, stride=3)])
    every_third = np.stack([rgb for rgb, _ in read_frames(video, 16)][::3])
    with torch.inference_mode():
        expected = torch.softmax(net(torch.from_numpy(every_third)[None])[0][0], -1).numpy()
    assert len(probs) == 160                                                   # still one row per decoded frame
    np.testing.assert_allclose(probs[::3], expected, atol=1e-5)
    np.testing.assert_array_equal(probs[1::3], probs[::3][:len(probs[1::3])])  # filled from the frame before
    np.testing.assert_array_equal(probs[2::3], probs[::3][:len(probs[2::3])])


def test_bf16_encoder_stays_close_to_full_precision(trained, model):
    ckpt, net = model
    full = np.concatenate([c.probs for c in predict_video(net, trained["video"], 16, CPU, batch=32)])
    net.encoder_autocast = torch.bfloat16
    try:
        half = np.concatenate([c.probs for c in predict_video(net, trained["video"], 16, CPU, batch=32)])
    finally:
        net.encoder_autocast = None
    assert np.abs(half - full).max() < 2e-2
    assert (half.argmax(1) == full.argmax(1)).mean() > 0.95


def test_prefetch_passes_errors_on_and_stops_its_thread_when_left_early():
    def items():
        yield 1
        yield 2
        raise VideoError("x.mp4: decoding failed after 2 frames")

    got = []
    with pytest.raises(VideoError, match="after 2 frames"):
        for item in prefetch(items()):
            got.append(item)
    assert got == [1, 2]

    closed = threading.Event()

    def endless():
        try:
            while True:
                yield 0
        finally:
            closed.set()

    gen = prefetch(endless())
    next(gen)
    gen.close()                                                                 # the consumer stops early
    assert closed.is_set()
    assert not any(t.name == "lstm-tv-decode" for t in threading.enumerate())


# ---------------------------------------------------------------------------------------------------
# The command


def test_predict_writes_one_csv_row_per_decoded_frame(cli, trained, tmp_path):
    out = tmp_path / "preds.csv"
    r = cli("predict", trained["video"], "--checkpoint", trained["ckpt"], "--out", out, "--batch", 24)
    assert r.code == 0, r
    rows = list(csv.DictReader(open(out)))
    assert list(rows[0]) == ["frame", "time", "label", "confidence"] + [f"p_{c}" for c in CLASSES]
    assert len(rows) == count_frames(trained["video"]) == 160
    assert [int(r["frame"]) for r in rows] == list(range(160))
    assert float(rows[24]["time"]) == pytest.approx(1.0, abs=1e-3)            # seconds, 24 fps
    for row in rows:
        p = np.array([float(row[f"p_{c}"]) for c in CLASSES])
        assert p.sum() == pytest.approx(1, abs=1e-4)
        assert row["label"] == CLASSES[p.argmax()] and float(row["confidence"]) == p.max()
    assert "160 (6.7 s of video)" in r.out and "frames/s" in r.out            # the summary
    assert files_in(tmp_path) == {"preds.csv"}                                 # no temporary file left


def test_predict_jsonl_has_the_same_fields(cli, trained, tmp_path):
    r = cli("predict", trained["video"], "--checkpoint", trained["ckpt"], "--out", tmp_path / "p.jsonl")
    assert r.code == 0, r
    lines = (tmp_path / "p.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert len(lines) == 160
    assert list(first) == ["frame", "time", "label", "confidence"] + [f"p_{c}" for c in CLASSES]
    assert first["frame"] == 0 and first["time"] == 0.0 and first["label"] in CLASSES


def test_rows_to_standard_output_and_events_of_a_file(cli, trained, tmp_path):
    r = cli("predict", trained["video"], "--checkpoint", trained["ckpt"], "--out", "-", "--format", "jsonl",
            "--events", tmp_path / "ev.jsonl", "--min-frames", "3")
    assert r.code == 0, r
    rows = [json.loads(line) for line in r.out.splitlines()]                  # stdout: nothing but the rows
    assert [row["frame"] for row in rows] == list(range(160)) and "frames/s" in r.err
    events = [json.loads(line) for line in (tmp_path / "ev.jsonl").read_text().splitlines()]
    assert events[0]["start"] == 0 and events[-1]["end"] == 160
    assert [a["end"] for a in events[:-1]] == [b["start"] for b in events[1:]]  # they tile the video
    assert sum(e["frames"] for e in events) == 160 and all(e["frames"] >= 3 for e in events)
    r = cli("predict", trained["video"], trained["video"].parent, "--checkpoint", trained["ckpt"], "--out", "-")
    assert r.code == 1 and "--out -: standard output takes the results of one video" in r.err


def test_annotated_video_and_timeline(cli, trained, tmp_path):
    ann, tl = tmp_path / "ann.mp4", tmp_path / "tl.png"
    r = cli("predict", trained["video"], "--checkpoint", trained["ckpt"], "--annotate", ann, "--timeline", tl,
            "--labels", trained["labels"])
    assert r.code == 0, r
    src, out = probe(trained["video"]), probe(ann)
    assert (out.width, out.height, out.fps) == (src.width, src.height, src.fps)  # original size and rate
    assert count_frames(ann) == 160
    first = next(read_frames(ann))[0].astype(int)
    plain = next(read_frames(trained["video"]))[0].astype(int)
    assert np.abs(first[:8, :8] - plain[:8, :8]).mean() > 10                  # a panel is drawn in the corner
    assert tl.stat().st_size > 5000 and tl.read_bytes()[:4] == b"\x89PNG"
    assert "accuracy" in r.out                                                 # --labels adds it to the summary


def test_several_videos_from_a_directory_and_a_glob(cli, trained, tmp_path):
    videos = tmp_path / "videos"
    for name in ("a", "b"):
        write_video(videos / f"{name}.mp4", 10 + len(name))
    outdir = tmp_path / "preds"
    outdir.mkdir()
    r = cli("predict", videos, "--checkpoint", trained["ckpt"], "--out", outdir)
    assert r.code == 0, r
    assert files_in(outdir) == {"a.csv", "b.csv"}
    assert len((outdir / "a.csv").read_text().splitlines()) == 1 + 11
    r = cli("predict", str(videos / "*.mp4"), "--checkpoint", trained["ckpt"])   # a quoted glob, no --out
    assert r.code == 0, r
    assert "a.mp4" in r.out and "b.mp4" in r.out and "nothing (give --out" in r.out
    assert files_in(outdir) == {"a.csv", "b.csv"}


def test_default_checkpoint_is_the_latest_runs_best(cli, trained, tmp_path, monkeypatch):
    monkeypatch.chdir(trained["root"])                                          # where training made runs/latest
    r = cli("predict", trained["video"])
    assert r.code == 0, r
    assert "runs/latest/best.ckpt ->" in r.out.replace("\n", "")
    monkeypatch.chdir(tmp_path)                                                 # no run here
    r = cli("predict", trained["video"])
    assert r.code == 1 and "runs/latest/best.ckpt: checkpoint not found" in r.err and "lstm-tv train" in r.err


def test_interrupted_prediction_leaves_no_output(cli, trained, tmp_path, monkeypatch):
    import lstm_tv.stream as P

    real = P.decode_chunks

    def dies_midway(*args, **kwargs):
        chunks = real(*args, **kwargs)
        yield next(chunks)
        raise VideoError(f"{args[0]}: decoding failed after 64 frames (Invalid data); the file may be truncated")

    monkeypatch.setattr(P, "decode_chunks", dies_midway)
    r = cli("predict", trained["video"], "--checkpoint", trained["ckpt"], "--out", tmp_path / "p.csv",
            "--annotate", tmp_path / "a.mp4", "--timeline", tmp_path / "t.png")
    assert r.code == 1 and "decoding failed after 64 frames" in r.err
    assert files_in(tmp_path) == set()                                          # no csv, mp4, png or .tmp


class RunsCode:
    """Unpickling this runs a shell command: what a malicious checkpoint would carry."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def crafted_checkpoint(path: Path) -> Path:
    torch.save({"format": "lstm-tv/checkpoint", "payload": RunsCode()}, path)
    return path


def incompatible_checkpoint(src: Path, path: Path) -> Path:
    ckpt = load_checkpoint(src)
    ckpt["model"] = {k: v for k, v in ckpt["model"].items() if not k.startswith("head")}
    save_checkpoint(path, ckpt)
    return path


def bad_inputs(trained, tmp: Path) -> dict:
    """name -> (extra args, text the one-line error must contain)."""
    video, ckpt = trained["video"], trained["ckpt"]
    (tmp / "in").mkdir()
    (tmp / "in" / "corrupt.mp4").write_bytes(random.Random(0).randbytes(2000))  # seeded: ~1 in 300 random files sniff as audio
    (tmp / "in" / "empty.mp4").write_bytes(b"")
    (tmp / "in" / "notckpt.ckpt").write_text("hello")
    (tmp / "in" / "bad.txt").write_text("wolf\nzebra\n")
    return {
        "missing video": ([tmp / "in" / "nope.mp4", "--checkpoint", ckpt], "nope.mp4: video not found"),
        "name that looks like markup": ([tmp / "in" / "show [1080p].mp4", "--checkpoint", ckpt],
                                        "show [1080p].mp4: video not found"),
        "corrupt video": ([tmp / "in" / "corrupt.mp4", "--checkpoint", ckpt], "corrupt.mp4: cannot open as video"),
        "empty video": ([tmp / "in" / "empty.mp4", "--checkpoint", ckpt], "empty.mp4: empty file"),
        "missing checkpoint": ([video, "--checkpoint", tmp / "in" / "none.ckpt"], "none.ckpt: checkpoint not found"),
        "not a checkpoint": ([video, "--checkpoint", tmp / "in" / "notckpt.ckpt"], "notckpt.ckpt: not a readable checkpoint"),
        "crafted checkpoint": ([video, "--checkpoint", crafted_checkpoint(tmp / "in" / "evil.ckpt")], "evil.ckpt: refused"),
        "incompatible checkpoint": ([video, "--checkpoint", incompatible_checkpoint(ckpt, tmp / "in" / "old.ckpt")],
                                    "old.ckpt: weights do not match"),
        "out in a missing directory": ([video, "--checkpoint", ckpt, "--out", tmp / "out" / "no" / "p.csv"],
                                       "directory " + str(tmp / "out" / "no") + " does not exist"),
        "annotate in a missing directory": ([video, "--checkpoint", ckpt, "--annotate", tmp / "out" / "no" / "a.mp4"],
                                            "does not exist"),
        "out of unknown format": ([video, "--checkpoint", ckpt, "--out", tmp / "out" / "p.txt"], "must end in .csv or .jsonl"),
        "several videos, one out file": ([video, video.with_name("tv_0001.mp4"), "--checkpoint", ckpt, "--out",
                                          tmp / "out" / "p.csv"], "must be an existing directory"),
        "bad labels": ([video, "--checkpoint", ckpt, "--labels", tmp / "in" / "bad.txt", "--out", tmp / "out" / "p.csv"],
                       "bad.txt: line 2: unknown class 'zebra'"),
        "annotate over the input": ([video, "--checkpoint", ckpt, "--annotate", video], "overwrite the input"),
        "stride 0": ([video, "--checkpoint", ckpt, "--stride", 0], "--stride 0"),
        "glob matching nothing": ([str(tmp / "in" / "*.mkv"), "--checkpoint", ckpt], "*.mkv: video not found (and no file"),
    }


def test_every_bad_input_is_one_line_and_writes_nothing(cli, trained, tmp_path):
    (tmp_path / "out").mkdir()
    for name, (args, message) in bad_inputs(trained, tmp_path).items():
        r = cli("predict", *args)
        assert r.code == 1, (name, r)
        lines = r.err.strip().splitlines()
        assert len(" ".join(lines)) and lines[0].startswith("error:"), (name, r.err)
        assert message in " ".join(line.strip() for line in lines), (name, r.err)  # rich may wrap one long line
        assert "Traceback" not in r.err, name
        assert files_in(tmp_path / "out") == set(), name
    assert (tmp_path / "in" / "bad.txt").read_text() == "wolf\nzebra\n"


def test_label_file_far_from_the_frame_count_fails_before_decoding(cli, trained, tmp_path):
    labels = tmp_path / "short.txt"
    labels.write_text("unknown\n" * 100)                                        # the video has 160 frames
    r = cli("predict", trained["video"], "--checkpoint", trained["ckpt"], "--labels", labels,
            "--out", tmp_path / "p.csv")
    assert r.code == 1 and "short.txt: 100 labels but the video has 160 decoded frames" in r.err
    assert files_in(tmp_path) == {"short.txt"}


# ---------------------------------------------------------------------------------------------------
# Start-up: predict imports what the job needs, when it needs it


def test_predict_and_help_import_no_torchvision_matplotlib_or_onnx(trained, tmp_path):
    import subprocess
    import sys

    # A fresh interpreter: runs `lstm-tv --help`, then predicts with the (cnn-encoder) tiny model into a
    # CSV, then says which heavy packages got imported. Run in-process (main), so sys.modules is the command's.
    script = f"""
import sys
from lstm_tv.cli import main
for args in (["--help"], ["predict", {str(trained["video"])!r}, "--checkpoint", {str(trained["ckpt"])!r},
                          "--out", {str(tmp_path / "p.csv")!r}]):
    try:
        main(args)
    except SystemExit as e:
        assert e.code == 0, (args, e.code)
    print(args[0], *(name in sys.modules for name in ("torchvision", "matplotlib", "onnx")), file=sys.stderr)
"""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    said = [line for line in r.stderr.splitlines() if line.startswith(("--help", "predict"))]
    assert said == ["--help False False False", "predict False False False"]
    assert (tmp_path / "p.csv").is_file()


def test_the_model_leaves_a_core_to_the_decoder_while_a_file_is_predicted():
    from lstm_tv.stream import threads_beside_decoding

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with threads_beside_decoding(torch.device("cpu")):
            inside = torch.get_num_threads()
        assert inside == max(1, min(2, (os.cpu_count() or 2) - 1)) and torch.get_num_threads() == 2  # restored
    finally:
        torch.set_num_threads(before)
