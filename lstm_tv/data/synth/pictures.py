"""The ``pictures`` style: real emoji artwork over textured scenes, 160x120 by default.

Each labelled kind has several pictures in two designs (:mod:`lstm_tv.data.synth.artwork`: Twemoji,
CC BY 4.0, and OpenMoji, CC BY-SA 4.0): wolf faces; dogs, dog faces, poodles, guide and service dogs;
bear faces, pandas and a polar bear; fish, tropical fish and blowfish. Every object is drawn at its own
scale, position, drift, tilt and mirroring, over a scene of a colour gradient, soft texture noise and
translucent shapes. Distractors are fifteen other emoji (trees, flowers, toys, vehicles, a cat, a
rabbit, a horse, a bird...) in both designs.

The ambiguous canine is the near-black silhouette of one wolf or dog picture, chosen by
:func:`appearance_for` from ``Event.kind`` alone -- the pool holds every canine picture and the draw
never reads the label or the channel -- so its pixels are the same whether it is labelled wolf or dog.
"""

from __future__ import annotations

import colorsys
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from lstm_tv.data.synth.artwork import PICTURES, silhouette, sprite
from lstm_tv.data.synth.look import Motion, Scene, Style, lit
from lstm_tv.data.synth.plan import Event, draw_int

SILHOUETTE = (22, 20, 26)  # near-black: no species colour survives
# Object side (its longer extent) as a fraction of the frame's short side.
SCALE = {"animal": (0.45, 0.8), "distractor": (0.25, 0.55)}
TILT = 20    # degrees: each object is drawn tilted by up to this, either way
NOISE = 8    # pixel noise amplitude (uniform, +-)


@dataclass
class Appearance(Motion):
    """How one event looks: which picture, dark or in colour, mirrored or not, tilted by ``angle`` degrees."""

    design: str
    code: str
    dark: bool
    flip: bool
    angle: int


def random_scene(width: int, height: int, rng: np.random.Generator) -> Scene:
    """A gradient between two colours, soft texture noise and translucent shapes, and its lighting.

    Colours are never dark (HSV value >= 0.5), so a silhouette always stands out from the scene.
    """
    c0, c1 = np.array(_colour(rng), np.float32), np.array(_colour(rng), np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = xx * np.cos(angle) + yy * np.sin(angle)
    ramp = (ramp - ramp.min()) / max(1e-6, float(ramp.max() - ramp.min()))
    img = c0 + (c1 - c0) * ramp[..., None]  # (H, W, 1) * (3,) -> (H, W, 3)

    # Soft texture: coarse noise, smoothly enlarged to the frame.
    cells = draw_int(rng, (3, 9))
    coarse = rng.uniform(-1, 1, (cells, cells, 3))
    texture = Image.fromarray(((coarse + 1) * 127.5).astype(np.uint8))
    texture = texture.resize((width, height), Image.Resampling.BILINEAR)
    img += (np.asarray(texture, np.float32) / 127.5 - 1) * rng.uniform(5, 25)

    canvas = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).convert("RGBA")
    for _ in range(draw_int(rng, (2, 8))):
        canvas = Image.alpha_composite(canvas, _translucent_shape(width, height, rng))
    gain = rng.uniform(0.8, 1.15) * rng.uniform(0.95, 1.05, 3)
    return Scene(np.asarray(canvas.convert("RGB")), gain.astype(np.float32), float(rng.uniform(0.0, 0.08)),
                 float(rng.uniform(80, 300)), float(rng.uniform(0, 2 * np.pi)))


def _translucent_shape(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """One ellipse, rectangle, triangle or thick line in a light colour, 25-70% opaque, on a clear layer."""
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    fill = (*_colour(rng), int(rng.uniform(0.25, 0.7) * 255))
    x, y = rng.uniform(0, width), rng.uniform(0, height)
    w, h = rng.uniform(0.05, 0.45, 2) * min(width, height)
    kind = int(rng.integers(4))
    if kind == 0:
        draw.ellipse((x - w, y - h, x + w, y + h), fill=fill)
    elif kind == 1:
        draw.rectangle((x - w, y - h, x + w, y + h), fill=fill)
    elif kind == 2:
        draw.polygon([(x + dx * w, y + dy * h) for dx, dy in rng.uniform(-1, 1, (3, 2))], fill=fill)
    else:
        draw.line((x - w, y - h, x + w, y + h), fill=fill, width=max(1, int(rng.uniform(0.02, 0.08) * height)))
    return layer


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.1, 0.7), rng.uniform(0.5, 0.97))
    return int(r * 255), int(g * 255), int(b * 255)


def appearance_for(event: Event, width: int, height: int, rng: np.random.Generator) -> Appearance:
    """Draw how ``event`` looks: picture, path, scale, mirroring, tilt.

    Only ``event.kind`` and its frames are read -- never its label or channel -- so an ambiguous canine
    looks the same whether it is a wolf or a dog.
    """
    pool = PICTURES[event.kind]
    design, code = pool[int(rng.integers(len(pool)))]
    lo, hi = SCALE["distractor" if event.kind == "distractor" else "animal"]
    # Scale drifts by up to 15% of the short side; position by up to 30% of the width, 15% of the height.
    short = min(width, height)
    s0 = rng.uniform(lo, hi)
    s1 = float(np.clip(s0 + rng.uniform(-0.15, 0.15), lo, hi))
    half = max(s0, s1) * short / 2
    # The picture fits a square of its side, so the whole of it stays inside the frame along the path.
    x_lo, x_hi, y_lo, y_hi = half + 1, width - half - 1, half + 1, height - half - 1
    x0, y0 = rng.uniform(x_lo, x_hi), rng.uniform(y_lo, y_hi)
    x1 = float(np.clip(x0 + rng.uniform(-0.3, 0.3) * width, x_lo, x_hi))
    y1 = float(np.clip(y0 + rng.uniform(-0.15, 0.15) * height, y_lo, y_hi))
    flip = bool(rng.random() < 0.5)
    angle = round(float(rng.uniform(-TILT, TILT)))
    return Appearance(event.start, event.end, (x0, y0, s0 * short), (x1, y1, s1 * short), design, code,
                      event.kind == "ambiguous", flip, angle)


@functools.lru_cache(maxsize=256)  # a moving object needs a few dozen sizes
def placed(design: str, code: str, dark: bool, flip: bool, angle: int, side: int) -> Image.Image:
    """The RGBA picture as drawn: dark or in colour, mirrored, tilted, and fitted into a ``side`` square."""
    img = silhouette(design, code, SILHOUETTE) if dark else sprite(design, code)
    if flip:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    img = img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    scale = side / max(img.size)
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.LANCZOS)


def render_frame(scene: Scene, objects: Sequence[Appearance], t: int, noise: np.ndarray | None = None) -> np.ndarray:
    """Frame ``t``: the scene, the pictures at their pose at ``t``, lighting, noise.

    Returns:
        uint8 (H, W, 3) RGB.
    """
    img = Image.fromarray(scene.background.copy())
    for obj in objects:
        x, y, side = obj.pose(t)
        pic = placed(obj.design, obj.code, obj.dark, obj.flip, obj.angle, max(4, round(side)))
        img.paste(pic, (round(x - pic.width / 2), round(y - pic.height / 2)), pic)
    return lit(img, scene, t, noise)


STYLE = Style(random_scene, appearance_for, render_frame, NOISE)
