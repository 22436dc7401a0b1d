"""Reading a live source: frames as they arrive, reconnects, and keeping up with real time.

:class:`LiveStream` opens a source (:mod:`lstm_tv.data.sources`) and decodes it frame by frame for as
long as it lasts, with the same decoding as files (:mod:`lstm_tv.data.video`: one FFmpeg scaler per
output, resized inside FFmpeg). A failure is a one-line :class:`~lstm_tv.errors.VideoError` naming the
source; a stall longer than ``read_timeout`` is one. With ``reconnect=N`` a dropped network source or
device is reopened after 0.5 s, 1 s, 2 s, ... (at most 8 s), up to N times in a row, and a :class:`Gap`
comes between the frames before and after. With ``realtime`` a background thread decodes into a queue
of at most ``max_queue`` frames and drops the oldest when the consumer falls behind (counted in
:class:`LiveStats`); without it nothing is dropped and the source waits for the consumer.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, NamedTuple

import av
import numpy as np

from lstm_tv.data.sources import LiveOptions, Source, close_source, open_source, parse_source
from lstm_tv.data.video import FrameConverter, check_frame_size, ffmpeg_reason, frame_seconds, video_stream
from lstm_tv.errors import VideoError

BACKOFF_CAP = 8.0  # seconds: the longest wait between two reconnect attempts


class LiveFrame(NamedTuple):
    """One decoded frame of a live source (``rgb``, ``time``, ``original`` as in DecodedFrame).

    ``time`` is seconds since the first frame, from the pts, always increasing (see :class:`LiveStream`);
    ``index`` counts decoded frames from 0 across reconnects (frames dropped by realtime leave holes);
    ``arrival`` is ``time.monotonic()`` when the frame came out of the decoder (to measure latency).
    """

    rgb: np.ndarray
    time: float
    original: np.ndarray | None
    index: int
    arrival: float


@dataclass(frozen=True)
class Gap:
    """The source dropped after frame ``index - 1`` (at ``time``) and is being reopened: the frames
    after it are a new stream (a consumer resets the model's memory and marks the gap)."""

    index: int
    time: float
    reason: str


@dataclass
class LiveStats:
    """What happened while reading a live source (for the final report)."""

    frames: int = 0            # frames decoded
    dropped: int = 0           # frames realtime dropped because the consumer was behind
    reconnects: int = 0        # successful reopenings
    skipped_packets: int = 0   # corrupt packets the decoder refused (lost datagrams), skipped


# ---------------------------------------------------------------------------------------------------
# Reading


class LiveStream:
    """A live source, opened at construction (errors come here, not at the first frame).

    Iterating yields :class:`LiveFrame` s in order and, after a drop that is being reconnected, one
    :class:`Gap`. It ends when the source ends (end of a pipe, a followed file that stopped growing,
    a server that closed the stream) and raises :class:`VideoError` when the source fails and cannot
    be reopened (a stall longer than ``read_timeout`` counts as a failure).

    Times: seconds from the pts of the stream's first frame. They always increase: across a
    reconnect the gap's wall-clock length is added to the last time; if the pts jumps back (a
    wrap-around after 26.5 h of MPEG-TS, a spliced stream) the times go on one frame after the last.

    Example::

        with LiveStream("udp://127.0.0.1:5000", 64, LiveOptions(reconnect=5)) as live:
            for item in live:
                ...
        print(live.stats.dropped)
    """

    def __init__(self, spec: str | Path, size: int | tuple[int, int] | None, options: LiveOptions | None = None,
                 *, original: bool = False, threads: int = 0, stdin: BinaryIO | None = None):
        options = options or LiveOptions()
        self.source = parse_source(spec)
        if self.source.kind == "file" and not options.follow:
            raise VideoError(f"{spec}: a file is not a live source; read it with decode_frames, or follow it")
        self.options, self.stats = options, LiveStats()
        self._convert = FrameConverter(size, original)
        self._threads, self._stdin = threads, stdin
        self._stop = threading.Event()
        self._container, self._reader = open_source(self.source, options, self._stop, stdin)
        self._time = _Clock()
        self._iterator: Iterator[LiveFrame | Gap] | None = None
        self._lock = threading.Lock()  # who closes the container: close(), or the reading generator once it runs
        self._reading = False

    def __iter__(self) -> Iterator[LiveFrame | Gap]:
        if self._iterator is not None:
            raise RuntimeError("a LiveStream can be iterated once")
        items = self._items()
        if self.options.realtime:
            items = _drop_oldest(items, self.options.max_queue, self.stats, self._stop)
        self._iterator = items
        return items

    @property
    def frame_rate(self) -> float:
        """Frames per second the source announces (25 until it is known)."""
        return self._time.rate

    def stop(self) -> None:
        """Ask the stream to end: frames decoded so far still come out, then iterating ends (a read in
        progress returns within ``read_timeout``). Safe to call from a signal handler or another thread."""
        self._stop.set()

    def close(self) -> None:
        """Stop reading and close the source (a background decoder stops within ``read_timeout``)."""
        self._stop.set()
        if self._iterator is not None:
            with contextlib.suppress(ValueError):  # called while the iterator runs: it stops on its own
                self._iterator.close()
        with self._lock:
            if not self._reading:
                self._close_container()

    def __enter__(self) -> "LiveStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _close_container(self) -> None:
        container, reader, self._container, self._reader = self._container, self._reader, None, None
        if container is not None:
            close_source(container, reader)

    def _items(self) -> Iterator[LiveFrame | Gap]:
        failures = 0  # reconnect attempts in a row that brought no frame
        with self._lock:
            if self._stop.is_set():
                return
            self._reading = True
        try:
            while True:
                before = self.stats.frames
                try:
                    yield from self._segment()
                    if self.stats.frames == 0:
                        raise VideoError(f"{self.source.spec}: the stream ended before its first frame")
                    return
                except VideoError as e:
                    error = e
                self._close_container()
                failures = 0 if self.stats.frames > before else failures
                if not self.source.reopenable or self.options.reconnect == 0 or self._stop.is_set():
                    raise error
                if failures >= self.options.reconnect:
                    raise VideoError(f"{self.source.spec}: lost the stream and {failures} reconnect attempts "
                                     f"failed ({_without_name(error, self.source)})") from None
                yield Gap(self.stats.frames, self._time.last or 0.0, _without_name(error, self.source))
                failures = self._reopen(failures)
        finally:
            self._close_container()

    def _reopen(self, failures: int) -> int:
        """Wait and reopen until it works (returns the failures so far) or ``reconnect`` attempts failed."""
        while True:
            if self._stop.wait(min(BACKOFF_CAP, self.options.backoff * 2 ** failures)):
                raise VideoError(f"{self.source.spec}: stopped while reconnecting")
            failures += 1
            try:
                self._container, self._reader = open_source(self.source, self.options, self._stop, self._stdin)
            except VideoError as e:
                if failures >= self.options.reconnect:
                    raise VideoError(f"{self.source.spec}: lost the stream and {failures} reconnect attempts "
                                     f"failed ({_without_name(e, self.source)})") from None
                continue
            self.stats.reconnects += 1
            self._time.reconnected()
            return failures

    def _segment(self) -> Iterator[LiveFrame]:
        """The frames of the open container until it ends (returns) or fails (VideoError)."""
        container = self._container
        stream = video_stream(container, self.source.spec, self._threads)
        fallback_rate = float(stream.average_rate or stream.guessed_rate or 25)
        self._time.rate = fallback_rate
        index = 0
        try:
            for picture in _pictures(container, stream, self.stats):
                if self._stop.is_set():
                    return
                if self.stats.frames == 0:
                    check_frame_size(self.source.spec, picture.width, picture.height)
                frame = self._convert(picture, 0.0)
                arrival = time.monotonic()
                t = self._time(frame_seconds(picture, stream, index, fallback_rate), arrival)
                yield LiveFrame(frame.rgb, t, frame.original, self.stats.frames, arrival)
                index += 1
                self.stats.frames += 1
        except av.ExitError:
            raise VideoError(f"{self.source.spec}: no data for {self.options.read_timeout:g} s (the stream "
                             f"stalled)") from None
        except av.FFmpegError as e:
            raise VideoError(f"{self.source.spec}: the stream broke after {self.stats.frames} frames "
                             f"({ffmpeg_reason(e)})") from None


def _pictures(container, stream, stats: LiveStats) -> Iterator[av.VideoFrame]:
    """Demux and decode; when reading fails (a stall, a dropped connection) the pictures still inside
    the decoder come out before the error, so no frame that arrived is lost."""
    try:
        for packet in container.demux(stream):
            try:
                yield from packet.decode()  # the last, empty packet flushes the decoder
            except av.InvalidDataError:  # a packet damaged in transit: players skip it, so do we
                stats.skipped_packets += 1
    except (av.FFmpegError, VideoError):
        flushed = []
        with contextlib.suppress(av.FFmpegError):
            flushed = stream.decode(None)
        yield from flushed
        raise


def _without_name(error: VideoError, source: Source) -> str:
    return str(error).removeprefix(f"{source.spec}: ")


class _Clock:
    """Live times in seconds: the pts from the first frame, kept increasing (see :class:`LiveStream`)."""

    def __init__(self):
        self.last: float | None = None     # the last time given
        self.rate = 25.0                   # frames per second, for a step when the pts jumps back
        self._offset: float | None = None  # added to the pts seconds; None at the start of a stream
        self._arrival = 0.0                # monotonic clock at the last frame

    def reconnected(self) -> None:
        self._offset = None

    def __call__(self, pts_seconds: float, arrival: float) -> float:
        if self._offset is None:  # first frame of the source, or of a reopened one
            start = 0.0 if self.last is None else self.last + max(arrival - self._arrival, 1 / self.rate)
            self._offset = start - pts_seconds
        t = pts_seconds + self._offset
        if self.last is not None and t <= self.last:
            t = self.last + 1 / self.rate
            self._offset = t - pts_seconds
        self.last, self._arrival = t, arrival
        return t


# ---------------------------------------------------------------------------------------------------
# Real time


class _End:
    """What the decoding thread queues last: nothing (the source ended) or the exception that ended it."""

    def __init__(self, error: BaseException | None = None):
        self.error = error


def _drop_oldest(items: Iterator[LiveFrame | Gap], max_frames: int, stats: LiveStats,
                 stop: threading.Event) -> Iterator[LiveFrame | Gap]:
    """Iterate ``items`` in a background thread that never waits for the consumer: at most
    ``max_frames`` frames are held, and a new frame pushes out the oldest one (counted in
    ``stats.dropped``). Gaps are never dropped. Leaving this generator stops the thread."""
    if max_frames < 1:
        raise ValueError(f"max_queue must be >= 1, got {max_frames}")
    held: collections.deque = collections.deque()
    frames = 0  # LiveFrames in ``held``
    ready = threading.Condition()

    def work() -> None:
        nonlocal frames
        end = _End()
        try:
            for item in items:
                if stop.is_set():
                    break
                with ready:
                    if isinstance(item, LiveFrame):
                        if frames == max_frames:
                            del held[next(i for i, old in enumerate(held) if isinstance(old, LiveFrame))]
                            stats.dropped += 1
                        else:
                            frames += 1
                    held.append(item)
                    ready.notify()
        except BaseException as e:  # handed to the consumer, raised there
            end = _End(e)
        finally:
            items.close()  # the source closes here, in the thread that reads it
            with ready:
                held.append(end)
                ready.notify()

    thread = threading.Thread(target=work, name="lstm-tv-live", daemon=True)
    thread.start()
    try:
        while True:
            with ready:
                while not held:
                    ready.wait()
                item = held.popleft()
                if isinstance(item, LiveFrame):
                    frames -= 1
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        # A read in progress returns within read_timeout; the thread is a daemon, so don't wait for it.
        thread.join(timeout=1.0)
