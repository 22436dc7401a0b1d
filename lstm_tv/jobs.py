"""Which video goes to which output: ``predict``'s jobs, planned and checked before anything is decoded."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from lstm_tv.errors import LabelError, LstmTvError, VideoError
from lstm_tv.live_predict import STDOUT
from lstm_tv.writers import FIGURE_SUFFIXES, format_for, prediction_suffixes


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
class PredictionJob:
    """One video and where its outputs go (None: not asked for)."""

    video: Path
    out: Path | None = None
    annotate: Path | None = None
    timeline: Path | None = None
    labels: Path | None = None
    fmt: str = "csv"  # the format of ``out`` (lstm_tv.writers.WRITERS)
    events: Path | None = None  # --events: one JSON line per closed segment (Path("-"): standard output)


def _output_for(option: str, value: Path | None, video: Path, several: bool, suffixes: tuple[str, ...]) -> Path | None:
    """The output path of ``video`` for ``--option value``: the file itself, or ``value/<stem><suffix>``."""
    if value is None:
        return None
    if str(value) == STDOUT:
        if several:
            raise LstmTvError(f"--{option} -: standard output takes the results of one video; give one video "
                              f"or a directory")
        return value
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
              labels: Path | None, fmt: str | None = None, events: Path | None = None) -> list[PredictionJob]:
    """Pair every video with its output and label paths, checking them all before any decoding.

    ``fmt`` names the format of ``out`` (``--format``); None: from ``out``'s suffix (csv for a directory
    or standard output, ``-``). ``events``: the ``--events`` file or directory (``.jsonl``), or ``-``.
    """
    if fmt is not None:
        format_for("", fmt)  # an unknown name fails before anything else
    several = len(videos) > 1
    stems: dict[str, Path] = {}
    jobs = []
    for video in videos:
        if (out or annotate or timeline) and video.stem in stems:
            raise LstmTvError(f"{video}: same name as {stems[video.stem]}; their outputs would overwrite each other")
        stems[video.stem] = video
        job = PredictionJob(video, _output_for("out", out, video, several, prediction_suffixes(fmt)),
                            _output_for("annotate", annotate, video, several, (".mp4",)),
                            _output_for("timeline", timeline, video, several, FIGURE_SUFFIXES))
        job.events = _output_for("events", events, video, several, (".jsonl",))
        if job.out is not None:
            job.fmt = format_for(job.out, fmt) if str(job.out) != STDOUT else (fmt or "csv")
        if labels is not None:
            if labels.is_dir():
                found = [labels / f"{video.stem}{s}" for s in (".txt", ".csv")
                         if (labels / f"{video.stem}{s}").is_file()]
                if not found:
                    raise LabelError(f"{labels}: no {video.stem}.txt or {video.stem}.csv for {video}")
                job.labels = found[0]
            elif several:
                raise LabelError(f"{labels}: --labels with several videos must be a directory of <stem>.txt/.csv")
            else:
                job.labels = labels
        outputs = [p for p in (job.out, job.annotate, job.timeline, job.events) if p is not None]
        for p in outputs:
            if p.resolve() == video.resolve():
                raise LstmTvError(f"{p}: output would overwrite the input video")
        if len({p.resolve() for p in outputs}) < len(outputs):
            raise LstmTvError(f"{outputs[0]}: two outputs of {video} have the same path")
        jobs.append(job)
    return jobs
