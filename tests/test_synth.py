"""The synthetic TV dataset: memory is necessary, nothing else gives the channel away, files follow docs/formats.md.

Guarantees that involve pixels hold for every style (``shapes`` and ``pictures``), so those tests run for both.
"""

from __future__ import annotations

import csv
import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lstm_tv.config import SYNTH_STYLE_SIZES, SynthConfig
from lstm_tv.data.synth import (
    CHANNELS,
    CUE_KINDS,
    STYLES,
    Event,
    generate_dataset,
    plan_video,
    render_canine,
    render_event_frame,
    segments_csv,
    shapes,
    split_names,
    synth_frames,
    video_plan,
)
from lstm_tv.data.video import read_frames
from lstm_tv.errors import DatasetError

TINY = SynthConfig(videos=4, frames=48, size=32, gap_min=3, gap_max=8, switch_prob=0.5, seed=7)
STYLE_NAMES = list(STYLES)
# A small frame per style for render tests: square for shapes, 4:3 for pictures.
SMALL = {"shapes": (32, 32), "pictures": (48, 36)}


def test_the_styles_are_the_choices_of_synth_style():
    assert list(STYLES) == list(SYNTH_STYLE_SIZES) == ["shapes", "pictures"]


# ---------------------------------------------------------------------------------------------------
# One frame cannot tell an ambiguous wolf from an ambiguous dog


@pytest.mark.parametrize("style", STYLE_NAMES)
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_ambiguous_wolf_and_dog_are_pixel_identical(style, seed):
    width, height = SMALL[style]
    wolf = render_canine(True, "wolf", np.random.default_rng(seed), style=style, size=(width, height))
    dog = render_canine(True, "dog", np.random.default_rng(seed), style=style, size=(width, height))
    assert wolf.shape == (height, width, 3) and wolf.dtype == np.uint8
    assert np.array_equal(wolf, dog)


@pytest.mark.parametrize("style", STYLE_NAMES)
def test_ambiguous_drawing_ignores_label_and_channel(style):
    # The same event with every label/channel combination draws the same pixels.
    frames = [render_event_frame(Event("ambiguous", label, 3, 20, channel, True), 9, np.random.default_rng(5),
                                 style=style, size=(64, 48))
              for label in ("wolf", "dog") for channel in CHANNELS]
    assert all(np.array_equal(frames[0], f) for f in frames[1:])


@pytest.mark.parametrize("style", STYLE_NAMES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clear_wolf_differs_from_clear_dog_and_from_the_silhouette(style, seed):
    size = SMALL[style]
    wolf = render_canine(False, "wolf", np.random.default_rng(seed), style=style, size=size)
    dog = render_canine(False, "dog", np.random.default_rng(seed), style=style, size=size)
    shadow = render_canine(True, "wolf", np.random.default_rng(seed), style=style, size=size)
    assert not np.array_equal(wolf, dog)
    assert not np.array_equal(wolf, shadow) and not np.array_equal(dog, shadow)


@pytest.mark.parametrize("width, height", [(64, 64), (96, 48), (48, 80)])
def test_shapes_stay_inside_the_frame(width, height):
    for i, kind in enumerate(["bear", "goldfish", "wolf", "dog", "ambiguous", "distractor"] * 20):
        obj = shapes.appearance_for(Event(kind, "x", 0, 30, "nature"), width, height, np.random.default_rng(i))
        for x, y, side in (obj.pose(0), obj.pose(29)):
            assert side / 2 <= x <= width - side / 2 and 0.42 * side <= y <= height - 0.42 * side


# ---------------------------------------------------------------------------------------------------
# The timeline: every ambiguous canine follows a cue of its own channel across a gap of unknown frames


def _check_plan(plan, cfg: SynthConfig) -> None:
    T = cfg.frames
    assert len(plan.labels) == len(plan.channel) == len(plan.mask) == T
    assert plan.mask.dtype == np.uint8
    switches = [t for t in range(1, T) if plan.channel[t] != plan.channel[t - 1]]
    assert len(switches) <= 1
    assert all(T // 3 <= t <= 2 * T // 3 for t in switches)  # in the middle third

    events = sorted(plan.events, key=lambda e: e.start)
    for a, b in itertools.pairwise(events):
        assert a.end <= b.start, "objects never overlap"
    for e in events:
        assert 0 <= e.start < e.end <= T
        assert set(plan.channel[e.start:e.end]) == {e.channel}, "no event straddles a switch"
        assert set(plan.labels[e.start:e.end]) == {e.label}
        assert plan.mask[e.start:e.end].all() == e.ambiguous
        allowed = {"bear": ("nature", "bear"), "wolf": ("nature", "wolf"),
                   "goldfish": ("dog_office", "goldfish"), "dog": ("dog_office", "dog")}
        if e.kind in allowed:
            assert (e.channel, e.label) == allowed[e.kind]
        elif e.kind == "ambiguous":
            assert e.ambiguous and e.label == {"nature": "wolf", "dog_office": "dog"}[e.channel]
        else:
            assert e.kind == "distractor" and e.label == "unknown" and not e.ambiguous

    expected_mask = np.zeros(T, dtype=np.uint8)
    for e in events:
        expected_mask[e.start:e.end] = e.ambiguous
    assert np.array_equal(plan.mask, expected_mask)
    covered = np.zeros(T, dtype=bool)
    for e in events:
        if e.kind != "distractor":
            covered[e.start:e.end] = True
    assert all(plan.labels[t] == "unknown" for t in np.flatnonzero(~covered))

    last_switch = switches[0] if switches else 0
    for amb in (e for e in events if e.ambiguous):
        since = last_switch if amb.start >= last_switch else 0
        cues = [e for e in events if e.kind in CUE_KINDS and since <= e.start and e.end <= amb.start]
        assert cues, f"ambiguous canine at {amb.start} has no cue since frame {since}"
        assert all(c.channel == amb.channel for c in cues)
        gap = amb.start - cues[-1].end
        assert cfg.gap_min <= gap <= cfg.gap_max
        assert set(plan.labels[cues[-1].end:amb.start]) <= {"unknown"}


@pytest.mark.parametrize("frames, gap_min, gap_max", [(120, 1, 5), (120, 10, 30), (600, 10, 120), (300, 40, 60),
                                                      (16, 1, 3), (200, 150, 190)])
def test_plans_obey_the_memory_rules(frames, gap_min, gap_max):
    cfg = SynthConfig(frames=frames, gap_min=gap_min, gap_max=gap_max, switch_prob=0.5)
    rng = np.random.default_rng(frames + gap_min)
    for _ in range(60):
        _check_plan(plan_video(cfg, rng), cfg)


def test_switches_happen_at_the_configured_rate():
    rng = np.random.default_rng(0)
    for prob, lo, hi in [(0.0, 0, 0), (1.0, 200, 200), (0.5, 70, 130)]:
        cfg = SynthConfig(frames=120, switch_prob=prob)
        n = sum(len(set(plan_video(cfg, rng).channel)) == 2 for _ in range(200))
        assert lo <= n <= hi


def test_ambiguous_canines_are_equally_likely_on_both_channels():
    cfg = SynthConfig(switch_prob=0.5)
    rng = np.random.default_rng(1)
    counts = dict.fromkeys(CHANNELS, 0)
    for _ in range(300):
        for e in plan_video(cfg, rng).events:
            if e.ambiguous:
                counts[e.channel] += 1
    share = counts["nature"] / sum(counts.values())
    assert sum(counts.values()) > 500 and 0.45 < share < 0.55


def test_gaps_cover_the_configured_range():
    cfg = SynthConfig(frames=600, gap_min=10, gap_max=40)
    rng = np.random.default_rng(2)
    gaps = set()
    for _ in range(100):
        events = plan_video(cfg, rng).events
        animals = [e for e in events if e.kind != "distractor"]
        gaps |= {b.start - a.end for a, b in itertools.pairwise(animals) if b.ambiguous}
    assert min(gaps) == 10 and max(gaps) == 40


# ---------------------------------------------------------------------------------------------------
# Determinism


@pytest.mark.parametrize("style", STYLE_NAMES)
def test_same_seed_same_video_other_seed_other_video(style):
    cfg = replace(TINY, frames=24, style=style)
    a, b = video_plan(cfg, 3), video_plan(cfg, 3)
    assert a.labels == b.labels and np.array_equal(a.mask, b.mask) and a.events == b.events
    assert all(np.array_equal(x, y) for x, y in zip(synth_frames(cfg, 3), synth_frames(cfg, 3), strict=True))
    other = replace(cfg, seed=cfg.seed + 1)
    assert any(not np.array_equal(x, y) for x, y in zip(synth_frames(cfg, 3), synth_frames(other, 3), strict=True))
    assert [video_plan(replace(TINY, frames=600), i).labels for i in range(3)] != \
        [video_plan(replace(TINY, frames=600, seed=1), i).labels for i in range(3)]


# ---------------------------------------------------------------------------------------------------
# The dataset on disk (docs/formats.md §1)


def _decoded(path: Path) -> list[np.ndarray]:
    return [rgb for rgb, _ in read_frames(path)]


def _csv_to_frames(path: Path, frames: int, fps: int) -> list[str]:
    labels = ["unknown"] * frames
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for i in range(frames):
                if float(row["start"]) <= i / fps < float(row["end"]):
                    labels[i] = row["label"]
    return labels


@pytest.mark.parametrize("style, size, shape", [("shapes", 32, (32, 32, 3)), ("pictures", 24, (24, 32, 3))])
def test_generate_dataset_writes_the_raw_layout(tmp_path, style, size, shape):
    cfg = replace(TINY, style=style, size=size)
    calls = []
    out = generate_dataset(tmp_path / "raw", cfg, progress=lambda done, total: calls.append((done, total)))
    assert out == tmp_path / "raw"
    assert calls[-1] == (4, 4) and [d for d, _ in calls] == [1, 2, 3, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"], "no temporary directory is left behind"

    stems = [f"tv_{i:04d}" for i in range(cfg.videos)]
    assert sorted(p.name for p in (out / "videos").iterdir()) == [f"{s}.mp4" for s in stems]
    labels = sorted(p.name for p in (out / "labels").iterdir())
    assert labels == ["tv_0000.txt", "tv_0001.csv", "tv_0002.txt", "tv_0003.csv"]  # both label formats
    for i, stem in enumerate(stems):
        plan = video_plan(cfg, i)
        frames = _decoded(out / "videos" / f"{stem}.mp4")
        assert len(frames) == cfg.frames and frames[0].shape == shape  # (H, W, 3): 4:3 for pictures
        mask = (out / "masks" / f"{stem}.txt").read_text().split()
        assert mask == [str(m) for m in plan.mask]
        if i % 2 == 0:
            lines = (out / "labels" / f"{stem}.txt").read_text().splitlines()
            assert len(lines) == len(frames) and lines == plan.labels
        else:
            path = out / "labels" / f"{stem}.csv"
            assert path.read_text().splitlines()[0] == "start,end,label"
            assert _csv_to_frames(path, cfg.frames, cfg.fps) == plan.labels

    with open(out / "splits.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["video"] for r in rows] == stems
    assert {r["split"] for r in rows} == {"train", "val", "test"}


def test_generate_dataset_refuses_a_non_empty_directory(tmp_path):
    out = tmp_path / "raw"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not empty"):
        generate_dataset(out, replace(TINY, videos=1))
    assert (out / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_generate_dataset_fills_an_empty_directory(tmp_path):
    (tmp_path / "raw").mkdir()
    generate_dataset(tmp_path / "raw", replace(TINY, videos=1, frames=20))
    assert (tmp_path / "raw" / "videos" / "tv_0000.mp4").is_file()


def test_an_interrupted_run_leaves_nothing(tmp_path):
    def interrupt(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_dataset(tmp_path / "raw", TINY, progress=interrupt)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("style", STYLE_NAMES)
def test_workers_do_not_change_the_content(tmp_path, style):
    # Worker processes load the artwork (and font) on their own and still draw the same pixels.
    cfg = replace(TINY, videos=3, frames=24, style=style, size=24)
    one = generate_dataset(tmp_path / "one", cfg, workers=1)
    two = generate_dataset(tmp_path / "two", cfg, workers=2)
    for sub in ("labels", "masks"):
        for p in sorted((one / sub).iterdir()):
            assert p.read_bytes() == (two / sub / p.name).read_bytes()
    assert (one / "splits.csv").read_bytes() == (two / "splits.csv").read_bytes()
    for p in sorted((one / "videos").iterdir()):
        a, b = _decoded(p), _decoded(two / "videos" / p.name)
        assert len(a) == len(b) == cfg.frames and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("n, expected", [(1, {"train": 1}), (2, {"train": 1, "val": 1}),
                                         (3, {"train": 1, "val": 1, "test": 1}),
                                         (20, {"train": 14, "val": 3, "test": 3}),
                                         (120, {"train": 84, "val": 18, "test": 18})])
def test_splits_are_about_70_15_15(n, expected):
    names = split_names(n)
    assert len(names) == n and {s: names.count(s) for s in set(names)} == expected


def test_segment_times_put_every_frame_in_the_right_segment():
    labels = ["unknown"] * 5 + ["dog"] * 5 + ["wolf"] * 3 + ["unknown"] * 11 + ["bear"] * 7
    for fps in (24, 25, 30, 7):
        path_text = segments_csv(labels, fps)
        rows = [line.split(",") for line in path_text.splitlines()[1:]]
        decoded = ["unknown"] * len(labels)
        for start, end, label in rows:
            for i in range(len(labels)):
                if float(start) <= i / fps < float(end):
                    decoded[i] = label
        assert decoded == labels


def _mirror(plan):
    """The plan with the channels swapped (and bear<->goldfish, wolf<->dog): an equally likely plan."""
    swap = {"nature": "dog_office", "dog_office": "nature", "bear": "goldfish", "goldfish": "bear",
            "wolf": "dog", "dog": "wolf", "unknown": "unknown", "ambiguous": "ambiguous", "distractor": "distractor"}
    events = [replace(e, kind=swap[e.kind], label=swap[e.label], channel=swap[e.channel]) for e in plan.events]
    return replace(plan, labels=[swap[x] for x in plan.labels], channel=[swap[c] for c in plan.channel],
                   events=events)


@pytest.mark.parametrize("style", STYLE_NAMES)
def test_unknown_and_masked_frames_look_the_same_on_both_channels(style):
    # Render a video and its channel-swapped twin with the same looks: every frame that is not a cue
    # (background, distractors, silhouettes) is pixel-identical, so such frames carry no channel information.
    cfg = replace(TINY, frames=120, gap_min=5, gap_max=20, style=style)
    for index in range(3):
        plan = video_plan(cfg, index)
        twin = _mirror(plan)
        assert twin.labels != plan.labels
        for t, (a, b) in enumerate(zip(synth_frames(cfg, index, plan), synth_frames(cfg, index, twin), strict=True)):
            if plan.labels[t] == "unknown" or plan.mask[t]:
                assert np.array_equal(a, b), f"frame {t} of video {index} differs between channels"
            else:
                assert not np.array_equal(a, b)

