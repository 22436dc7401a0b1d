"""Interrupted runs: `prepare`, `train` and `predict` killed part-way (SIGKILL, as real processes).

SIGKILL gives the program no chance to clean up, so these tests check that what is on disk at any
instant is safe: a prepared dataset, checkpoint or prediction file exists under its final name only
when complete. `prepare` re-runs to a complete dataset, reusing the videos it had finished;
`train --resume` ends with the same weights as a run that was never interrupted; `predict` leaves
at most temporary (``.tmp``) files.

Kills are timed by polling for a file the run writes part-way, never by sleeping a fixed time; each
run is made long enough (by its data) that the kill lands before it ends, and the tests check that.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_TRAIN
from test_distributed import kill_tree

from lstm_tv.checkpoint import checkpoint_payload, load_checkpoint, save_checkpoint
from lstm_tv.config import load_config
from lstm_tv.data.dataset import PreparedDataset
from lstm_tv.data.video import VideoWriter
from lstm_tv.errors import DatasetError
from lstm_tv.model.classifier import build_model
from lstm_tv.train import train
from lstm_tv.ui import QUIET

TIMEOUT = 60  # seconds any one run may take before the test gives up


def start(*args, cwd: Path) -> subprocess.Popen:
    """``lstm-tv ARGS`` as a real process in its own session, output to files (a full pipe would stall it)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("LSTM_TV_DEBUG", None)
    log = cwd / f"log.{time.monotonic_ns()}.txt"
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "lstm_tv", *map(str, args)], cwd=cwd, env=env,
                                stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    proc.log = log
    return proc


def run(*args, cwd: Path) -> None:
    """``lstm-tv ARGS`` to completion; fail with its output if it fails."""
    proc = start(*args, cwd=cwd)
    assert proc.wait(timeout=TIMEOUT) == 0, proc.log.read_text()


def kill_when(proc: subprocess.Popen, ready) -> None:
    """Poll ``ready()`` until it holds, then SIGKILL the process and its children at once."""
    deadline = time.monotonic() + TIMEOUT
    while not ready():
        assert proc.poll() is None, "the run ended before it could be interrupted: " + proc.log.read_text()
        assert time.monotonic() < deadline, "the run never got far enough to be interrupted"
        time.sleep(0.005)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    kill_tree(proc.pid)
    assert proc.wait(timeout=TIMEOUT) == -9


def noise_video(path: Path, frames: int, size: int = 96) -> Path:
    """Texture sliding sideways: cheap to encode, but every frame costs real decoding work."""
    base = np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(path, fps=24, width=size, height=size) as w:
        for i in range(frames):
            w.write(np.roll(base, 3 * i, axis=1))
    return path


# ---------------------------------------------------------------------------------------------------
# prepare


def test_killed_prepare_reruns_to_a_complete_dataset_reusing_finished_videos(cli, tmp_path):
    # Ten copies of one video: each takes as long to decode, and all must come out identical.
    src = tmp_path / "raw"
    noise_video(src / "videos" / "v00.mp4", 400)
    (src / "labels").mkdir()
    (src / "labels" / "v00.txt").write_text("".join(f"{('dog', 'unknown')[i // 50 % 2]}\n" for i in range(400)))
    stems = [f"v{i:02d}" for i in range(10)]
    for stem in stems[1:]:
        shutil.copy(src / "videos" / "v00.mp4", src / "videos" / f"{stem}.mp4")
        shutil.copy(src / "labels" / "v00.txt", src / "labels" / f"{stem}.txt")
    out, partial = tmp_path / "out", tmp_path / "out.partial"

    proc = start("prepare", src, out, "data.size=16", "--workers", "1", cwd=tmp_path)
    kill_when(proc, lambda: any(partial.glob("videos/*/video.json")))

    assert not out.exists()                                     # nothing under the final name...
    with pytest.raises(DatasetError):
        PreparedDataset(out)                                    # ...so nothing that loads
    finished = {p.parent.name: p.stat().st_mtime_ns for p in partial.glob("videos/*/video.json")}
    assert 1 <= len(finished) < len(stems)

    r = cli("prepare", src, out, "data.size=16", "--workers", "1")
    assert r.code == 0, r
    assert not partial.exists()
    data = PreparedDataset(out)
    assert [v.stem for v in data.videos] == stems and all(v.frames == 400 for v in data.videos)
    # The videos finished before the kill were reused, not decoded again...
    assert {s: (out / "videos" / s / "video.json").stat().st_mtime_ns for s in finished} == finished
    # ...and equal the ones decoded after it, byte for byte.
    first = (out / "videos" / "v00" / "frames.u8").read_bytes()
    for stem in stems:
        assert (out / "videos" / stem / "frames.u8").read_bytes() == first, stem
        assert data.labels(next(v for v in data.videos if v.stem == stem)).tolist() == \
            [(1, 4)[i // 50 % 2] for i in range(400)]


# ---------------------------------------------------------------------------------------------------
# train --resume


def test_killed_training_resumes_to_the_same_final_checkpoint(tiny_prepared, tmp_path, monkeypatch):
    # 50 steps per epoch (3200 frames) makes an epoch last about a second on one core, long enough
    # for the kill to land after epoch 1's last.ckpt and before the run ends.
    config = TINY_TRAIN + [f"data.dir={tiny_prepared}", "train.epochs=3", "train.steps_per_epoch=50",
                           "model.dropout=0.1"]
    # The uninterrupted run, in this process (saves a start-up of torch), on one thread like the others.
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(load_config(None, config + [f"run.dir={tmp_path / 'whole'}"]), reporter=QUIET)
    finally:
        torch.set_num_threads(threads)

    cut = tmp_path / "cut"
    proc = start("train", *config, f"run.dir={cut}", cwd=tmp_path)
    kill_when(proc, lambda: (cut / "last.ckpt").exists())
    done = load_checkpoint(cut / "last.ckpt")["progress"]["epoch"]
    assert 1 <= done < 3

    run("train", "--resume", cut, cwd=tmp_path)
    a, b = load_checkpoint(tmp_path / "whole" / "last.ckpt"), load_checkpoint(cut / "last.ckpt")
    assert b["progress"]["epoch"] == 3
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.allclose(a["model"][key].float(), b["model"][key].float(), rtol=0, atol=1e-6), key
    assert [r["epoch"] for r in b["progress"]["history"]] == [1, 2, 3]
    assert b["progress"]["history"][-1]["train_loss"] == pytest.approx(a["progress"]["history"][-1]["train_loss"],
                                                                       abs=1e-6)


# ---------------------------------------------------------------------------------------------------
# predict


def test_killed_predict_leaves_no_output_that_looks_complete(tmp_path):
    # A default-width model at 48 px over 800 frames, drawing an annotated video too: seconds of work.
    cfg = load_config(None, ["data.size=48"])
    torch.manual_seed(0)
    model = build_model(cfg.model, len(cfg.data.classes))
    ckpt = tmp_path / "model.ckpt"
    save_checkpoint(ckpt, checkpoint_payload(model, cfg, classes=cfg.data.classes, background="unknown", size=48,
                                             fps=24))
    video = noise_video(tmp_path / "in" / "long.mp4", 800)
    out = tmp_path / "out"
    out.mkdir()

    proc = start("predict", video, "--checkpoint", ckpt, "--out", out / "p.csv", "--annotate", out / "a.mp4",
                 "--timeline", out / "t.png", cwd=tmp_path)
    # Killed once prediction rows have reached the disk (the temporary CSV has grown).
    kill_when(proc, lambda: any(p.stat().st_size > 0 for p in out.glob(".p.csv.*.tmp*")))

    left = sorted(p.name for p in out.iterdir())
    assert left, "the temporary files should still be there after a SIGKILL"
    assert all(name.startswith(".") and ".tmp" in name for name in left), left     # only temporary names
    assert not any((out / name).exists() for name in ("p.csv", "a.mp4", "t.png"))
