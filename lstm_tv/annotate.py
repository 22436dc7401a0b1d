"""The annotated video of ``predict --annotate``: each frame with its label, confidence and probability bars."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from lstm_tv.stream import PredictedChunk


class Annotator:
    """Draw each frame's label, confidence and per-class probability bars; write an MP4.

    The panel sits in the top-left corner, scaled to the frame height, over a darkened background.
    """

    def __init__(self, path: str | Path, classes: Sequence[str], colours: list[tuple[int, int, int]],
                 fps: float, width: int, height: int) -> None:
        from PIL import ImageFont  # Pillow only when a video is annotated

        from lstm_tv.data.video import VideoWriter

        self.classes, self.colours = classes, colours
        self.row = max(10, height // 24)  # row height in pixels
        try:
            self.font = ImageFont.load_default(size=max(8, int(self.row * 0.8)))
        except (TypeError, OSError, ImportError):  # Pillow without FreeType: the fixed bitmap font
            self.font = ImageFont.load_default()
        self.panel = (min(width, max(8 * self.row, width // 3)),
                      min(height, (len(classes) + 1) * self.row + self.row // 2))
        self.writer = VideoWriter(path, fps=fps, width=width, height=height)

    def draw(self, frame: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """Draw the panel onto ``frame`` (H, W, 3) uint8 in place and return it."""
        from PIL import Image, ImageDraw  # Pillow only when a video is annotated

        pw, ph = self.panel
        region = frame[:ph, :pw]
        img = Image.fromarray((region * 0.35).astype(np.uint8))  # darken under the panel
        draw = ImageDraw.Draw(img)
        r, pad = self.row, max(2, self.row // 5)
        best = int(probs.argmax())
        draw.text((pad, 0), f"{self.classes[best]} {probs[best]:.0%}", fill=self.colours[best], font=self.font)
        name_w = int(pw * 0.45)
        for k, (name, p) in enumerate(zip(self.classes, probs, strict=True)):
            y = (k + 1) * r + pad
            draw.text((pad, y - pad), name, fill=(230, 230, 230), font=self.font)
            bar = int((pw - name_w - pad) * float(p))
            draw.rectangle((name_w, y, name_w + bar, y + r - 2 * pad), fill=self.colours[k])
        region[:] = np.asarray(img)
        return frame

    def write(self, chunk: PredictedChunk) -> None:
        assert chunk.originals is not None  # predict_video(originals=True)
        for frame, probs in zip(chunk.originals, chunk.probs, strict=True):
            self.writer.write(self.draw(frame, probs))

    def __enter__(self) -> "Annotator":
        return self

    def __exit__(self, *exc) -> None:
        self.writer.__exit__(*exc)  # finished video renamed into place, or the partial one removed
