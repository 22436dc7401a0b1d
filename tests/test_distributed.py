"""Training under torchrun: 2 CPU processes with gloo, one code path, rank 0 writes, metrics all-reduced."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import TINY_TRAIN

from lstm_tv.checkpoint import load_checkpoint
from lstm_tv.evaluate import evaluate_checkpoint


def torchrun(*args: str, cwd) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                             "--standalone", "-m", "lstm_tv", "train", *args],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants (torchrun starts its workers in their own sessions)."""
    children = {}
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                fields = open(f"/proc/{stat}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(stat))
    todo, tree = [pid], []
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += children.get(p, [])
    for p in tree:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def overrides(tiny_prepared, run_dir, epochs=2):
    return TINY_TRAIN + [f"data.dir={tiny_prepared}", f"run.dir={run_dir}", f"train.epochs={epochs}",
                         "train.memory_epochs=1", "train.steps_per_epoch=3"]


def test_two_processes_train_and_report_what_evaluate_reports(tiny_prepared, tmp_path):
    proc = torchrun(*overrides(tiny_prepared, tmp_path / "run"), cwd=tmp_path)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    assert "x 2 processes" in out and "(2 per process)" in out          # global batch stated in the log
    assert out.count("training finished") == 1                          # rank 0 alone talks
    ckpt = load_checkpoint(tmp_path / "run" / "best.ckpt")
    history = load_checkpoint(tmp_path / "run" / "last.ckpt")["progress"]["history"]
    assert [(r["epoch"], r["phase"]) for r in history] == [(1, "joint"), (2, "joint"), (3, "memory")]
    # Validation was computed over both ranks' shares of the videos and combined: it equals what one
    # process evaluating the same checkpoint reports.
    report = evaluate_checkpoint(tmp_path / "run" / "best.ckpt", split="val")
    assert report["frames"] == ckpt["metrics"]["frames"]
    assert report["confusion"] == ckpt["metrics"]["confusion"]
    assert report["frame_accuracy"] == pytest.approx(ckpt["metrics"]["frame_accuracy"])
    assert report["edit"] == pytest.approx(ckpt["metrics"]["edit"])


def test_resume_under_torchrun_after_a_kill(tiny_prepared, tmp_path):
    whole = torchrun(*overrides(tiny_prepared, tmp_path / "whole", epochs=4), cwd=tmp_path)
    out, _ = whole.communicate(timeout=240)
    assert whole.returncode == 0, out

    cut = torchrun(*overrides(tiny_prepared, tmp_path / "cut", epochs=4), cwd=tmp_path)
    last = tmp_path / "cut" / "last.ckpt"
    deadline = time.time() + 240
    while not last.exists() and cut.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert cut.poll() is None, "the run ended before it could be interrupted"
    kill_tree(cut.pid)                                                   # torchrun and both ranks, at once
    cut.communicate()
    done = load_checkpoint(last)["progress"]["epoch"]
    assert 1 <= done < 5

    resumed = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                              "-m", "lstm_tv", "train", "--resume", str(tmp_path / "cut")],
                             cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                             timeout=240)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resuming {tmp_path / 'cut'} after epoch {done}" in resumed.stdout
    a, b = load_checkpoint(tmp_path / "whole" / "last.ckpt"), load_checkpoint(last)
    for key in a["model"]:
        assert torch.allclose(a["model"][key], b["model"][key], atol=1e-6), key


def test_a_rank_that_dies_takes_the_run_down(tiny_prepared, tmp_path):
    # Kill one training process: torchrun stops the other and exits non-zero instead of hanging.
    proc = torchrun(*overrides(tiny_prepared, tmp_path / "run", epochs=50), cwd=tmp_path)
    deadline = time.time() + 120
    while not (tmp_path / "run" / "last.ckpt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    workers = [p for p in os.listdir("/proc") if p.isdigit() and _parent(int(p)) == proc.pid]
    assert proc.poll() is None and workers, "the run ended before a rank could be killed"
    os.kill(int(workers[-1]), signal.SIGKILL)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "FAILED" in out or "failed" in out                   # torchrun names the rank that died


def _parent(pid: int) -> int:
    try:
        return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1
