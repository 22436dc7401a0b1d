"""Benchmark of calibration and abstaining: test ECE before/after temperature scaling, and how much of a video
of content the model never saw is labelled background at ``--min-confidence P``.

    python benchmarks/bench_open_set.py [--checkpoint best.ckpt] [--p 0.5] [--workdir DIR] [--threads 2]

Without ``--checkpoint`` a small model is trained first on the built-in synthetic data (shapes style,
32 px; about 3 minutes on 2 CPU cores), which fits and stores its temperature on the validation split
as every ``train`` does. The test split's ECE (15 bins, top class) and NLL are measured with T = 1 and
with the stored T. Then three kinds of unseen video are predicted as ``predict`` predicts them:
the ``pictures`` style of ``lstm-tv synth`` (emoji artwork over textured scenes: the same classes drawn
in a way the model never saw), random-noise frames and a flat grey video. For each: the share of frames
labelled background (top class background, or abstained: calibrated top probability < P), with T = 1
and with the stored T, and the mean top probability. Target of issue 13: test ECE <= 0.03.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from lstm_tv.config import load_config
from lstm_tv.data import run_synth
from lstm_tv.data.dataset import PreparedDataset
from lstm_tv.data.video import VideoWriter
from lstm_tv.scores import FrameScores
from lstm_tv.stream import load_model, predict_video
from lstm_tv.training import fit
from lstm_tv.ui import QUIET
from lstm_tv.validation import evaluate_model

CPU = torch.device("cpu")
TRAIN = ["data.size=32", "model.width=8", "model.embed=32", "model.hidden=32", "train.epochs=4",
         "train.steps_per_epoch=20", "train.batch_size=4", "train.clip_frames=128", "train.tbptt=32",
         "train.memory_epochs=6", "train.workers=0", "train.amp=false", "train.warmup=0.5"]
SYNTH = ["synth.videos=30", "synth.frames=300", "synth.size=48", "synth.gap_min=5", "synth.gap_max=40"]


def train_small(work: Path) -> Path:
    """Train the small model on fresh synthetic data in ``work``; return its best.ckpt (T fitted and stored)."""
    cfg = load_config(None, SYNTH + TRAIN + [f"data.raw={work / 'raw'}", f"data.dir={work / 'prepared'}",
                                             f"run.dir={work / 'run'}"])
    cwd = os.getcwd()
    os.chdir(work)  # train points runs/latest at the run: keep that inside the workdir
    try:
        fitted = fit(cfg, reporter=QUIET)
    finally:
        os.chdir(cwd)
    return fitted.run_dir / "best.ckpt"


def test_calibration(checkpoint: Path) -> dict:
    """Test-split ECE and NLL with T = 1 and with the checkpoint's T."""
    record, model = load_model(checkpoint, CPU)
    data = PreparedDataset(record.config.data.dir)
    out = {"temperature": record.temperature}
    for name, t in (("T=1", 1.0), ("calibrated", record.temperature)):
        scores = FrameScores(data.classes, data.classes.index(data.background))
        metrics = evaluate_model(model, data, data.split("test"), CPU, scores=scores, temperature=t)
        report = scores.report()
        out[name] = {"ece": report["ece"], "nll": report["nll"], "map": report["map"],
                     "frame_accuracy": metrics.compute(data.classes)["frame_accuracy"]}
    return out


def unseen_videos(work: Path) -> dict[str, list[Path]]:
    """Videos of content the model never saw: pictures-style synth, random noise, a flat grey frame."""
    cfg = load_config(None, ["synth.style=pictures", "synth.videos=4", "synth.frames=240", "synth.seed=7"])
    run_synth(work / "pictures", cfg, QUIET)
    rng = np.random.default_rng(0)
    noise, flat = work / "noise.mp4", work / "flat.mp4"
    with VideoWriter(noise, fps=24, width=96, height=96) as w:
        for _ in range(240):
            w.write(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8))
    with VideoWriter(flat, fps=24, width=96, height=96) as w:
        for _ in range(240):
            w.write(np.full((96, 96, 3), 128, np.uint8))
    return {"pictures (synth style)": sorted((work / "pictures" / "videos").glob("*.mp4")),
            "random noise": [noise], "flat grey": [flat]}


def background_share(checkpoint: Path, videos: list[Path], p: float) -> dict:
    """Share of frames labelled background at P (T = 1 and the stored T), and the mean top probability."""
    record, model = load_model(checkpoint, CPU)
    bg = record.classes.index(record.background)
    out = {}
    for name, t in (("T=1", 1.0), ("calibrated", record.temperature)):
        labels, conf = [], []
        for video in videos:
            for chunk in predict_video(model, video, record.size, CPU, temperature=t, min_confidence=p, background=bg):
                labels.append(chunk.labels)
                conf.append(chunk.confidence)
        labels, conf = np.concatenate(labels), np.concatenate(conf)
        out[name] = {"background": float(np.mean(labels == bg)), "mean_top": float(conf.mean()),
                     "frames": len(labels)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="a trained best.ckpt (default: train a small model)")
    parser.add_argument("--p", type=float, default=0.5, help="the abstention threshold P (predict --min-confidence)")
    parser.add_argument("--workdir", type=Path, help="where data and runs go (default: a temporary directory)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = (args.workdir or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        checkpoint = args.checkpoint or train_small(work)
        calib = test_calibration(checkpoint)
        print(f"checkpoint {checkpoint}: temperature T={calib['temperature']:.3f}")
        print("test split        ECE      NLL      mAP      frame acc")
        for name in ("T=1", "calibrated"):
            c = calib[name]
            print(f"  {name:<14} {c['ece']:.4f}   {c['nll']:.4f}   {c['map']:.4f}   {c['frame_accuracy']:.4f}")
        print(f"unseen content at P={args.p}: share of frames labelled background (mean top probability)")
        for kind, videos in unseen_videos(work).items():
            share = background_share(checkpoint, videos, args.p)
            cells = "   ".join(f"{name} {s['background']:6.1%} ({s['mean_top']:.2f})" for name, s in share.items())
            print(f"  {kind:<24} {share['T=1']['frames']:>5} frames   {cells}")


if __name__ == "__main__":
    main()
