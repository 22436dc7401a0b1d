"""Shared fixtures: a CLI runner and tiny datasets built by the synthetic generator."""

from __future__ import annotations

import os

import pytest
import torch

# Tests run on the CPU with two threads, like the machines they are written for.
torch.set_num_threads(min(2, os.cpu_count() or 1))


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out!r}, err={self.err!r})"


@pytest.fixture
def cli(capsys):
    """Run ``lstm-tv ARGS...`` in-process; return its exit code, stdout and stderr."""
    from lstm_tv.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def write_video(path, frames: int, *, width: int = 32, height: int = 32, fps: float = 24, seed: int = 0):
    """A small MP4 of random-coloured frames (each frame a flat colour plus noise)."""
    import numpy as np

    from lstm_tv.data.video import VideoWriter

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(path, fps=fps, width=width, height=height) as w:
        for _ in range(frames):
            colour = rng.integers(0, 255, 3, dtype=np.uint8)
            w.write(np.broadcast_to(colour, (height, width, 3)).copy())
    return path


def write_audio_only(path):
    """An MP4 container holding only an AAC audio stream (no video)."""
    import av
    import numpy as np

    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for _ in range(4):
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def write_raw(root, videos: dict[str, int], *, classes=("wolf", "dog", "bear", "goldfish", "unknown"),
              csv_stems=(), masks=True, splits: dict[str, str] | None = None, **video_kwargs):
    """A raw dataset (docs/formats.md §1) of flat-colour videos with cyclic labels; returns its root."""
    for i, (stem, frames) in enumerate(videos.items()):
        write_video(root / "videos" / f"{stem}.mp4", frames, seed=i, **video_kwargs)
        (root / "labels").mkdir(parents=True, exist_ok=True)
        if stem in csv_stems:
            (root / "labels" / f"{stem}.csv").write_text("start,end,label\n0.5,1.0,bear\n")
        else:
            (root / "labels" / f"{stem}.txt").write_text("".join(f"{classes[j % len(classes)]}\n" for j in range(frames)))
        if masks:
            (root / "masks").mkdir(exist_ok=True)
            (root / "masks" / f"{stem}.txt").write_text("".join(f"{j % 2}\n" for j in range(frames)))
    if splits:
        (root / "splits.csv").write_text("video,split\n" + "".join(f"{k},{v}\n" for k, v in splits.items()))
    return root


# A tiny synthetic TV dataset, generated and prepared once per test session.
TINY_SYNTH = ["synth.videos=8", "synth.frames=160", "synth.size=32", "synth.gap_min=4", "synth.gap_max=20"]
# A tiny model and a short training run over it: seconds on a CPU.
TINY_TRAIN = ["data.size=16", "model.width=4", "model.embed=8", "model.hidden=8", "train.epochs=1",
              "train.batch_size=2", "train.clip_frames=32", "train.tbptt=16", "train.workers=0",
              "train.steps_per_epoch=2", "train.warmup=0", "train.memory_epochs=0", "train.amp=false"]


@pytest.fixture(scope="session")
def tiny_prepared(tmp_path_factory):
    """A prepared 8-video synthetic dataset at 16 px (raw in ``root/raw``, prepared in ``root/prepared``)."""
    from lstm_tv.config import load_config
    from lstm_tv.data.prepare import prepare_dataset
    from lstm_tv.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("tiny")
    cfg = load_config(None, TINY_SYNTH + ["data.size=16"])
    generate_dataset(root / "raw", cfg.synth, workers=1)
    prepare_dataset(root / "raw", root / "prepared", cfg.data, workers=1)
    return root / "prepared"


@pytest.fixture
def tiny_config(tiny_prepared, tmp_path):
    """Overrides for a seconds-long training run on ``tiny_prepared`` writing to ``tmp_path/run``."""
    return TINY_TRAIN + [f"data.dir={tiny_prepared}", f"run.dir={tmp_path / 'run'}"]


@pytest.fixture(scope="session")
def tiny_run(tiny_prepared, tmp_path_factory):
    """A tiny lstm model trained for two steps on ``tiny_prepared``, once per session.

    Returns ``{"ckpt": best.ckpt, "root": the directory whose runs/latest points at the run,
    "raw": the raw synthetic dataset the prepared one came from}``.
    """
    import os

    from lstm_tv.config import load_config
    from lstm_tv.train import train
    from lstm_tv.ui import QUIET

    root = tmp_path_factory.mktemp("tiny_run")
    cwd = os.getcwd()
    os.chdir(root)  # train points runs/latest here
    try:
        run = train(load_config(None, TINY_TRAIN + [f"data.dir={tiny_prepared}", f"run.dir={root / 'run'}"]),
                    reporter=QUIET)
    finally:
        os.chdir(cwd)
    return {"ckpt": run / "best.ckpt", "root": root, "raw": tiny_prepared.parent / "raw"}


# No test is skipped forever: every package a test needs is in the `test` extra, so a skip means a broken
# install. The run fails, naming the skipped tests, instead of passing with less tested than it says.
_skipped: list[str] = []


def pytest_runtest_logreport(report):
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if _skipped and exitstatus == 0:
        print(f"\nerror: {len(_skipped)} test(s) skipped; install the test extra (pip install '.[test]'): "
              + ", ".join(_skipped[:5]))
        session.exitstatus = 1
