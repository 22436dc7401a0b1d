"""The ``shapes`` style: drawn animals over pale pastel scenes, small and fast (the default).

Clear canines are drawn differently for the two species -- a grey wolf with pointy ears and a bushy
tail, a tan dog with floppy ears and a red collar -- and the ambiguous canine is one near-black
silhouette drawn by the same code whatever its label (:func:`appearance_for` reads ``Event.kind`` only).
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from lstm_tv.data.synth.look import Motion, Scene, Style, lit
from lstm_tv.data.synth.plan import Event, draw_int
from lstm_tv.data.synth.shapes_draw import (
    BEAR_BROWN,
    DISTRACTOR_COLOURS,
    DOG_TAN,
    DRAWERS,
    FISH_ORANGE,
    HALF_HEIGHT,
    SILHOUETTE,
    WOLF_GREY,
    Pen,
)

# What each Event.kind draws; "ambiguous" draws the one silhouette, whatever its label.
SHAPE_OF_KIND = {"bear": "bear", "goldfish": "goldfish", "wolf": "wolf", "dog": "dog", "ambiguous": "silhouette"}
DISTRACTOR_SHAPES = ("tree", "car", "ball", "box", "bird", "flower")
COLOUR_OF_SHAPE = {"bear": BEAR_BROWN, "goldfish": FISH_ORANGE, "wolf": WOLF_GREY, "dog": DOG_TAN,
                   "silhouette": SILHOUETTE}
# Object side as a fraction of the frame's short side: labelled objects are large, so one frame is enough.
SCALE = {"bear": (0.45, 0.62), "goldfish": (0.38, 0.55), "wolf": (0.42, 0.6), "dog": (0.42, 0.6),
         "silhouette": (0.42, 0.6), "distractor": (0.28, 0.5)}
NOISE = 5  # pixel noise amplitude (uniform, +-)


@dataclass
class Appearance(Motion):
    """How one event looks: a shape, mirrored or not, in one colour, with small variations."""

    shape: str
    flip: bool
    colour: tuple[int, int, int]
    jitter: tuple[float, ...]  # small per-object variations of proportions, each in [0, 1)


def random_scene(width: int, height: int, rng: np.random.Generator) -> Scene:
    """A pale background (sky, ground, a few soft props) and its lighting, from the shared pool."""
    sky, sky_low, ground, ground_far = (_pastel(rng) for _ in range(4))
    horizon = int(height * rng.uniform(0.45, 0.75))
    rows = np.empty((height, 3), dtype=np.float32)
    rows[:horizon] = np.linspace(sky, sky_low, horizon)
    rows[horizon:] = np.linspace(ground_far, ground, height - horizon)
    img = Image.fromarray(np.repeat(rows[:, None, :], width, axis=1).round().astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(draw_int(rng, (1, 4))):  # clouds, bushes, windows: pale, so they never look like animals
        x, y = rng.uniform(0, (width, height))
        w, h = rng.uniform(0.1, 0.35, 2) * (width, height)
        box = (x - w / 2, y - h / 2, x + w / 2, y + h / 2)
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=_pastel(rng))
    gain = rng.uniform(0.75, 1.15) * rng.uniform(0.95, 1.05, 3)
    return Scene(np.asarray(img), gain.astype(np.float32), float(rng.uniform(0.0, 0.08)),
                 float(rng.uniform(80, 300)), float(rng.uniform(0, 2 * np.pi)))


def _pastel(rng: np.random.Generator) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.05, 0.3), rng.uniform(0.78, 0.97))
    return int(r * 255), int(g * 255), int(b * 255)


def appearance_for(event: Event, width: int, height: int, rng: np.random.Generator) -> Appearance:
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
        colour = COLOUR_OF_SHAPE[shape]
        lo, hi = SCALE[shape]
    # Scale drifts slowly (at most 10% of the short side); position drifts up to a quarter of the width.
    short = min(width, height)
    s0 = rng.uniform(lo, hi)
    s1 = float(np.clip(s0 + rng.uniform(-0.1, 0.1), lo, hi))
    side = max(s0, s1) * short
    # Keep the whole object inside the frame along the whole path.
    x_lo, x_hi = 0.5 * side + 1, width - 0.5 * side - 1
    y_lo, y_hi = HALF_HEIGHT * side + 1, height - HALF_HEIGHT * side - 1
    x0, y0 = rng.uniform(x_lo, x_hi), rng.uniform(y_lo, y_hi)
    x1 = float(np.clip(x0 + rng.uniform(-0.25, 0.25) * width, x_lo, x_hi))
    y1 = float(np.clip(y0 + rng.uniform(-0.1, 0.1) * height, y_lo, y_hi))
    flip = bool(rng.random() < 0.5)
    tint = rng.uniform(0.94, 1.06, 3)
    colour = tuple(int(min(255, c * k)) for c, k in zip(colour, tint, strict=True))
    jitter = tuple(float(v) for v in rng.uniform(0, 1, 4))
    return Appearance(event.start, event.end, (x0, y0, s0 * short), (x1, y1, s1 * short), shape, flip, colour,
                      jitter)


def render_frame(scene: Scene, objects: Sequence[Appearance], t: int, noise: np.ndarray | None = None) -> np.ndarray:
    """Frame ``t``: the scene's background, the objects at their pose at ``t``, lighting, noise.

    Returns:
        uint8 (H, W, 3) RGB.
    """
    img = Image.fromarray(scene.background.copy())
    draw = ImageDraw.Draw(img)
    for obj in objects:
        x, y, side = obj.pose(t)
        DRAWERS[obj.shape](Pen(draw, x, y, side, obj.flip), obj.colour, obj.jitter)
    return lit(img, scene, t, noise)


STYLE = Style(random_scene, appearance_for, render_frame, NOISE)
