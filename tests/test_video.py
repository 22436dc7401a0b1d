"""Video I/O: a constant-memory frame generator with times, an atomic MP4 writer, clear errors."""

from __future__ import annotations

import av
import numpy as np
import pytest
from conftest import write_audio_only

from lstm_tv.data.video import VideoWriter, count_frames, decode_frames, probe, read_frames
from lstm_tv.errors import VideoError


def gradient_video(path, frames=20, width=32, height=24, fps=24):
    with VideoWriter(path, fps=fps, width=width, height=height) as w:
        for i in range(frames):
            w.write(np.full((height, width, 3), (10 * i) % 250, np.uint8))
    return path


def test_roundtrip_frames_times_and_size(tmp_path):
    path = gradient_video(tmp_path / "a.mp4", frames=20)
    frames = list(read_frames(path))
    assert len(frames) == 20 == count_frames(path)
    rgb, t = frames[0]
    assert rgb.dtype == np.uint8 and rgb.shape == (24, 32, 3) and t == 0.0
    assert [round(t * 24) for _, t in frames] == list(range(20))       # time from pts, frame order = decode order
    assert abs(float(frames[5][0].mean()) - 50) < 4                      # content survives encoding
    small = next(read_frames(path, 16))[0]
    assert small.shape == (16, 16, 3)
    assert next(read_frames(path, (20, 10)))[0].shape == (10, 20, 3)   # (width, height)
    info = probe(path)
    assert (info.width, info.height, info.fps) == (32, 24, 24.0)


def test_read_frames_is_lazy(tmp_path):
    path = gradient_video(tmp_path / "a.mp4", frames=30)
    gen = read_frames(path)
    first = next(gen)            # decoding starts without reading the whole file into memory
    gen.close()
    assert first[0].shape == (24, 32, 3)


def test_writer_pads_odd_sizes(tmp_path):
    path = gradient_video(tmp_path / "odd.mp4", frames=3, width=33, height=21)
    assert next(read_frames(path))[0].shape == (22, 34, 3)


def test_writer_is_atomic(tmp_path):
    path = tmp_path / "x.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(path, fps=24, width=16, height=16) as w:
            w.write(np.zeros((16, 16, 3), np.uint8))
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_missing_directory(tmp_path):
    with pytest.raises(Exception, match="does not exist"):
        VideoWriter(tmp_path / "missing" / "x.mp4", fps=24, width=16, height=16)


def file_with(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.mp4", "video not found"),
    (lambda d: file_with(d / "empty.mp4", b""), "empty file"),
    (lambda d: file_with(d / "text.mp4", b"hello, not a video\n" * 20), "cannot open as video"),
    (lambda d: write_audio_only(d / "audio.m4a"), "no video stream"),
    (lambda d: d, "is a directory"),
])
def test_unreadable_input_names_file_and_reason(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(VideoError) as e:
        list(read_frames(path))
    assert str(path) in str(e.value) and message in str(e.value)


def test_truncated_video(tmp_path):
    path = gradient_video(tmp_path / "a.mp4", frames=48)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match="cut.mp4"):
        list(read_frames(cut))


def test_too_short_and_too_small_videos_are_refused(tmp_path):
    one = gradient_video(tmp_path / "one.mp4", frames=1)
    with pytest.raises(VideoError, match="one.mp4: only 1 frame; lstm-tv needs videos of at least 2 frames"):
        list(read_frames(one))
    tiny = gradient_video(tmp_path / "tiny.mp4", frames=5, width=4, height=4)
    with pytest.raises(VideoError, match=r"tiny.mp4: frames of 4x4 px are too small"):
        list(read_frames(tiny))


def test_portrait_and_variable_frame_rate_videos(tmp_path):
    portrait = gradient_video(tmp_path / "portrait.mp4", frames=4, width=36, height=64)
    assert next(read_frames(portrait))[0].shape == (64, 36, 3)
    assert next(read_frames(portrait, 16))[0].shape == (16, 16, 3)
    # Variable frame rate: frames at 0, 0.1, 0.15, 0.4 s; times come from each frame's pts.
    path = tmp_path / "vfr.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=100)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        s.codec_context.time_base = __import__("fractions").Fraction(1, 100)
        for pts in (0, 10, 15, 40):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            frame.pts = pts
            frame.time_base = s.codec_context.time_base
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    times = [round(t, 3) for _, t in read_frames(path)]
    assert times == [0.0, 0.1, 0.15, 0.4]


def flat_ts(path, frames, width, height, first=0):
    """An MPEG-TS file whose frame i is flat grey ``10 * (first + i)``."""
    with av.open(str(path), "w", format="mpegts") as c:
        s = c.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), 10 * (first + i), np.uint8), format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def test_a_size_change_mid_stream_keeps_one_original_size(tmp_path):
    spliced = tmp_path / "spliced.ts"  # two programmes of different sizes back to back, as a broadcast
    spliced.write_bytes(flat_ts(tmp_path / "1.ts", 6, 32, 32).read_bytes()
                        + flat_ts(tmp_path / "2.ts", 6, 48, 40, first=6).read_bytes())
    frames = list(decode_frames(spliced, 16, original=True))
    assert len(frames) == 12
    assert {f.rgb.shape for f in frames} == {(16, 16, 3)}
    assert {f.original.shape for f in frames} == {(32, 32, 3)}     # the first picture's size throughout
    assert [round(float(f.original.mean()) / 10) for f in frames] == list(range(12))
