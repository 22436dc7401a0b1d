"""``lstm-tv predict``: label every frame of videos, streaming each through the model in constant memory.

The streaming itself is :mod:`lstm_tv.stream`; this module plans the jobs (which video goes to which
output), and writes what the stream yields::

    stream.predict_video -> PredictedChunk -> writers (CSV/JSONL rows), annotate (the video with its labels),
                                              traces (bounded timeline summaries) -> plots
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from lstm_tv.checkpoint import CheckpointRecord
from lstm_tv.data.sources import LiveOptions, is_live
from lstm_tv.errors import LabelError, LstmTvError
from lstm_tv.jobs import PredictionJob, expand_videos, plan_jobs
from lstm_tv.live_predict import STDOUT, LiveOutputs, LiveReport, watch
from lstm_tv.model.classifier import FrameClassifier
from lstm_tv.stream import DEFAULT_BATCH, PredictedChunk, open_for_inference, predict_video, threads_beside_decoding
from lstm_tv.traces import BoundedTrace, draw_timeline
from lstm_tv.truth import TruthLabels
from lstm_tv.writers import VideoContext, format_for, open_writer

# ---------------------------------------------------------------------------------------------------
# Planning: which video goes to which outputs


@dataclass
class VideoSummary:
    """What predict reports about one video."""

    video: Path
    frames: int = 0
    seconds: float = 0.0  # of video
    elapsed: float = 0.0  # wall-clock time taken
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # frames per predicted class
    correct: int | None = None  # frames whose prediction equals the true label, when labels are given
    stride: int = 1
    written: list[Path] = field(default_factory=list)

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.elapsed if self.elapsed > 0 else 0.0

    exit_code = 0  # a file's prediction ends by itself (a live run may be stopped by a signal)


def predict_job(model: FrameClassifier, record: CheckpointRecord, job: PredictionJob, info, device: torch.device, *,
                batch: int = DEFAULT_BATCH, stride: int = 1, truth: TruthLabels | None = None,
                background_decode: bool = True, progress=None, warn=None, cap: int = 2048,
                min_confidence: float = 0.0, min_frames: int = 1) -> VideoSummary:
    """Predict one video into the outputs of ``job``; every output appears whole at the end or not at all.

    Args:
        model: the classifier in eval mode on ``device``; ``record`` its checkpoint (classes, size).
        job: the video and its output paths.
        info: the video's :class:`~lstm_tv.data.video.VideoInfo` (``probe``), for fps and size.
        batch: decoded frames per chunk.
        stride: run the model on every ``stride``-th frame (see :func:`predict_video`).
        truth: the video's true labels, for the accuracy and the timeline's truth strip.
        progress: called as ``progress(frames_done, frames_total_or_None, frames_per_s)``.
        warn: called with warning lines.
        cap: the timeline keeps between ``cap`` and ``2 * cap`` points (see :class:`BoundedTrace`).
        min_confidence: label frames whose calibrated top probability is below it as the background class.
        min_frames: the events' ``--min-frames`` (see :class:`~lstm_tv.writers.SegmentWriter`).
    """
    k = len(record.classes)
    summary = VideoSummary(job.video, counts=np.zeros(k, np.int64), stride=stride,
                           correct=0 if truth is not None else None)
    fps = info.fps or record.frame_rate
    # Timeline rows: probabilities (K), confidence (1), and the truth one-hot (K) when labels are given.
    trace = BoundedTrace(2 * k + 1 if truth is not None else k + 1, cap) if job.timeline else None
    start = time.perf_counter()
    # Every output is written under a temporary name; leaving this block by an error removes them all,
    # leaving it normally renames them into place (the annotated video, whose flush may fail, first).
    with contextlib.ExitStack() as outputs:
        tmp_timeline = outputs.enter_context(_timeline_path(job.timeline)) if trace is not None else None
        sinks = _open_outputs(outputs, job, record, info, fps, min_frames)
        for chunk in predict_video(model, job.video, record.size, device, batch=batch, stride=stride,
                                   originals=job.annotate is not None, background_decode=background_decode,
                                   temperature=record.temperature, min_confidence=min_confidence,
                                   background=record.classes.index(record.background)):
            rows = _account(summary, chunk, truth)
            for sink in sinks:
                sink.write(chunk)
            if trace is not None:
                trace.add(chunk.times, rows)
            if progress is not None:
                progress(summary.frames, info.frames or None, summary.frames / (time.perf_counter() - start))
        warning = truth.finish(summary.frames) if truth is not None else None  # far off: fails before any rename
        if warning and warn:
            warn(warning)
        if trace is not None:
            draw_timeline(tmp_timeline, trace.result(1.0 / info.fps if info.fps else None), record.classes,
                          record.background, title=f"{job.video.name}: predicted labels over time",
                          truth=truth is not None)
    summary.seconds += 1.0 / fps  # the last frame lasts one frame
    summary.written = [p for p in (job.out, job.events, job.annotate, job.timeline) if p is not None]
    summary.elapsed = time.perf_counter() - start
    return summary


def _open_outputs(outputs: contextlib.ExitStack, job: PredictionJob, record: CheckpointRecord, info,
                  fps: float, min_frames: int = 1) -> list:
    """What consumes the chunks of ``job`` (its prediction writer, its annotated video), entered in ``outputs``:
    each has ``write(chunk)`` and is finished and renamed into place when ``outputs`` closes without an error."""
    sinks: list = []
    for target, fmt, options in ((job.out, job.fmt, {}), (job.events, "events", {"min_frames": min_frames})):
        if target is not None:
            sinks.append(outputs.enter_context(
                open_writer(sys.stdout if str(target) == STDOUT else target, fmt, record.classes, frame_time=1.0 / fps,
                            video=VideoContext(job.video.name, record.background, info.width, info.height),
                            **options)))
    if job.annotate is not None:
        from lstm_tv import plots  # deferred (matplotlib): the annotation's colours are the figures' palette
        from lstm_tv.annotate import Annotator

        colours = plots.class_colours(list(record.classes), record.background)
        sinks.append(outputs.enter_context(Annotator(job.annotate, record.classes, colours, fps,
                                                     info.width, info.height)))
    return sinks


def _timeline_path(path: Path):
    from lstm_tv.fileio import atomic_path

    return atomic_path(path, suffix=path.suffix)


def _account(summary: VideoSummary, chunk: PredictedChunk, truth: TruthLabels | None) -> np.ndarray:
    """Add a chunk to the summary; return its timeline rows (T, K + 1 [+ K]): probabilities, confidence, truth."""
    labels = chunk.labels
    summary.counts += np.bincount(labels, minlength=len(summary.counts))
    rows = [chunk.probs, chunk.confidence[:, None]]
    if truth is not None:
        true = truth.for_chunk(chunk.start, chunk.times)
        summary.correct += int((true == labels).sum())
        rows.append(truth.one_hot(true))
    summary.frames += len(chunk)
    summary.seconds = float(chunk.times[-1])
    return np.hstack(rows)


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), where a bf16 encoder is ~2x faster."""
    try:
        caps = torch.cpu.get_capabilities()
    except (AttributeError, RuntimeError):  # older PyTorch: don't guess
        return False
    return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


def stride_for(info, stride: int, fps: float | None) -> int:
    """The model's frame step for a video: ``stride``, or the step nearest to running at ``fps``."""
    if fps is None:
        return stride
    return max(1, round(info.fps / fps)) if info.fps else 1


def run_predict(sources: list[str | Path], *, checkpoint: str | Path | None = None, out: Path | None = None,
                annotate: Path | None = None, timeline: Path | None = None, labels: Path | None = None,
                device: str = "auto", batch: int = DEFAULT_BATCH, stride: int = 1, fps: float | None = None,
                amp: bool = False, fmt: str | None = None, events: Path | None = None, min_frames: int = 1,
                chunk: int | None = None, live: LiveOptions | None = None, stdin=None,
                min_confidence: float | None = None,
                reporter=None) -> list[VideoSummary | LiveReport]:
    """``lstm-tv predict``: check everything, then stream each video into its outputs and summarise.

    Everything that can be checked without decoding is checked first -- videos exist and open,
    output directories exist, label files parse, the checkpoint loads -- so a bad input fails in
    a second with nothing written. Videos are then predicted one after the other; each video's
    outputs appear when it is done (an error in a later video leaves earlier ones' complete outputs).
    A live source (a URL, ``-``, a device, a file with ``live.follow``; docs/live.md) is predicted
    alone, by :func:`lstm_tv.live_predict.watch`, with ``batch`` frames per model step.

    Args:
        fmt: the format of ``out`` (``--format``: csv, jsonl or an annotation tool's); None: from its suffix.
        amp: run the encoder in bfloat16 (CPU) / float16 (CUDA). Off by default: on the benchmark
            machine (2 cores, AVX512-BF16) it did not speed up the whole pipeline, whose floor is
            decoding (docs/benchmarks.md), and fp32 gives exactly what ``evaluate`` measures.
        min_confidence: abstain below this calibrated top probability (None: the checkpoint's
            ``predict.min_confidence``); see :func:`~lstm_tv.stream.abstain`.
        events, min_frames: ``--events`` (one JSON line per closed segment) and its flicker filter.
        chunk: ``--chunk``, frames per model step (the same as ``batch``; named for live sources).
        live: how live sources are read (timeouts, reconnects, follow, realtime).
        stdin: replaces standard input for the source ``-`` (tests).

    Returns:
        One :class:`VideoSummary` per video, or the :class:`~lstm_tv.live_predict.LiveReport` of a live source.

    Raises:
        VideoError: also when a live source fails mid-way, after its outputs are finished and reported.
    """
    from lstm_tv.ui import QUIET

    reporter = reporter or QUIET
    if chunk is not None:
        if chunk < 1:
            raise LstmTvError(f"--chunk {chunk}: must be at least 1 frame")
        batch = chunk
    if min_frames < 1:
        raise LstmTvError(f"--min-frames {min_frames}: must be at least 1 (1 = every run is a segment)")
    live = live or LiveOptions()
    streaming = any(is_live(s, live.follow) for s in sources)
    if (streaming or STDOUT in (str(out), str(events))) and reporter.enabled:
        reporter.out = reporter.err  # stdout carries rows (or may, in a live pipeline): every message to stderr
    if streaming:
        return [_run_live(sources, checkpoint=checkpoint, outputs=LiveOutputs(
            out, (fmt or "csv") if out is None or str(out) == STDOUT else format_for(out, fmt), events, min_frames,
            annotate, timeline), labels=labels, device=device, chunk=batch, stride=stride, fps=fps, amp=amp,
            options=live, stdin=stdin, min_confidence=min_confidence, reporter=reporter)]
    return _predict_files(sources, checkpoint=checkpoint, out=out, annotate=annotate, timeline=timeline,
                          labels=labels, device=device, batch=batch, stride=stride, fps=fps, amp=amp, fmt=fmt,
                          events=events, min_frames=min_frames, min_confidence=min_confidence, reporter=reporter)


def _predict_files(sources, *, checkpoint, out, annotate, timeline, labels, device: str, batch: int, stride: int,
                   fps: float | None, amp: bool, fmt: str | None, events, min_frames: int,
                   min_confidence: float | None, reporter) -> list[VideoSummary]:
    """``run_predict`` for video files: every job checked, then each video streamed into its outputs."""
    from rich.markup import escape

    from lstm_tv.data.video import probe

    if stride < 1:
        raise LstmTvError(f"--stride {stride}: must be at least 1 (1 = every frame)")
    if fps is not None and (stride != 1 or not fps > 0):
        raise LstmTvError(f"--fps {fps}: must be positive, and not combined with --stride")
    jobs = plan_jobs(expand_videos(sources), out=out, annotate=annotate, timeline=timeline, labels=labels, fmt=fmt,
                     events=events)
    path, record, model, dev = open_for_inference(checkpoint, device, batch=batch)
    abstain_below = _abstain_below(record, min_confidence)
    precision = set_precision(model, dev, amp, reporter)
    infos = [probe(job.video) for job in jobs]  # every video opens before the first is decoded
    truths = [read_truth(job.labels, record, info) if job.labels else None
              for job, info in zip(jobs, infos, strict=True)]
    shown = escape(f"{path} -> {path.resolve()}" if checkpoint is None else str(path))
    reporter.info(f"checkpoint [bold]{shown}[/] ({record.size[0]}x{record.size[1]} px, {record.cell} cell, {dev}, "
                  f"encoder in {precision})")
    summaries = []
    for job, info, truth in zip(jobs, infos, truths, strict=True):
        step = stride_for(info, stride, fps)
        with reporter.bar(escape(job.video.name), total=info.frames or None) as bar, threads_beside_decoding(dev):
            summary = predict_job(model, record, job, info, dev, batch=batch, stride=step, truth=truth,
                                  min_confidence=abstain_below,
                                  min_frames=min_frames,
                                  progress=lambda done, total, rate: bar.update(done, total, f"{rate:.0f} frames/s"),
                                  warn=lambda line: reporter.warn(escape(line)))
        reporter.table(escape(str(job.video)), summary_rows(summary, record.classes))
        summaries.append(summary)
    if fmt == "mstcn" and out is not None and out.is_dir() and out.name == "groundTruth":
        _write_mstcn_mapping(out.parent, record)
    return summaries


def _abstain_below(record: CheckpointRecord, min_confidence: float | None) -> float:
    """``--min-confidence``, or the checkpoint's ``predict.min_confidence`` when not given (checked)."""
    below = record.config.predict.min_confidence if min_confidence is None else min_confidence
    if not 0 <= below <= 1:
        raise LstmTvError(f"--min-confidence {below}: must be a probability in [0, 1]")
    return below


def _run_live(sources: list[str | Path], *, checkpoint, outputs: LiveOutputs, labels, device: str, chunk: int,
              stride: int, fps: float | None, amp: bool, options: LiveOptions, stdin, min_confidence: float | None,
              reporter) -> LiveReport:
    """Predict one live source (checked like files first: options, output paths, the checkpoint)."""
    from rich.markup import escape

    spec = str(sources[0])
    if len(sources) > 1:
        raise LstmTvError(f"{spec}: a live source is predicted alone; give it as the only SOURCE")
    if labels is not None:
        raise LabelError(f"--labels {labels}: not for a live source (it has no end to check the labels against)")
    if stride != 1 or fps is not None:
        raise LstmTvError("--stride / --fps: not for a live source; --realtime keeps up by dropping frames")
    outputs.check()
    path, record, model, dev = open_for_inference(checkpoint, device, batch=chunk)
    abstain_below = _abstain_below(record, min_confidence)
    precision = set_precision(model, dev, amp, reporter)
    said = f"checkpoint [bold]{escape(str(path))}[/] ({record.size} px, {record.cell} cell, {dev}, {precision})"
    with reporter.bar(escape(spec)) as bar:
        report = watch(model, record, spec, options, dev, outputs, chunk=chunk, stdin=stdin,
                       min_confidence=abstain_below,
                       opened=lambda: reporter.info(f"{said}; watching [bold]{escape(spec)}[/], {chunk} frames per "
                                                    f"step (Ctrl-C stops)"),
                       progress=lambda r: bar.update(r.frames, None, f"{r.dropped} dropped"))
    reporter.table(escape(spec), [(name, escape(value)) for name, value in report.rows(record.classes)])
    if report.error is not None:
        raise report.error
    return report


def _write_mstcn_mapping(root: Path, record: CheckpointRecord) -> None:
    """MS-TCN's ``mapping.txt`` in ``root``, beside ``root/groundTruth/``: the folder reads back as that layout."""
    from lstm_tv.data.annotation_tools import mstcn
    from lstm_tv.fileio import write_text

    write_text(root / "mapping.txt", mstcn.render_mapping(list(record.classes)))


def set_precision(model: FrameClassifier, device: torch.device, amp: bool, reporter) -> str:
    """Run the encoder in bf16 (CPU) / fp16 (CUDA) with ``amp``, warning on a CPU without native bf16;
    return the precision's name for the log. The memory cell always stays fp32."""
    if not amp:
        return "fp32"
    if device.type == "cpu" and not native_bf16():
        reporter.warn("--amp: this CPU has no native bfloat16 (AVX512-BF16 or AMX); the encoder will likely be slower")
    model.encoder_autocast = torch.bfloat16 if device.type == "cpu" else torch.float16
    return "bf16" if device.type == "cpu" else "fp16"


def read_truth(labels: Path, record: CheckpointRecord, info) -> TruthLabels:
    """A video's true labels, checked against its container's frame count before any decoding."""
    truth = TruthLabels(labels, record.classes, record.background)
    truth.check_count(info.frames)
    return truth


def summary_rows(summary: VideoSummary, classes: Sequence[str]) -> list[tuple[str, str]]:
    """The lines of predict's summary table for one video."""
    from rich.markup import escape

    rows = [("frames", f"{summary.frames} ({summary.seconds:.1f} s of video)"),
            ("time", f"{summary.elapsed:.1f} s, {summary.frames_per_s:.0f} frames/s"
                     + (f", model on 1 frame in {summary.stride}" if summary.stride > 1 else ""))]
    if summary.correct is not None:
        rows.append(("accuracy", f"{summary.correct / max(summary.frames, 1):.3f} (vs the labels)"))
    for name, count in zip(classes, summary.counts.tolist(), strict=True):
        rows.append((name, f"{100 * count / max(summary.frames, 1):5.1f} %"))
    rows.append(("written", escape(", ".join(map(str, summary.written))) if summary.written else
                 "nothing (give --out, --annotate or --timeline)"))
    return rows
