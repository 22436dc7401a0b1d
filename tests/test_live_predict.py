"""``predict`` on live sources: the rows equal a file's, stdout streams, signals stop cleanly, drops are reported.

Everything runs on loopback with the session's tiny model (16 px) and short timeouts, so each test ends
by itself in seconds. The MPEG-TS streams are the ones of tests/test_sources.py: a stream carries the
packets of a file, so ``predict`` on the stream must give exactly the rows ``predict`` gives on the file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from test_sources import free_udp_port, send_udp, write_ts

from lstm_tv.data.sources import LiveOptions
from lstm_tv.predict import run_predict
from lstm_tv.ui import Reporter

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))
TESTSRC = "lavfi:testsrc=size=32x32:rate=24,realtime"  # a live source paced at 24 fps that never ends


def csv_rows(text: str) -> dict[int, dict]:
    return {int(r["frame"]): r for r in csv.DictReader(io.StringIO(text))}


def assert_same_rows(got: dict[int, dict], want: dict[int, dict]) -> None:
    """Same frames, labels, times and probabilities (within 1e-5), compared by frame number."""
    assert sorted(got) == sorted(want)
    for frame, row in want.items():
        assert got[frame]["label"] == row["label"], frame
        for key in row:
            if key.startswith("p_") or key in ("time", "confidence"):
                assert float(got[frame][key]) == pytest.approx(float(row[key]), abs=1e-5), (frame, key)


@pytest.fixture(scope="module")
def stream_file(tmp_path_factory):
    """A 40-frame MPEG-TS file, and ``predict``'s CSV rows and events for it."""
    return write_ts(tmp_path_factory.mktemp("live") / "a.ts", frames=40)


def file_outputs(cli, ckpt, path: Path, tmp: Path) -> tuple[dict, list]:
    r = cli("predict", path, "--checkpoint", ckpt, "--out", tmp / "file.csv", "--events", tmp / "file.events.jsonl")
    assert r.code == 0, r.err
    return csv_rows((tmp / "file.csv").read_text()), (tmp / "file.events.jsonl").read_text().splitlines()


# ---------------------------------------------------------------------------------------------------
# The same rows as from the file


def test_a_udp_stream_gives_the_rows_and_events_of_the_file_it_carries(cli, tiny_run, stream_file, tmp_path):
    want, want_events = file_outputs(cli, tiny_run["ckpt"], stream_file, tmp_path)
    port = free_udp_port()
    sender = send_udp(stream_file, port)
    r = cli("predict", f"udp://127.0.0.1:{port}", "--checkpoint", tiny_run["ckpt"], "--out", tmp_path / "live.csv",
            "--events", tmp_path / "live.events.jsonl", "--chunk", "8", "--open-timeout", "5", "--read-timeout", "0.5")
    sender.join(5)
    # UDP has no end: the stream stalls once the sender is done, a one-line error after every row is written.
    assert r.code == 1 and "no data for 0.5 s (the stream stalled)" in r.err
    text = (tmp_path / "live.csv").read_text()
    assert text.splitlines()[0].endswith(",gap") and text.endswith("\n")
    got = csv_rows(text)
    assert_same_rows(got, want)
    assert {row["gap"] for row in got.values()} == {"0"}
    assert (tmp_path / "live.events.jsonl").read_text().splitlines() == want_events


def test_standard_input_streams_jsonl_rows_to_standard_output(cli, tiny_run, stream_file, tmp_path):
    want, _ = file_outputs(cli, tiny_run["ckpt"], stream_file, tmp_path)
    done = subprocess.run([sys.executable, "-m", "lstm_tv", "predict", "-", "--checkpoint", str(tiny_run["ckpt"]),
                           "--out", "-", "--format", "jsonl", "--chunk", "1", "--read-timeout", "5"],
                          input=stream_file.read_bytes(), capture_output=True, env=ENV, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    rows = [json.loads(line) for line in done.stdout.decode().splitlines()]  # stdout holds nothing but rows
    assert_same_rows({row["frame"]: {k: str(v) for k, v in row.items()} for row in rows}, want)
    assert "watching" in done.stderr.decode() and "frames" in done.stderr.decode()  # the log went to stderr


def test_a_followed_file_written_while_predicting_gives_all_its_frames(cli, tiny_run, tmp_path):
    path = tmp_path / "recording.ts"
    started = threading.Event()
    writer = threading.Thread(target=write_ts, args=(path,), kwargs=dict(
        frames=40, pause=0.02, started=started, options={"flush_packets": "1"}), daemon=True)
    writer.start()
    started.wait(5)
    r = cli("predict", path, "--follow", "--follow-timeout", "0.5", "--checkpoint", tiny_run["ckpt"],
            "--out", tmp_path / "live.csv", "--chunk", "4")
    writer.join(5)
    assert r.code == 0, r.err
    want, _ = file_outputs(cli, tiny_run["ckpt"], path, tmp_path)
    assert_same_rows(csv_rows((tmp_path / "live.csv").read_text()), want)


# ---------------------------------------------------------------------------------------------------
# Stopping a live run: every output whole


def start_live(ckpt, tmp: Path, *outputs: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lstm_tv", "predict", TESTSRC, "--checkpoint", str(ckpt),
                             "--chunk", "4", *outputs], cwd=tmp, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def wait_for_rows(path: Path, rows: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().count("\n") > rows):
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "no rows arrived"
        time.sleep(0.1)


def test_sigint_and_sigterm_stop_a_live_run_with_every_output_whole(tiny_run, tmp_path):
    from PIL import Image

    interrupted = start_live(tiny_run["ckpt"], tmp_path, "--out", "a.csv", "--events", "a.events.jsonl",
                             "--annotate", "a.mp4", "--timeline", "a.png")
    terminated = start_live(tiny_run["ckpt"], tmp_path, "--out", "b.jsonl")
    wait_for_rows(tmp_path / "a.csv", 12, interrupted)
    wait_for_rows(tmp_path / "b.jsonl", 12, terminated)
    interrupted.send_signal(signal.SIGINT)
    terminated.send_signal(signal.SIGTERM)
    assert interrupted.wait(30) == 130, interrupted.stderr.read().decode()
    assert terminated.wait(30) == 143, terminated.stderr.read().decode()
    assert "stopped by SIGINT" in interrupted.stderr.read().decode()

    text = (tmp_path / "a.csv").read_text()
    assert text.endswith("\n")                                                  # no row cut in the middle
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["frame"]) for r in rows] == list(range(len(rows))) and len(rows) >= 12
    assert all(None not in r.values() and len(r) == len(rows[0]) for r in rows)
    events = [json.loads(line) for line in (tmp_path / "a.events.jsonl").read_text().splitlines()]
    assert events and events[-1]["end"] == len(rows)                            # the open segment was closed
    assert sum(e["frames"] for e in events) == len(rows)
    with av.open(str(tmp_path / "a.mp4")) as video:                             # a finished, playable MP4
        assert sum(1 for _ in video.decode(video=0)) == len(rows)
    with Image.open(tmp_path / "a.png") as png:
        png.verify()
    lines = (tmp_path / "b.jsonl").read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == list(range(len(lines)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "a.events.jsonl", "a.mp4", "a.png", "b.jsonl"]


# ---------------------------------------------------------------------------------------------------
# Keeping up


def test_realtime_drops_frames_for_a_slow_model_reports_them_and_keeps_the_lag_bounded(
        tiny_run, tmp_path, monkeypatch, capsys):
    from lstm_tv import live_predict

    step = live_predict.stream_step

    def slow_step(*args, **kwargs):  # a model far slower than the 100-fps source
        time.sleep(0.04)
        return step(*args, **kwargs)

    monkeypatch.setattr(live_predict, "stream_step", slow_step)
    options = LiveOptions(open_timeout=5, read_timeout=1, realtime=True, max_queue=8)
    (report,) = run_predict(["lavfi:testsrc=size=32x32:rate=100:duration=1"], checkpoint=tiny_run["ckpt"],
                            out=tmp_path / "rows.csv", batch=4, live=options, reporter=Reporter())
    frames = sorted(csv_rows((tmp_path / "rows.csv").read_text()))
    assert report.dropped > 0 and len(frames) + report.dropped == 100
    assert frames[-1] == 99 and len(frames) < 100                               # holes, up to the last frame
    # The lag stays bounded by the queue plus one chunk: 8 / 4 + 1 steps of the slow model (+ 1 for jitter),
    # however far behind the source the model is (without the drops it would grow with every frame).
    step_time = report.elapsed / (len(frames) / 4)
    assert report.latency.max() <= (8 / 4 + 2) * step_time
    assert f"{report.dropped} frames (--realtime)" in capsys.readouterr().err  # the summary, on stderr


def test_without_realtime_a_slow_model_loses_no_frame(tiny_run, tmp_path, monkeypatch):
    from lstm_tv import live_predict

    step = live_predict.stream_step
    monkeypatch.setattr(live_predict, "stream_step", lambda *a, **k: (time.sleep(0.01), step(*a, **k))[1])
    (report,) = run_predict(["lavfi:testsrc=size=32x32:rate=100:duration=0.5"], checkpoint=tiny_run["ckpt"],
                            out=tmp_path / "rows.csv", batch=2, live=LiveOptions(open_timeout=5, read_timeout=1))
    assert sorted(csv_rows((tmp_path / "rows.csv").read_text())) == list(range(50)) and report.dropped == 0


# ---------------------------------------------------------------------------------------------------
# Bad sources and options: one line, within the timeout


@pytest.mark.parametrize("args, message", [
    (["foo://bar"], "foo://bar: unknown URL scheme 'foo'"),
    (["/dev/video9"], "/dev/video9: no such capture device"),
    (["udp://127.0.0.1:{udp}", "--open-timeout", "0.5"], "no video arrived within 0.5 s"),
    (["udp://127.0.0.1:{udp}", "--format", "cvat", "--out", "x.xml"], "--format cvat: a live source streams rows"),
    (["udp://127.0.0.1:{udp}", "--stride", "2"], "--stride / --fps: not for a live source"),
    (["udp://127.0.0.1:{udp}", "--annotate", "-"], "--annotate -: a video or figure cannot go to standard output"),
    (["udp://127.0.0.1:{udp}", "udp://127.0.0.1:1"], "a live source is predicted alone"),
    (["udp://127.0.0.1:{udp}", "--chunk", "0"], "--chunk 0: must be at least 1"),
    (["udp://127.0.0.1:{udp}", "--events", "e.jsonl", "--min-frames", "0"], "--min-frames 0: must be at least 1"),
])
def test_bad_sources_and_options_are_one_line_errors(cli, tiny_run, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    args = [a.format(udp=free_udp_port()) for a in args]
    start = time.monotonic()
    r = cli("predict", *args, "--checkpoint", tiny_run["ckpt"])
    assert r.code == 1 and message in r.err, r.err
    assert r.err.count("\n") == 1 and r.err.startswith("error:")
    assert time.monotonic() - start < 3
    assert list(tmp_path.iterdir()) == []                                       # nothing written


def test_memory_of_the_latency_report_is_bounded():
    from lstm_tv.live_predict import LATENCY_WINDOW, LiveChunk, LiveReport, _account

    report, ring = LiveReport("x", counts=np.zeros(2, np.int64)), np.zeros(LATENCY_WINDOW)
    for start in range(0, 3 * LATENCY_WINDOW, 64):
        chunk = LiveChunk(start, np.arange(64) / 24, np.full((64, 2), 0.5, np.float32),
                          numbers=start + np.arange(64), arrivals=np.zeros(64))
        _account(report, chunk, ring, written=1.0)
    assert report.frames == 3 * LATENCY_WINDOW and ring.shape == (LATENCY_WINDOW,) and np.all(ring == 1.0)


def test_the_memory_starts_again_after_a_gap(tiny_run):
    import torch

    from lstm_tv.live_predict import LiveDecoded, predict_live
    from lstm_tv.stream import load_model

    record, model = load_model(tiny_run["ckpt"], torch.device("cpu"))
    frames = np.random.default_rng(0).integers(0, 255, (2, 6, record.size[1], record.size[0], 3), dtype=np.uint8)

    def chunk(i: int, gap: bool) -> LiveDecoded:
        return LiveDecoded(np.arange(6) + 6 * i, frames[i], np.arange(6) / 24 + i, np.zeros(6), gap=gap)

    carried = list(predict_live(model, [chunk(0, False), chunk(1, False)], torch.device("cpu")))
    reset = list(predict_live(model, [chunk(0, False), chunk(1, True)], torch.device("cpu")))
    alone = list(predict_live(model, [chunk(1, False)], torch.device("cpu")))
    assert np.allclose(reset[1].probs, alone[0].probs, atol=1e-6)             # as if the stream began there
    assert not np.allclose(carried[1].probs, alone[0].probs, atol=1e-6)       # (the memory does matter)
    assert reset[1].after_gap and list(reset[1].frame_numbers) == list(range(6, 12))


def test_live_probabilities_are_calibrated_and_abstain_as_files_do(tiny_run):
    import torch

    from lstm_tv.live_predict import LiveDecoded, predict_live
    from lstm_tv.stream import load_model, probabilities, stream_step

    record, model = load_model(tiny_run["ckpt"], torch.device("cpu"))
    frames = np.random.default_rng(1).integers(0, 255, (6, record.size[1], record.size[0], 3), dtype=np.uint8)
    logits, _ = stream_step(model, frames, None, torch.device("cpu"))
    chunk = LiveDecoded(np.arange(6), frames, np.arange(6) / 24, np.zeros(6), gap=False)
    (out,) = predict_live(model, [chunk], torch.device("cpu"), temperature=2.0, min_confidence=1.0, background=4)
    np.testing.assert_allclose(out.probs, probabilities(logits, 2.0).numpy(), atol=1e-6)
    assert out.labels.tolist() == [4] * 6                     # nothing reaches probability 1: every frame abstains
