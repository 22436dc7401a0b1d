"""Temporally consistent augmentation: one random zoom, rotation, flip and colour change per clip, applied to whole batches.

Every frame of a clip gets the same transform, so motion and memory cues stay intact (a per-frame
random crop would make objects jump from frame to frame). The work is split in two:

* :meth:`ClipAugment.draw` picks one clip's transform (a few numbers) in the data loader, from a numpy
  Generator the caller seeds per (seed, epoch, clip): a clip is augmented the same way whichever loader
  worker draws it, so runs repeat and resume exactly.
* :meth:`ClipAugment.apply` transforms a whole batch at once in the training process (on its device):
  one ``affine_grid``/``grid_sample`` for every zoom, rotation and flip, one multiply-add for every colour change.

Augmenting clip by clip in the loader cost ~0.8 ms per single-frame clip (1,260 frames/s on 2 cores,
slower than the encoder trains); batched, the same work is a few milliseconds per batch.

Zooming out as well as in, and rotating, show the encoder each picture it trains on at more sizes and
angles than its few appearances hold: on 30 training videos, test frames whose picture the training split
shows 3-5 times were misread 16% of the time with crops that only magnify, 14% with this, and pictures
shown 6+ times 9.8% and 4.7% (docs/benchmarks.md, thirteenth round).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

PARAMS = 10  # one clip's transform: top, left, box height, box width, flip, gain R, G, B, contrast, angle


@dataclass(frozen=True)
class ClipAugment:
    """Random zoom (a box of ``scale`` times the frame's area, drawn log-uniformly: below 1 a crop that
    magnifies, above 1 a box larger than the frame that shrinks it, its border filled with the frame's mean
    colour), aspect ``ratio`` times the frame's, rotation by up to ``rotate`` degrees either way,
    horizontal flip, brightness/contrast/tint, per clip. ``scale`` and ``rotate`` have no defaults here:
    ``train.zoom`` and ``train.rotate`` hold them (:meth:`from_config`)."""

    scale: tuple[float, float]
    rotate: float
    ratio: tuple[float, float] = (0.85, 1.18)
    flip: float = 0.5
    brightness: float = 0.25
    contrast: float = 0.25
    tint: float = 0.08

    @classmethod
    def from_config(cls, train) -> "ClipAugment | None":
        """The augmentation ``train`` (a ``TrainConfig``) asks for: its zoom and rotation, or None when
        ``train.augment`` is off."""
        return cls(scale=tuple(train.zoom), rotate=train.rotate) if train.augment else None

    def draw(self, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
        """One clip's transform for frames of ``h`` x ``w`` pixels: a float32 vector of :data:`PARAMS` numbers."""
        area = h * w * math.exp(rng.uniform(math.log(self.scale[0]), math.log(self.scale[1])))
        # Log-uniform: zooming in by 1.2 is as likely as zooming out by 1.2. ``ratio`` is relative to the
        # frame's own aspect, so a 4:3 frame gets boxes near 4:3 (not squares stretched back to 4:3).
        aspect = math.exp(rng.uniform(math.log(self.ratio[0]), math.log(self.ratio[1]))) * w / h
        cw = int(round(math.sqrt(area * aspect)))
        ch = int(round(math.sqrt(area / aspect)))
        # A box smaller than the frame lies inside it; a larger one holds the whole frame.
        top = int(rng.integers(min(0, h - ch), max(0, h - ch) + 1))
        left = int(rng.integers(min(0, w - cw), max(0, w - cw) + 1))
        flip = float(rng.random() < self.flip)
        gain = rng.uniform(1 - self.brightness, 1 + self.brightness) * rng.uniform(1 - self.tint, 1 + self.tint, 3)
        contrast = rng.uniform(1 - self.contrast, 1 + self.contrast)
        angle = math.radians(rng.uniform(-self.rotate, self.rotate))
        return np.array([top, left, ch, cw, flip, *gain, contrast, angle], dtype=np.float32)

    @staticmethod
    def apply(frames: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """Augment a batch of clips: uint8 frames (B, L, H, W, 3) with one transform per clip (B, PARAMS)
        from :meth:`draw`; returns new uint8 frames of the same shape, on the same device."""
        b, length, h, w, _ = frames.shape
        p = params.to(device=frames.device, dtype=torch.float32)
        top, left, ch, cw, flip = p[:, 0], p[:, 1], p[:, 2], p[:, 3], p[:, 4]
        # The box in grid_sample's coordinates (-1..1 across the frame): output (x, y) is rotated about
        # the box's centre (in pixels, hence the h/w factors), mirrored when flipped, then scaled to the
        # box's half-sides and moved to its centre. The default box of at most 2x the frame's area shrinks
        # by at most 1.41x: bilinear sampling without antialiasing stays mild at that factor.
        cos, sin, sign = torch.cos(p[:, 9]), torch.sin(p[:, 9]), 1 - 2 * flip
        theta = torch.zeros(b, 2, 3, device=frames.device)
        theta[:, 0, 0] = cw / w * sign * cos
        theta[:, 0, 1] = -cw / w * sign * sin * h / w
        theta[:, 0, 2] = (2 * left + cw) / w - 1
        theta[:, 1, 0] = ch / h * sin * w / h
        theta[:, 1, 1] = ch / h * cos
        theta[:, 1, 2] = (2 * top + ch) / h - 1
        theta = theta.repeat_interleave(length, dim=0)  # (B, 2, 3) -> (B*L, 2, 3): one transform per clip
        x = frames.reshape(b * length, h, w, 3).permute(0, 3, 1, 2).float()  # (B*L, 3, H, W)
        grid = F.affine_grid(theta, [b * length, 3, h, w], align_corners=False)  # (B*L, H, W, 2): x, y
        # Outside the frame: its mean colour (zero padding of the frame less its mean). Black would look
        # like a silhouette's dark pixels; repeating the border would smear edge objects.
        fill = x.mean(dim=(2, 3), keepdim=True)  # (B*L, 3, 1, 1)
        x = F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill
        gain = p[:, 5:8].repeat_interleave(length, dim=0).view(b * length, 3, 1, 1)
        contrast = p[:, 8].repeat_interleave(length, dim=0).view(b * length, 1, 1, 1)
        x = ((x * gain - 128.0) * contrast + 128.0).clamp_(0, 255).round_()
        return x.to(torch.uint8).permute(0, 2, 3, 1).reshape(b, length, h, w, 3)  # back to (B, L, H, W, 3)
