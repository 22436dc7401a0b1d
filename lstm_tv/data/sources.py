"""Live sources: network streams, standard input, capture devices and files still being written.

A live source has no known length: :class:`LiveStream` decodes it frame by frame, as long as it lasts,
with the same decoding as files (:mod:`lstm_tv.data.video`: one FFmpeg scaler per output, resized
inside FFmpeg). What a source string means (:func:`parse_source`):

    ``-``                                standard input (an MPEG-TS, MKV, ... byte stream from a pipe)
    ``udp://``, ``rtp://``, ``rtsp://``,  any URL FFmpeg opens (HLS playlists ``.m3u8`` included)
    ``http(s)://``, ``tcp://``, ...
    ``/dev/video0``                      a V4L2 capture device (Linux)
    ``v4l2:/dev/video0``, ``avfoundation:0``, ``dshow:video=NAME``, ``lavfi:testsrc``
                                         a capture device through FFmpeg's input format of that name
    anything else                        a file (a live one with ``follow``: tailed while it grows)

Failures are one-line :class:`~lstm_tv.errors.VideoError` s naming the source, within
``open_timeout`` seconds at the start and ``read_timeout`` seconds of silence later (a stall). With
``reconnect=N`` a dropped network source or device is reopened, after 0.5 s, 1 s, 2 s, ... (at most
8 s), up to N times in a row; a :class:`Gap` then comes between the frames before and after.
With ``realtime`` a background thread decodes into a queue of at most ``max_queue`` frames and drops
the oldest when the consumer falls behind (counted in :class:`LiveStats`); without it nothing is dropped.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import select
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, NamedTuple

import av
import numpy as np

from lstm_tv.data.video import FrameConverter, check_frame_size, ffmpeg_reason, frame_seconds, video_stream
from lstm_tv.errors import VideoError

# FFmpeg input formats for capture devices, and where each exists (PyAV's wheels have those of their OS).
DEVICE_FORMATS = {"v4l2": "Linux", "avfoundation": "macOS", "dshow": "Windows",
                  "lavfi": "FFmpeg's filter graphs (e.g. lavfi:testsrc=size=64x64:rate=24,realtime)"}
BACKOFF_CAP = 8.0  # seconds: the longest wait between two reconnect attempts
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")  # two letters at least: C:\video.mp4 is a file
_POLL = 0.05  # seconds between looks at a file that has not grown yet


@dataclass(frozen=True)
class Source:
    """What a source string names.

    Attributes:
        spec: the string as given (the name in every message).
        kind: ``"file"``, ``"url"``, ``"stdin"`` or ``"device"``.
        target: what FFmpeg opens (the URL, path or device name).
        format: FFmpeg's input format for a device, else None (probed).
    """

    spec: str
    kind: str
    target: str
    format: str | None = None

    @property
    def reopenable(self) -> bool:
        """Whether a dropped source can be opened again (a pipe cannot, a file has ended)."""
        return self.kind in ("url", "device")


def parse_source(spec: str | Path) -> Source:
    """Tell what a source string names (see the module's table); nothing is opened."""
    spec = str(spec)
    if spec == "-":
        return Source(spec, "stdin", spec)
    if _URL.match(spec):
        return Source(spec, "url", spec)
    if re.fullmatch(r"/dev/video\d+", spec):
        return Source(spec, "device", spec, "v4l2")
    prefix, sep, target = spec.partition(":")
    if sep and prefix in DEVICE_FORMATS and target:
        return Source(spec, "device", target, prefix)
    return Source(spec, "file", spec)


def is_live(spec: str | Path, follow: bool = False) -> bool:
    """Whether ``spec`` is read as a live source (everything but a file, and a file with ``follow``)."""
    return follow or parse_source(spec).kind != "file"


@dataclass(frozen=True)
class LiveOptions:
    """How a live source is read (the ``predict`` options of the same names)."""

    open_timeout: float = 10.0   # seconds to open the source and find its video stream
    read_timeout: float = 10.0   # seconds without data after which the stream counts as stalled
    reconnect: int = 0           # reopen a dropped network source or device up to N times in a row
    follow: bool = False         # a file: read it while it grows
    follow_timeout: float = 10.0  # seconds without growth that end a followed file
    realtime: bool = False       # drop the oldest frames when the consumer is slower than the source
    max_queue: int = 32          # frames held for the consumer with realtime (the lag's bound)
    backoff: float = 0.5         # seconds before the first reconnect attempt (doubling, up to BACKOFF_CAP)


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
# File objects that wait for data (standard input, a file still being written)


class _PipeReader:
    """A pipe as a file object for PyAV: ``read`` waits for data at most ``timeout`` seconds, then
    raises a stall error (PyAV hands it back from the call that read). No ``seek``: not seekable."""

    def __init__(self, stream: BinaryIO, name: str, timeout: float):
        self._fd, self.name, self.timeout = stream.fileno(), name, timeout
        self.received = 0  # bytes read so far

    def read(self, n: int) -> bytes:
        if os.name != "nt":  # select() waits on pipes only on POSIX; elsewhere read() blocks
            ready, _, _ = select.select([self._fd], [], [], self.timeout)
            if not ready:
                raise VideoError(f"{self.name}: no data on standard input for {self.timeout:g} s (the stream "
                                 f"stalled)")
        data = os.read(self._fd, n)
        self.received += len(data)
        return data


class _GrowingFile:
    """A file being written, as a file object for PyAV: at its end ``read`` waits for it to grow, and
    ends it (returns b"") once it has not grown for ``idle_timeout`` seconds."""

    def __init__(self, path: str, idle_timeout: float, stop: threading.Event):
        self._file = open(path, "rb")  # closed by LiveStream with the container
        self.idle_timeout, self._stop = idle_timeout, stop
        self._ended = False

    def read(self, n: int) -> bytes:
        since = time.monotonic()
        while not self._ended and not (data := self._file.read(n)):
            # Once ended, stay ended: FFmpeg reads again at the end, and each wait would add idle_timeout.
            self._ended = time.monotonic() - since >= self.idle_timeout or self._stop.wait(_POLL)
        return b"" if self._ended else data

    def close(self) -> None:
        self._file.close()


# ---------------------------------------------------------------------------------------------------
# Opening


def _open(source: Source, options: LiveOptions, stop: threading.Event, stdin: BinaryIO | None):
    """Open ``source`` and find its video stream: ``(container, reader)`` (reader: a file object or None).

    Raises:
        VideoError: one line naming the source, within about ``options.open_timeout`` seconds.
    """
    name, reader = source.spec, None
    try:
        if source.kind == "stdin":
            stdin = stdin if stdin is not None else sys.stdin.buffer
            if stdin.isatty():
                raise VideoError("-: standard input is a terminal; pipe a video stream into it "
                                 "(e.g. ffmpeg -i SOURCE -f mpegts - | lstm-tv predict -)")
            reader = _PipeReader(stdin, name, options.open_timeout)
            container = av.open(reader, metadata_errors="ignore")
            reader.timeout = options.read_timeout
        elif source.kind == "file":
            _wait_for_file(source.target, options.open_timeout, stop)
            reader = _GrowingFile(source.target, options.follow_timeout, stop)
            container = av.open(reader, metadata_errors="ignore")
        else:
            if source.kind == "device":
                _check_device(source)
            container = av.open(source.target, format=source.format, metadata_errors="ignore",
                                timeout=(options.open_timeout, options.read_timeout),
                                container_options=_protocol_options(source.target))
    except av.FFmpegError as e:
        if isinstance(reader, _GrowingFile):
            reader.close()
        if isinstance(reader, _PipeReader) and reader.received == 0:
            raise VideoError("-: standard input closed before any data arrived") from None
        raise _open_error(source, e, options) from None
    try:
        video_stream(container, name)
    except VideoError:
        container.close()
        raise
    return container, reader


def _protocol_options(url: str) -> dict[str, str]:
    """FFmpeg protocol options for a URL: UDP loses packets instead of failing when the reader lags
    (FFmpeg's default ends the stream at the first overrun of its receive buffer)."""
    return {"overrun_nonfatal": "1"} if url.startswith(("udp://", "rtp://")) else {}


def _wait_for_file(path: str, timeout: float, stop: threading.Event) -> None:
    """A followed file may not exist yet (the recorder starts after us): wait ``timeout`` seconds for it."""
    deadline = time.monotonic() + timeout
    while not Path(path).exists():
        if time.monotonic() >= deadline or stop.wait(_POLL):
            raise VideoError(f"{path}: video not found (waited {timeout:g} s for it to appear)")
    if Path(path).is_dir():
        raise VideoError(f"{path}: is a directory, not a video")


def _check_device(source: Source) -> None:
    try:
        av.ContainerFormat(source.format)
    except ValueError:
        raise VideoError(f"{source.spec}: this FFmpeg has no '{source.format}' input (that is for "
                         f"{DEVICE_FORMATS[source.format]})") from None
    if source.format == "v4l2" and not Path(source.target).exists():
        raise VideoError(f"{source.spec}: no such capture device (list them with: v4l2-ctl --list-devices)")


def _open_error(source: Source, e: av.FFmpegError, options: LiveOptions) -> VideoError:
    """The one-line error for a source FFmpeg could not open."""
    name = source.spec
    if isinstance(e, av.ProtocolNotFoundError):
        scheme = _URL.match(name).group(1) if _URL.match(name) else name
        return VideoError(f"{name}: unknown URL scheme '{scheme}' (FFmpeg has no such protocol); use a file, "
                          f"-, udp://, rtp://, rtsp://, http(s)://, tcp:// or a capture device")
    if isinstance(e, av.ExitError):
        return VideoError(f"{name}: no video arrived within {options.open_timeout:g} s (nothing is sending, or "
                          f"the source is unreachable; see --open-timeout)")
    if isinstance(e, ConnectionRefusedError):
        return VideoError(f"{name}: connection refused (is the server running?)")
    if isinstance(e, av.InvalidDataError):
        what = "standard input" if source.kind == "stdin" else "it"
        return VideoError(f"{name}: {what} is not a video stream FFmpeg can read ({ffmpeg_reason(e)})")
    return VideoError(f"{name}: cannot open ({ffmpeg_reason(e)})")


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

    def __init__(self, spec: str | Path, size: int | tuple[int, int] | None, options: LiveOptions = LiveOptions(),
                 *, original: bool = False, threads: int = 0, stdin: BinaryIO | None = None):
        self.source = parse_source(spec)
        if self.source.kind == "file" and not options.follow:
            raise VideoError(f"{spec}: a file is not a live source; read it with decode_frames, or follow it")
        self.options, self.stats = options, LiveStats()
        self._convert = FrameConverter(size, original)
        self._threads, self._stdin = threads, stdin
        self._stop = threading.Event()
        self._container, self._reader = _open(self.source, options, self._stop, stdin)
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
            container.close()
        if isinstance(reader, _GrowingFile):
            reader.close()

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
                self._container, self._reader = _open(self.source, self.options, self._stop, self._stdin)
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
