"""What the default training reaches, and that the memory is what reaches it.

Runs, in one go and in this order, on the default synthetic dataset (generated and prepared first if
missing, not timed):

1. ``lstm-tv train`` with the default config (``configs/default.yaml``) — wall time, then
   ``lstm-tv evaluate best.ckpt --split test``: frame and masked accuracy;
2. the same with ``model.cell=none`` (a frame-only model) — masked accuracy should be near chance.

Goals (issue 3): default run <= 10 minutes on 2 CPU cores, test masked accuracy >= 0.95 and frame
accuracy >= 0.97; the frame-only run <= 0.65 masked accuracy.

    python benchmarks/bench_train.py [--workdir DIR] [--skip-none] [KEY=VALUE ...]

Extra KEY=VALUE overrides apply to both runs (e.g. ``train.seed=1``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def run(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lstm_tv", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL if "--quiet" in sys.argv else None)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("bench-train"), help="where data/ and runs/ go")
    parser.add_argument("--skip-none", action="store_true", help="only the default run")
    parser.add_argument("--quiet", action="store_true", help="hide the training output")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    # Data first, outside the timing: the goal is about training.
    if not (work / "data/synth/prepared/manifest.json").exists():
        run(["synth", "data/synth/raw"], work)
        run(["prepare", "data/synth/raw", "data/synth/prepared"], work)

    results = {}
    variants = [("default (lstm)", [])] + ([] if args.skip_none else [("frame only (none)", ["model.cell=none"])])
    for name, extra in variants:
        run_dir = work / "runs" / ("none" if extra else "default")
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)
        seconds = run(["train", f"run.dir={run_dir}", *args.overrides, *extra], work)
        report_path = run_dir / "test_report.json"
        run(["evaluate", str(run_dir / "best.ckpt"), "--split", "test", "--report", str(report_path)], work)
        report = json.loads(report_path.read_text())
        results[name] = (seconds, report)

    print(f"\n{'run':20} {'train s':>8} {'test frame acc':>15} {'test masked acc':>16} {'macro-F1':>9} "
          f"{'edit':>6} {'F1@50':>6}")
    for name, (seconds, r) in results.items():
        print(f"{name:20} {seconds:8.0f} {r['frame_accuracy']:15.4f} {r.get('masked_accuracy', float('nan')):16.4f} "
              f"{r['macro_f1']:9.4f} {r['edit']:6.1f} {r['f1@50']:6.1f}")
    print(f"(cpu threads: {os.cpu_count()}; overrides: {' '.join(args.overrides) or 'none'})")


if __name__ == "__main__":
    main()
