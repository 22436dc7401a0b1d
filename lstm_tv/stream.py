"""The streaming step and what feeds it: frames in, per-frame class probabilities out, in constant memory.

:func:`stream_step` feeds one chunk of consecutive frames through the model and returns the memory state
to pass with the next chunk. Validation during training and ``evaluate`` (:func:`stream_logits`),
``predict`` and ``explain`` (:func:`predict_video`) all use it, so what training measures is what users get.

A video is a pipeline of generators, as in ultralytics' predictor::

    decode_chunks   PyAV decode (background thread, :func:`prefetch`), frames resized inside FFmpeg -> DecodedChunk
      -> predict_video   encoder on the whole chunk, memory cell with the state carried            -> PredictedChunk

Only one chunk (``batch`` frames) is held at a time, so memory does not grow with the video's length.
:func:`load_model` is the one way a command gets a model for inference from a checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, TypeVar

import numpy as np
import torch

from lstm_tv.checkpoint import CheckpointRecord, load_record
from lstm_tv.errors import CheckpointError, LstmTvError
from lstm_tv.model.cells import State
from lstm_tv.model.classifier import FrameClassifier

DEFAULT_CHECKPOINT = Path("runs/latest/best.ckpt")  # what `train` points runs/latest at
DEFAULT_BATCH = 64  # decoded frames per chunk: big enough to batch the encoder well, small in memory
ORIGINALS_BUDGET = 48 * 2**20  # bytes of full-size frames per chunk when annotating: 8 frames of 1080p, 72 of 360p

Item = TypeVar("Item")

# ---------------------------------------------------------------------------------------------------
# The streaming step


@torch.inference_mode()
def stream_step(model: FrameClassifier, frames: np.ndarray | torch.Tensor, state: State | None,
                device: torch.device) -> tuple[torch.Tensor, State]:
    """Run one chunk of consecutive frames of one video through the model.

    Args:
        model: the classifier, in eval mode.
        frames: uint8 (T, H, W, 3) RGB frames at the model's size.
        state: what this function returned for the previous chunk; None at the start of the video.
        device: where the model runs.

    Returns:
        ``(logits, state)``: logits (T, K) float32 on the CPU, and the memory after the last frame
        (on ``device``) to pass with the next chunk.
    """
    x = torch.as_tensor(frames).to(device, non_blocking=True)
    logits, state = model(x[None], state)  # (1, T, H, W, 3) -> (1, T, K)
    return logits[0].float().cpu(), state


def stream_logits(model: FrameClassifier, chunks: Iterable[np.ndarray | torch.Tensor],
                  device: torch.device) -> Iterator[torch.Tensor]:
    """Yield logits (T_chunk, K) on the CPU for each chunk of uint8 frames (T_chunk, H, W, 3).

    The memory state is carried from one chunk to the next, so the result equals one forward over
    the whole video, while only one chunk is ever held.
    """
    state = None
    for chunk in chunks:
        logits, state = stream_step(model, chunk, state, device)
        yield logits


@torch.inference_mode()
def stream_embeddings(model: FrameClassifier, embeddings: torch.Tensor, chunk: int) -> torch.Tensor:
    """Logits (T, K) on the CPU for a video already encoded (T, F): the memory and head streamed over
    chunks with the state carried, as :func:`stream_logits` does after the encoder."""
    state, out = None, []
    for part in embeddings.split(chunk):
        logits, state = model.forward_embeddings(part[None], state)  # (1, T, F) -> (1, T, K)
        out.append(logits[0].float().cpu())
    return torch.cat(out)


@torch.inference_mode()
def logits_alone(model: FrameClassifier, embeddings: torch.Tensor, chunk: int) -> torch.Tensor:
    """Logits (T, K) on the CPU for each frame of an encoded video (T, F) on its own: the memory starts
    empty at every frame, as the joint phase trains it on single-frame clips."""
    out = [model.forward_embeddings(part[:, None])[0][:, 0].float().cpu()  # (T, 1, F) -> (T, 1, K) -> (T, K)
           for part in embeddings.split(chunk)]
    return torch.cat(out)


def array_chunks(frames: np.ndarray, chunk: int) -> Iterator[np.ndarray]:
    """Consecutive slices of ``chunk`` frames of an (memory-mapped) array, copied into memory."""
    for start in range(0, len(frames), chunk):
        yield np.array(frames[start:start + chunk])


# ---------------------------------------------------------------------------------------------------
# Decoding


@dataclass
class DecodedChunk:
    """Consecutive decoded frames of one video.

    Attributes:
        start: index of the first frame in the video (decode order, from 0).
        frames: uint8 (T, H, W, 3) RGB frames resized for the model.
        times: (T,) seconds since the first frame.
        originals: uint8 (T, H, W, 3) the same frames at the video's own size, when asked for.
    """

    start: int
    frames: np.ndarray
    times: np.ndarray
    originals: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.times)


def decode_chunks(path: str | Path, size: tuple[int, int], batch: int, *, originals: bool = False,
                  max_bytes: int = ORIGINALS_BUDGET) -> Iterator[DecodedChunk]:
    """Decode a video into chunks of ``batch`` frames, resized to ``size`` (W, H) inside FFmpeg.

    With ``originals``, a chunk also ends once its full-size frames reach ``max_bytes`` (a 1080p
    frame is 6 MB), so memory stays bounded at any resolution; the model's results do not depend
    on where chunks end.

    The model's frames are converted exactly as ``prepare`` converts training frames (FFmpeg area
    resize from the decoded picture, as :func:`lstm_tv.data.video.read_frames` does). With
    ``originals`` each decoded picture is also converted at its own size -- one decode, two
    conversions -- so an annotated video shows the very frames the model saw, at full resolution.

    Raises:
        VideoError: missing, empty, not a video, or undecodable (naming the file and the frame).
    """
    from lstm_tv.data.video import decode_frames

    small: list[np.ndarray] = []
    big: list[np.ndarray] = []
    times: list[float] = []
    index = 0

    def chunk() -> DecodedChunk:
        out = DecodedChunk(index - len(times), np.stack(small), np.asarray(times, dtype=np.float64),
                           np.stack(big) if originals else None)
        small.clear(), big.clear(), times.clear()
        return out

    for frame in decode_frames(path, size, original=originals):
        small.append(frame.rgb)
        if originals:
            big.append(frame.original)
        times.append(frame.time)
        index += 1
        if len(times) == batch or (originals and len(big) * big[0].nbytes >= max_bytes):
            yield chunk()
    if times:
        yield chunk()


class _End:
    """What the prefetch thread sends last: nothing (done) or the exception that stopped it."""

    def __init__(self, error: BaseException | None = None):
        self.error = error


def prefetch(items: Iterable[Item], depth: int = 2) -> Iterator[Item]:
    """Iterate ``items`` in a background thread, keeping at most ``depth`` items ready.

    Decoding (FFmpeg releases the GIL) then overlaps with inference (so does PyTorch). An exception
    in the thread is raised here; leaving this generator early stops and joins the thread.
    """
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not put(item):
                    return
            put(_End())
        except BaseException as e:  # handed to the consumer, raised there
            put(_End(e))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()  # a generator closes its video here, in the thread that runs it

    thread = threading.Thread(target=work, name="lstm-tv-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        thread.join()


# ---------------------------------------------------------------------------------------------------
# Prediction


@dataclass
class PredictedChunk:
    """Predictions for consecutive decoded frames of one video.

    Attributes:
        start: index of the first frame in the video.
        times: (T,) seconds since the first frame.
        probs: (T, K) float32 class probabilities (:func:`probabilities` of the logits).
        originals: uint8 (T, H, W, 3) frames at the video's size, when :func:`predict_video` was
            asked for them (to annotate).
    """

    start: int
    times: np.ndarray
    probs: np.ndarray
    originals: np.ndarray | None = None
    # Abstaining (issue 13): a frame whose top probability is below min_confidence is labelled `background`.
    min_confidence: float = 0.0
    background: int = 0

    def __len__(self) -> int:
        return len(self.times)

    @property
    def labels(self) -> np.ndarray:
        """(T,) predicted class index per frame: the top class, or ``background`` where the model abstains."""
        return abstain(self.probs, self.min_confidence, self.background)

    @property
    def confidence(self) -> np.ndarray:
        """(T,) probability of the predicted class."""
        return self.probs.max(axis=1)

    @property
    def frame_numbers(self) -> np.ndarray:
        """(T,) each frame's number: consecutive from ``start`` here; a live chunk may have holes."""
        return self.start + np.arange(len(self.times))

    @property
    def after_gap(self) -> bool:
        """Whether a gap (a live source reconnected, the model's memory reset) comes before this chunk."""
        return False


# --- calibration and abstention (issue 13) ---------------------------------------------------------


def probabilities(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Calibrated class probabilities ``softmax(logits / T)`` over the last axis: the one place that turns
    a model's logits into probabilities for predict, explain and evaluate (T: the checkpoint's temperature)."""
    return torch.softmax(logits.float() / temperature, dim=-1)


def abstain(probs: np.ndarray, min_confidence: float, background: int) -> np.ndarray:
    """(T,) labels of (T, K) probabilities: the top class, or ``background`` where the top probability
    is below ``min_confidence`` (kept when equal, as :func:`lstm_tv.scores.risk_coverage` keeps it)."""
    labels = probs.argmax(axis=1)
    if min_confidence > 0:
        labels[probs.max(axis=1) < min_confidence] = background
    return labels

# --- end of calibration and abstention ------------------------------------------------------------


def predict_video(model: FrameClassifier, path: str | Path, size: tuple[int, int], device: torch.device, *,
                  batch: int = DEFAULT_BATCH, stride: int = 1, originals: bool = False,
                  background_decode: bool = True, temperature: float = 1.0, min_confidence: float = 0.0,
                  background: int = 0) -> Iterator[PredictedChunk]:
    """Stream a video through the model: one :class:`PredictedChunk` per ``batch`` decoded frames.

    Args:
        model: the classifier, in eval mode, on ``device``.
        path: the video.
        size: the model's frame (width, height) (the checkpoint's ``size``).
        device: where the model runs.
        batch: decoded frames per chunk (memory use is proportional to it, never to the video).
        stride: run the model on every ``stride``-th frame only (frames 0, N, 2N, ...) and give the
            frames between the prediction of the last frame it ran on. The memory cell then sees
            every N-th frame, i.e. time runs N times faster than in training.
        originals: also return every frame at the video's own size (for ``--annotate``).
        background_decode: decode in a background thread, overlapping decoding and inference.
        temperature: divides the logits before the softmax (the checkpoint's calibrated temperature).
        min_confidence, background: label frames whose top probability is below ``min_confidence``
            with the class index ``background`` (the probabilities stay as they are).

    Yields:
        Chunks in order, covering every decoded frame exactly once.

    Raises:
        VideoError: the video cannot be opened or decoded.
    """
    if batch < 1 or stride < 1:
        raise ValueError(f"batch and stride must be >= 1, got {batch} and {stride}")
    chunks: Iterable[DecodedChunk] = decode_chunks(path, size, batch, originals=originals)
    if background_decode:
        chunks = prefetch(chunks)
    state: State | None = None
    last: np.ndarray | None = None  # (K,) probabilities of the last frame the model ran on
    for chunk in chunks:
        n = len(chunk)
        run = np.flatnonzero((chunk.start + np.arange(n)) % stride == 0)  # frames the model sees
        if len(run):
            frames = chunk.frames if len(run) == n else chunk.frames[run]
            logits, state = stream_step(model, frames, state, device)
            computed = probabilities(logits, temperature).numpy()  # (R, K)
        else:
            computed = np.zeros((0, model.num_classes), np.float32)
        if len(run) == n:
            probs = computed
        else:
            # Every frame takes the latest computed frame at or before it: row k of [last, computed...].
            table = computed if last is None else np.concatenate([last[None], computed])
            source = np.searchsorted(run, np.arange(n), side="right") - (1 if last is None else 0)
            probs = table[source]  # frame 0 of a video is always computed, so source >= 0
        if len(run):
            last = computed[-1]
        yield PredictedChunk(chunk.start, chunk.times, probs, chunk.originals, min_confidence, background)


# ---------------------------------------------------------------------------------------------------
# Loading a model for inference


def resolve_checkpoint(path: str | Path | None) -> Path:
    """``path``, or the latest run's best checkpoint when None (a clear error if there is none)."""
    if path is not None:
        return Path(path)
    if not DEFAULT_CHECKPOINT.exists():
        raise CheckpointError(f"{DEFAULT_CHECKPOINT}: checkpoint not found (no --checkpoint given, so the latest "
                              f"run's best is used); train a model first (lstm-tv train) or pass --checkpoint")
    return DEFAULT_CHECKPOINT


def load_model(path: str | Path, device: torch.device) -> tuple[CheckpointRecord, FrameClassifier]:
    """Load a checkpoint safely and rebuild its model in eval mode on ``device``: the one loader for inference.

    Raises:
        CheckpointError: missing, corrupt, crafted, incompatible, or without a usable frame size/classes
            (checked by :func:`~lstm_tv.checkpoint.load_checkpoint`).
    """
    record = load_record(path)
    return record, record.build_model().to(device).eval()


def open_for_inference(checkpoint: str | Path | None, device: str, *, batch: int
                       ) -> tuple[Path, CheckpointRecord, FrameClassifier, torch.device]:
    """What ``predict`` and ``explain`` do before touching a video: check ``--batch``, find the checkpoint
    (the latest run's best when None), pick the device, load the model onto it.

    Returns:
        ``(checkpoint path, record, model in eval mode on the device, device)``.

    Raises:
        LstmTvError: a batch below 1, or (CheckpointError) a missing or unusable checkpoint.
    """
    from lstm_tv.distributed import resolve_device

    if batch < 1:
        raise LstmTvError(f"--batch {batch}: must be at least 1 frame")
    path = resolve_checkpoint(checkpoint)
    dev = resolve_device(device)
    record, model = load_model(path, dev)
    return path, record, model, dev


@contextlib.contextmanager
def threads_beside_decoding(device: torch.device) -> Iterator[None]:
    """Leave one CPU core to the decoding thread while a file is predicted: the model's torch threads
    are cores - 1 (at least 1). Measured on 2 cores, 3,600 frames of 640x360 H.264 (docs/benchmarks.md):
    ~425 frames/s with 1 torch thread against ~360 with 2, which fight the decoder for the same cores."""
    before = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(max(1, min(before, (os.cpu_count() or 2) - 1)))
    try:
        yield
    finally:
        torch.set_num_threads(before)

