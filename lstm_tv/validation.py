"""Streaming a model over a split's videos into metrics: training's validation, ``evaluate`` and ``bench``.

Every video is streamed exactly as ``predict`` streams it (:mod:`lstm_tv.stream`: chunks of frames,
the memory state carried from chunk to chunk, the encoder in full precision), so what training
measures is what users get.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from lstm_tv.metrics import FrameMetrics
from lstm_tv.model.classifier import FrameClassifier
from lstm_tv.stream import array_chunks, stream_embeddings, stream_logits

EVAL_CHUNK = 256  # frames per streamed chunk (memory, not results, depends on it)


def evaluate_model(model: FrameClassifier, data, videos, device: torch.device, *, chunk: int = EVAL_CHUNK,
                   dist=None, progress=None, embeddings=None,
                   on_video: Callable[[object, np.ndarray], None] | None = None) -> FrameMetrics:
    """Stream each video of ``videos`` through ``model`` exactly as prediction does; accumulate metrics.

    Args:
        model: a ``FrameClassifier`` (put in eval mode here, its training mode restored after).
        data: the ``PreparedDataset`` the videos belong to.
        videos: the ``VideoRecord``s to evaluate.
        device: where the model runs.
        chunk: frames per streamed chunk (memory, not results, depends on it).
        dist: a ``Dist`` context: each rank evaluates every ``world``-th video and the ranks' metrics
            are combined, giving the same totals as one process.
        progress: called with ``(done, total, stem)`` after each video.
        embeddings: the videos' frame embeddings (T, F), one per video, when the encoder is frozen
            and they were computed already: only the memory and head then run (same result).
        on_video: called with ``(video, pred)`` for each video this process evaluated, ``pred`` the
            (T,) predicted class per frame (for measures of its own, as bench's cue distances).

    Returns:
        The combined :class:`~lstm_tv.metrics.FrameMetrics` (call ``compute(class_names)`` for the report).
    """
    was_training = model.training
    model.eval()
    metrics = FrameMetrics(len(data.classes), data.classes.index(data.background))
    pairs = list(zip(videos, embeddings if embeddings is not None else [None] * len(videos), strict=False))
    mine = pairs[dist.rank::dist.world] if dist is not None else pairs
    with model.full_precision():  # the encoder's precision of evaluate and predict
        for i, (video, emb) in enumerate(mine):
            if emb is not None:
                logits = stream_embeddings(model, emb, chunk)
            else:
                logits = torch.cat(list(stream_logits(model, array_chunks(data.frames(video), chunk), device)))
            pred = logits.argmax(-1).numpy()
            metrics.update(pred, data.labels(video), data.mask(video))
            if on_video is not None:
                on_video(video, pred)
            if progress:
                progress(i + 1, len(mine), video.stem)
    model.train(was_training)
    if dist is not None and dist.active:
        metrics = FrameMetrics.from_states(dist.all_gather(metrics.state()))
    return metrics


@torch.no_grad()
def encode_videos(model: FrameClassifier, data, videos, device: torch.device, bar,
                  chunk: int = EVAL_CHUNK) -> list[torch.Tensor]:
    """Encode every frame of ``videos`` once, as evaluate and predict encode them (eval mode, full
    precision, no augmentation): one (T, F) float32 tensor per video, for :func:`evaluate_model`'s
    ``embeddings`` and the memory phase of training."""
    model.eval()
    out = []
    with model.full_precision():
        for i, video in enumerate(videos):
            chunks = array_chunks(data.frames(video), chunk)
            parts = [model.encode(torch.from_numpy(c).to(device)[None])[0] for c in chunks]
            out.append(torch.cat(parts).float())  # chunks of (T_chunk, F) -> (T, F)
            bar.update(i + 1, len(videos), f"encoding {video.stem}")
    return out
