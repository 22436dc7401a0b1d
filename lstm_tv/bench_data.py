"""The bench's datasets: one synthetic TV dataset per gap setting, and each masked frame's distance from its cue.

A gap setting is the range of ``unknown`` frames between the last cue and a silhouette; the datasets
differ in nothing else. Each is generated and prepared once under the bench's directory, named by a
hash of everything that shapes it, and reused by later benches with the same settings.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lstm_tv.config import Config, from_dict
from lstm_tv.data import run_prepare, run_synth
from lstm_tv.data.dataset import PreparedDataset
from lstm_tv.data.synth import CUE_KINDS, VideoPlan, video_plan, video_stem
from lstm_tv.errors import DatasetError
from lstm_tv.fileio import write_json
from lstm_tv.ui import Reporter

# The two datasets: frames of ``unknown`` between the last cue and a silhouette (inclusive ranges).
GAP_SETTINGS: dict[str, tuple[int, int]] = {"short": (5, 20), "long": (60, 150)}


def config_hash(tree: dict) -> str:
    """A short, stable fingerprint of a nested config dict."""
    return hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()[:10]



@dataclass
class BenchDataset:
    """A prepared dataset of one gap setting and, per test video, each frame's distance from the last cue."""

    gaps: str
    raw: Path
    prepared: Path
    cfg: Config
    distances: dict[str, np.ndarray] = field(default_factory=dict)  # stem -> (T,) int, 0 on unmasked frames


def dataset_config(base: Config, gaps: str, root: Path) -> Config:
    """``base`` with the gap range of ``gaps`` and the dataset's directories under ``root``."""
    gap_min, gap_max = GAP_SETTINGS[gaps]
    tree = base.to_dict()
    tree["synth"].update(gap_min=gap_min, gap_max=gap_max)
    # The directory name carries a hash of everything that shapes the data, so a changed budget
    # (another frame size, more videos) gets its own dataset instead of silently reusing an old one.
    shape = {"synth": tree["synth"], "data": {k: tree["data"][k] for k in ("size", "classes", "background")}}
    where = root / f"{gaps}-{config_hash(shape)}"
    tree["data"].update(raw=str(where / "raw"), dir=str(where / "prepared"))
    return from_dict(tree)


def bench_dataset(base: Config, gaps: str, root: Path, reporter: Reporter) -> BenchDataset:
    """Generate and prepare the dataset of ``gaps`` under ``root`` unless a previous bench did.

    Both steps are atomic (a temporary directory renamed at the end), so a dataset that exists is whole.
    """
    cfg = dataset_config(base, gaps, root)
    raw, prepared = Path(cfg.data.raw), Path(cfg.data.dir)
    if (prepared / "manifest.json").is_file():
        reporter.info(f"{gaps} gaps: reusing {prepared}")
    else:
        if not raw.is_dir():
            reporter.info(f"{gaps} gaps ({cfg.synth.gap_min}-{cfg.synth.gap_max} frames): generating {raw}")
            run_synth(raw, cfg, reporter)
        run_prepare(raw, prepared, cfg, reporter)
        write_json(prepared.parent / "dataset.json", {"gaps": gaps, "synth": cfg.to_dict()["synth"],
                                                      "data_size": cfg.data.size})
    data = PreparedDataset(prepared)
    return BenchDataset(gaps, raw, prepared, cfg, masked_distances(data, cfg))


def cue_distances(plan: VideoPlan) -> np.ndarray:
    """Per frame of a synthetic video: frames since a cue was last on screen, on masked frames; else 0.

    The first frame after the cue's last frame is at distance 1, so a silhouette after a gap of g
    empty frames starts at distance g + 1.

    Args:
        plan: the video's synthetic plan.

    Raises:
        DatasetError: a silhouette has no cue of its own channel before it (the plan breaks the
            dataset's rules, so its distances would mean nothing).
    """
    distance = np.zeros(len(plan.mask), dtype=np.int64)
    cues = [e for e in plan.events if e.kind in CUE_KINDS]
    for event in (e for e in plan.events if e.ambiguous):
        before = [c for c in cues if c.end <= event.start]
        last = max(before, key=lambda c: c.end, default=None)
        if last is None or last.channel != event.channel:
            raise DatasetError(f"silhouette at frames {event.start}-{event.end} has no {event.channel} cue before it")
        distance[event.start:event.end] = np.arange(event.start, event.end) - (last.end - 1)
    return distance


def masked_distances(data: PreparedDataset, cfg: Config) -> dict[str, np.ndarray]:
    """Cue distances of every test video of a prepared synthetic dataset, checked against its masks.

    A prepared video's stem is the synthetic one (``tv_0007`` is video 7), so its plan can be drawn
    again from ``cfg.synth``; the plan's mask must equal the stored one, frame for frame.

    Raises:
        DatasetError: a stem is not a synthetic one, or a plan does not match the stored mask.
    """
    out = {}
    for video in data.split("test"):
        match = re.fullmatch(r"tv_(\d+)", video.stem)
        if not match or video_stem(int(match.group(1))) != video.stem:
            raise DatasetError(f"{data.root}: video {video.stem!r} is not a synthetic one (tv_NNNN)")
        plan = video_plan(cfg.synth, int(match.group(1)))
        stored = data.mask(video)
        if stored is None or stored.shape != plan.mask.shape or not np.array_equal(stored, plan.mask):
            raise DatasetError(f"{data.root}: the mask of {video.stem} does not match its synthetic plan; "
                               f"delete {data.root.parent} and re-run the bench")
        distance = cue_distances(plan)
        if not np.array_equal(distance > 0, plan.mask.astype(bool)):
            raise DatasetError(f"{data.root}: cue distances of {video.stem} do not cover exactly its masked frames")
        out[video.stem] = distance
    return out
