"""Benchmark of ``lstm-tv predict`` as a user waits for it: start-up, throughput against decoding, memory.

    python benchmarks/bench_predict.py [--workdir DIR] [--repeats 3]

Everything is measured side by side in one run, each row best of ``--repeats`` (alternated, so a drifting
load hits every row alike), on the default-size model (``data.size``, cnn width 32, lstm 128; untrained weights:
speed does not depend on them):

- start-up: wall time of ``python -c "import torch"``, of the imports a careless command would pay
  (torch, torchvision, av, matplotlib.pyplot), of ``lstm-tv --help``, of ``lstm-tv predict`` on a 1-s clip
  (24 frames) and of the other commands' own imports (evaluate, explain, train), each as a fresh process.
  Target: predict on the clip <= 1.5 x ``import torch``; ``--help`` < 0.5 s.
- throughput on a 3,600-frame 640x360 H.264 video: the *decode floor* (PyAV decode, one reused
  ``VideoReformatter`` to the model's size in RGB: the least any predictor must do), ``predict`` in-process
  (start-up excluded) and the whole command in a subprocess (start-up included). Targets: whole command
  >= 0.7 x floor, in-process >= 0.9 x floor.
- memory: peak RSS of the whole command on the 1-s clip and on the 3,600-frame video, beside the peak
  RSS of ``python -c "import torch"`` (a floor of its own: the CUDA build of torch maps ~0.6 GB at import).
  Target: <= 500 MB and flat in video length.
"""

from __future__ import annotations

import argparse
import importlib.util
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
from lstm_tv.data.video import VideoWriter, probe
from lstm_tv.model.classifier import build_model

PY = sys.executable


def make_video(path: Path, frames: int, fps: int = 24, width: int = 640, height: int = 360) -> Path:
    """A TV-like test video: a slowly panning textured background with a dark object moving over it."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:5 * width].astype(np.float32)
    wide = np.stack([128 + 90 * np.sin(xx / 37), 128 + 90 * np.sin(yy / 23 + xx / 91),
                     128 + 90 * np.sin((xx + yy) / 53)], -1).astype(np.uint8)
    noise = rng.integers(-6, 7, (8, height, width, 1), dtype=np.int16)
    with VideoWriter(path, fps=fps, width=width, height=height) as w:
        for i in range(frames):
            x0 = (3 * i) % (4 * width)
            frame = wide[:, x0:x0 + width].astype(np.int16) + noise[i % 8]
            cx, cy = int(width / 2 + 200 * np.sin(i / 30)), int(height / 2 + 100 * np.cos(i / 23))
            frame[max(0, cy - 40):cy + 40, max(0, cx - 50):cx + 50] = 25
            w.write(np.clip(frame, 0, 255).astype(np.uint8))
    return path


def default_checkpoint(path: Path) -> Path:
    """The default config's model, untrained, saved as a checkpoint."""
    cfg = load_config()
    torch.manual_seed(0)
    model = build_model(cfg.model, len(cfg.data.classes)).eval()
    save_checkpoint(path, checkpoint_payload(model, cfg, classes=cfg.data.classes, background=cfg.data.background,
                                             size=cfg.data.size, fps=24))
    return path


def run(args: list[str]) -> tuple[float, float]:
    """Run a command to the end; return its wall time (s) and peak resident set size (MB).

    The peak is the child's own ``VmHWM`` (read from /proc while it runs), not ``wait4``'s ``ru_maxrss``:
    that one keeps the high-water mark from before ``exec``, i.e. this benchmark's own ~0.7 GB of torch,
    which is how earlier measurements came to ~0.9 GB for every command.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_kb = 0
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as status:
                peak_kb = max(peak_kb, next(int(line.split()[1]) for line in status if line.startswith("VmHWM")))
        except (OSError, StopIteration):
            pass
        time.sleep(0.01)
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"{' '.join(args)} failed: {proc.stderr.read().decode()}")
    return wall, peak_kb / 1024


def decode_floor(video: Path, size: int) -> float:
    """Frames/s of the floor: decode, one reused scaler to ``size`` px RGB arrays, nothing else."""
    from av.video.reformatter import Interpolation, VideoReformatter

    start, n = time.perf_counter(), 0
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        scaler = VideoReformatter()
        for frame in container.decode(stream):
            scaler.reformat(frame, width=size, height=size, format="rgb24",
                            interpolation=Interpolation.AREA).to_ndarray()
            n += 1
    return n / (time.perf_counter() - start)


def in_process_rate(ckpt: Path, video: Path, out: Path, frames: int) -> float:
    """Frames/s of ``lstm-tv predict VIDEO --out out.csv`` run in this process (start-up excluded)."""
    from lstm_tv.predict import run_predict

    start = time.perf_counter()
    run_predict([video], checkpoint=ckpt, out=out, device="cpu")
    return frames / (time.perf_counter() - start)


def startup_rows(ckpt: Path, clip: Path, work: Path) -> dict[str, list[str]]:
    """The start-up command lines, by row name (fresh processes, from the work directory)."""
    imports = "import lstm_tv.{0}, lstm_tv.cli"
    # A CPU-only torch build may come without torchvision (lstm-tv needs it only for its backbones).
    careless = "import torch, torchvision, av, matplotlib.pyplot"
    if importlib.util.find_spec("torchvision") is None:
        careless = careless.replace(" torchvision,", "")
    return {
        'python -c "import torch"': [PY, "-c", "import torch"],
        f'python -c "{careless}"': [PY, "-c", careless],
        "lstm-tv --help": [PY, "-m", "lstm_tv", "--help"],
        "lstm-tv predict CLIP (24 frames) --out x.csv":
            [PY, "-m", "lstm_tv", "predict", str(clip), "--checkpoint", str(ckpt), "--out", str(work / "s.csv")],
        "evaluate's imports": [PY, "-c", imports.format("evaluate")],
        "explain's imports": [PY, "-c", imports.format("explain")],
        "train's imports": [PY, "-c", imports.format("train")],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each row (the best is kept)")
    parser.add_argument("--frames", type=int, default=3600, help="frames of the long video")
    parser.add_argument("--workdir", type=Path, default=None, help="keep videos and outputs here")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_predict_"))
    work.mkdir(parents=True, exist_ok=True)
    clip, long = make_video(work / "clip.mp4", 24), make_video(work / "long.mp4", args.frames)
    ckpt = default_checkpoint(work / "default.ckpt")
    size, frames = load_config().data.size, probe(long).frames
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.backends.cpu.get_cpu_capability()}); clip 24 frames, long {frames} frames 640x360")

    rows = startup_rows(ckpt, clip, work)
    rows["lstm-tv predict LONG --out x.csv (whole command)"] = [PY, "-m", "lstm_tv", "predict", str(long),
                                                                "--checkpoint", str(ckpt), "--out", str(work / "l.csv")]
    wall = {name: float("inf") for name in rows}
    rss = dict.fromkeys(rows, 0.0)
    floor = inproc = 0.0
    decode_floor(long, size)  # warm-up: page cache, codec
    for _ in range(args.repeats):
        for name, line in rows.items():
            w, m = run(line)
            wall[name], rss[name] = min(wall[name], w), max(rss[name], m)
        floor = max(floor, decode_floor(long, size))
        inproc = max(inproc, in_process_rate(ckpt, long, work / "i.csv", frames))

    torch_s = wall['python -c "import torch"']
    print(f"\nstart-up (wall s, best of {args.repeats}; x = / import torch)")
    for name in list(rows)[:-1]:
        print(f"  {name:62s} {wall[name]:6.2f} s  {wall[name] / torch_s:5.2f} x   peak RSS {rss[name]:5.0f} MB")
    whole = frames / wall[list(rows)[-1]]
    print(f"\nthroughput on {frames} frames (frames/s)")
    print(f"  {f'decode floor (decode + one scaler to {size} px RGB)':62s} {floor:7.0f}")
    print(f"  {'predict in-process (start-up excluded)':62s} {inproc:7.0f}  {inproc / floor:5.2f} x floor")
    print(f"  {'predict, whole command (start-up included)':62s} {whole:7.0f}  {whole / floor:5.2f} x floor")
    names = list(rows)
    print(f"\nmemory: peak RSS {rss[names[3]]:.0f} MB (24 frames), {rss[names[-1]]:.0f} MB ({frames} frames); "
          f"import torch alone {rss[names[0]]:.0f} MB")
    clip_x = wall[list(rows)[3]] / torch_s
    print(f"\ntargets: predict on the clip <= 1.5 x import torch: {clip_x:.2f}; --help < 0.5 s: "
          f"{wall['lstm-tv --help']:.2f} s; whole >= 0.7 x floor: {whole / floor:.2f}; "
          f"in-process >= 0.9 x floor: {inproc / floor:.2f}")


if __name__ == "__main__":
    main()
