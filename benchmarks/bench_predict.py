"""Benchmark of ``lstm-tv predict``: speed against the decoding floor, and memory against video length.

    python benchmarks/bench_predict.py [--seconds 30] [--workdir DIR] [--threads 2]

Speed: frames per second of end-to-end prediction (decode, encoder, memory cell, head, CSV rows) next
to *decode-only*: the cheapest way to get every frame as an RGB array the model could use -- PyAV
decoding with FFmpeg resizing to the model's 64 px, exactly ``read_frames(path, 64)`` -- which no
predictor can beat. Both run in this process, alternated, best of ``--repeats``; the model is the
default config (cnn encoder width 32, embed 128, lstm hidden 128, 64 px) untrained, since speed does
not depend on the weights. Target: predict >= 0.7 x decode-only.

Memory: ``lstm-tv predict --out x.csv --timeline x.png`` runs in a subprocess on the video and on one
10 times longer (the same packets remuxed ten times, no re-encoding), and the peak RSS of each
process is read from ``os.wait4``. Target: long <= 1.1 x short + 50 MB.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from lstm_tv.checkpoint import checkpoint_payload, save_checkpoint
from lstm_tv.config import load_config
from lstm_tv.data.video import VideoWriter, probe, read_frames
from lstm_tv.model.classifier import build_model
from lstm_tv.predict import PredictionJob, native_bf16, predict_job
from lstm_tv.stream import load_model


def make_video(path: Path, seconds: float, fps: int = 24, width: int = 640, height: int = 360) -> Path:
    """A TV-like test video: a slowly panning textured background with a dark object moving over it."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width + 4 * width].astype(np.float32)
    wide = np.stack([128 + 90 * np.sin(xx / 37), 128 + 90 * np.sin(yy / 23 + xx / 91), 128 + 90 * np.sin((xx + yy) / 53)], -1)
    wide = wide.astype(np.uint8)
    noise = rng.integers(-6, 7, (8, height, width, 1), dtype=np.int16)
    with VideoWriter(path, fps=fps, width=width, height=height) as w:
        for i in range(int(seconds * fps)):
            x0 = (3 * i) % (4 * width)
            frame = wide[:, x0:x0 + width].astype(np.int16) + noise[i % 8]
            cx, cy = int(width / 2 + 200 * np.sin(i / 30)), int(height / 2 + 100 * np.cos(i / 23))
            frame[max(0, cy - 40):cy + 40, max(0, cx - 50):cx + 50] = 25
            w.write(np.clip(frame, 0, 255).astype(np.uint8))
    return path


def repeat_video(src: Path, dst: Path, times: int) -> Path:
    """``src`` played ``times`` times in a row, by remuxing its packets with shifted timestamps."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        s_in = inp.streams.video[0]
        s_out = out.add_stream_from_template(s_in)
        packets = [p for p in inp.demux(s_in) if p.dts is not None]
        frame = int(round(1 / (s_in.average_rate * s_in.time_base)))  # one frame in time-base units
        span = max(p.pts for p in packets) - min(p.pts for p in packets) + frame
        for k in range(times):
            for p in packets:
                q = av.Packet(bytes(p))
                q.pts, q.dts, q.time_base = p.pts + k * span, p.dts + k * span, p.time_base
                q.is_keyframe = p.is_keyframe
                q.stream = s_out
                out.mux(q)
    return dst


def default_checkpoint(path: Path) -> Path:
    cfg = load_config()
    torch.manual_seed(0)
    model = build_model(cfg.model, len(cfg.data.classes)).eval()
    save_checkpoint(path, checkpoint_payload(model, cfg, classes=cfg.data.classes, background=cfg.data.background,
                                             size=cfg.data.size, fps=24))
    return path


def decode_only(video: Path, size: int) -> float:
    """The floor: every frame decoded and resized by FFmpeg to an RGB array the model could take, nothing else."""
    from av.video.reformatter import Interpolation, VideoReformatter

    start, n = time.perf_counter(), 0
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        scaler = VideoReformatter()  # one scaler for the whole video (frame.to_ndarray(width=...) makes one per frame)
        for frame in container.decode(stream):
            scaler.reformat(frame, width=size, height=size, format="rgb24", interpolation=Interpolation.AREA).to_ndarray()
            n += 1
    return n / (time.perf_counter() - start)


def read_frames_rate(video: Path, size: int) -> float:
    """lstm_tv.data.video.read_frames, which prepare uses (also one scaler per video)."""
    start, n = time.perf_counter(), 0
    for _ in read_frames(video, size):
        n += 1
    return n / (time.perf_counter() - start)


def predict_rate(model, ckpt, video: Path, out: Path, **kwargs) -> float:
    summary = predict_job(model, ckpt, PredictionJob(video, out=out), probe(video), torch.device("cpu"), **kwargs)
    return summary.frames_per_s


def peak_rss_mb(args: list[str]) -> tuple[float, float]:
    """Run a command; return its peak resident set size (MB) and wall time (s)."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.exit(f"{' '.join(args)} failed: {proc.stderr.read().decode()}")
    return usage.ru_maxrss / 1024, time.perf_counter() - start  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30, help="length of the short video")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each variant (best is kept)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the machine's cores)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep videos and outputs here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_predict_"))
    work.mkdir(parents=True, exist_ok=True)

    t = time.perf_counter()
    short = make_video(work / "short.mp4", args.seconds)
    long = repeat_video(short, work / "long.mp4", 10)
    ckpt_path = default_checkpoint(work / "default.ckpt")
    print(f"videos: {short} ({probe(short).frames} frames, 640x360 @ 24 fps), {long} (10x) "
          f"made in {time.perf_counter() - t:.0f} s; {torch.get_num_threads()} torch threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")

    ckpt, model = load_model(ckpt_path, torch.device("cpu"))
    size = ckpt.size

    def predict(precision, background):
        model.encoder_autocast = precision
        return predict_rate(model, ckpt, short, work / "p.csv", background_decode=background)

    floor_name = "decode only (decode + FFmpeg resize to 64 px, one scaler)"
    default_name = "predict, fp32 encoder, decode thread"  # lstm-tv predict's default
    variants = {
        floor_name: lambda: decode_only(short, size),
        "read_frames (prepare's decoder)": lambda: read_frames_rate(short, size),
        "predict, fp32 encoder, decode thread": lambda: predict(None, True),
        "predict, fp32 encoder, decode in the same thread": lambda: predict(None, False),
        "predict, bf16 encoder, decode thread": lambda: predict(torch.bfloat16, True),
        "predict, bf16 encoder, decode in the same thread": lambda: predict(torch.bfloat16, False),
    }
    decode_only(short, size)  # warm-up: page cache, codec and oneDNN kernels
    predict(torch.bfloat16, True)
    predict(None, True)
    best = {name: 0.0 for name in variants}
    for _ in range(args.repeats):
        for name, run in variants.items():  # alternated, so drifting load hits every variant alike
            best[name] = max(best[name], run())
    floor = best[floor_name]
    print(f"\nspeed on {short.name} (frames/s, best of {args.repeats})")
    for name, rate in best.items():
        print(f"  {name:62s} {rate:7.0f}  {rate / floor:5.2f} x decode-only")

    cmd = [sys.executable, "-m", "lstm_tv", "predict", "--checkpoint", str(ckpt_path)]
    print("\nmemory (peak RSS of `lstm-tv predict VIDEO --out x.csv --timeline x.png` in a subprocess)")
    rss = {}
    for name, video in (("short", short), ("long (10x)", long)):
        mb, wall = peak_rss_mb(cmd + [str(video), "--out", str(work / "m.csv"), "--timeline", str(work / "m.png")])
        rss[name] = mb
        print(f"  {name:12s} {probe(video).frames:6d} frames  peak RSS {mb:6.0f} MB  ({wall:.0f} s)")
    ratio = rss["long (10x)"] / rss["short"]
    limit = 1.1 * rss["short"] + 50
    print(f"  long / short = {ratio:.3f} (limit: long <= 1.1 x short + 50 MB = {limit:.0f} MB: "
          f"{'ok' if rss['long (10x)'] <= limit else 'FAILED'})")
    default = best[default_name] / floor
    print(f"\nspeed target: predict (default: {default_name}) >= 0.7 x decode-only: {default:.2f} "
          f"({'ok' if default >= 0.7 else 'FAILED'}); CPU has native bf16: {native_bf16()}")


if __name__ == "__main__":
    main()
