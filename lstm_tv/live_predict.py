"""Predicting a live source: frames as they arrive, a model step per chunk, every output flushed per chunk.

``predict`` hands a live source (a URL, ``-``, a capture device, a followed file; docs/live.md) here::

    LiveStream -> live_chunks (a chunk ends at --chunk frames or at a Gap) -> predict_live (memory reset
    at a Gap) -> LiveChunk -> rows / events (flushed), annotated MP4, timeline trace -> LiveReport

:func:`watch` runs that loop until the source ends, fails, or SIGINT / SIGTERM asks it to stop; it
always finishes every output (the MP4 and the timeline are renamed into place) before it returns.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, TextIO

import numpy as np
import torch

from lstm_tv.data.live import Gap, LiveFrame, LiveStream
from lstm_tv.data.sources import LiveOptions
from lstm_tv.errors import LstmTvError, VideoError
from lstm_tv.model.cells import State
from lstm_tv.stream import ORIGINALS_BUDGET, PredictedChunk, prefetch, probabilities, stream_step
from lstm_tv.traces import BoundedTrace, draw_timeline
from lstm_tv.writers import open_writer

STDOUT = "-"  # --out - / --events -: standard output
LIVE_FORMATS = ("csv", "jsonl")  # what --out of a live source may be: formats that stream row by row
LATENCY_WINDOW = 4096  # frames whose arrival-to-row latency the report's percentiles cover (the latest)


# ---------------------------------------------------------------------------------------------------
# Chunks


@dataclass
class LiveDecoded:
    """Consecutive decoded frames of a live source (as :class:`~lstm_tv.stream.DecodedChunk`).

    Attributes:
        numbers: (T,) frame numbers (``LiveFrame.index``; frames dropped by --realtime leave holes).
        frames, times, originals: as in DecodedChunk.
        arrivals: (T,) ``time.monotonic()`` when each frame left the decoder.
        gap: a :class:`Gap` comes right before these frames (the model's memory starts again).
    """

    numbers: np.ndarray
    frames: np.ndarray
    times: np.ndarray
    arrivals: np.ndarray
    originals: np.ndarray | None = None
    gap: bool = False

    def __len__(self) -> int:
        return len(self.times)


def live_chunks(items: Iterable[LiveFrame | Gap], chunk: int, *, originals: bool = False,
                max_bytes: int = ORIGINALS_BUDGET) -> Iterator[LiveDecoded]:
    """Group a live stream's frames into chunks of ``chunk`` frames; a chunk also ends at a Gap (the next
    one is marked) and, with ``originals``, once its full-size frames reach ``max_bytes``. The last,
    partial chunk comes out when the stream ends or is stopped: no decoded frame is left out."""
    frames: list[LiveFrame] = []
    gap = False

    def flush() -> LiveDecoded:
        nonlocal gap
        out = LiveDecoded(np.array([f.index for f in frames], np.int64), np.stack([f.rgb for f in frames]),
                          np.array([f.time for f in frames]), np.array([f.arrival for f in frames]),
                          np.stack([f.original for f in frames]) if originals else None, gap)
        frames.clear()
        gap = False
        return out

    for item in items:
        if isinstance(item, Gap):
            if frames:
                yield flush()
            gap = True
            continue
        frames.append(item)
        if len(frames) == chunk or (originals and len(frames) * item.original.nbytes >= max_bytes):
            yield flush()
    if frames:
        yield flush()


@dataclass
class LiveChunk(PredictedChunk):
    """A :class:`~lstm_tv.stream.PredictedChunk` of a live source: frame numbers with holes, arrivals, gap."""

    numbers: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    arrivals: np.ndarray = field(default_factory=lambda: np.zeros(0))
    gap: bool = False

    @property
    def frame_numbers(self) -> np.ndarray:
        return self.numbers

    @property
    def after_gap(self) -> bool:
        return self.gap


def predict_live(model, chunks: Iterable[LiveDecoded], device: torch.device, *, temperature: float = 1.0,
                 min_confidence: float = 0.0, background: int = 0) -> Iterator[LiveChunk]:
    """One model step per chunk, the memory carried from chunk to chunk and reset at a gap; probabilities
    calibrated by ``temperature`` and frames below ``min_confidence`` labelled ``background``, as files are."""
    state: State | None = None
    for chunk in chunks:
        if chunk.gap:
            state = None  # the frames after a reconnect are a new stream
        logits, state = stream_step(model, chunk.frames, state, device)
        probs = probabilities(logits, temperature).numpy()  # (T, K), as predict_video computes them
        yield LiveChunk(int(chunk.numbers[0]), chunk.times, probs, chunk.originals, min_confidence, background,
                        numbers=chunk.numbers, arrivals=chunk.arrivals, gap=chunk.gap)


# ---------------------------------------------------------------------------------------------------
# Stopping on a signal


class StopOnSignals:
    """While entered, SIGINT and SIGTERM ask ``stop()`` to end the run instead of killing it: the frames
    decoded so far are still decided and every output is finished. A second signal stops at once
    (KeyboardInterrupt; the temporary annotated video and timeline are then removed)."""

    def __init__(self, stop):
        self.stop, self.signum = stop, None
        self._old: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        self.stop()

    def __enter__(self) -> "StopOnSignals":
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


# ---------------------------------------------------------------------------------------------------
# The run


@dataclass
class LiveOutputs:
    """Where a live run writes (None: not asked for); ``out`` and ``events`` may be :data:`STDOUT`."""

    out: str | Path | None = None
    fmt: str = "csv"
    events: str | Path | None = None
    min_frames: int = 1
    annotate: Path | None = None
    timeline: Path | None = None

    def check(self) -> None:
        """Raise a one-line error for what a live run cannot write, before anything is opened."""
        from lstm_tv.fileio import check_parent
        from lstm_tv.writers import FIGURE_SUFFIXES

        if self.out is not None and self.fmt not in LIVE_FORMATS:
            raise LstmTvError(f"--format {self.fmt}: a live source streams rows; use csv or jsonl (tool formats "
                              f"are one document per finished video)")
        if self.out is not None and str(self.out) == str(self.events):
            raise LstmTvError(f"{self.out}: --out and --events would both write there")
        for option, path, suffixes in (("out", self.out, None), ("events", self.events, None),
                                       ("annotate", self.annotate, (".mp4",)),
                                       ("timeline", self.timeline, FIGURE_SUFFIXES)):
            if path is not None and str(path) == STDOUT and suffixes is not None:
                raise LstmTvError(f"--{option} -: a video or figure cannot go to standard output; give a file")
            if path is not None and str(path) != STDOUT:
                if Path(path).is_dir():
                    raise LstmTvError(f"{path}: --{option} of a live source must be a file, not a directory")
                if suffixes is not None and Path(path).suffix.lower() not in suffixes:
                    raise LstmTvError(f"{path}: --{option} must end in {' or '.join(suffixes)}")
                check_parent(path)


@dataclass
class LiveReport:
    """What a live run reports: frames, drops, reconnects, latency, and how it ended."""

    source: str
    frames: int = 0
    seconds: float = 0.0        # of stream time
    elapsed: float = 0.0        # wall-clock
    dropped: int = 0
    reconnects: int = 0
    gaps: int = 0
    skipped_packets: int = 0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    latency: np.ndarray = field(default_factory=lambda: np.zeros(0))  # seconds, the latest LATENCY_WINDOW frames
    signum: int | None = None   # the signal that stopped it
    error: VideoError | None = None  # the source's failure that ended it (outputs were still finished)
    written: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """128 + the signal's number when a signal stopped the run (130 SIGINT, 143 SIGTERM), else 0."""
        return 128 + self.signum if self.signum is not None else 0

    def rows(self, classes) -> list[tuple[str, str]]:
        """The lines of the summary table."""
        p50, p99 = (np.percentile(self.latency, [50, 99]) * 1000 if len(self.latency) else (0.0, 0.0))
        ended = (f"stopped by {signal.Signals(self.signum).name}" if self.signum is not None
                 else "source failed" if self.error is not None else "source ended")
        rows = [("frames", f"{self.frames} ({self.seconds:.1f} s of stream), {ended}"),
                ("time", f"{self.elapsed:.1f} s, {self.frames / max(self.elapsed, 1e-9):.1f} frames/s"),
                ("latency", f"arrival to row written: p50 {p50:.0f} ms, p99 {p99:.0f} ms"),
                ("dropped", f"{self.dropped} frames (--realtime)"),
                ("reconnects", f"{self.reconnects} ({self.gaps} gaps marked), {self.skipped_packets} damaged "
                               f"packets skipped")]
        rows += [(name, f"{100 * count / max(self.frames, 1):5.1f} %")
                 for name, count in zip(classes, self.counts.tolist(), strict=True)]
        rows.append(("written", ", ".join(self.written) if self.written else "nothing"))
        return rows


def watch(model, record, spec: str, options: LiveOptions, device: torch.device, outputs: LiveOutputs, *,
          chunk: int = 64, stdin=None, opened=None, progress=None, cap: int = 2048,
          min_confidence: float = 0.0) -> LiveReport:
    """Predict a live source until it ends, fails or a signal stops it; every output is finished either way.

    Rows and events are written to their final files (or stdout) as each chunk is decided and flushed, so
    a file is always whole up to its last row; the annotated MP4 and the timeline are written under a
    temporary name and renamed into place at the end (an MP4's index is written last).

    Args:
        model, record: the classifier in eval mode on ``device``, and its checkpoint record.
        spec: the source string (lstm_tv.data.sources.parse_source).
        chunk: frames per model step (1: a row per frame as it arrives).
        stdin: replaces standard input for ``-`` (tests).
        opened: called once the source is open (errors opening it come before).
        progress: called as ``progress(report)`` after every chunk.

    Returns:
        The report; ``report.error`` is the source's failure when it ended the run (raise it after
        reporting), ``report.signum`` the signal that stopped it.

    Raises:
        VideoError: the source cannot be opened (within ``options.open_timeout``).
    """
    if chunk < 1:
        raise LstmTvError(f"--chunk {chunk}: must be at least 1 frame")
    outputs.check()
    with _one_cpu_thread(device):
        return _watch(model, record, spec, options, device, outputs, chunk=chunk, stdin=stdin, opened=opened,
                      progress=progress, cap=cap, min_confidence=min_confidence)


@contextlib.contextmanager
def _one_cpu_thread(device: torch.device):
    """Step the model on one CPU thread while a live run lasts. 24 fps needs a fraction of one core, and a
    small step spread over threads that decoding and other processes also want waits for the slowest:
    measured on a busy 2-core machine, one frame took 1.4 ms on 1 thread and 208 ms on 2 (docs/benchmarks.md)."""
    before = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _watch(model, record, spec: str, options: LiveOptions, device: torch.device, outputs: LiveOutputs, *,
           chunk: int, stdin, opened, progress, cap: int, min_confidence: float) -> LiveReport:
    _warm_up(model, record.size, device, chunk)
    report = LiveReport(spec, counts=np.zeros(len(record.classes), np.int64))
    latencies = np.zeros(LATENCY_WINDOW)
    trace = BoundedTrace(len(record.classes) + 1, cap) if outputs.timeline else None
    start = time.perf_counter()
    with LiveStream(spec, record.size, options, original=outputs.annotate is not None, stdin=stdin) as live, \
            StopOnSignals(live.stop) as stop, contextlib.ExitStack() as files:
        if opened is not None:
            opened()
        sinks = _open_sinks(files, outputs, record)
        annotator = None
        chunks: Iterable[LiveDecoded] = live_chunks(live, chunk, originals=outputs.annotate is not None)
        if not options.realtime:
            chunks = prefetch(chunks)  # decoding overlaps the model; at most two chunks wait (backpressure)
        predicted = predict_live(model, chunks, device, temperature=record.temperature, min_confidence=min_confidence,
                                 background=record.classes.index(record.background))
        try:
            for out in predicted:
                if outputs.annotate is not None and annotator is None:
                    annotator = files.enter_context(_annotator(outputs.annotate, record, live.frame_rate,
                                                               out.originals.shape))
                for sink in sinks + ([annotator] if annotator is not None else []):
                    sink.write(out)
                for sink in sinks:
                    sink.flush()
                written = time.monotonic()
                _account(report, out, latencies, written)
                if trace is not None:
                    trace.add(out.times, np.hstack([out.probs, out.confidence[:, None]]))
                if progress is not None:
                    report.dropped = live.stats.dropped
                    progress(report)
        except VideoError as e:
            if stop.signum is None:  # after a stop, a read cut short is how it ends, not a failure
                report.error = e
        finally:
            predicted.close()  # stops the decoding thread before the source closes
        if trace is not None:
            files.enter_context(_timeline(outputs.timeline, trace, record, spec, live.frame_rate))
    report.signum = stop.signum
    report.dropped, report.reconnects = live.stats.dropped, live.stats.reconnects
    report.skipped_packets = live.stats.skipped_packets
    report.latency = latencies[:min(report.frames, LATENCY_WINDOW)]
    report.elapsed = time.perf_counter() - start
    report.written = [str(p) if str(p) != STDOUT else "standard output" for p in
                      (outputs.out, outputs.events, outputs.annotate, outputs.timeline) if p is not None]
    return report


def _warm_up(model, size: int | tuple[int, int], device: torch.device, chunk: int) -> None:
    """One step on blank frames before the source opens: the first step of a model is several times slower
    (allocations, kernel choice), and a live frame should not wait for it."""
    width, height = (size, size) if isinstance(size, int) else size
    stream_step(model, np.zeros((chunk, height, width, 3), np.uint8), None, device)


def _account(report: LiveReport, out: LiveChunk, latencies: np.ndarray, written: float) -> None:
    n = len(out)
    slots = (report.frames + np.arange(n)) % LATENCY_WINDOW  # a ring: the latest frames' latencies
    latencies[slots] = written - out.arrivals
    report.frames += n
    report.gaps += int(out.gap)
    report.counts += np.bincount(out.labels, minlength=len(report.counts))
    report.seconds = float(out.times[-1])


def _open_sinks(files: contextlib.ExitStack, outputs: LiveOutputs, record) -> list:
    """The row and event writers, entered in ``files``: each final file opened now, closed at the end."""
    sinks = []
    for target, fmt, options in ((outputs.out, outputs.fmt, {"live": True}),
                                 (outputs.events, "events", {"min_frames": outputs.min_frames})):
        if target is None:
            continue
        file: TextIO = sys.stdout if str(target) == STDOUT else files.enter_context(
            open(target, "w", encoding="utf-8", newline="\n"))
        sinks.append(files.enter_context(open_writer(file, fmt, record.classes, **options)))
    return sinks


def _annotator(path: Path, record, fps: float, shape: tuple[int, ...]):
    from lstm_tv import plots  # deferred (matplotlib): the annotation's colours are the figures' palette
    from lstm_tv.annotate import Annotator

    colours = plots.class_colours(list(record.classes), record.background)
    return Annotator(path, record.classes, colours, fps, shape[2], shape[1])  # originals (T, H, W, 3)


@contextlib.contextmanager
def _timeline(path: Path, trace: BoundedTrace, record, spec: str, fps: float):
    """Draw the timeline when the run's outputs close (under a temporary name, renamed into place)."""
    from lstm_tv.fileio import atomic_path

    yield
    if trace.frames:
        with atomic_path(path, suffix=path.suffix) as tmp:
            draw_timeline(tmp, trace.result(1.0 / fps), record.classes, record.background,
                          title=f"{spec}: predicted labels over time")
