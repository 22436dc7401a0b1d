"""Where live frames come from: what a source string names, and opening it with timeouts.

What a source string means (:func:`parse_source`):

    ``-``                                standard input (an MPEG-TS, MKV, ... byte stream from a pipe)
    ``udp://``, ``rtp://``, ``rtsp://``,  any URL FFmpeg opens (HLS playlists ``.m3u8`` included)
    ``http(s)://``, ``tcp://``, ...
    ``/dev/video0``                      a V4L2 capture device (Linux)
    ``v4l2:/dev/video0``, ``avfoundation:0``, ``dshow:video=NAME``, ``lavfi:testsrc``
                                         a capture device through FFmpeg's input format of that name
    anything else                        a file (a live one with ``follow``: tailed while it grows)

:func:`open_source` fails with a one-line :class:`~lstm_tv.errors.VideoError` naming the source within
``open_timeout`` seconds: URLs and devices through PyAV's ``timeout=(open, read)``, standard input and
followed files through file objects that wait for data themselves. Reading them is
:class:`lstm_tv.data.live.LiveStream`.
"""

from __future__ import annotations

import os
import re
import select
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av

from lstm_tv.data.video import ffmpeg_reason, video_stream
from lstm_tv.errors import VideoError

# FFmpeg input formats for capture devices, and where each exists (PyAV's wheels have those of their OS).
DEVICE_FORMATS = {"v4l2": "Linux", "avfoundation": "macOS", "dshow": "Windows",
                  "lavfi": "FFmpeg's filter graphs (e.g. lavfi:testsrc=size=64x64:rate=24,realtime)"}
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
    backoff: float = 0.5         # seconds before the first reconnect attempt (doubling, up to 8 s)


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


def open_source(source: Source, options: LiveOptions, stop: threading.Event, stdin: BinaryIO | None = None):
    """Open ``source`` and find its video stream: ``(container, reader)``.

    ``reader`` is the file object PyAV reads (standard input, a followed file) or None; close it with
    the container (:func:`close_source`). ``stop`` ends waiting for a followed file. ``stdin`` replaces
    ``sys.stdin.buffer`` for ``-``.

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
        close_source(container, reader)
        raise
    return container, reader


def close_source(container, reader) -> None:
    """Close what :func:`open_source` opened."""
    container.close()
    if isinstance(reader, _GrowingFile):
        reader.close()


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
