"""Writing a synthetic dataset to disk in the raw layout of docs/formats.md: videos/, labels/, masks/, splits.csv."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

from lstm_tv.config import SynthConfig
from lstm_tv.data.synth.plan import UNKNOWN, video_plan
from lstm_tv.data.synth.render import synth_frames
from lstm_tv.data.video import VideoWriter
from lstm_tv.errors import ConfigError, DatasetError


def video_stem(index: int) -> str:
    return f"tv_{index:04d}"


def split_names(n: int) -> list[str]:
    """Splits of videos 0..n-1: ~70/15/15 in contiguous blocks; each split non-empty when n >= 3."""
    if n < 3:
        return ["train", "val"][:n]
    val = test = max(1, round(0.15 * n))
    return ["train"] * (n - val - test) + ["val"] * val + ["test"] * test


def label_segments(labels: Sequence[str], background: str = UNKNOWN) -> list[tuple[int, int, str]]:
    """Maximal runs of one non-background label as half-open frame ranges ``(start, end, label)``."""
    segments, start = [], 0
    for t in range(1, len(labels) + 1):
        if t == len(labels) or labels[t] != labels[start]:
            if labels[start] != background:
                segments.append((start, t, labels[start]))
            start = t
    return segments


def _seconds(frame: int, fps: int) -> str:
    """Time of ``frame`` rounded *down* to the microsecond, so frame i lies in [start, end) exactly."""
    micros = frame * 1_000_000 // fps
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def segments_csv(labels: Sequence[str], fps: int) -> str:
    rows = ["start,end,label"] + [f"{_seconds(a, fps)},{_seconds(b, fps)},{label}"
                                   for a, b, label in label_segments(labels)]
    return "\n".join(rows) + "\n"


def write_video(root: Path, cfg: SynthConfig, index: int) -> None:
    """Render, encode and label video ``index`` into ``root`` (the worker's unit of work).

    Even indices get per-frame ``.txt`` labels, odd ones segment ``.csv`` labels, so a dataset
    exercises both label readers.
    """
    root, stem = Path(root), video_stem(index)
    plan = video_plan(cfg, index)
    width, height = cfg.frame_size()
    # One encoder thread: synth runs one process per core (``workers``), each writing its own videos.
    with VideoWriter(root / "videos" / f"{stem}.mp4", cfg.fps, width, height, threads=1) as writer:
        for frame in synth_frames(cfg, index):
            writer.write(frame)
    if index % 2 == 0:
        (root / "labels" / f"{stem}.txt").write_text("\n".join(plan.labels) + "\n", encoding="utf-8")
    else:
        (root / "labels" / f"{stem}.csv").write_text(segments_csv(plan.labels, cfg.fps), encoding="utf-8")
    (root / "masks" / f"{stem}.txt").write_text("\n".join(map(str, plan.mask.tolist())) + "\n", encoding="utf-8")


def generate_dataset(out: str | Path, cfg: SynthConfig, *, workers: int = 1,
                     progress: Callable[[int, int], None] | None = None) -> Path:
    """Write the synthetic TV dataset to ``out`` in the raw layout (videos/, labels/, masks/, splits.csv).

    Everything is built in a temporary sibling directory that is renamed to ``out`` at the end, so an
    interrupted run leaves no ``out`` (and no temporary directory, unless the process is killed).

    Args:
        out: the dataset directory; must not exist or be empty. Missing parents are created.
        cfg: what to generate.
        workers: processes that render videos in parallel (content does not depend on it).
        progress: called as ``progress(done_videos, total_videos)`` after every finished video.
    Returns:
        ``out`` as a Path.
    Raises:
        DatasetError: ``out`` exists and is not an empty directory.
        ConfigError: ``cfg`` is inconsistent (odd size, gap_min > gap_max, ...).
    """
    out = Path(out)
    _check_config(cfg)
    _check_free(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        for sub in ("videos", "labels", "masks"):
            (tmp / sub).mkdir()
        _render_all(tmp, cfg, workers, progress)
        rows = [f"{video_stem(i)},{split}" for i, split in enumerate(split_names(cfg.videos))]
        (tmp / "splits.csv").write_text("video,split\n" + "\n".join(rows) + "\n", encoding="utf-8")
        _check_free(out)
        try:
            os.replace(tmp, out)  # atomic; replaces only an empty directory
        except OSError as e:
            raise DatasetError(f"{out}: cannot move the finished dataset into place ({e.strerror})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _render_all(root: Path, cfg: SynthConfig, workers: int, progress) -> None:
    total = cfg.videos
    if workers <= 1 or total == 1:
        for i in range(total):
            write_video(root, cfg, i)
            if progress:
                progress(i + 1, total)
        return
    # Not 'fork': the parent may hold threads (torch, FFmpeg) that a forked child would inherit broken.
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    pool = ProcessPoolExecutor(max_workers=min(workers, total), mp_context=multiprocessing.get_context(method))
    try:
        pending = {pool.submit(write_video, root, cfg, i) for i in range(total)}
        done = 0
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                future.result()  # re-raises a worker's error here
                done += 1
                if progress:
                    progress(done, total)
    finally:
        # On error or Ctrl-C: drop queued videos and wait for running ones, so that nothing writes into
        # the temporary directory after the caller removes it.
        pool.shutdown(wait=True, cancel_futures=True)


def _check_free(out: Path) -> None:
    if out.is_dir():
        if any(out.iterdir()):
            raise DatasetError(f"{out}: already exists and is not empty; remove it or choose another directory")
    elif out.exists():
        raise DatasetError(f"{out}: exists and is not a directory")


def _check_config(cfg: SynthConfig) -> None:
    if cfg.videos < 1 or cfg.frames < 1 or cfg.fps < 1:
        raise ConfigError(f"synth: videos, frames and fps must be positive, got {cfg.videos}, {cfg.frames}, {cfg.fps}")
    cfg.frame_size()  # raises ConfigError on a size that is not auto, N or [W, H] of even sides
    if not 1 <= cfg.gap_min <= cfg.gap_max:
        raise ConfigError(f"synth.gap_min: need 1 <= gap_min <= gap_max, got {cfg.gap_min} and {cfg.gap_max}")
