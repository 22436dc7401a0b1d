"""Data: video I/O, the synthetic TV dataset, ``prepare`` and the prepared-dataset readers.

The two functions here run the long data jobs with a progress bar and a summary line; the CLI
commands ``synth`` and ``prepare`` call them, and so does ``train`` when its dataset is missing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from lstm_tv.config import Config
from lstm_tv.ui import Reporter


def run_synth(out: str | Path, cfg: Config, reporter: Reporter, *, workers: int = 0) -> None:
    """Generate the synthetic TV dataset ``cfg.synth`` (in its ``synth.style``) into ``out`` (raw layout)."""
    from lstm_tv.data.synth import generate_dataset

    start = time.perf_counter()
    with reporter.bar("synth", total=cfg.synth.videos) as bar:
        generate_dataset(out, cfg.synth, workers=workers or os.cpu_count() or 1, progress=bar.update)
    width, height = cfg.synth.frame_size()
    reporter.info(f"wrote {cfg.synth.videos} synthetic videos ({cfg.synth.style}, {width}x{height}) to [bold]{out}[/] "
                  f"in {time.perf_counter() - start:.1f} s")


def run_prepare(src: str | Path, out: str | Path, cfg: Config, reporter: Reporter, *, workers: int = 0,
            skip_unlabeled: bool = False, overwrite: bool = False, labels_format: str | None = None) -> dict:
    """Prepare ``src`` into ``out`` (see :func:`lstm_tv.data.prepare.prepare_dataset`); return the manifest."""
    from lstm_tv.data.prepare import prepare_dataset

    start = time.perf_counter()
    with reporter.bar("prepare") as bar:
        manifest = prepare_dataset(src, out, cfg.data, workers=workers or None, skip_unlabeled=skip_unlabeled,
                                   overwrite=overwrite, progress=bar.update, warn=reporter.warn,
                                   labels_format=labels_format)
    seconds = time.perf_counter() - start
    frames = sum(v["frames"] for v in manifest["videos"])
    splits = {s: sum(v["split"] == s for v in manifest["videos"]) for s in ("train", "val", "test")}
    reporter.info(f"prepared {len(manifest['videos'])} videos ({frames} frames, {frames / seconds:.0f} frames/s) "
                  f"at {'x'.join(map(str, manifest['size']))} px into [bold]{out}[/]; splits "
                  + ", ".join(f"{k} {v}" for k, v in splits.items()))
    return manifest
