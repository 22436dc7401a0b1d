"""Streaming a model over a split's videos into metrics: training's validation, ``evaluate`` and ``bench``.

Every video is streamed exactly as ``predict`` streams it (:mod:`lstm_tv.stream`: chunks of frames,
the memory state carried from chunk to chunk, the encoder in full precision), so what training
measures is what users get.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch

from lstm_tv.calibration import fit_temperature, temperature_nll
from lstm_tv.metrics import FrameMetrics
from lstm_tv.model.classifier import FrameClassifier
from lstm_tv.scores import FrameScores
from lstm_tv.stream import array_chunks, logits_alone, probabilities, stream_embeddings, stream_logits

EVAL_CHUNK = 256  # frames per streamed chunk (memory, not results, depends on it)


def stream_videos(model: FrameClassifier, data, videos, device: torch.device, *, chunk: int = EVAL_CHUNK,
                  embeddings=None, alone: bool = False) -> Iterator[tuple[object, torch.Tensor]]:
    """Yield ``(video, logits)`` for each video, logits (T, K) float32 on the CPU, streamed exactly as
    ``predict`` streams a video (chunks, the memory state carried, eval mode, the encoder in full precision).

    Args:
        embeddings: the videos' frame embeddings (T, F), one per video, when the encoder is frozen
            and they were computed already: only the memory and head then run (same result).
        alone: each frame on its own instead (:func:`~lstm_tv.stream.logits_alone`; needs ``embeddings``).
    """
    was_training = model.training
    model.eval()
    try:
        with model.full_precision():  # the encoder's precision of evaluate and predict
            for i, video in enumerate(videos):
                if alone:
                    yield video, logits_alone(model, embeddings[i], chunk)
                elif embeddings is not None:
                    yield video, stream_embeddings(model, embeddings[i], chunk)
                else:
                    yield video, torch.cat(list(stream_logits(model, array_chunks(data.frames(video), chunk), device)))
    finally:
        model.train(was_training)


def evaluate_model(model: FrameClassifier, data, videos, device: torch.device, *, chunk: int = EVAL_CHUNK,
                   dist=None, progress=None, embeddings=None,
                   on_video: Callable[[object, np.ndarray], None] | None = None,
                   scores: FrameScores | None = None, temperature: float = 1.0, alone: bool = False) -> FrameMetrics:
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
        scores: also add each video's calibrated probabilities (``softmax(logits / temperature)``) to
            this :class:`~lstm_tv.scores.FrameScores` (AP, ECE, NLL, ...); single process only.
        temperature: the checkpoint's temperature, for ``scores``.
        alone: classify each frame on its own, the memory empty (needs ``embeddings``): how well the
            encoder and head do without the memory, which the joint phase follows.

    Returns:
        The combined :class:`~lstm_tv.metrics.FrameMetrics` (call ``compute(class_names)`` for the report).
    """
    if scores is not None and dist is not None and dist.active:
        raise ValueError("probability scores are pooled in one process; evaluate without torchrun")
    metrics = FrameMetrics(len(data.classes), data.classes.index(data.background))
    pairs = list(zip(range(len(videos)), videos, strict=True))
    mine = pairs[dist.rank::dist.world] if dist is not None else pairs
    mine_embeddings = [embeddings[i] for i, _ in mine] if embeddings is not None else None
    streamed = stream_videos(model, data, [v for _, v in mine], device, chunk=chunk, embeddings=mine_embeddings,
                             alone=alone)
    for i, (video, logits) in enumerate(streamed):
        pred, truth = logits.argmax(-1).numpy(), data.labels(video)
        metrics.update(pred, truth, data.mask(video))
        if scores is not None:
            scores.add(truth, pred, probs=probabilities(logits, temperature).numpy(), fps=video.fps, name=video.stem)
        if on_video is not None:
            on_video(video, pred)
        if progress:
            progress(i + 1, len(mine), video.stem)
    if dist is not None and dist.active:
        metrics = FrameMetrics.from_states(dist.all_gather(metrics.state()))
    return metrics


def calibrate(model: FrameClassifier, data, videos, device: torch.device, *, chunk: int = EVAL_CHUNK,
              progress=None) -> tuple[float, float, float]:
    """Fit the temperature of ``model`` by NLL on the logits of ``videos`` (streamed as validation streams them).

    Returns:
        ``(T, NLL at T = 1, NLL at T)``, the NLLs per frame over the videos' frames.
    """
    logits, labels = [], []
    for i, (video, video_logits) in enumerate(stream_videos(model, data, videos, device, chunk=chunk)):
        logits.append(video_logits.numpy())
        labels.append(np.asarray(data.labels(video)))
        if progress:
            progress(i + 1, len(videos), video.stem)
    z, y = np.concatenate(logits), np.concatenate(labels)  # every video's (T, K) -> (N, K)
    temperature = fit_temperature(z, y)
    return temperature, temperature_nll(z, y), temperature_nll(z, y, temperature)


@torch.no_grad()
def encode_videos(model: FrameClassifier, data, videos, device: torch.device, bar,
                  chunk: int = EVAL_CHUNK, stride: int = 1) -> list[torch.Tensor]:
    """Encode every ``stride``-th frame of ``videos`` once, as evaluate and predict encode them (eval
    mode, full precision, no augmentation): one (T / stride, F) float32 tensor per video, for
    :func:`evaluate_model`'s ``embeddings``, the memory phase of training and :func:`frames_alone`."""
    model.eval()
    out = []
    with model.full_precision():
        for i, video in enumerate(videos):
            # A strided view of the memory map: only the frames encoded are read.
            chunks = array_chunks(data.frames(video)[::stride], chunk)
            parts = [model.encode(torch.from_numpy(c).to(device)[None])[0] for c in chunks]
            out.append(torch.cat(parts).float())  # chunks of (T_chunk, F) -> (T, F)
            bar.update(i + 1, len(videos), f"encoding {video.stem}")
    return out


@torch.no_grad()
def frames_alone(model: FrameClassifier, data, videos, device: torch.device, bar, *, stride: int = 1,
                 dist=None, chunk: int = EVAL_CHUNK) -> FrameMetrics:
    """Metrics of every ``stride``-th frame of ``videos`` classified on its own, the memory empty (what
    the joint phase's single-frame clips train), the frames encoded by :func:`encode_videos`.

    Adjacent frames of a video are nearly alike, so a stride of a few frames measures nearly the same
    accuracy at that fraction of the encoding, the costly part of validating. With ``dist`` each rank
    takes every ``world``-th video and the ranks' metrics are combined, as :func:`evaluate_model` does.
    """
    mine = videos[dist.rank::dist.world] if dist is not None else videos
    metrics = FrameMetrics(len(data.classes), data.classes.index(data.background))
    was_training = model.training
    try:
        embeddings = encode_videos(model, data, mine, device, bar, chunk, stride)  # leaves the model in eval mode
        for video, video_embeddings in zip(mine, embeddings, strict=True):
            pred = logits_alone(model, video_embeddings, chunk).argmax(-1).numpy()
            mask = data.mask(video)
            metrics.update(pred, data.labels(video)[::stride], None if mask is None else mask[::stride])
    finally:
        model.train(was_training)  # also when a read fails: the caller's next training step expects train mode
    if dist is not None and dist.active:
        metrics = FrameMetrics.from_states(dist.all_gather(metrics.state()))
    return metrics
