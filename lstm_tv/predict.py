"""``lstm-tv predict``: label every frame of videos, streaming each through the model in constant memory.

The streaming itself is :mod:`lstm_tv.stream`; this module plans the jobs (which video goes to which
output), and writes what the stream yields::

    stream.predict_video -> PredictedChunk -> CSV/JSONL rows, annotated video, bounded timeline summaries
"""

from __future__ import annotations

import contextlib
import glob
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lstm_tv.errors import LabelError, LstmTvError, VideoError
from lstm_tv.model.classifier import FrameClassifier
from lstm_tv.stream import DEFAULT_BATCH, PredictedChunk, ckpt_fps, load_model, predict_video, resolve_checkpoint

PREDICTION_SUFFIXES = (".csv", ".jsonl")
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


# ---------------------------------------------------------------------------------------------------
# Bounded per-frame summaries (for timelines and explain figures of arbitrarily long videos)


@dataclass
class Binned:
    """Per-frame rows averaged over bins of consecutive frames (see :class:`BoundedTrace`).

    Attributes:
        start: (B,) first frame of each bin.
        time: (B,) time of each bin's first frame (seconds).
        count: (B,) frames in each bin.
        mean: (B, D) mean row of each bin.
        end_time: time just after the last frame (its time plus one frame).
    """

    start: np.ndarray
    time: np.ndarray
    count: np.ndarray
    mean: np.ndarray
    end_time: float

    @property
    def edges(self) -> np.ndarray:
        """(B + 1,) bin boundaries in seconds, for strips and step plots."""
        return np.append(self.time, self.end_time)


class BoundedTrace:
    """Keep per-frame rows of D numbers for a video of any length in bounded memory.

    Rows go into bins of ``stride`` consecutive frames (1 at first). When ``2 * cap`` bins are full,
    neighbouring bins are merged pairwise and ``stride`` doubles, so a video of N frames ends with
    between ``cap`` and ``2 * cap`` bins (or N bins of one frame when N <= 2 * cap): plenty of
    points for a figure, at most ``2 * cap * D`` numbers whatever the video's length.

    Args:
        width: D, numbers per frame.
        cap: half the most bins kept.
    """

    def __init__(self, width: int, cap: int = 2048) -> None:
        if cap < 1:
            raise ValueError(f"cap must be >= 1, got {cap}")
        self.width, self.cap, self.stride = width, cap, 1
        self._sum = np.zeros((2 * cap, width))
        self._start = np.zeros(2 * cap, dtype=np.int64)
        self._time = np.zeros(2 * cap)
        self._bins = 0
        self._partial = np.zeros(width)  # the bin being filled
        self._partial_count = 0
        self._partial_start, self._partial_time = 0, 0.0
        self.frames = 0
        self._last_time, self._step = 0.0, 0.0

    def add(self, times: np.ndarray, rows: np.ndarray) -> None:
        """Append consecutive frames: ``times`` (T,) in seconds and ``rows`` (T, D)."""
        rows = np.asarray(rows, dtype=np.float64).reshape(len(times), self.width)
        times = np.asarray(times, dtype=np.float64)
        i, n = 0, len(times)
        while i < n:
            if self._bins == 2 * self.cap:
                self._halve()
            if self._partial_count == 0:
                # Fast path: whole bins straight from the rows, (m * stride, D) -> (m, stride, D) -> (m, D).
                m = min((n - i) // self.stride, 2 * self.cap - self._bins)
                if m:
                    end = i + m * self.stride
                    b = slice(self._bins, self._bins + m)
                    self._sum[b] = rows[i:end].reshape(m, self.stride, self.width).sum(axis=1)
                    self._start[b] = self.frames + np.arange(i, end, self.stride)
                    self._time[b] = times[i:end:self.stride]
                    self._bins += m
                    i = end
                    continue
                self._partial_start, self._partial_time = self.frames + i, times[i]
            take = min(self.stride - self._partial_count, n - i)
            self._partial += rows[i:i + take].sum(axis=0)
            self._partial_count += take
            i += take
            if self._partial_count == self.stride:
                self._sum[self._bins] = self._partial
                self._start[self._bins], self._time[self._bins] = self._partial_start, self._partial_time
                self._bins += 1
                self._partial[:] = 0
                self._partial_count = 0
        if n:
            if n > 1:
                self._step = float(times[-1] - times[-2])
            elif self.frames:
                self._step = float(times[-1] - self._last_time)
            self._last_time = float(times[-1])
        self.frames += n

    def _halve(self) -> None:
        k = self._bins // 2  # _bins == 2 * cap: even
        self._sum[:k] = self._sum[0:2 * k:2] + self._sum[1:2 * k:2]
        self._start[:k] = self._start[0:2 * k:2]
        self._time[:k] = self._time[0:2 * k:2]
        self._bins = k
        self.stride *= 2

    def result(self, frame_time: float | None = None) -> Binned:
        """The bins so far (the partly filled last one included).

        Args:
            frame_time: how long the last frame lasts (1 / fps), for the end time; default: the
                spacing of the last two frames.
        """
        b = self._bins
        counts = np.full(b, self.stride, dtype=np.int64)
        sums, starts, times = self._sum[:b], self._start[:b], self._time[:b]
        if self._partial_count:
            sums = np.vstack([sums, self._partial])
            starts = np.append(starts, self._partial_start)
            times = np.append(times, self._partial_time)
            counts = np.append(counts, self._partial_count)
        step = frame_time or self._step or 1.0 / 25  # a one-frame video of unknown rate: any visible width
        return Binned(starts.copy(), times.copy(), counts, sums / np.maximum(counts, 1)[:, None],
                      self._last_time + step if self.frames else 0.0)


# ---------------------------------------------------------------------------------------------------
# True labels (optional, for timelines, explain figures and accuracy)


class TruthLabels:
    """A video's true labels from a per-frame ``.txt`` or a segment ``.csv`` (FORMATS.md §1).

    Read before decoding, so a bad file fails before any work; :meth:`for_chunk` gives each
    chunk's labels as frames stream by (segments need the frame times), :meth:`finish` checks the
    frame count at the end with the tolerance of ``prepare``. Nothing per frame is kept beyond
    the file's own labels.
    """

    def __init__(self, path: str | Path, classes: list[str], background: str) -> None:
        from lstm_tv.data.labels import read_frame_labels, read_segments

        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix == ".txt":
            self.frame_labels: np.ndarray | None = np.asarray(read_frame_labels(self.path, classes), dtype=np.int64)
            self.segments = None
        elif suffix == ".csv":
            self.frame_labels, self.segments = None, read_segments(self.path, classes)
        elif self.path.is_file():
            raise LabelError(f"{self.path}: labels must be a per-frame .txt or a segment .csv")
        else:
            raise LabelError(f"{self.path}: file not found")
        self.num_classes, self.background = len(classes), classes.index(background)

    def check_count(self, frames: int) -> None:
        """Fail early when the container's frame count (0 = unknown) is far from the label count."""
        from lstm_tv.data.labels import fit_length

        if self.frame_labels is not None and frames:
            fit_length(self.frame_labels.tolist(), frames, self.path)

    def for_chunk(self, start: int, times: np.ndarray) -> np.ndarray:
        """(T,) true class per frame of the chunk starting at frame ``start``."""
        from lstm_tv.data.labels import segments_to_frames

        if self.frame_labels is not None:
            # Frames past the end repeat the last label (prepare's tolerance; finish() checks the count).
            idx = np.minimum(np.arange(start, start + len(times)), len(self.frame_labels) - 1)
            labels = self.frame_labels[idx]
        else:
            labels = np.asarray(segments_to_frames(self.segments, times.tolist(), self.background), dtype=np.int64)
        return labels

    def one_hot(self, labels: np.ndarray) -> np.ndarray:
        """(T,) labels -> (T, K) one-hot rows: their bin means in a BoundedTrace are class shares."""
        return np.eye(self.num_classes)[labels]

    def finish(self, frames: int) -> str | None:
        """Check a ``.txt`` file's length against the decoded frame count.

        Returns:
            A warning for a difference of 1-2 frames (container rounding), else None.
        Raises:
            LabelError: more than 2 frames apart (as ``prepare``).
        """
        from lstm_tv.data.labels import fit_length

        if self.frame_labels is None:
            return None
        return fit_length(self.frame_labels.tolist(), frames, self.path)[1]


# ---------------------------------------------------------------------------------------------------
# Writers: each consumes PredictedChunks and writes to a temporary file renamed by the caller


class PredictionWriter:
    """FORMATS.md §4 rows: ``frame,time,label,confidence,p_<class>...`` as CSV, or JSON lines.

    Args:
        file: an open text file.
        classes: class names in the checkpoint's order.
        fmt: ``csv`` or ``jsonl``.
    """

    def __init__(self, file, classes: list[str], fmt: str) -> None:
        self.file, self.classes, self.fmt = file, classes, fmt
        self.keys = ["frame", "time", "label", "confidence"] + [f"p_{c}" for c in classes]
        if fmt == "csv":
            file.write(",".join(self.keys) + "\n")

    def write(self, chunk: PredictedChunk) -> None:
        probs = np.round(chunk.probs.astype(np.float64), 6)
        conf = probs.max(axis=1).tolist()
        labels = chunk.labels.tolist()
        times = np.round(chunk.times, 6).tolist()
        lines = []
        for j, row in enumerate(probs.tolist()):
            values = [chunk.start + j, times[j], self.classes[labels[j]], conf[j], *row]
            if self.fmt == "csv":
                lines.append(",".join(map(str, values)))
            else:
                lines.append(json.dumps(dict(zip(self.keys, values))))
        self.file.write("\n".join(lines) + "\n")


class Annotator:
    """Draw each frame's label, confidence and per-class probability bars; write an MP4.

    The panel sits in the top-left corner, scaled to the frame height, over a darkened background.
    """

    def __init__(self, path: str | Path, classes: list[str], colours: list[tuple[int, int, int]],
                 fps: float, width: int, height: int) -> None:
        from PIL import ImageFont

        from lstm_tv.data.video import VideoWriter

        self.classes, self.colours = classes, colours
        self.row = max(10, height // 24)  # row height in pixels
        try:
            self.font = ImageFont.load_default(size=max(8, int(self.row * 0.8)))
        except (TypeError, OSError, ImportError):  # Pillow without FreeType: the fixed bitmap font
            self.font = ImageFont.load_default()
        self.panel = (min(width, max(8 * self.row, width // 3)), min(height, (len(classes) + 1) * self.row + self.row // 2))
        self.writer = VideoWriter(path, fps=fps, width=width, height=height)

    def draw(self, frame: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """Draw the panel onto ``frame`` (H, W, 3) uint8 in place and return it."""
        from PIL import Image, ImageDraw

        pw, ph = self.panel
        region = frame[:ph, :pw]
        img = Image.fromarray((region * 0.35).astype(np.uint8))  # darken under the panel
        draw = ImageDraw.Draw(img)
        r, pad = self.row, max(2, self.row // 5)
        best = int(probs.argmax())
        draw.text((pad, 0), f"{self.classes[best]} {probs[best]:.0%}", fill=self.colours[best], font=self.font)
        name_w = int(pw * 0.45)
        for k, (name, p) in enumerate(zip(self.classes, probs)):
            y = (k + 1) * r + pad
            draw.text((pad, y - pad), name, fill=(230, 230, 230), font=self.font)
            bar = int((pw - name_w - pad) * float(p))
            draw.rectangle((name_w, y, name_w + bar, y + r - 2 * pad), fill=self.colours[k])
        region[:] = np.asarray(img)
        return frame

    def write(self, chunk: PredictedChunk) -> None:
        assert chunk.originals is not None  # predict_video(originals=True)
        for frame, probs in zip(chunk.originals, chunk.probs):
            self.writer.write(self.draw(frame, probs))

    def __enter__(self) -> "Annotator":
        return self

    def __exit__(self, *exc) -> None:
        self.writer.__exit__(*exc)  # finished video renamed into place, or the partial one removed


# ---------------------------------------------------------------------------------------------------
# The command: lstm-tv predict


def expand_videos(sources: list[str | Path]) -> list[Path]:
    """Videos named by files, directories (their video files, not recursive) and glob patterns.

    Raises:
        VideoError: a path that does not exist, a directory without videos, a pattern matching none.
    """
    from lstm_tv.data.video import VIDEO_EXTENSIONS

    out: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
            if not found:
                raise VideoError(f"{path}: directory has no video files ({' '.join(VIDEO_EXTENSIONS)})")
            out += found
        elif path.exists():
            out.append(path)
        elif glob.has_magic(str(source)):
            found = sorted(Path(p) for p in glob.glob(str(source), recursive=True) if Path(p).is_file())
            if not found:
                raise VideoError(f"{source}: video not found (and no file matches it as a pattern)")
            out += found
        else:
            raise VideoError(f"{path}: video not found")
    if not out:
        raise VideoError("no video given")
    first = {}
    for p in out:  # a video named twice (as a file and through its directory, say) is predicted once
        first.setdefault(p.resolve(), p)
    return list(first.values())


@dataclass
class VideoJob:
    """One video and where its outputs go (None: not asked for)."""

    video: Path
    out: Path | None = None
    annotate: Path | None = None
    timeline: Path | None = None
    labels: Path | None = None


def _output_for(option: str, value: Path | None, video: Path, several: bool, suffixes: tuple[str, ...]) -> Path | None:
    """The output path of ``video`` for ``--option value``: the file itself, or ``value/<stem><suffix>``."""
    if value is None:
        return None
    if value.is_dir():
        return value / f"{video.stem}{suffixes[0]}"
    if several:
        raise LstmTvError(f"{value}: --{option} with several videos must be an existing directory "
                          f"(one {video.stem}{suffixes[0]}-style file per video)")
    if value.suffix.lower() not in suffixes:
        raise LstmTvError(f"{value}: --{option} must end in {' or '.join(suffixes)} (or be an existing directory)")
    from lstm_tv.fileio import check_parent

    return check_parent(value)


def plan_jobs(videos: list[Path], *, out: Path | None, annotate: Path | None, timeline: Path | None,
              labels: Path | None) -> list[VideoJob]:
    """Pair every video with its output and label paths, checking them all before any decoding."""
    several = len(videos) > 1
    stems: dict[str, Path] = {}
    jobs = []
    for video in videos:
        if (out or annotate or timeline) and video.stem in stems:
            raise LstmTvError(f"{video}: same name as {stems[video.stem]}; their outputs would overwrite each other")
        stems[video.stem] = video
        job = VideoJob(video, _output_for("out", out, video, several, PREDICTION_SUFFIXES),
                       _output_for("annotate", annotate, video, several, (".mp4",)),
                       _output_for("timeline", timeline, video, several, FIGURE_SUFFIXES))
        if labels is not None:
            if labels.is_dir():
                found = [labels / f"{video.stem}{s}" for s in (".txt", ".csv") if (labels / f"{video.stem}{s}").is_file()]
                if not found:
                    raise LabelError(f"{labels}: no {video.stem}.txt or {video.stem}.csv for {video}")
                job.labels = found[0]
            elif several:
                raise LabelError(f"{labels}: --labels with several videos must be a directory of <stem>.txt/.csv")
            else:
                job.labels = labels
        outputs = [p for p in (job.out, job.annotate, job.timeline) if p is not None]
        for p in outputs:
            if p.resolve() == video.resolve():
                raise LstmTvError(f"{p}: output would overwrite the input video")
        if len({p.resolve() for p in outputs}) < len(outputs):
            raise LstmTvError(f"{outputs[0]}: two outputs of {video} have the same path")
        jobs.append(job)
    return jobs


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


def predict_job(model: FrameClassifier, ckpt: dict, job: VideoJob, info, device: torch.device, *,
                batch: int = DEFAULT_BATCH, stride: int = 1, truth: TruthLabels | None = None,
                background_decode: bool = True, progress=None, warn=None, cap: int = 2048) -> VideoSummary:
    """Predict one video into the outputs of ``job``; every output appears whole at the end or not at all.

    Args:
        model: the classifier in eval mode on ``device``; ``ckpt`` its checkpoint (classes, size).
        job: the video and its output paths.
        info: the video's :class:`~lstm_tv.data.video.VideoInfo` (``probe``), for fps and size.
        batch: decoded frames per chunk.
        stride: run the model on every ``stride``-th frame (see :func:`predict_video`).
        truth: the video's true labels, for the accuracy and the timeline's truth strip.
        progress: called as ``progress(frames_done, frames_total_or_None, frames_per_s)``.
        warn: called with warning lines.
        cap: the timeline keeps between ``cap`` and ``2 * cap`` points (see :class:`BoundedTrace`).
    """
    from lstm_tv import plots
    from lstm_tv.fileio import atomic_path

    classes, size = ckpt["classes"], ckpt["size"]
    colours = plots.class_colours(classes, ckpt["background"])
    summary = VideoSummary(job.video, counts=np.zeros(len(classes), np.int64), stride=stride,
                           correct=0 if truth is not None else None)
    k = len(classes)
    # Timeline rows: probabilities (K), confidence (1), and the truth one-hot (K) when labels are given.
    trace = BoundedTrace(2 * k + 1 if truth is not None else k + 1, cap) if job.timeline else None
    start = time.perf_counter()
    # Every output is written under a temporary name; leaving this block by an error removes them all,
    # leaving it normally renames them into place (the annotated video, whose flush may fail, first).
    with contextlib.ExitStack() as outputs:
        writer = annotator = None
        if job.timeline is not None:
            tmp_timeline = outputs.enter_context(atomic_path(job.timeline, suffix=job.timeline.suffix))
        if job.out is not None:
            tmp = outputs.enter_context(atomic_path(job.out, suffix=job.out.suffix))
            file = outputs.enter_context(open(tmp, "w", encoding="utf-8", newline="\n"))
            writer = PredictionWriter(file, classes, job.out.suffix.lower().lstrip("."))
        if job.annotate is not None:
            annotator = outputs.enter_context(Annotator(job.annotate, classes, colours, info.fps or ckpt_fps(ckpt),
                                                        info.width, info.height))
        for chunk in predict_video(model, job.video, size, device, batch=batch, stride=stride,
                                   originals=annotator is not None, background_decode=background_decode):
            labels = chunk.labels
            summary.counts += np.bincount(labels, minlength=len(classes))
            rows = [chunk.probs, chunk.confidence[:, None]]
            if truth is not None:
                true = truth.for_chunk(chunk.start, chunk.times)
                summary.correct += int((true == labels).sum())
                rows.append(truth.one_hot(true))
            if writer is not None:
                writer.write(chunk)
            if annotator is not None:
                annotator.write(chunk)
            if trace is not None:
                trace.add(chunk.times, np.hstack(rows))
            summary.frames += len(chunk)
            summary.seconds = float(chunk.times[-1])
            if progress is not None:
                progress(summary.frames, info.frames or None, summary.frames / (time.perf_counter() - start))
        warning = truth.finish(summary.frames) if truth is not None else None  # far off: fails before any rename
        if warning and warn:
            warn(warning)
        if trace is not None:
            binned = trace.result(1.0 / info.fps if info.fps else None)
            plots.prediction_timeline(
                tmp_timeline, binned.edges, binned.mean[:, :k].argmax(axis=1), binned.mean[:, k], classes, colours,
                truth=binned.mean[:, k + 1:].argmax(axis=1) if truth is not None else None,  # most frequent per bin
                title=f"{job.video.name}: predicted labels over time")
    summary.seconds += 1.0 / (info.fps or ckpt_fps(ckpt))  # the last frame lasts one frame
    summary.written = [p for p in (job.out, job.annotate, job.timeline) if p is not None]
    summary.elapsed = time.perf_counter() - start
    return summary


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
                amp: bool = False, reporter=None) -> list[VideoSummary]:
    """``lstm-tv predict``: check everything, then stream each video into its outputs and summarise.

    Everything that can be checked without decoding is checked first -- videos exist and open,
    output directories exist, label files parse, the checkpoint loads -- so a bad input fails in
    a second with nothing written. Videos are then predicted one after the other; each video's
    outputs appear when it is done (an error in a later video leaves earlier ones' complete outputs).

    Args:
        amp: run the encoder in bfloat16 (CPU) / float16 (CUDA). Off by default: on the benchmark
            machine (2 cores, AVX512-BF16) it did not speed up the whole pipeline, whose floor is
            decoding (docs/benchmarks.md), and fp32 gives exactly what ``evaluate`` measures.

    Returns:
        One :class:`VideoSummary` per video.
    """
    from rich.markup import escape

    from lstm_tv.checkpoint import config_of
    from lstm_tv.data.video import probe
    from lstm_tv.distributed import resolve_device
    from lstm_tv.ui import QUIET

    reporter = reporter or QUIET
    if batch < 1:
        raise LstmTvError(f"--batch {batch}: must be at least 1 frame")
    if stride < 1:
        raise LstmTvError(f"--stride {stride}: must be at least 1 (1 = every frame)")
    if fps is not None and (stride != 1 or not fps > 0):
        raise LstmTvError(f"--fps {fps}: must be positive, and not combined with --stride")
    jobs = plan_jobs(expand_videos(sources), out=out, annotate=annotate, timeline=timeline, labels=labels)
    path = resolve_checkpoint(checkpoint)
    dev = resolve_device(device)
    ckpt, model = load_model(path, dev)
    if amp and dev.type == "cpu" and not native_bf16():
        reporter.warn("--amp: this CPU has no native bfloat16 (AVX512-BF16 or AMX); the encoder will likely be slower")
    if amp:
        # bf16 on the CPU, fp16 on CUDA, for the encoder only; the memory cell stays fp32.
        model.encoder_autocast = torch.bfloat16 if dev.type == "cpu" else torch.float16
    infos = [probe(job.video) for job in jobs]  # every video opens before the first is decoded
    truths = []
    for job, info in zip(jobs, infos):
        truth = TruthLabels(job.labels, ckpt["classes"], ckpt["background"]) if job.labels else None
        if truth is not None:
            truth.check_count(info.frames)
        truths.append(truth)
    shown = escape(f"{path} -> {path.resolve()}" if checkpoint is None else str(path))
    reporter.info(f"checkpoint [bold]{shown}[/] ({ckpt['size']} px, {config_of(ckpt, path).model.cell} cell, "
                  f"{dev}, encoder in {'fp32' if not amp else 'bf16' if dev.type == 'cpu' else 'fp16'})")
    summaries = []
    for job, info, truth in zip(jobs, infos, truths):
        step = stride_for(info, stride, fps)
        with reporter.bar(escape(job.video.name), total=info.frames or None) as bar:
            summary = predict_job(model, ckpt, job, info, dev, batch=batch, stride=step, truth=truth,
                                  progress=lambda done, total, rate: bar.update(done, total, f"{rate:.0f} frames/s"),
                                  warn=lambda line: reporter.warn(escape(line)))
        reporter.table(escape(str(job.video)), summary_rows(summary, ckpt["classes"]))
        summaries.append(summary)
    return summaries


def summary_rows(summary: VideoSummary, classes: list[str]) -> list[tuple[str, str]]:
    """The lines of predict's summary table for one video."""
    from rich.markup import escape

    rows = [("frames", f"{summary.frames} ({summary.seconds:.1f} s of video)"),
            ("time", f"{summary.elapsed:.1f} s, {summary.frames_per_s:.0f} frames/s"
                     + (f", model on 1 frame in {summary.stride}" if summary.stride > 1 else ""))]
    if summary.correct is not None:
        rows.append(("accuracy", f"{summary.correct / max(summary.frames, 1):.3f} (vs the labels)"))
    for name, count in zip(classes, summary.counts.tolist()):
        rows.append((name, f"{100 * count / max(summary.frames, 1):5.1f} %"))
    rows.append(("written", escape(", ".join(map(str, summary.written))) if summary.written else
                 "nothing (give --out, --annotate or --timeline)"))
    return rows
