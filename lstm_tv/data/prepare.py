"""``lstm-tv prepare SRC OUT``: raw videos + labels (docs/formats.md §1) -> a prepared dataset (§2).

Each video is decoded once, resized inside FFmpeg to the dataset's one frame size (``data.size``: the
short side, the first video's aspect ratio kept, or [W, H]) and streamed to a raw
uint8 file that training memory-maps; its labels (per-frame ``.txt``, segment ``.csv``, or an annotation
tool's export: see :mod:`lstm_tv.data.annotation_tools`), optional mask and split are checked
against the decoded frames and stored as small ``.npy`` arrays.

Layout of a prepared dataset::

    OUT/manifest.json                 classes, size [W, H], per-video frames/fps/split/source (written last)
    OUT/videos/<stem>/frames.u8       raw uint8, shape (frames, H, W, 3), C order
    OUT/videos/<stem>/labels.npy      int64 (frames,)
    OUT/videos/<stem>/mask.npy        uint8 (frames,), only when masks/<stem>.txt exists
    OUT/videos/<stem>/times.npy       float64 (frames,), seconds from the first frame

Safe to interrupt: everything is built in ``OUT.partial/`` and renamed to ``OUT`` at the end, so ``OUT``
exists only when complete. A video counts as done in ``OUT.partial`` once its ``video.json`` is
written (last, atomically); a re-run with the same settings reuses finished videos and does the rest.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from lstm_tv import __version__
from lstm_tv.config import DataConfig
from lstm_tv.data import annotation_tools as A
from lstm_tv.data import labels as label_files
from lstm_tv.data.video import VIDEO_EXTENSIONS, probe, read_frames
from lstm_tv.errors import DatasetError
from lstm_tv.fileio import write_json

MANIFEST = "manifest.json"
FORMAT = "lstm-tv/prepared"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class VideoJob:
    """Everything one worker needs to prepare one video (picklable)."""

    stem: str
    video: str
    labels: str  # the label file (for messages, the manifest and the reuse check)
    annotation: A.VideoAnnotation
    mask: str | None
    split: str
    size: tuple[int, int]  # (width, height) of the stored frames
    classes: tuple[str, ...]
    background: str
    out_dir: str
    threads: int = 0  # decoder threads (0 = FFmpeg decides)


def discover(src: Path, cfg: DataConfig, *, skip_unlabeled: bool = False, labels_format: str | None = None
             ) -> tuple[list[tuple[str, Path, A.VideoAnnotation, Path | None]], list[str]]:
    """Pair ``videos/<stem>.*`` with their labels (read and checked now, before any decoding) and masks.

    Labels are ``labels/<stem>.txt|.csv`` or any format of :mod:`lstm_tv.data.annotation_tools`, detected
    from the files or named by ``labels_format``.

    Returns:
        ``([(stem, video, annotation, mask_or_None)], warnings)`` sorted by stem.
    """
    if not src.is_dir():
        raise DatasetError(f"{src}: source dataset directory not found")
    vdir, mdir = src / "videos", src / "masks"
    if not vdir.is_dir():
        raise DatasetError(f"{src}: no videos/ directory; expected videos/<stem>.<ext> and labels/<stem>.txt|.csv")
    warnings: list[str] = []
    videos: dict[str, Path] = {}
    for p in sorted(vdir.iterdir()):
        if p.name.startswith(".") or not p.is_file():
            continue
        if p.suffix.lower() not in VIDEO_EXTENSIONS:
            warnings.append(f"{p}: not a video extension ({', '.join(VIDEO_EXTENSIONS)}); ignored")
            continue
        if p.stem in videos:
            raise DatasetError(f"{p} and {videos[p.stem]} share the stem {p.stem!r}; stems must be unique")
        videos[p.stem] = p
    found, more = A.collect(src, list(videos), cfg, labels_format)
    warnings += more
    pairs = []
    for stem, video in videos.items():
        if stem not in found:
            message = f"{video} has no labels (labels/{stem}.txt or .csv, or an annotation tool's file naming it)"
            if not skip_unlabeled:
                raise DatasetError(f"{message}; add them, or pass --skip-unlabeled to leave the video out")
            warnings.append(f"{message}; left out (--skip-unlabeled)")
            continue
        mask = mdir / f"{stem}.txt"
        if mask.is_file():
            label_files.read_mask(mask)  # a bad mask fails now, not after hours of decoding
        pairs.append((stem, video, found[stem], mask if mask.is_file() else None))
    if not pairs:
        raise DatasetError(f"{src}: no labelled videos found in {vdir}")
    return pairs, warnings


def assign_splits(src: Path, pairs, ratios: list[float]) -> dict[str, str]:
    """Splits from ``splits.csv`` where it names a video, else the labels' own split (MS-TCN bundles,
    ActivityNet subsets), else a stable hash of the stem."""
    stems = [p[0] for p in pairs]
    named = label_files.read_splits(src / "splits.csv", stems) if (src / "splits.csv").is_file() else {}
    return {stem: named.get(stem) or ann.split or label_files.hash_split(stem, ratios) for stem, _, ann, _ in pairs}


def prepare_video(job: VideoJob) -> dict:
    """Decode, resize and store one video with its labels; return its manifest entry.

    Runs in a worker process. Writes into ``job.out_dir`` (a fresh directory) and writes
    ``video.json`` last, which marks the video as done.
    """
    out = Path(job.out_dir)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    times: list[float] = []
    with open(out / "frames.u8", "wb") as f:
        for rgb, t in read_frames(job.video, job.size, threads=job.threads):
            f.write(memoryview(rgb).cast("B"))
            times.append(t)
    n = len(times)
    classes = list(job.classes)
    labels, warnings = A.to_frame_labels(job.annotation, times, classes.index(job.background))
    np.save(out / "labels.npy", np.asarray(labels, dtype=np.int64))
    np.save(out / "times.npy", np.asarray(times, dtype=np.float64))
    if job.mask is not None:
        mask, warning = label_files.fit_length(label_files.read_mask(job.mask), n, job.mask, what="mask values")
        warnings += [warning] if warning else []
        np.save(out / "mask.npy", np.asarray(mask, dtype=np.uint8))
    duration = times[-1] if n > 1 else 0.0
    entry = {
        "stem": job.stem,
        "split": job.split,
        "frames": n,
        "fps": round((n - 1) / duration, 6) if duration > 0 else 0.0,
        "source": job.video,
        "labels": job.labels,
        "mask": job.mask,
        "label_counts": np.bincount(labels, minlength=len(classes)).tolist(),
        "source_stamp": _stamp(job),
    }
    write_json(out / "video.json", {"entry": entry, "warnings": warnings})
    return {"entry": entry, "warnings": warnings}


def _stamp(job: VideoJob) -> list:
    """Size and mtime of a video's input files: a finished video is reused only if they are unchanged."""
    files = [job.video, job.labels] + ([job.mask] if job.mask else [])
    return [[p, os.stat(p).st_size, os.stat(p).st_mtime_ns] for p in files]


def _fingerprint(src: Path, cfg: DataConfig, labels_format: str | None) -> dict:
    return {"source": str(src.resolve()), "size": cfg.size, "classes": list(cfg.classes),
            "background": cfg.background, "class_map": cfg.class_map, "unmapped": cfg.unmapped,
            "eaf_tier": cfg.eaf_tier, "labels_format": labels_format, "format_version": FORMAT_VERSION}


def _reusable(job: VideoJob) -> dict | None:
    """The finished result of ``job`` from an interrupted run, if its inputs have not changed."""
    meta_path = Path(job.out_dir) / "video.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        entry = meta["entry"]
        ok = entry["source_stamp"] == _stamp(job) and entry["split"] == job.split
        size = os.path.getsize(Path(job.out_dir) / "frames.u8")
        ok = ok and size == entry["frames"] * job.size[0] * job.size[1] * 3
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return meta if ok else None


def prepare_dataset(src: str | Path, out: str | Path, cfg: DataConfig, *, workers: int | None = None,
                    skip_unlabeled: bool = False, overwrite: bool = False, decode_threads: int | None = None,
                    labels_format: str | None = None,
                    progress: Callable[[int, int, str], None] | None = None,
                    warn: Callable[[str], None] | None = None) -> dict:
    """Prepare ``src`` (raw layout) into ``out``; return the manifest.

    Args:
        src: raw dataset directory (``videos/``, ``labels/``, optional ``masks/``, ``splits.csv``).
        out: destination; must not exist unless ``overwrite``.
        cfg: ``data`` settings (size, classes, background, split ratios, class_map, unmapped, eaf_tier).
        workers: processes decoding videos in parallel (default: number of CPU cores).
        skip_unlabeled: leave out videos without labels (a warning) instead of failing.
        overwrite: replace an existing ``out``.
        decode_threads: FFmpeg decoder threads per worker; default: the cores divided among the
            workers (one worker decodes with all cores).
        progress: called with ``(done, total, stem)`` after each video.
        warn: called with each warning line.
        labels_format: a format of :data:`lstm_tv.data.annotation_tools.FORMATS`; None detects it per file.
    Raises:
        DatasetError, LabelError, VideoError: with one line naming the file.
    """
    src, out = Path(src), Path(out)
    warn = warn or (lambda message: None)
    if out.exists() and not overwrite:
        raise DatasetError(f"{out}: already exists; choose another OUT or pass --overwrite to replace it")
    pairs, warnings = discover(src, cfg, skip_unlabeled=skip_unlabeled, labels_format=labels_format)
    for w in warnings:
        warn(w)
    classes, splits = list(cfg.classes), assign_splits(src, pairs, cfg.split_ratios)
    partial = out.with_name(out.name + ".partial")
    fingerprint = _fingerprint(src, cfg, labels_format)
    _open_partial(partial, fingerprint)  # creates OUT's parent only now that the inputs have been checked
    workers = min(workers or os.cpu_count() or 1, len(pairs))
    # Parallel workers split the cores between them rather than each decoding with every core.
    threads = decode_threads if decode_threads is not None else max(1, (os.cpu_count() or 1) // workers)
    # One frame size for the whole dataset (the model reads one); a short side takes the first video's aspect.
    first = probe(pairs[0][1])
    size = cfg.frame_size((first.width, first.height))
    jobs = [VideoJob(stem, str(video), ann.path, ann, str(mask) if mask else None, splits[stem], size,
                     tuple(classes), cfg.background, str(partial / "videos" / stem), threads)
            for stem, video, ann, mask in pairs]
    results = _run_jobs(jobs, workers, progress, warn)

    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "created_by": f"lstm-tv {__version__}",
        "classes": classes,
        "background": cfg.background,
        "size": list(size),
        "fps": float(np.median([r["entry"]["fps"] for r in results])),
        "source": fingerprint["source"],
        "videos": [{k: v for k, v in r["entry"].items() if k != "source_stamp"} for r in results],
    }
    write_json(partial / MANIFEST, manifest)
    (partial / "partial.json").unlink()
    _swap_into_place(partial, out)
    return manifest


def _open_partial(partial: Path, fingerprint: dict) -> None:
    """Reuse ``partial`` from an interrupted run with the same settings, else start it clean."""
    stamp = partial / "partial.json"
    if partial.exists():
        try:
            same = json.loads(stamp.read_text()) == fingerprint
        except (OSError, ValueError):
            same = False
        if not same:
            shutil.rmtree(partial)
    (partial / "videos").mkdir(parents=True, exist_ok=True)
    if not stamp.exists():
        write_json(stamp, fingerprint)


def _run_jobs(jobs: list[VideoJob], workers: int, progress, warn) -> list[dict]:
    """Run ``prepare_video`` over jobs (in processes when workers > 1); results in job order."""
    results: dict[str, dict] = {}
    todo = []
    for job in jobs:
        done = _reusable(job)
        if done is not None:
            results[job.stem] = done
        else:
            todo.append(job)

    def finish(job: VideoJob, result: dict) -> None:
        results[job.stem] = result
        for w in result["warnings"]:
            warn(w)
        if progress:
            progress(len(results), len(jobs), job.stem)

    if progress and results:
        progress(len(results), len(jobs), "(reused from an interrupted run)")
    if workers <= 1 or len(todo) <= 1:
        for job in todo:
            finish(job, prepare_video(job))
    else:
        # 'spawn' rather than fork: FFmpeg's decoder threads and fork do not mix safely.
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx) as pool:
            futures = {pool.submit(prepare_video, job): job for job in todo}
            try:
                for future in cf.as_completed(futures):
                    finish(futures[future], future.result())
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    return [results[job.stem] for job in jobs]


def _swap_into_place(partial: Path, out: Path) -> None:
    """Rename the finished dataset to ``out`` (replacing an old one only after the new one is whole)."""
    if out.exists():
        trash = out.with_name(out.name + ".old")
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(out, trash)
        os.replace(partial, out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(partial, out)

