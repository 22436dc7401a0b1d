"""Synthetic TV: a video dataset whose labels only a model with memory can get right.

The story
---------
Every video is a TV programme on a hidden channel, ``nature`` or ``dog_office``. Each video has one
scene cut somewhere in its middle third (new background, new lighting); with probability
``cfg.switch_prob`` the channel changes at that cut.

How memory is made necessary
----------------------------
* **Cues name the channel.** Bears appear only on nature, goldfish only on dog_office. Clear canines
  are drawn differently for the two species -- a grey wolf with pointy ears and a bushy tail (nature
  only), a tan dog with floppy ears and a red collar (dog_office only).
* **Ambiguous canines do not.** A near-black silhouette is drawn by the same code from the same random
  draw whether its label is wolf or dog: :func:`appearance_for` looks only at ``Event.kind``
  (``"ambiguous"``), never at the label or the channel. Its label is the channel's canine (wolf on
  nature, dog on dog_office) and its frames get mask 1. Both channels show silhouettes equally often,
  so from one frame a silhouette is a coin flip.
* **The answer lies in the past.** Every silhouette is preceded, within its scene, by a cue of its own
  channel, then a gap of ``gap_min..gap_max`` (uniform) ``unknown`` frames -- empty scenes and
  distractors -- so the model must carry the cue across the gap.
* **Nothing else tells the channels apart.** Backgrounds, lighting, noise and distractors come from one
  pool drawn by the same code, and the plan is symmetric: swapping the channels (with bear<->goldfish,
  wolf<->dog) maps every plan to an equally likely one.
* **Cuts do not reveal switches.** Every video has a cut, switch or not, and every scene opens with a
  fresh cue before its first silhouette, so the model must trust the newest cue, not the first.

Randomness
----------
Each video draws from generators seeded by ``(seed, video index, stream)`` -- one for the timeline,
one per scene, one per object, one for noise -- so a video's content depends only on ``(seed, index)``,
not on the worker count or on the order in which videos are rendered.

Output is the raw layout of docs/formats.md section 1, written to a temporary sibling directory and renamed
into place at the end, so an interrupted run leaves nothing under ``OUT``.
"""

from __future__ import annotations

import colorsys
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lstm_tv.config import DEFAULT_CLASSES, SynthConfig
from lstm_tv.data.video import VideoWriter
from lstm_tv.errors import ConfigError, DatasetError

WOLF, DOG, BEAR, GOLDFISH, UNKNOWN = DEFAULT_CLASSES
CHANNELS = ("nature", "dog_office")
NATURE, DOG_OFFICE = CHANNELS

# Per channel: the animal only it shows and its canine (the label of an ambiguous canine there).
CHANNEL_ANIMAL = {NATURE: BEAR, DOG_OFFICE: GOLDFISH}
CHANNEL_CANINE = {NATURE: WOLF, DOG_OFFICE: DOG}
CUE_KINDS = ("bear", "goldfish", "wolf", "dog")  # Event.kind of the events that reveal the channel

APPEARANCE_FRAMES = (12, 36)  # inclusive range of an animal's or distractor's on-screen frames
LEAD_IN_FRAMES = (2, 12)      # empty frames at the start of a scene, before its first cue
FILLER_FRAMES = (4, 30)       # unknown frames after a silhouette (and between a double cue)
DISTRACTOR_WAIT = (0, 20)     # empty frames before each distractor in an unknown stretch
EXTRA_CUE_PROB = 0.25         # a cycle sometimes shows two cues, so the cue count carries no signal
NOISE = 5                     # pixel noise amplitude (uniform, +-)
NOISE_BANK = 8                # noise frames per video, reused in random order (drawing fresh is slow)

# Seed streams: each piece of a video draws from its own generator (see _rng).
_PLAN, _SCENE, _OBJECT, _NOISE = range(4)


# ---------------------------------------------------------------------------------------------------
# The timeline


@dataclass
class Event:
    """One object on screen for frames ``[start, end)``.

    ``kind`` is what is drawn: ``bear``, ``goldfish``, ``wolf`` / ``dog`` (clear canines), ``ambiguous``
    (the silhouette) or ``distractor``; ``label`` is its class (``unknown`` for distractors).
    """

    kind: str
    label: str
    start: int
    end: int
    channel: str
    ambiguous: bool = False


@dataclass
class VideoPlan:
    """A video's timeline: per-frame labels, mask and hidden channel, the events, and the scene cuts."""

    labels: list[str]
    mask: np.ndarray        # uint8 (T,): 1 where the frame alone cannot settle the class
    channel: list[str]
    events: list[Event]
    cuts: list[int] = field(default_factory=list)  # first frame of every scene after the first


def plan_video(cfg: SynthConfig, rng: np.random.Generator) -> VideoPlan:
    """Draw one video's timeline (no rendering): two scenes around a cut, cues, gaps, silhouettes.

    Args:
        cfg: frames, gap range and switch probability.
        rng: the only source of randomness.
    Returns:
        The plan; ``labels``, ``mask`` and ``channel`` have ``cfg.frames`` entries.
    """
    frames = cfg.frames
    cut = int(rng.integers(frames // 3, 2 * frames // 3 + 1))  # somewhere in the middle third
    first = CHANNELS[int(rng.integers(len(CHANNELS)))]
    switch = bool(rng.random() < cfg.switch_prob)
    second = _other(first) if switch else first
    scenes = [(0, cut, first), (cut, frames, second)]

    events: list[Event] = []
    for start, end, channel in scenes:
        events += _plan_scene(start, end, channel, cfg, rng)
    for start, end, channel in scenes:
        events += _plan_distractors(start, end, channel, events, rng)
    events.sort(key=lambda e: e.start)

    labels = [UNKNOWN] * frames
    mask = np.zeros(frames, dtype=np.uint8)
    for e in events:
        labels[e.start:e.end] = [e.label] * (e.end - e.start)
        mask[e.start:e.end] = e.ambiguous
    channel_of = [first] * cut + [second] * (frames - cut)
    return VideoPlan(labels, mask, channel_of, events, [cut])


def video_plan(cfg: SynthConfig, index: int) -> VideoPlan:
    """The plan of video ``index`` of the dataset ``cfg`` describes."""
    return plan_video(cfg, _rng(cfg.seed, index, _PLAN))


def _plan_scene(start: int, end: int, channel: str, cfg: SynthConfig, rng: np.random.Generator) -> list[Event]:
    """Fill one scene with cycles of [cue, gap of unknown, silhouette, unknown filler].

    A scene holds one channel, so a cue never straddles a switch, and the scene's first silhouette
    always follows a cue of the scene's own channel.
    """
    events: list[Event] = []
    t = start + _draw(rng, LEAD_IN_FRAMES)
    while True:
        # Draw every length of the cycle up front, so the number of draws does not depend on what fits.
        cue, gap, silhouette, filler = (_draw(rng, APPEARANCE_FRAMES), _draw(rng, (cfg.gap_min, cfg.gap_max)),
                                        _draw(rng, APPEARANCE_FRAMES), _draw(rng, FILLER_FRAMES))
        extra, extra_filler = _draw(rng, APPEARANCE_FRAMES), _draw(rng, FILLER_FRAMES)
        want_extra = rng.random() < EXTRA_CUE_PROB
        kinds = [_cue_kind(channel, rng) for _ in range(2)]

        cycle = cue + gap + silhouette
        if want_extra and t + extra + extra_filler + cycle <= end:
            events.append(_animal(kinds[1], t, t + extra, channel))
            t += extra + extra_filler
        if t + cycle > end:
            # No room for cue + gap + silhouette: end the scene with a lone cue if it fits.
            if t + cue <= end:
                events.append(_animal(kinds[0], t, t + cue, channel))
            return events
        events.append(_animal(kinds[0], t, t + cue, channel))
        t += cue + gap  # the gap stays empty of animals: distractors only
        events.append(Event("ambiguous", CHANNEL_CANINE[channel], t, t + silhouette, channel, ambiguous=True))
        t += silhouette + filler


def _plan_distractors(start: int, end: int, channel: str, events: Sequence[Event],
                      rng: np.random.Generator) -> list[Event]:
    """Put distractors in the free stretches of one scene (same rule on both channels)."""
    busy = sorted((e.start, e.end) for e in events if start <= e.start < end)
    free, t = [], start
    for a, b in busy:
        free.append((t, a))
        t = b
    free.append((t, end))

    out = []
    for a, b in free:
        t = a
        while True:
            t += _draw(rng, DISTRACTOR_WAIT)
            n = _draw(rng, APPEARANCE_FRAMES)
            if t + n > b:
                break
            out.append(Event("distractor", UNKNOWN, t, t + n, channel))
            t += n
    return out


def _cue_kind(channel: str, rng: np.random.Generator) -> str:
    """A cue of ``channel``: its own animal or its clear canine, half and half on both channels."""
    return CHANNEL_ANIMAL[channel] if rng.random() < 0.5 else CHANNEL_CANINE[channel]


def _animal(kind: str, start: int, end: int, channel: str) -> Event:
    return Event(kind, kind, start, end, channel)


def _other(channel: str) -> str:
    return CHANNELS[1 - CHANNELS.index(channel)]


def _draw(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    """Uniform integer in the inclusive range ``bounds``."""
    return int(rng.integers(bounds[0], bounds[1] + 1))


def _rng(seed: int, index: int, stream: int, *more: int) -> np.random.Generator:
    """The generator of one piece of one video: depends on nothing but its numbers."""
    return np.random.default_rng([seed, index, stream, *more])


# ---------------------------------------------------------------------------------------------------
# What things look like
#
# Colours are chosen so that one frame, even at 32 px, tells the classes apart: brown bear, orange
# goldfish, grey wolf, tan dog, near-black silhouette; distractors are saturated blues, reds, greens,
# purples, pinks and cyans; backgrounds are pale pastels.

BEAR_BROWN, BEAR_MUZZLE = (118, 72, 38), (180, 135, 95)
FISH_ORANGE, FISH_FIN = (250, 128, 18), (255, 185, 70)
WOLF_GREY, WOLF_PALE, WOLF_DARK = (125, 126, 132), (210, 210, 214), (80, 80, 86)
DOG_TAN, DOG_EAR, DOG_COLLAR = (226, 182, 100), (150, 96, 48), (215, 30, 45)
SILHOUETTE = (22, 20, 26)
EYE = (25, 20, 20)
DISTRACTOR_COLOURS = ((40, 90, 220), (220, 40, 60), (40, 165, 70), (150, 60, 200), (240, 90, 180), (30, 185, 200))
LEAF_GREEN, TRUNK, WHEEL = (50, 160, 60), (125, 100, 80), (60, 60, 68)
GLASS, YELLOW, WHITE = (170, 215, 240), (250, 220, 40), (245, 245, 245)

# What each Event.kind draws; "ambiguous" draws the one silhouette, whatever its label.
SHAPE_OF_KIND = {"bear": "bear", "goldfish": "goldfish", "wolf": "wolf", "dog": "dog", "ambiguous": "silhouette"}
DISTRACTOR_SHAPES = ("tree", "car", "ball", "box", "bird", "flower")
# Object side as a fraction of the frame side: labelled objects are large, so one frame is enough.
SCALE = {"bear": (0.45, 0.62), "goldfish": (0.38, 0.55), "wolf": (0.42, 0.6), "dog": (0.42, 0.6),
         "silhouette": (0.42, 0.6), "distractor": (0.28, 0.5)}
HALF_HEIGHT = 0.42  # every shape stays within u in [-0.5, 0.5], v in [-HALF_HEIGHT, HALF_HEIGHT]


@dataclass
class Scene:
    """A background and its lighting: ``gain`` scales RGB, and flickers slowly over time."""

    background: np.ndarray  # uint8 (H, W, 3)
    gain: np.ndarray        # float32 (3,): brightness times a slight colour cast
    flicker: float          # relative amplitude of the slow brightness wave
    period: float           # frames per wave
    phase: float

    def light(self, t: int) -> np.ndarray:
        return self.gain * (1.0 + self.flicker * np.sin(2 * np.pi * t / self.period + self.phase))


@dataclass
class Appearance:
    """How one event looks: a shape moving linearly from pose ``p0`` to ``p1`` (x, y, side in pixels)."""

    shape: str
    start: int
    end: int
    p0: tuple[float, float, float]
    p1: tuple[float, float, float]
    flip: bool
    colour: tuple[int, int, int]
    jitter: tuple[float, ...]  # small per-object variations of proportions, each in [0, 1)

    def pose(self, t: int) -> tuple[float, float, float]:
        a = (t - self.start) / max(1, self.end - self.start - 1)
        return tuple(u + a * (v - u) for u, v in zip(self.p0, self.p1))


def random_scene(size: int, rng: np.random.Generator) -> Scene:
    """A pale background (sky, ground, a few soft props) and its lighting, from the shared pool."""
    sky, sky_low, ground, ground_far = (_pastel(rng) for _ in range(4))
    horizon = int(size * rng.uniform(0.45, 0.75))
    rows = np.empty((size, 3), dtype=np.float32)
    rows[:horizon] = np.linspace(sky, sky_low, horizon)
    rows[horizon:] = np.linspace(ground_far, ground, size - horizon)
    img = Image.fromarray(np.repeat(rows[:, None, :], size, axis=1).round().astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(_draw(rng, (1, 4))):  # clouds, bushes, windows: pale, so they never look like animals
        x, y = rng.uniform(0, size, 2)
        w, h = rng.uniform(0.1, 0.35, 2) * size
        box = (x - w / 2, y - h / 2, x + w / 2, y + h / 2)
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=_pastel(rng))
    gain = rng.uniform(0.75, 1.15) * rng.uniform(0.95, 1.05, 3)
    return Scene(np.asarray(img), gain.astype(np.float32), float(rng.uniform(0.0, 0.08)),
                 float(rng.uniform(80, 300)), float(rng.uniform(0, 2 * np.pi)))


def _pastel(rng: np.random.Generator) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.05, 0.3), rng.uniform(0.78, 0.97))
    return int(r * 255), int(g * 255), int(b * 255)


def appearance_for(event: Event, size: int, rng: np.random.Generator) -> Appearance:
    """Draw how ``event`` looks: shape, path, scale, flip, colour.

    Only ``event.kind`` and its frames are read -- never its label or channel -- so an ambiguous canine
    looks the same whether it is a wolf or a dog.
    """
    if event.kind == "distractor":
        shape = DISTRACTOR_SHAPES[int(rng.integers(len(DISTRACTOR_SHAPES)))]
        colour = DISTRACTOR_COLOURS[int(rng.integers(len(DISTRACTOR_COLOURS)))]
        lo, hi = SCALE["distractor"]
    else:
        shape = SHAPE_OF_KIND[event.kind]
        colour = {"bear": BEAR_BROWN, "goldfish": FISH_ORANGE, "wolf": WOLF_GREY, "dog": DOG_TAN,
                  "silhouette": SILHOUETTE}[shape]
        lo, hi = SCALE[shape]
    # Scale drifts slowly (at most 10% of the frame side); position drifts up to a quarter of it.
    s0 = rng.uniform(lo, hi)
    s1 = float(np.clip(s0 + rng.uniform(-0.1, 0.1), lo, hi))
    side = max(s0, s1) * size
    # Keep the whole object inside the frame along the whole path.
    x_lo, x_hi = 0.5 * side + 1, size - 0.5 * side - 1
    y_lo, y_hi = HALF_HEIGHT * side + 1, size - HALF_HEIGHT * side - 1
    x0, y0 = rng.uniform(x_lo, x_hi), rng.uniform(y_lo, y_hi)
    x1 = float(np.clip(x0 + rng.uniform(-0.25, 0.25) * size, x_lo, x_hi))
    y1 = float(np.clip(y0 + rng.uniform(-0.1, 0.1) * size, y_lo, y_hi))
    flip = bool(rng.random() < 0.5)
    tint = rng.uniform(0.94, 1.06, 3)
    colour = tuple(int(min(255, c * k)) for c, k in zip(colour, tint))
    jitter = tuple(float(v) for v in rng.uniform(0, 1, 4))
    return Appearance(shape, event.start, event.end, (x0, y0, s0 * size), (x1, y1, s1 * size), flip, colour, jitter)


def render_frame(scene: Scene, objects: Sequence[Appearance], t: int, noise: np.ndarray | None = None) -> np.ndarray:
    """Frame ``t``: the scene's background, the objects at their pose at ``t``, lighting, noise.

    Returns:
        uint8 (H, W, 3) RGB.
    """
    img = Image.fromarray(scene.background.copy())
    draw = ImageDraw.Draw(img)
    for obj in objects:
        x, y, side = obj.pose(t)
        DRAWERS[obj.shape](_Pen(draw, x, y, side, obj.flip), obj.colour, obj.jitter)
    frame = np.asarray(img, dtype=np.float32) * scene.light(t)  # (H, W, 3) * (3,)
    if noise is not None:
        frame += noise
    return np.clip(frame, 0, 255).astype(np.uint8)


def render_event_frame(event: Event, t: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """One frame of ``event`` alone on a fresh scene, every random choice taken from ``rng``."""
    scene = random_scene(size, rng)
    obj = appearance_for(event, size, rng)
    return render_frame(scene, [obj], t, _noise_bank(size, rng, 1)[0])


def render_canine(ambiguous: bool, species: str, rng: np.random.Generator, *, size: int = 96, t: int = 0) -> np.ndarray:
    """One frame of a canine labelled ``species`` (wolf or dog): clear, or the ambiguous silhouette.

    With ``ambiguous=True`` the species is only the label: the same ``rng`` state gives the same pixels
    for a wolf and a dog.
    """
    channel = NATURE if species == WOLF else DOG_OFFICE
    event = Event("ambiguous" if ambiguous else species, species, 0, 1, channel, ambiguous)
    return render_event_frame(event, t, size, rng)


def synth_frames(cfg: SynthConfig, index: int, plan: VideoPlan | None = None) -> Iterator[np.ndarray]:
    """Yield the ``cfg.frames`` uint8 (H, W, 3) frames of video ``index``, before encoding.

    ``plan`` replaces the video's own plan (tests render edited plans with the video's looks).
    """
    plan = video_plan(cfg, index) if plan is None else plan
    size, seed = cfg.size, cfg.seed
    scenes = [random_scene(size, _rng(seed, index, _SCENE, k)) for k in range(len(plan.cuts) + 1)]
    objects = [appearance_for(e, size, _rng(seed, index, _OBJECT, i)) for i, e in enumerate(plan.events)]
    noise_rng = _rng(seed, index, _NOISE)
    bank = _noise_bank(size, noise_rng, NOISE_BANK)
    order = noise_rng.integers(0, NOISE_BANK, cfg.frames)

    on_screen: list[list[Appearance]] = [[] for _ in range(cfg.frames)]
    for obj in objects:
        for t in range(obj.start, obj.end):
            on_screen[t].append(obj)
    scene_of = np.searchsorted(plan.cuts, np.arange(cfg.frames), side="right")
    for t in range(cfg.frames):
        yield render_frame(scenes[scene_of[t]], on_screen[t], t, bank[order[t]])


def _noise_bank(size: int, rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(-NOISE, NOISE + 1, (n, size, size, 3)).astype(np.float32)


# ---------------------------------------------------------------------------------------------------
# Drawing primitives. Each shape is drawn in its own unit box: u to the right (mirrored when flipped),
# v downwards, u in [-0.5, 0.5], v in [-HALF_HEIGHT, HALF_HEIGHT]; one unit is the object's side.


class _Pen:
    def __init__(self, draw: ImageDraw.ImageDraw, x: float, y: float, side: float, flip: bool):
        self.draw, self.x, self.y, self.side, self.sign = draw, x, y, side, -1.0 if flip else 1.0

    def _xy(self, u: float, v: float) -> tuple[float, float]:
        return self.x + self.sign * u * self.side, self.y + v * self.side

    def _box(self, u0: float, v0: float, u1: float, v1: float) -> tuple[float, float, float, float]:
        (x0, y0), (x1, y1) = self._xy(u0, v0), self._xy(u1, v1)
        return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)

    def ellipse(self, u0: float, v0: float, u1: float, v1: float, fill) -> None:
        self.draw.ellipse(self._box(u0, v0, u1, v1), fill=fill)

    def rect(self, u0: float, v0: float, u1: float, v1: float, fill) -> None:
        self.draw.rectangle(self._box(u0, v0, u1, v1), fill=fill)

    def polygon(self, points: Sequence[tuple[float, float]], fill) -> None:
        self.draw.polygon([self._xy(u, v) for u, v in points], fill=fill)

    def line(self, points: Sequence[tuple[float, float]], fill, width: float) -> None:
        self.draw.line([self._xy(u, v) for u, v in points], fill=fill, width=max(1, round(width * self.side)),
                       joint="curve")


def _canine_body(pen: _Pen, colour, j: Sequence[float]) -> None:
    """Legs, body, neck and head that wolf, dog and silhouette share (facing right)."""
    leg_end = 0.34 + 0.06 * j[0]
    for u in (-0.28, -0.17, 0.08, 0.18):
        pen.rect(u - 0.035, 0.0, u + 0.035, leg_end, colour)
    pen.ellipse(-0.38, -0.14, 0.24, 0.14, colour)                               # body
    pen.polygon([(0.10, -0.06), (0.24, -0.26), (0.36, -0.16), (0.22, 0.06)], colour)  # neck
    pen.ellipse(0.20, -0.32, 0.40, -0.12, colour)                               # head


def draw_wolf(pen: _Pen, colour, j) -> None:
    """Grey, tall pointy ears, long snout, pale belly, bushy tail hanging down."""
    pen.polygon([(-0.34, -0.08), (-0.50, 0.12), (-0.44, 0.26), (-0.28, 0.04)], colour)   # bushy tail
    _canine_body(pen, colour, j)
    pen.ellipse(-0.26, 0.02, 0.12, 0.14, WOLF_PALE)                                    # belly
    pen.polygon([(0.36, -0.27), (0.50, -0.19), (0.49, -0.13), (0.34, -0.13)], colour)   # long snout
    pen.polygon([(0.36, -0.19), (0.49, -0.16), (0.34, -0.13)], WOLF_PALE)
    pen.polygon([(0.21, -0.26), (0.23, -0.42), (0.30, -0.29)], colour)                  # pointy ears
    pen.polygon([(0.28, -0.29), (0.33, -0.42), (0.37, -0.26)], colour)
    pen.polygon([(0.235, -0.28), (0.24, -0.37), (0.28, -0.29)], WOLF_DARK)
    pen.ellipse(0.31, -0.25, 0.345, -0.215, EYE)


def draw_dog(pen: _Pen, colour, j) -> None:
    """Tan, floppy dark ears, short snout, red collar, thin tail curled up."""
    pen.line([(-0.34, -0.04), (-0.45, -0.16), (-0.42, -0.30)], colour, 0.05)          # curled tail
    _canine_body(pen, colour, j)
    pen.ellipse(0.36, -0.25, 0.47, -0.15, colour)                                    # short snout
    pen.ellipse(0.43, -0.25, 0.48, -0.20, EYE)                                       # nose
    pen.ellipse(0.18, -0.30, 0.28, -0.08, DOG_EAR)                                   # floppy ear
    pen.polygon([(0.14, -0.10), (0.25, -0.20), (0.31, -0.12), (0.21, -0.01)], DOG_COLLAR)  # collar
    pen.ellipse(0.31, -0.26, 0.345, -0.225, EYE)


def draw_silhouette(pen: _Pen, colour, j) -> None:
    """The ambiguous canine: one near-black shape, medium ears, medium tail; no species detail."""
    pen.polygon([(-0.34, -0.08), (-0.49, -0.02), (-0.47, 0.06), (-0.32, 0.03)], colour)   # tail
    _canine_body(pen, colour, j)
    pen.polygon([(0.36, -0.26), (0.48, -0.20), (0.47, -0.14), (0.34, -0.13)], colour)   # snout
    pen.polygon([(0.22, -0.27), (0.25, -0.37), (0.31, -0.28)], colour)                  # ears
    pen.polygon([(0.29, -0.28), (0.33, -0.37), (0.37, -0.25)], colour)


def draw_bear(pen: _Pen, colour, j) -> None:
    """Big brown body with a shoulder hump, thick legs, round head, round ears, pale muzzle."""
    leg_end = 0.36 + 0.05 * j[0]
    for u in (-0.33, -0.18, 0.06, 0.20):
        pen.rect(u - 0.055, 0.05, u + 0.055, leg_end, colour)
    pen.ellipse(-0.48, -0.22, 0.26, 0.24, colour)            # body
    pen.ellipse(-0.18, -0.30, 0.10, -0.02, colour)           # hump
    pen.ellipse(0.12, -0.31, 0.42, -0.02, colour)            # head
    pen.ellipse(0.12, -0.40, 0.22, -0.27, colour)            # round ears
    pen.ellipse(0.28, -0.41, 0.38, -0.28, colour)
    pen.ellipse(0.30, -0.19, 0.48, -0.04, BEAR_MUZZLE)        # muzzle
    pen.ellipse(0.43, -0.17, 0.49, -0.11, EYE)                # nose
    pen.ellipse(0.27, -0.22, 0.31, -0.18, EYE)


def draw_goldfish(pen: _Pen, colour, j) -> None:
    """Orange oval body, forked tail, dorsal and belly fins, big eye."""
    spread = 0.22 + 0.06 * j[0]
    pen.polygon([(-0.22, 0.0), (-0.50, -spread), (-0.40, 0.0), (-0.50, spread)], FISH_FIN)  # forked tail
    pen.polygon([(-0.10, -0.16), (0.02, -0.34), (0.20, -0.16)], FISH_FIN)                 # dorsal fin
    pen.polygon([(0.00, 0.14), (0.06, 0.30), (0.16, 0.14)], FISH_FIN)                     # belly fin
    pen.ellipse(-0.30, -0.20, 0.44, 0.20, colour)                                        # body
    pen.ellipse(0.22, -0.11, 0.34, 0.01, WHITE)                                          # eye
    pen.ellipse(0.26, -0.08, 0.32, -0.02, EYE)
    pen.line([(0.14, -0.12), (0.10, 0.0), (0.14, 0.12)], FISH_FIN, 0.03)                  # gill


def draw_tree(pen: _Pen, colour, j) -> None:
    pen.rect(-0.06, 0.0, 0.06, 0.42, TRUNK)
    green = LEAF_GREEN if j[0] < 0.5 else colour  # sometimes a green, sometimes a toy-coloured crown
    for du, dv in ((-0.14, -0.12), (0.14, -0.12), (0.0, -0.24)):
        pen.ellipse(du - 0.2, dv - 0.17, du + 0.2, dv + 0.17, green)


def draw_car(pen: _Pen, colour, j) -> None:
    pen.polygon([(-0.26, -0.06), (-0.16, -0.28), (0.16, -0.28), (0.30, -0.06)], colour)  # cabin
    pen.polygon([(-0.20, -0.08), (-0.13, -0.24), (0.13, -0.24), (0.23, -0.08)], GLASS)
    pen.rect(-0.48, -0.08, 0.48, 0.20, colour)                                          # body
    pen.ellipse(-0.38, 0.08, -0.16, 0.30, WHEEL)
    pen.ellipse(0.16, 0.08, 0.38, 0.30, WHEEL)
    pen.ellipse(0.40, -0.04, 0.47, 0.04, YELLOW)                                        # head lamp


def draw_ball(pen: _Pen, colour, j) -> None:
    pen.ellipse(-0.40, -0.40, 0.40, 0.40, colour)
    pen.rect(-0.38, -0.07, 0.38, 0.07, WHITE)
    pen.ellipse(-0.22, -0.30, -0.08, -0.16, WHITE)  # shine


def draw_box(pen: _Pen, colour, j) -> None:
    h = 0.25 + 0.12 * j[0]
    pen.rect(-0.42, -h, 0.42, 0.35, colour)
    pen.rect(-0.46, -h - 0.06, 0.46, -h + 0.06, WHITE)  # lid
    pen.rect(-0.05, -h, 0.05, 0.35, YELLOW)             # ribbon


def draw_bird(pen: _Pen, colour, j) -> None:
    pen.polygon([(-0.22, 0.0), (-0.46, -0.10), (-0.44, 0.10)], colour)      # tail
    pen.ellipse(-0.28, -0.14, 0.20, 0.16, colour)                           # body
    pen.ellipse(0.08, -0.28, 0.32, -0.04, colour)                           # head
    pen.polygon([(0.30, -0.20), (0.46, -0.14), (0.30, -0.10)], YELLOW)      # beak
    pen.polygon([(-0.16, -0.04), (0.06, -0.02), (-0.20, -0.34 + 0.1 * j[1])], WHITE)  # wing
    pen.ellipse(0.20, -0.20, 0.25, -0.15, EYE)


def draw_flower(pen: _Pen, colour, j) -> None:
    pen.line([(0.0, 0.0), (0.0, 0.42)], LEAF_GREEN, 0.06)
    pen.ellipse(0.0, 0.16, 0.22, 0.28, LEAF_GREEN)
    for k in range(6):
        a = 2 * np.pi * (k / 6 + j[0])
        du, dv = 0.2 * np.cos(a), -0.16 + 0.2 * np.sin(a)
        pen.ellipse(du - 0.1, dv - 0.1, du + 0.1, dv + 0.1, colour)
    pen.ellipse(-0.09, -0.25, 0.09, -0.07, YELLOW)


DRAWERS: dict[str, Callable[[_Pen, tuple, Sequence[float]], None]] = {
    "bear": draw_bear, "goldfish": draw_goldfish, "wolf": draw_wolf, "dog": draw_dog,
    "silhouette": draw_silhouette, "tree": draw_tree, "car": draw_car, "ball": draw_ball,
    "box": draw_box, "bird": draw_bird, "flower": draw_flower,
}


# ---------------------------------------------------------------------------------------------------
# Writing the dataset (docs/formats.md section 1)


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
    with VideoWriter(root / "videos" / f"{stem}.mp4", cfg.fps, cfg.size, cfg.size) as writer:
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
    if cfg.size < 16 or cfg.size % 2:
        raise ConfigError(f"synth.size: {cfg.size} must be even and at least 16")
    if not 1 <= cfg.gap_min <= cfg.gap_max:
        raise ConfigError(f"synth.gap_min: need 1 <= gap_min <= gap_max, got {cfg.gap_min} and {cfg.gap_max}")
