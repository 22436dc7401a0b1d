"""``prepare`` speed against decoding alone, and how it scales with workers, measured in one run.

- decode-only: every frame of every video decoded (threaded, as prepare does) and nothing else done
  with it — the floor no preparation can beat;
- prepare, 1 worker: decode + resize inside FFmpeg + write the memory-mappable dataset + labels;
- prepare, 2 workers: the same with two processes.

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

from lstm_tv.config import load_config
from lstm_tv.data.prepare import prepare_dataset
from lstm_tv.data.synth import generate_dataset


def decode_only(videos: list[Path]) -> int:
    frames = 0
    for path in videos:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for _ in container.decode(stream):
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
    parser.add_argument("--videos", type=int, default=24)
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
        decode_s, frames = best_of(args.repeats, lambda: decode_only(videos))
        rates = {"decode-only": frames / decode_s}
        for workers in (1, 2):
            def prepare_once(workers=workers):
                out = Path(tmp) / f"prepared{workers}"
                return prepare_dataset(raw, out, cfg.data, workers=workers, overwrite=True)

            seconds, manifest = best_of(args.repeats, prepare_once)
            stems = [v["stem"] for v in manifest["videos"]]
            assert sorted(stems) == sorted(p.stem for p in videos) and len(set(stems)) == len(stems), "videos lost"
            assert sum(v["frames"] for v in manifest["videos"]) == frames
            rates[f"prepare {workers} worker{'s' if workers > 1 else ''}"] = frames / seconds
    print(f"{args.videos} videos x {args.frames} frames at {args.size} px -> {args.data_size} px "
          f"(best of {args.repeats}):")
    for name, rate in rates.items():
        print(f"  {name:18} {rate:8.0f} frames/s")
    print(f"prepare (1 worker) / decode-only = {rates['prepare 1 worker'] / rates['decode-only']:.3f}  (goal >= 0.7)")
    print(f"prepare 2 workers / 1 worker     = {rates['prepare 2 workers'] / rates['prepare 1 worker']:.3f}  (goal >= 1.6)")


if __name__ == "__main__":
    main()
