"""Reading and writing video with PyAV (FFmpeg bundled in its wheels).

``read_frames`` is a generator: it holds one frame at a time, so memory does not grow with the video.
Frames come out in decode order (frame index = position in the stream), as RGB ``uint8`` arrays of
shape (H, W, 3), optionally resized inside FFmpeg (about twice as fast as resizing afterwards), each
with its time in seconds from the first frame (from the frame's pts, so variable frame rates work).

Every failure to open or decode raises ``VideoError`` naming the file and the reason.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, NamedTuple

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from lstm_tv.errors import VideoError
from lstm_tv.fileio import temp_path_beside

MIN_SIDE = 16    # pixels: smaller frames carry too little to classify, even upscaled
MIN_FRAMES = 2   # a per-frame model with memory needs a sequence
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv", ".flv", ".ogv")


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video's first video stream (``frames`` is 0 when unknown)."""

    path: str
    width: int
    height: int
    fps: float
    frames: int
    duration: float


def _open(path: str | Path):
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: video not found")
    if path.is_dir():
        raise VideoError(f"{path}: is a directory, not a video")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file (0 bytes), not a video")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as e:
        raise VideoError(f"{path}: cannot open as video ({ffmpeg_reason(e)}); the file may be truncated, corrupt "
                         f"or not a video") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: has no video stream (audio-only or not a video)")
    return container


def ffmpeg_reason(e: Exception) -> str:
    """FFmpeg's short reason for an error (its strerror, without the file name it appends)."""
    text = getattr(e, "strerror", None) or str(e)
    return text.split(":")[0].strip() if text else type(e).__name__


def probe(path: str | Path) -> VideoInfo:
    """Read a video's header: size, frame rate, frame count (0 if the container doesn't say), duration."""
    with contextlib.closing(_open(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or 0
        duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else (
            container.duration / 1e6 if container.duration else 0.0)
        return VideoInfo(str(path), stream.codec_context.width, stream.codec_context.height,
                         float(rate), int(stream.frames or 0), duration)


class DecodedFrame(NamedTuple):
    """One decoded frame: ``rgb`` at the requested size, its ``time`` in seconds since the first
    frame, and (when asked for) the ``original`` at the video's own size."""

    rgb: np.ndarray
    time: float
    original: np.ndarray | None = None


def decode_frames(path: str | Path, size: int | tuple[int, int] | None = None, *, threads: int = 0,
                  original: bool = False) -> Iterator[DecodedFrame]:
    """Decode every frame of the first video stream, one at a time (constant memory).

    Args:
        path: the video file.
        size: ``None`` keeps the original size; an int resizes to ``size`` x ``size``; a pair is
            ``(width, height)``. Resizing happens inside FFmpeg (area interpolation).
        threads: decoder threads; 0 lets FFmpeg choose (all cores). Processes decoding in parallel
            should share the cores instead of each claiming all of them.
        original: also convert each decoded picture at its own size (one decode, two conversions:
            e.g. model input and the frame to draw on). If the size changes mid-stream, originals keep
            the first picture's size.
    Yields:
        :class:`DecodedFrame` with C-contiguous uint8 (H, W, 3) RGB arrays.
    Raises:
        VideoError: the file is missing, empty, not a video, has no video stream, cannot be decoded,
            has frames smaller than MIN_SIDE or fewer than MIN_FRAMES frames (the last two checked
            at the start and at the end of the stream).
    """
    container = _open(path)
    try:
        stream = video_stream(container, path, threads)
        fallback_rate = float(stream.average_rate or stream.guessed_rate or 25)
        convert = FrameConverter(size, original)
        t0 = None
        index = 0
        try:
            for frame in container.decode(stream):
                t = frame_seconds(frame, stream, index, fallback_rate)
                t0 = t if t0 is None else t0
                yield convert(frame, t - t0)
                index += 1
        except av.FFmpegError as e:
            raise VideoError(f"{path}: decoding failed after {index} frames ({ffmpeg_reason(e)}); the file may be "
                             f"truncated or corrupt") from None
        if index == 0:
            raise VideoError(f"{path}: no frame could be decoded; the file may be truncated or corrupt")
        if index < MIN_FRAMES:
            raise VideoError(f"{path}: only {index} frame; lstm-tv needs videos of at least {MIN_FRAMES} frames")
    finally:
        container.close()


# ---------------------------------------------------------------------------------------------------
# The pieces of decoding that files and live sources (lstm_tv.data.sources) share


def video_stream(container, name: str | Path, threads: int = 0):
    """The container's first video stream, set up for threaded decoding.

    Raises:
        VideoError: there is no video stream, or its frames are smaller than MIN_SIDE.
    """
    if not container.streams.video:
        raise VideoError(f"{name}: has no video stream (audio-only or not a video)")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame + slice threads inside FFmpeg's decoder (GIL released)
    stream.codec_context.thread_count = threads
    check_frame_size(name, stream.codec_context.width, stream.codec_context.height)
    return stream


def check_frame_size(name: str | Path, width: int, height: int) -> None:
    """Refuse frames smaller than MIN_SIDE (a size of 0, i.e. not known yet, passes)."""
    if width and height and min(width, height) < MIN_SIDE:
        raise VideoError(f"{name}: frames of {width}x{height} px are too small; lstm-tv needs at least "
                         f"{MIN_SIDE}x{MIN_SIDE}")


def frame_seconds(frame: av.VideoFrame, stream, index: int, fallback_rate: float) -> float:
    """A decoded picture's time in seconds from its pts (``index / fallback_rate`` when it has none)."""
    if frame.pts is not None and stream.time_base:
        return float(frame.pts * stream.time_base)
    return index / fallback_rate


class FrameConverter:
    """Turns decoded pictures into :class:`DecodedFrame` s at the requested size (and the original's).

    One reformatter per output for the whole video: it keeps FFmpeg's scaler context between frames
    (``frame.to_ndarray(width=...)`` builds a new one per frame, which cost 4x the time here) and
    follows a change of the input's size by itself. Originals keep the first picture's size, so a
    stream whose resolution changes mid-way still gives frames of one shape.
    """

    def __init__(self, size: int | tuple[int, int] | None, original: bool = False):
        self.width, self.height = (size, size) if isinstance(size, int) else (size or (None, None))
        self.original = original
        self._to_size, self._to_original = VideoReformatter(), VideoReformatter()
        self._original_size: tuple[int, int] | None = None  # (width, height) of the first picture

    def __call__(self, frame: av.VideoFrame, time: float) -> DecodedFrame:
        """Convert one picture, whose time (seconds) the caller computed."""
        rgb = self._to_size.reformat(frame, width=self.width, height=self.height, format="rgb24",
                                     interpolation="AREA" if self.width is not None else None).to_ndarray()
        full = None
        if self.original:
            if self._original_size is None:
                self._original_size = (frame.width, frame.height)
            width, height = self._original_size
            resize = (width, height) != (frame.width, frame.height)
            full = self._to_original.reformat(frame, width=width, height=height, format="rgb24",
                                              interpolation="AREA" if resize else None).to_ndarray()
        # FFmpeg pads rows to its alignment for some widths; callers get C-contiguous arrays.
        return DecodedFrame(np.ascontiguousarray(rgb), time, np.ascontiguousarray(full) if full is not None else None)


def read_frames(path: str | Path, size: int | tuple[int, int] | None = None, *,
                threads: int = 0) -> Iterator[tuple[np.ndarray, float]]:
    """``(rgb, time)`` for every decoded frame: :func:`decode_frames` without originals."""
    for frame in decode_frames(path, size, threads=threads):
        yield frame.rgb, frame.time


def count_frames(path: str | Path) -> int:
    """Count decodable frames by demuxing and decoding (exact, unlike the header's count)."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        n = 0
        try:
            for _ in container.decode(stream):
                n += 1
        except av.FFmpegError as e:
            raise VideoError(f"{path}: decoding failed after {n} frames ({ffmpeg_reason(e)})") from None
        return n
    finally:
        container.close()


class VideoWriter:
    """Write RGB frames to an MP4 file: H.264 when available, else MPEG-4 Part 2.

    The file is written under a temporary name and renamed on ``close()``; if the writer is left by an
    exception (``with`` block) the temporary file is removed, so a half-written video never appears.
    Odd widths or heights are padded by one pixel (yuv420p needs even sizes).

    Example::

        with VideoWriter("out.mp4", fps=24, width=96, height=96) as w:
            w.write(rgb)  # uint8 (H, W, 3)

    Args:
        crf: libx264's constant quality (lower = better); MPEG-4 gets a fixed quantiser instead.
        threads: encoder threads; 0 lets FFmpeg choose. Processes that each write videos (``lstm-tv
            synth``) pass 1: a small frame gains nothing from threads (160x120: 4,300 frames/s on one
            thread, 2,600 on FFmpeg's choice), and they compete with the other processes for the cores.
    """

    def __init__(self, path: str | Path, fps: float, width: int, height: int, *, crf: int = 20, threads: int = 0):
        self.path = Path(path)
        self.width, self.height = width + width % 2, height + height % 2
        self._tmp = temp_path_beside(self.path, suffix=".mp4")
        try:
            self._container = av.open(str(self._tmp), mode="w", format="mp4")
        except av.FFmpegError as e:
            self._tmp.unlink(missing_ok=True)
            raise VideoError(f"{self.path}: cannot write video ({ffmpeg_reason(e)})") from None
        rate = Fraction(fps).limit_denominator(1001)
        try:
            self._stream = self._container.add_stream("libx264", rate=rate)
            # mbtree=0: with macroblock-tree rate control libx264 encodes the same frames differently
            # from run to run; without it, same frames -> same bytes (reproducible datasets).
            # ultrafast: 2.6x veryfast's frames/s at the same quality for a given crf (synthetic 160x120
            # frames, crf 20: PSNR 32.9 vs 32.8 dB), in files ~35% larger; synth spent most of its time here.
            self._stream.options = {"crf": str(crf), "preset": "ultrafast", "x264-params": "mbtree=0"}
        except (av.FFmpegError, ValueError):  # FFmpeg built without libx264
            self._stream = self._container.add_stream("mpeg4", rate=rate)
            self._stream.options = {"qscale": "3"}
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.pix_fmt = "yuv420p"
        self._stream.codec_context.thread_count = threads
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        """Encode one uint8 (H, W, 3) RGB frame of the size given at construction."""
        h, w = rgb.shape[:2]
        if (h, w) != (self.height, self.width):
            rgb = np.pad(rgb, ((0, self.height - h), (0, self.width - w), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and move the finished file to its final name."""
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the partly written file."""
        with contextlib.suppress(Exception):
            self._container.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
