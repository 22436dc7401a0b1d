"""Benchmark of ``lstm-tv predict`` on live sources: latency per chunk size, and streams one machine sustains.

    python benchmarks/bench_live.py [--seconds 20] [--streams 1,2,4,8] [--workdir DIR]

Source: FFmpeg's ``testsrc2`` pattern at 640x360 paced to 24 fps by the ``realtime`` filter
(``lavfi:testsrc2=size=640x360:rate=24:duration=S,realtime``), a stand-in for a capture card: frames
come at 24 fps and are decoded (generated), resized to 64 px inside FFmpeg and predicted as they come.
The model is the default config untrained (cnn encoder width 32, embed 128, lstm hidden 128, 64 px):
speed does not depend on the weights.

Latency: for ``--chunk`` 1, 8 and 64, one run each in a subprocess; the latency of a frame is the time
from ``LiveFrame.arrival`` (the frame left the decoder) to its row written and flushed, p50 / p99 over
the run's frames (``LiveReport.latency``). Expected: about (chunk - 1) / 2 / 24 s for p50 (a frame waits
for the rest of its chunk) and (chunk - 1) / 24 s plus one model step for p99.

Streams: N ``predict --realtime --chunk 8`` processes side by side, each on its own 24-fps source for
``--seconds``; N is sustained when no process dropped a frame and each run took no longer than its
stream (+5 %): a ``realtime``-paced lavfi source that falls behind produces its late frames at once
instead of losing them, so falling behind shows as a longer run, not only as drops. (A live run steps
the model on one CPU thread, ``lstm_tv.live_predict``.)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lstm_tv.checkpoint import checkpoint_payload, save_checkpoint
from lstm_tv.config import load_config
from lstm_tv.model.classifier import build_model

FPS = 24


def source(seconds: float) -> str:
    return f"lavfi:testsrc2=size=640x360:rate={FPS}:duration={seconds},realtime"


def default_checkpoint(path: Path) -> Path:
    cfg = load_config()
    torch.manual_seed(0)
    model = build_model(cfg.model, len(cfg.data.classes)).eval()
    save_checkpoint(path, checkpoint_payload(model, cfg, classes=cfg.data.classes, background=cfg.data.background,
                                             size=cfg.data.size, fps=FPS))
    return path


def worker(ckpt: str, chunk: int, seconds: float, realtime: bool, out: str) -> None:
    """One live run in this process; prints its numbers as one JSON line."""
    from lstm_tv.data.sources import LiveOptions
    from lstm_tv.predict import run_predict

    (report,) = run_predict([source(seconds)], checkpoint=ckpt, out=Path(out), fmt="csv", chunk=chunk,
                            live=LiveOptions(realtime=realtime))
    p50, p99 = np.percentile(report.latency, [50, 99]) * 1000
    print(json.dumps({"chunk": chunk, "frames": report.frames, "dropped": report.dropped, "p50_ms": round(p50, 1),
                      "p99_ms": round(p99, 1), "elapsed_s": round(report.elapsed, 2)}))


def spawn(ckpt: Path, chunk: int, seconds: float, realtime: bool, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--worker", str(ckpt), str(chunk), str(seconds),
                             str(int(realtime)), str(out)], stdout=subprocess.PIPE, text=True)


def collect(process: subprocess.Popen) -> dict:
    out, _ = process.communicate(timeout=600)
    if process.returncode != 0:
        raise SystemExit(f"a worker failed (exit {process.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        ckpt, chunk, seconds, realtime, out = sys.argv[2:7]
        worker(ckpt, int(chunk), float(seconds), realtime == "1", out)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="stream length of each run")
    parser.add_argument("--streams", default="1,2,4,8", help="numbers of simultaneous streams to try")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--no-latency", action="store_true", help="only the simultaneous streams")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_live_"))
    work.mkdir(parents=True, exist_ok=True)
    ckpt = default_checkpoint(work / "default.ckpt")

    print(f"latency, one stream at {FPS} fps, {args.seconds:g} s each")
    print("| --chunk | frames | p50 ms | p99 ms | dropped |\n|---:|---:|---:|---:|---:|")
    for chunk in () if args.no_latency else (1, 8, 64):
        r = collect(spawn(ckpt, chunk, args.seconds, False, work / f"latency_{chunk}.csv"))
        print(f"| {chunk} | {r['frames']} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['dropped']} |", flush=True)

    print(f"\nsimultaneous streams, --realtime --chunk 8, {args.seconds:g} s each")
    print("| streams | frames per stream (min) | dropped (total) | run s (max) | p99 ms (max) | sustained |")
    print("|---:|---:|---:|---:|---:|:---|")
    for n in map(int, args.streams.split(",")):
        start = time.monotonic()
        runs = [collect(p) for p in [spawn(ckpt, 8, args.seconds, True, work / f"streams_{n}_{i}.csv")
                                      for i in range(n)]]
        dropped, longest = sum(r["dropped"] for r in runs), max(r["elapsed_s"] for r in runs)
        sustained = dropped == 0 and longest <= 1.05 * args.seconds + 1  # + 1 s: opening and warm-up
        print(f"| {n} | {min(r['frames'] for r in runs)} | {dropped} | {longest:.1f} | "
              f"{max(r['p99_ms'] for r in runs):.0f} | {'yes' if sustained else 'no'} "
              f"({time.monotonic() - start:.0f} s wall) |", flush=True)


if __name__ == "__main__":
    main()
