"""``prepare`` speed against decoding alone, and how it scales with workers, measured in one run.

- decode-only (RGB): every frame of every video decoded (threaded, as prepare does) and converted to
  an RGB array at its own size — the cheapest way to get frames anything can use, the floor no
  preparation can beat; also shown: decoding alone, frames left in FFmpeg's YUV buffers;
- prepare, 1 worker: decode + resize inside FFmpeg + write the memory-mappable dataset + labels;
- prepare, 2 workers: the same with two processes.
- the same two with one decoder thread per process: how the work itself scales with processes (by
  default one worker decodes with all cores, so on 2 cores a second worker has little left to use).

Goals: prepare (1 worker) >= 0.7x decode-only (issue 2); 2 workers >= 1.6x one worker on 2 cores
(issue 5), with no duplicated or missing video.

    python benchmarks/bench_prepare.py [--videos N] [--frames T] [--size PX] [--data-size PX]

A synthetic raw dataset is generated in a temporary directory first (not timed).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
from av.video.reformatter import VideoReformatter

from lstm_tv.config import load_config
from lstm_tv.data.prepare import prepare_dataset
from lstm_tv.data.synth import generate_dataset


def decode_only(videos: list[Path], to_rgb: bool) -> int:
    """Decode every frame (threaded, as prepare does); with ``to_rgb`` also convert it to an RGB
    array at its own size — the cheapest form any consumer of frames can use."""
    frames = 0
    for path in videos:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            reformatter = VideoReformatter()
            for frame in container.decode(stream):
                if to_rgb:
                    reformatter.reformat(frame, format="rgb24").to_ndarray()
                frames += 1
    return frames


def best_of(n: int, fn) -> tuple[float, object]:
    """Fastest of ``n`` runs (the least disturbed by other load): (seconds, result)."""
    best, result = float("inf"), None
    for _ in range(n):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=48)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--size", type=int, default=96, help="synthetic video frame side")
    parser.add_argument("--data-size", type=int, default=64, help="data.size prepare resizes to")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cfg = load_config(None, [f"synth.videos={args.videos}", f"synth.frames={args.frames}", f"synth.size={args.size}",
                             f"data.size={args.data_size}"])
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        generate_dataset(raw, cfg.synth, workers=2)
        videos = sorted((raw / "videos").iterdir())
        rates = {}
        for name, to_rgb in (("decode (YUV)", False), ("decode-only (RGB)", True)):
            seconds, frames = best_of(args.repeats, lambda to_rgb=to_rgb: decode_only(videos, to_rgb))
            rates[name] = frames / seconds
        for name, workers, threads in (("prepare 1 worker", 1, None), ("prepare 2 workers", 2, None),
                                       ("1 worker, 1 thread", 1, 1), ("2 workers, 1 thread", 2, 1)):
            def prepare_once(workers=workers, threads=threads):
                out = Path(tmp) / "prepared"
                return prepare_dataset(raw, out, cfg.data, workers=workers, overwrite=True, decode_threads=threads)

            seconds, manifest = best_of(args.repeats, prepare_once)
            stems = [v["stem"] for v in manifest["videos"]]
            assert sorted(stems) == sorted(p.stem for p in videos) and len(set(stems)) == len(stems), "videos lost"
            assert sum(v["frames"] for v in manifest["videos"]) == frames
            rates[name] = frames / seconds
    print(f"{args.videos} videos x {args.frames} frames at {args.size} px -> {args.data_size} px "
          f"(best of {args.repeats}):")
    for name, rate in rates.items():
        print(f"  {name:18} {rate:8.0f} frames/s")
    print(f"prepare (1 worker) / decode-only (RGB) = {rates['prepare 1 worker'] / rates['decode-only (RGB)']:.3f}  "
          f"(goal >= 0.7)")
    print(f"prepare (1 worker) / decode (YUV)      = {rates['prepare 1 worker'] / rates['decode (YUV)']:.3f}")
    print(f"prepare 2 workers / 1 worker (1 decoder thread each) = "
          f"{rates['2 workers, 1 thread'] / rates['1 worker, 1 thread']:.3f}  (goal >= 1.6)")
    print(f"prepare 2 workers / 1 worker (default threads)       = "
          f"{rates['prepare 2 workers'] / rates['prepare 1 worker']:.3f}  (one worker already decodes on every core)")


if __name__ == "__main__":
    main()
