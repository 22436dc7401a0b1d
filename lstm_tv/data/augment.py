"""Temporally consistent augmentation: one random crop, flip and colour change per clip.

Every frame of a clip gets the same transform, so motion and memory cues stay intact (a per-frame
random crop would make objects jump from frame to frame). Geometry uses torchvision.transforms.v2's
functional ops on the whole clip at once; colour uses a per-channel lookup table (brightness,
contrast, tint), which costs one table lookup per byte — torchvision's ColorJitter on uint8 clips
was 10-60x slower here and would have made the loader the bottleneck.

Randomness comes from a numpy Generator the caller seeds per (seed, epoch, clip), so a clip is
augmented the same way whichever loader worker draws it — runs repeat and resume exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class ClipAugment:
    """Random resized crop (area ``scale``, aspect ``ratio`` times the frame's), horizontal flip,
    brightness/contrast/tint, per clip."""

    scale: tuple[float, float] = (0.7, 1.0)
    ratio: tuple[float, float] = (0.85, 1.18)
    flip: float = 0.5
    brightness: float = 0.25
    contrast: float = 0.25
    tint: float = 0.08

    def __call__(self, frames: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Augment uint8 frames (L, H, W, 3); returns a new uint8 tensor of the same shape."""
        # Deferred: importing torchvision takes seconds, and only a training step augments; the
        # commands that merely read datasets (evaluate, predict, bench's reports) never need it.
        from torchvision.transforms.v2 import functional as TF

        length, h, w, _ = frames.shape
        x = frames.permute(0, 3, 1, 2)  # (L, H, W, 3) -> (L, 3, H, W) view, channels-last strides
        top, left, ch, cw = self._crop_box(h, w, rng)
        x = TF.resized_crop(x, top, left, ch, cw, [h, w], antialias=True)
        if rng.random() < self.flip:
            x = TF.horizontal_flip(x)
        x = x.permute(0, 2, 3, 1).contiguous()  # back to (L, H, W, 3)
        return torch.from_numpy(self._colour(x.numpy(), rng))

    def _crop_box(self, h: int, w: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
        area = h * w * rng.uniform(*self.scale)
        # ``ratio`` is relative to the frame's own aspect, so a 4:3 frame gets crops near 4:3 (not squares
        # stretched back to 4:3).
        aspect = math.exp(rng.uniform(math.log(self.ratio[0]), math.log(self.ratio[1]))) * w / h
        cw = int(round(min(w, math.sqrt(area * aspect))))
        ch = int(round(min(h, math.sqrt(area / aspect))))
        top = int(rng.integers(0, h - ch + 1))
        left = int(rng.integers(0, w - cw + 1))
        return top, left, ch, cw

    def _colour(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        gain = rng.uniform(1 - self.brightness, 1 + self.brightness) * rng.uniform(1 - self.tint, 1 + self.tint, 3)
        contrast = rng.uniform(1 - self.contrast, 1 + self.contrast)
        levels = np.arange(256, dtype=np.float32)[:, None]  # (256, 1)
        lut = np.clip((levels * gain - 128.0) * contrast + 128.0, 0, 255).astype(np.uint8)  # (256, 3)
        out = np.empty_like(x)
        pixels, result = x.reshape(-1, 3), out.reshape(-1, 3)  # (N, 3) views
        for c in range(3):
            np.take(lut[:, c], pixels[:, c], out=result[:, c])  # no temporary index array
        return out
