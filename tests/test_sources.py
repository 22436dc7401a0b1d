"""Live sources: UDP, a pipe, a file still being written, real time with drops, reconnects, bad sources.

Everything runs on loopback (127.0.0.1) with tiny 32x32 streams and timeouts under a second, so each
test stops by itself in a few seconds. A stream sent over UDP is the packets of an MPEG-TS file, so
the frames that arrive must be exactly the frames decoded from that file.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from lstm_tv.data.live import Gap, LiveFrame, LiveStream
from lstm_tv.data.sources import LiveOptions, is_live, parse_source
from lstm_tv.data.video import decode_frames
from lstm_tv.errors import VideoError

FAST = dict(open_timeout=2.0, read_timeout=0.5, backoff=0.05)  # seconds: short, so tests end quickly
ROOT = Path(__file__).resolve().parents[1]


def write_ts(path, frames=50, width=32, height=32, first=0, options=None, pause=0.0, started=None):
    """An H.264 MPEG-TS file whose frame i is flat grey ``5 * (first + i)``; with ``pause``, written slowly
    (each packet flushed to disk at once) as a recorder would; ``started`` is set once the file exists."""
    with av.open(str(path), "w", format="mpegts", options=options or {}) as c:
        s = c.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"tune": "zerolatency"}  # each frame's packet out at once, as from a live encoder
        if started is not None:
            started.set()
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), 5 * (first + i) % 250, np.uint8),
                                               format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
            time.sleep(pause)
        for p in s.encode():
            c.mux(p)
    return path


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def udp_bound(port: int) -> bool:
    """Whether a socket listens on this UDP port (Linux: /proc/net/udp), so nothing sent is lost."""
    with open("/proc/net/udp") as f:
        return any(line.split()[1].endswith(f":{port:04X}") for line in f.readlines()[1:])


def send_udp(path, port, after: threading.Event | None = None) -> threading.Thread:
    """In a thread: wait for ``after`` and for the reader's socket, then send the file's packets to it."""
    def send():
        if after is not None:
            after.wait(10)
        deadline = time.monotonic() + 10
        while not udp_bound(port) and time.monotonic() < deadline:
            time.sleep(0.01)
        with av.open(str(path)) as src, av.open(f"udp://127.0.0.1:{port}", "w", format="mpegts") as out:
            stream = out.add_stream_from_template(src.streams.video[0])
            for packet in src.demux(src.streams.video[0]):
                if packet.dts is not None:  # the demuxer's last, empty packet
                    packet.stream = stream
                    out.mux(packet)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def read_all(live: LiveStream, until: str | None = None) -> list:
    """Every item of a live stream; with ``until``, the VideoError it must end with."""
    items: list = []
    if until is None:
        items.extend(live)
    else:
        with pytest.raises(VideoError, match=until):
            for item in live:
                items.append(item)
    return items


def assert_same_frames(items, path, size=None):
    expected = list(decode_frames(path, size))
    frames = [item for item in items if isinstance(item, LiveFrame)]
    assert len(frames) == len(expected)
    for got, want in zip(frames, expected, strict=True):
        assert np.array_equal(got.rgb, want.rgb)
        assert got.time == pytest.approx(want.time, abs=1e-9)
    assert [f.index for f in frames] == list(range(len(frames)))


# ---------------------------------------------------------------------------------------------------
# What a source string names


@pytest.mark.parametrize("spec, kind, target, fmt", [
    ("-", "stdin", "-", None),
    ("udp://127.0.0.1:5000", "url", "udp://127.0.0.1:5000", None),
    ("rtsp://cam.local/stream", "url", "rtsp://cam.local/stream", None),
    ("https://example.org/live.m3u8", "url", "https://example.org/live.m3u8", None),
    ("/dev/video0", "device", "/dev/video0", "v4l2"),
    ("v4l2:/dev/video2", "device", "/dev/video2", "v4l2"),
    ("avfoundation:0", "device", "0", "avfoundation"),
    ("dshow:video=USB Camera", "device", "video=USB Camera", "dshow"),
    ("lavfi:testsrc=size=32x32", "device", "testsrc=size=32x32", "lavfi"),
    ("videos/a.mp4", "file", "videos/a.mp4", None),
    ("C:\\videos\\a.mp4", "file", "C:\\videos\\a.mp4", None),   # a drive letter is not a URL scheme
    ("notes:today.mp4", "file", "notes:today.mp4", None),        # nor an unknown prefix a device
])
def test_parse_source(spec, kind, target, fmt):
    source = parse_source(spec)
    assert (source.kind, source.target, source.format) == (kind, target, fmt)
    assert is_live(spec) == (kind != "file")
    assert source.reopenable == (kind in ("url", "device"))


def test_a_file_is_live_only_when_followed(tmp_path):
    path = write_ts(tmp_path / "a.ts", frames=3)
    assert is_live(path, follow=True) and not is_live(path)
    with pytest.raises(VideoError, match="a.ts: a file is not a live source"):
        LiveStream(path, 16)


# ---------------------------------------------------------------------------------------------------
# Sources that deliver the same frames as the file they carry


def test_udp_stream_gives_the_frames_of_the_file_then_a_stall_error(tmp_path):
    path = write_ts(tmp_path / "a.ts")
    port = free_udp_port()
    sender = send_udp(path, port)
    start = time.monotonic()
    with LiveStream(f"udp://127.0.0.1:{port}", 16, LiveOptions(**FAST)) as live:
        items = read_all(live, until=rf"udp://127.0.0.1:{port}: no data for 0.5 s \(the stream stalled\)")
    sender.join(5)
    assert_same_frames(items, path, 16)                                  # all 50, none lost at the start
    assert time.monotonic() - start < 4
    assert live.stats.frames == 50 and live.stats.dropped == 0


PIPE_READER = """
import hashlib, json, sys
from lstm_tv.data.live import LiveStream
from lstm_tv.data.sources import LiveOptions
with LiveStream("-", None, LiveOptions(open_timeout=5, read_timeout=5)) as live:
    for f in live:
        print(json.dumps([f.index, f.time, hashlib.md5(f.rgb.tobytes()).hexdigest(), f.rgb.shape]))
"""


@pytest.mark.parametrize("container", ["mpegts", "matroska"])
def test_standard_input_gives_the_frames_of_the_file(tmp_path, container):
    path = tmp_path / ("a.ts" if container == "mpegts" else "a.mkv")
    source = write_ts(tmp_path / "src.ts", frames=20)
    with av.open(str(source)) as src, av.open(str(path), "w", format=container) as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", PIPE_READER], input=path.read_bytes(), capture_output=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    rows = [json.loads(line) for line in done.stdout.decode().splitlines()]
    import hashlib
    expected = list(decode_frames(path))
    assert [r[0] for r in rows] == list(range(len(expected))) and len(rows) == 20
    assert [r[2] for r in rows] == [hashlib.md5(f.rgb.tobytes()).hexdigest() for f in expected]
    assert [r[1] for r in rows] == pytest.approx([f.time for f in expected])


def test_an_hls_playlist_over_http_gives_the_frames_of_the_file_and_ends_with_it(tmp_path):
    import functools
    import http.server

    path = write_ts(tmp_path / "a.ts", frames=48)
    site = tmp_path / "site"
    site.mkdir()
    with av.open(str(path)) as src, av.open(str(site / "live.m3u8"), "w", format="hls",
                                            options={"hls_time": "1", "hls_list_size": "0"}) as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/live.m3u8"
        with LiveStream(url, 16, LiveOptions(**FAST)) as live:
            items = read_all(live)          # a finished playlist ends the stream: no error
    finally:
        server.shutdown()
        server.server_close()
    assert_same_frames(items, path, 16)


def test_follow_reads_a_file_while_it_is_written_and_ends_when_it_stops_growing(tmp_path):
    path = tmp_path / "recording.ts"
    started, finished = threading.Event(), []
    writer = threading.Thread(target=lambda: (write_ts(path, frames=40, pause=0.02, started=started,
                                                       options={"flush_packets": "1"}),
                                              finished.append(time.monotonic())), daemon=True)
    writer.start()
    started.wait(5)
    with LiveStream(path, 16, LiveOptions(follow=True, follow_timeout=0.5)) as live:
        items = read_all(live)
    ended = time.monotonic()
    writer.join(5)
    assert_same_frames(items, path, 16)
    assert items[0].arrival < finished[0]                    # read while the recording was still going
    assert 0.4 < ended - finished[0] < 2.0                   # ended follow_timeout after the last write


def test_a_resolution_change_mid_stream_keeps_decoding(tmp_path):
    first = write_ts(tmp_path / "1.ts", frames=20, width=32, height=32)
    second = write_ts(tmp_path / "2.ts", frames=20, width=48, height=40, first=20)
    spliced = tmp_path / "spliced.ts"
    spliced.write_bytes(first.read_bytes() + second.read_bytes())  # as a broadcast switching programmes
    with spliced.open("rb") as stdin, LiveStream("-", 16, LiveOptions(**FAST), original=True, stdin=stdin) as live:
        frames = read_all(live)
    assert len(frames) == 40
    assert {f.rgb.shape for f in frames} == {(16, 16, 3)}
    assert {f.original.shape for f in frames} == {(32, 32, 3)}        # originals keep the first size
    assert [round(float(f.rgb.mean()) / 5) for f in frames] == list(range(40))
    times = [f.time for f in frames]
    assert all(b > a for a, b in itertools.pairwise(times))              # the pts restart: times go on


# ---------------------------------------------------------------------------------------------------
# Keeping up with real time


LAVFI_100 = "lavfi:testsrc=size=32x32:rate=100:duration=1"  # 100 frames, decoded much faster than real time


def test_realtime_drops_the_oldest_frames_when_the_consumer_is_slow_and_stays_bounded():
    options = LiveOptions(**FAST, realtime=True, max_queue=4)
    with LiveStream(LAVFI_100, 16, options) as live:
        frames = []
        for frame in live:
            assert live.stats.frames - frame.index <= options.max_queue + 2   # never more than the queue behind
            frames.append(frame)
            time.sleep(0.01)                                                   # a model slower than the source
    indices = [f.index for f in frames]
    assert live.stats.dropped > 0 and len(frames) + live.stats.dropped == live.stats.frames == 100
    assert indices == sorted(indices) and indices[-1] == 99                   # holes, in order, to the end


def test_without_realtime_a_slow_consumer_loses_nothing():
    with LiveStream(LAVFI_100, 16, LiveOptions(**FAST)) as live:
        indices = []
        for frame in live:
            indices.append(frame.index)
            time.sleep(0.002)
    assert indices == list(range(100)) and live.stats.dropped == 0


def test_leaving_a_realtime_stream_early_stops_its_thread():
    before = threading.active_count()
    with LiveStream("lavfi:testsrc=size=32x32:rate=24", 16, LiveOptions(**FAST, realtime=True)) as live:
        for frame in live:
            if frame.index == 5:
                break
    deadline = time.monotonic() + 2
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before


# ---------------------------------------------------------------------------------------------------
# Reconnecting


def test_reconnect_reopens_a_dropped_stream_marks_the_gap_and_gives_up_after_n_failures(tmp_path):
    first = write_ts(tmp_path / "1.ts", frames=25)
    second = write_ts(tmp_path / "2.ts", frames=25, first=25)
    port = free_udp_port()
    dropped = threading.Event()
    send_udp(first, port)
    sender = send_udp(second, port, after=dropped)
    options = LiveOptions(open_timeout=1.0, read_timeout=0.5, backoff=0.05, reconnect=2)
    items = []
    with LiveStream(f"udp://127.0.0.1:{port}", 16, options) as live:
        gave_up = r"lost the stream and 2 reconnect attempts failed \(no video arrived within 1 s"
        with pytest.raises(VideoError, match=gave_up):
            for item in live:
                items.append(item)
                if isinstance(item, Gap):
                    dropped.set()   # the second sender starts once the reader has noticed the drop
    sender.join(5)
    gaps = [i for i, item in enumerate(items) if isinstance(item, Gap)]
    assert gaps == [25, 51]                                        # after each stream's 25 frames
    assert items[25].index == 25 and "stalled" in items[25].reason
    frames = [item for item in items if isinstance(item, LiveFrame)]
    assert [f.index for f in frames] == list(range(50))
    assert [round(float(f.rgb.mean()) / 5) for f in frames] == list(range(50))
    times = [f.time for f in frames]
    assert all(b > a for a, b in itertools.pairwise(times))
    # Across the gap, stream time advances by the wall-clock time between the frames on either side.
    assert times[25] - times[24] == pytest.approx(frames[25].arrival - frames[24].arrival)
    assert live.stats.reconnects == 1


# ---------------------------------------------------------------------------------------------------
# Sources that cannot be read: one line naming the source, within the timeout


def closed_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once closed


MISSING_DEVICE_FORMAT = next(f for f in ("avfoundation", "dshow") if f not in av.formats_available)


@pytest.mark.parametrize("spec, message", [
    ("foo://bar", "foo://bar: unknown URL scheme 'foo'"),
    ("/dev/video9", "/dev/video9: no such capture device"),
    (f"{MISSING_DEVICE_FORMAT}:0", f"{MISSING_DEVICE_FORMAT}:0: this FFmpeg has no '{MISSING_DEVICE_FORMAT}' input"),
    ("udp://127.0.0.1:{udp}", r"udp://127.0.0.1:\d+: no video arrived within 0.5 s"),
    ("http://127.0.0.1:{tcp}/live.ts", r"http://127.0.0.1:\d+/live.ts: connection refused"),
    ("rtsp://127.0.0.1:{tcp}/cam", r"rtsp://127.0.0.1:\d+/cam: connection refused"),
    ("lavfi:nosuchfilter", "lavfi:nosuchfilter: cannot open"),
])
def test_unreadable_sources_are_one_line_errors_within_the_timeout(spec, message):
    spec = spec.format(udp=free_udp_port(), tcp=closed_tcp_port())
    start = time.monotonic()
    with pytest.raises(VideoError, match=message) as e:
        LiveStream(spec, 16, LiveOptions(open_timeout=0.5, read_timeout=0.5))
    assert time.monotonic() - start < 2 and "\n" not in str(e.value)


def pipe_with(data: bytes | None):
    """The read end of a pipe holding ``data`` (closed after it), or an open, silent one (None)."""
    read, write = os.pipe()
    if data is not None:
        os.write(write, data)
        os.close(write)
    return os.fdopen(read, "rb"), write


@pytest.mark.parametrize("data, message", [
    (b"hello, this is text and not a video\n" * 50, "-: standard input is not a video stream"),
    (b"", "-: standard input closed before any data arrived"),
    (None, r"-: no data on standard input for 0.5 s \(the stream stalled\)"),
])
def test_standard_input_that_is_not_a_video_is_a_one_line_error(data, message):
    stdin, write = pipe_with(data)
    start = time.monotonic()
    try:
        with pytest.raises(VideoError, match=message) as e:
            LiveStream("-", 16, LiveOptions(open_timeout=0.5, read_timeout=0.5), stdin=stdin)
    finally:
        stdin.close()
        if data is None:
            os.close(write)
    assert time.monotonic() - start < 2 and "\n" not in str(e.value)
