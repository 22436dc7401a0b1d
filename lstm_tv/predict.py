"""Streaming prediction: frames in, per-frame class probabilities out, in constant memory.

The one streaming step of lstm-tv lives here: :func:`stream_logits` feeds consecutive chunks of a
video through the model, carrying the memory state from chunk to chunk. Validation during training,
``evaluate``, ``predict`` and ``explain`` all use it, so what training measures is what users get.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np
import torch

from lstm_tv.model.classifier import FrameClassifier


@torch.inference_mode()
def stream_logits(model: FrameClassifier, chunks: Iterable[np.ndarray | torch.Tensor],
                  device: torch.device) -> Iterator[torch.Tensor]:
    """Yield logits (T_chunk, K) on the CPU for each chunk of uint8 frames (T_chunk, H, W, 3).

    The memory state is carried from one chunk to the next, so the result equals one forward over
    the whole video, while only one chunk is ever held.
    """
    state = None
    for chunk in chunks:
        frames = torch.as_tensor(chunk).to(device, non_blocking=True)
        logits, state = model(frames[None], state)  # (1, T, H, W, 3) -> (1, T, K)
        yield logits[0].float().cpu()


def array_chunks(frames: np.ndarray, chunk: int) -> Iterator[np.ndarray]:
    """Consecutive slices of ``chunk`` frames of an (memory-mapped) array, copied into memory."""
    for start in range(0, len(frames), chunk):
        yield np.array(frames[start:start + chunk])
