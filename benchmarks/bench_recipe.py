"""The default recipe on dataset families it was not tuned to: test-split accuracy and wall time per run.

Each run is what a new user does, from a fresh directory: ``lstm-tv synth`` (the family, at a seed; for
the pictures families, its ``splits.csv`` rewritten to fixed train / val / test counts), ``lstm-tv
prepare``, ``lstm-tv train`` with every default (plus ``train.amp``), ``lstm-tv evaluate --split test``.
The table has one row per family: masked and frame accuracy (mean and min over the seeds), against the
issue's targets, the test split's calibration error (ECE, after the temperature training fits), and the
wall time of synth + prepare + train.

    python benchmarks/bench_recipe.py [--families synthetic pictures-120 ...] [--seeds 101 102 103]
        [--amp false] [--isa avx2] [--out runs/bench-recipe] [KEY=VALUE ...]

KEY=VALUE overrides go to ``lstm-tv train`` (e.g. ``train.time=5``). Use seeds nobody tuned on. Results
are appended to ``OUT/results.jsonl`` as each run ends (a long run can be stopped and resumed: a
(family, seed) already there is not run again); the Markdown table is printed and written to
``OUT/table.md``. Each result also has the CPU seconds the run used: on a machine shared with other
work, wall time measures the load as much as the recipe. ``--amp false`` emulates CPUs without native bf16;
``--isa avx2`` also keeps PyTorch's kernels and oneDNN to AVX2 instructions (``ATEN_CPU_CAPABILITY``,
``ONEDNN_MAX_CPU_ISA``), so an AVX-512 CPU runs the code paths of an AVX2-only one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

# Each family: the synth options that make it, its (masked, frame) targets, and for the pictures families
# the (train, val, test) videos the bench writes into splits.csv: the 120 / 24 / 40, or 30 training
# videos with a proportional 6 for validation. Every pictures family is tested on 40 videos, as the issue's
# held-out set is: on pictures-30's old 7 (synth's own 70/15/15 split of 46) one silhouette weighed a tenth
# of the masked accuracy. The synthetic family keeps synth's own split: it is the default run, as users run it.
FAMILIES = {
    "synthetic": {"synth": [], "targets": (0.99, 0.99)},
    "pictures-120": {"synth": ["--style", "pictures", "--frames", "300"], "splits": (120, 24, 40),
                     "targets": (0.95, 0.97)},
    "pictures-30": {"synth": ["--style", "pictures", "--frames", "300"], "splits": (30, 6, 40),
                    "targets": (0.90, 0.95)},
    "pictures-gaps": {"synth": ["--style", "pictures", "--frames", "600", "synth.gap_min=100", "synth.gap_max=300"],
                      "splits": (120, 24, 40), "targets": (0.90, 0.95)},
}


# What each --isa sets in the environment of every lstm-tv it runs.
ISA_ENV = {"native": {}, "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}}


def cli(*args: str, cwd: Path, log, isa: str = "native") -> None:
    """Run ``lstm-tv ARGS`` in ``cwd`` (this checkout's package first, instructions limited to ``isa``),
    its output to ``log``."""
    env = {**os.environ, **ISA_ENV[isa], "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    log.write(f"$ lstm-tv {' '.join(args)}\n")
    log.flush()
    subprocess.run([sys.executable, "-m", "lstm_tv", *args], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                   check=True)


def run_one(family: str, seed: int, amp: str, isa: str, overrides: list[str], out: Path) -> dict:
    """One family at one seed, from a fresh directory; the test metrics and the wall times."""
    spec, work = FAMILIES[family], out / f"{family}-{seed}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with open(work / "log.txt", "w") as log:
        start, cpu_start = time.perf_counter(), _children_cpu()
        splits = spec.get("splits")
        count = ["--videos", str(sum(splits))] if splits else []
        cli("synth", "raw", *spec["synth"], *count, "--seed", str(seed), cwd=work, log=log, isa=isa)
        if splits:
            write_splits(work / "raw", splits)
        cli("prepare", "raw", "prepared", cwd=work, log=log, isa=isa)
        prepared = time.perf_counter()
        cli("train", "data.dir=prepared", "run.dir=run", f"train.amp={amp}", f"train.seed={seed}", *overrides,
            cwd=work, log=log, isa=isa)
        trained, cpu_trained = time.perf_counter(), _children_cpu()
        cli("evaluate", "run/best.ckpt", "--data", "prepared", "--split", "test",
            "--report", "test.json", cwd=work, log=log, isa=isa)
    report = json.loads((work / "test.json").read_text())
    manifest = json.loads((work / "prepared" / "manifest.json").read_text())
    videos = {split: sum(v["split"] == split for v in manifest["videos"]) for split in ("train", "val", "test")}
    return {"family": family, "seed": seed, "amp": amp, "isa": isa, "overrides": overrides,
            "videos": videos,
            "masked_accuracy": report.get("masked_accuracy"), "frame_accuracy": report["frame_accuracy"],
            "macro_f1": report.get("macro_f1"), "ece": report.get("ece"), "seconds_data": round(prepared - start, 1),
            "seconds_train": round(trained - prepared, 1), "seconds_total": round(trained - start, 1),
            # CPU seconds of synth + prepare + train: on a shared machine, wall time says more about the load.
            "cpu_seconds_total": round(cpu_trained - cpu_start, 1)}


def write_splits(raw: Path, splits: tuple[int, int, int]) -> None:
    """Replace synth's splits.csv in ``raw``: the first ``train`` videos (by name), then ``val``, then ``test``."""
    stems = sorted(p.stem for p in (raw / "videos").iterdir())
    if len(stems) != sum(splits):
        raise SystemExit(f"{raw}/videos: {len(stems)} videos, the splits need {sum(splits)}")
    names = ["train"] * splits[0] + ["val"] * splits[1] + ["test"] * splits[2]
    rows = "".join(f"{stem},{name}\n" for stem, name in zip(stems, names, strict=True))
    (raw / "splits.csv").write_text("video,split\n" + rows)


def _children_cpu() -> float:
    """User + system CPU seconds of the finished child processes so far."""
    t = os.times()
    return t.children_user + t.children_system


def cpu_model() -> str:
    """The CPU's model name as lscpu says it, and the cores this process may use."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        name = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        name = "unknown CPU"
    return f"{name}, {len(os.sched_getaffinity(0))} cores"


def table(results: list[dict]) -> str:
    """The Markdown table: per family, mean and min of each accuracy over seeds, the targets, wall time."""
    lines = ["| family | seeds | masked acc mean / min | frame acc mean / min | target masked / frame "
             "| test ECE mean / max | wall time mean (data + train) | CPU time mean | amp | isa |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for family in FAMILIES:
        rows = [r for r in results if r["family"] == family]
        if not rows:
            continue
        masked = [r["masked_accuracy"] for r in rows if r["masked_accuracy"] is not None]
        frame = [r["frame_accuracy"] for r in rows]
        total = statistics.mean(r["seconds_total"] for r in rows)
        data = statistics.mean(r["seconds_data"] for r in rows)
        tm, tf = FAMILIES[family]["targets"]
        cpu = [r["cpu_seconds_total"] for r in rows if r.get("cpu_seconds_total") is not None]
        cpu_text = f"{statistics.mean(cpu) / 60:.1f} min" if cpu else "-"
        ece = [r["ece"] for r in rows if r.get("ece") is not None]
        ece_text = f"{statistics.mean(ece):.3f} / {max(ece):.3f}" if ece else "-"
        lines.append(f"| {family} | {', '.join(str(r['seed']) for r in rows)} "
                     f"| {statistics.mean(masked):.3f} / {min(masked):.3f} | {statistics.mean(frame):.3f} / "
                     f"{min(frame):.3f} | {tm} / {tf} | {ece_text} | {total / 60:.1f} min ({data / 60:.1f} + "
                     f"{(total - data) / 60:.1f}) | {cpu_text} | {rows[0]['amp']} | {rows[0].get('isa', 'native')} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[101, 102, 103])
    parser.add_argument("--amp", default="false", choices=("false", "true", "auto"))
    parser.add_argument("--isa", default="native", choices=list(ISA_ENV),
                        help="avx2: run every command on AVX2 kernels only (what CPUs without AVX-512 run)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-recipe"))
    parser.add_argument("overrides", nargs="*", help="train overrides, KEY=VALUE")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "results.jsonl"
    results = [json.loads(line) for line in results_path.read_text().splitlines()] if results_path.exists() else []
    done = {(r["family"], r["seed"]) for r in results}
    for family in args.families:
        for seed in args.seeds:
            if (family, seed) in done:
                continue
            result = run_one(family, seed, args.amp, args.isa, args.overrides, args.out)
            print(json.dumps(result), flush=True)
            with open(results_path, "a") as f:
                f.write(json.dumps(result) + "\n")
            results.append(result)
    text = f"CPU: {cpu_model()}; load average at the end: {os.getloadavg()[0]:.1f}\n\n{table(results)}\n"
    (args.out / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
