"""The drawn animals and props of the ``shapes`` style: one function per shape, in a unit box.

Each shape is drawn in its own unit box: u to the right (mirrored when flipped), v downwards,
u in [-0.5, 0.5], v in [-HALF_HEIGHT, HALF_HEIGHT]; one unit is the object's side.

Colours are chosen so that one frame, even at 32 px, tells the classes apart: brown bear, orange
goldfish, grey wolf, tan dog, near-black silhouette; distractors are saturated blues, reds, greens,
purples, pinks and cyans; backgrounds are pale pastels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import ImageDraw

BEAR_BROWN, BEAR_MUZZLE = (118, 72, 38), (180, 135, 95)
FISH_ORANGE, FISH_FIN = (250, 128, 18), (255, 185, 70)
WOLF_GREY, WOLF_PALE, WOLF_DARK = (125, 126, 132), (210, 210, 214), (80, 80, 86)
DOG_TAN, DOG_EAR, DOG_COLLAR = (226, 182, 100), (150, 96, 48), (215, 30, 45)
SILHOUETTE = (22, 20, 26)
EYE = (25, 20, 20)
DISTRACTOR_COLOURS = ((40, 90, 220), (220, 40, 60), (40, 165, 70), (150, 60, 200), (240, 90, 180), (30, 185, 200))
LEAF_GREEN, TRUNK, WHEEL = (50, 160, 60), (125, 100, 80), (60, 60, 68)
GLASS, YELLOW, WHITE = (170, 215, 240), (250, 220, 40), (245, 245, 245)
HALF_HEIGHT = 0.42  # every shape stays within u in [-0.5, 0.5], v in [-HALF_HEIGHT, HALF_HEIGHT]


class Pen:
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


def _canine_body(pen: Pen, colour, j: Sequence[float]) -> None:
    """Legs, body, neck and head that wolf, dog and silhouette share (facing right)."""
    leg_end = 0.34 + 0.06 * j[0]
    for u in (-0.28, -0.17, 0.08, 0.18):
        pen.rect(u - 0.035, 0.0, u + 0.035, leg_end, colour)
    pen.ellipse(-0.38, -0.14, 0.24, 0.14, colour)                               # body
    pen.polygon([(0.10, -0.06), (0.24, -0.26), (0.36, -0.16), (0.22, 0.06)], colour)  # neck
    pen.ellipse(0.20, -0.32, 0.40, -0.12, colour)                               # head


def draw_wolf(pen: Pen, colour, j) -> None:
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


def draw_dog(pen: Pen, colour, j) -> None:
    """Tan, floppy dark ears, short snout, red collar, thin tail curled up."""
    pen.line([(-0.34, -0.04), (-0.45, -0.16), (-0.42, -0.30)], colour, 0.05)          # curled tail
    _canine_body(pen, colour, j)
    pen.ellipse(0.36, -0.25, 0.47, -0.15, colour)                                    # short snout
    pen.ellipse(0.43, -0.25, 0.48, -0.20, EYE)                                       # nose
    pen.ellipse(0.18, -0.30, 0.28, -0.08, DOG_EAR)                                   # floppy ear
    pen.polygon([(0.14, -0.10), (0.25, -0.20), (0.31, -0.12), (0.21, -0.01)], DOG_COLLAR)  # collar
    pen.ellipse(0.31, -0.26, 0.345, -0.225, EYE)


def draw_silhouette(pen: Pen, colour, j) -> None:
    """The ambiguous canine: one near-black shape, medium ears, medium tail; no species detail."""
    pen.polygon([(-0.34, -0.08), (-0.49, -0.02), (-0.47, 0.06), (-0.32, 0.03)], colour)   # tail
    _canine_body(pen, colour, j)
    pen.polygon([(0.36, -0.26), (0.48, -0.20), (0.47, -0.14), (0.34, -0.13)], colour)   # snout
    pen.polygon([(0.22, -0.27), (0.25, -0.37), (0.31, -0.28)], colour)                  # ears
    pen.polygon([(0.29, -0.28), (0.33, -0.37), (0.37, -0.25)], colour)


def draw_bear(pen: Pen, colour, j) -> None:
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


def draw_goldfish(pen: Pen, colour, j) -> None:
    """Orange oval body, forked tail, dorsal and belly fins, big eye."""
    spread = 0.22 + 0.06 * j[0]
    pen.polygon([(-0.22, 0.0), (-0.50, -spread), (-0.40, 0.0), (-0.50, spread)], FISH_FIN)  # forked tail
    pen.polygon([(-0.10, -0.16), (0.02, -0.34), (0.20, -0.16)], FISH_FIN)                 # dorsal fin
    pen.polygon([(0.00, 0.14), (0.06, 0.30), (0.16, 0.14)], FISH_FIN)                     # belly fin
    pen.ellipse(-0.30, -0.20, 0.44, 0.20, colour)                                        # body
    pen.ellipse(0.22, -0.11, 0.34, 0.01, WHITE)                                          # eye
    pen.ellipse(0.26, -0.08, 0.32, -0.02, EYE)
    pen.line([(0.14, -0.12), (0.10, 0.0), (0.14, 0.12)], FISH_FIN, 0.03)                  # gill


def draw_tree(pen: Pen, colour, j) -> None:
    pen.rect(-0.06, 0.0, 0.06, 0.42, TRUNK)
    green = LEAF_GREEN if j[0] < 0.5 else colour  # sometimes a green, sometimes a toy-coloured crown
    for du, dv in ((-0.14, -0.12), (0.14, -0.12), (0.0, -0.24)):
        pen.ellipse(du - 0.2, dv - 0.17, du + 0.2, dv + 0.17, green)


def draw_car(pen: Pen, colour, j) -> None:
    pen.polygon([(-0.26, -0.06), (-0.16, -0.28), (0.16, -0.28), (0.30, -0.06)], colour)  # cabin
    pen.polygon([(-0.20, -0.08), (-0.13, -0.24), (0.13, -0.24), (0.23, -0.08)], GLASS)
    pen.rect(-0.48, -0.08, 0.48, 0.20, colour)                                          # body
    pen.ellipse(-0.38, 0.08, -0.16, 0.30, WHEEL)
    pen.ellipse(0.16, 0.08, 0.38, 0.30, WHEEL)
    pen.ellipse(0.40, -0.04, 0.47, 0.04, YELLOW)                                        # head lamp


def draw_ball(pen: Pen, colour, j) -> None:
    pen.ellipse(-0.40, -0.40, 0.40, 0.40, colour)
    pen.rect(-0.38, -0.07, 0.38, 0.07, WHITE)
    pen.ellipse(-0.22, -0.30, -0.08, -0.16, WHITE)  # shine


def draw_box(pen: Pen, colour, j) -> None:
    h = 0.25 + 0.12 * j[0]
    pen.rect(-0.42, -h, 0.42, 0.35, colour)
    pen.rect(-0.46, -h - 0.06, 0.46, -h + 0.06, WHITE)  # lid
    pen.rect(-0.05, -h, 0.05, 0.35, YELLOW)             # ribbon


def draw_bird(pen: Pen, colour, j) -> None:
    pen.polygon([(-0.22, 0.0), (-0.46, -0.10), (-0.44, 0.10)], colour)      # tail
    pen.ellipse(-0.28, -0.14, 0.20, 0.16, colour)                           # body
    pen.ellipse(0.08, -0.28, 0.32, -0.04, colour)                           # head
    pen.polygon([(0.30, -0.20), (0.46, -0.14), (0.30, -0.10)], YELLOW)      # beak
    pen.polygon([(-0.16, -0.04), (0.06, -0.02), (-0.20, -0.34 + 0.1 * j[1])], WHITE)  # wing
    pen.ellipse(0.20, -0.20, 0.25, -0.15, EYE)


def draw_flower(pen: Pen, colour, j) -> None:
    pen.line([(0.0, 0.0), (0.0, 0.42)], LEAF_GREEN, 0.06)
    pen.ellipse(0.0, 0.16, 0.22, 0.28, LEAF_GREEN)
    for k in range(6):
        a = 2 * np.pi * (k / 6 + j[0])
        du, dv = 0.2 * np.cos(a), -0.16 + 0.2 * np.sin(a)
        pen.ellipse(du - 0.1, dv - 0.1, du + 0.1, dv + 0.1, colour)
    pen.ellipse(-0.09, -0.25, 0.09, -0.07, YELLOW)


DRAWERS: dict[str, Callable[[Pen, tuple, Sequence[float]], None]] = {
    "bear": draw_bear, "goldfish": draw_goldfish, "wolf": draw_wolf, "dog": draw_dog,
    "silhouette": draw_silhouette, "tree": draw_tree, "car": draw_car, "ball": draw_ball,
    "box": draw_box, "bird": draw_bird, "flower": draw_flower,
}
