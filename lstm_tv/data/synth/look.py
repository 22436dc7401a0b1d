"""What every style of synthetic video is made of: a lit scene, objects moving across it, a style's three functions.

A style turns a plan (:mod:`lstm_tv.data.synth.plan`) into pixels. It must draw an ambiguous canine
from ``Event.kind`` alone -- never from its label or channel -- so that its pixels cannot tell a wolf
from a dog; :mod:`lstm_tv.data.synth.render` runs any style the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from lstm_tv.data.synth.plan import Event


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
class Motion:
    """An object on screen for frames ``[start, end)``, moving linearly from pose ``p0`` to ``p1``.

    A pose is ``(x, y, side)`` in pixels: the object's centre and its size.
    """

    start: int
    end: int
    p0: tuple[float, float, float]
    p1: tuple[float, float, float]

    def pose(self, t: int) -> tuple[float, float, float]:
        a = (t - self.start) / max(1, self.end - self.start - 1)
        return tuple(u + a * (v - u) for u, v in zip(self.p0, self.p1, strict=True))


@dataclass(frozen=True)
class Style:
    """One look of the synthetic videos.

    Attributes:
        random_scene: ``(width, height, rng) -> Scene``, drawn from one pool for both channels.
        appearance_for: ``(event, width, height, rng) -> Motion``: how ``event`` looks, read from its
            kind and frames only.
        render_frame: ``(scene, objects, t, noise) -> uint8 (H, W, 3)``: frame ``t`` with ``objects``.
        noise: amplitude of the per-frame pixel noise (uniform, +-).
    """

    random_scene: Callable[[int, int, np.random.Generator], Scene]
    appearance_for: Callable[[Event, int, int, np.random.Generator], Motion]
    render_frame: Callable[[Scene, Sequence[Motion], int, np.ndarray | None], np.ndarray]
    noise: int


def lit(img: np.ndarray, scene: Scene, t: int, noise: np.ndarray | None) -> np.ndarray:
    """``img`` (H, W, 3) under the scene's light at frame ``t``, plus ``noise``, as uint8."""
    frame = np.asarray(img, dtype=np.float32) * scene.light(t)  # (H, W, 3) * (3,)
    if noise is not None:
        frame += noise
    return np.clip(frame, 0, 255).astype(np.uint8)
