"""Turning a plan into frames, for any style: scenes, objects and noise, each from its own seeded generator."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from lstm_tv.config import SynthConfig
from lstm_tv.data.synth import pictures, shapes
from lstm_tv.data.synth.look import Motion, Style
from lstm_tv.data.synth.plan import (
    DOG_OFFICE,
    NATURE,
    NOISE,
    OBJECT,
    SCENE,
    WOLF,
    Event,
    VideoPlan,
    rng_for,
    video_plan,
)

# The styles synth.style names (its choices are config.SYNTH_STYLE_SIZES; a test keeps the two equal).
STYLES: dict[str, Style] = {"shapes": shapes.STYLE, "pictures": pictures.STYLE}
NOISE_BANK = 8  # noise frames per video, reused in random order (drawing fresh is slow)


def synth_frames(cfg: SynthConfig, index: int, plan: VideoPlan | None = None) -> Iterator[np.ndarray]:
    """Yield the ``cfg.frames`` uint8 (H, W, 3) frames of video ``index``, before encoding.

    ``plan`` replaces the video's own plan (tests render edited plans with the video's looks).
    """
    plan = video_plan(cfg, index) if plan is None else plan
    style, (width, height), seed = STYLES[cfg.style], cfg.frame_size(), cfg.seed
    scenes = [style.random_scene(width, height, rng_for(seed, index, SCENE, k)) for k in range(len(plan.cuts) + 1)]
    objects = [style.appearance_for(e, width, height, rng_for(seed, index, OBJECT, i))
               for i, e in enumerate(plan.events)]
    noise_rng = rng_for(seed, index, NOISE)
    bank = noise_bank(style.noise, width, height, noise_rng, NOISE_BANK)
    order = noise_rng.integers(0, NOISE_BANK, cfg.frames)

    on_screen: list[list[Motion]] = [[] for _ in range(cfg.frames)]
    for obj in objects:
        for t in range(obj.start, obj.end):
            on_screen[t].append(obj)
    scene_of = np.searchsorted(plan.cuts, np.arange(cfg.frames), side="right")
    for t in range(cfg.frames):
        yield style.render_frame(scenes[scene_of[t]], on_screen[t], t, bank[order[t]])


def noise_bank(amplitude: int, width: int, height: int, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` float32 (H, W, 3) frames of uniform integer noise in ``[-amplitude, amplitude]``."""
    return rng.integers(-amplitude, amplitude + 1, (n, height, width, 3)).astype(np.float32)


def render_event_frame(event: Event, t: int, rng: np.random.Generator, *, style: str = "shapes",
                       size: tuple[int, int] = (96, 96)) -> np.ndarray:
    """One ``size = (W, H)`` frame of ``event`` alone on a fresh scene, every random choice taken from ``rng``."""
    look, (width, height) = STYLES[style], size
    scene = look.random_scene(width, height, rng)
    obj = look.appearance_for(event, width, height, rng)
    return look.render_frame(scene, [obj], t, noise_bank(look.noise, width, height, rng, 1)[0])


def render_canine(ambiguous: bool, species: str, rng: np.random.Generator, *, style: str = "shapes",
                  size: tuple[int, int] = (96, 96), t: int = 0) -> np.ndarray:
    """One frame of a canine labelled ``species`` (wolf or dog): clear, or the ambiguous silhouette.

    With ``ambiguous=True`` the species is only the label: the same ``rng`` state gives the same pixels
    for a wolf and a dog.
    """
    channel = NATURE if species == WOLF else DOG_OFFICE
    event = Event("ambiguous" if ambiguous else species, species, 0, 1, channel, ambiguous)
    return render_event_frame(event, t, rng, style=style, size=size)
