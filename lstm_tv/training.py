"""A whole training run as a library call: the model, both phases, validation after every epoch, the run directory.

``fit(cfg)`` is what ``lstm-tv train`` and ``lstm-tv bench`` run. Each epoch trains one phase
(:mod:`lstm_tv.phases` over :mod:`lstm_tv.engine`), then streams every validation video through the
model as ``predict`` does (:mod:`lstm_tv.validation`), and writes the run directory
(:mod:`lstm_tv.rundir`). Under ``torchrun`` every rank calls it; rank 0 alone writes files and prints.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lstm_tv.checkpoint import config_of, load_checkpoint
from lstm_tv.config import Config, render_yaml
from lstm_tv.data.dataset import IGNORE, PreparedDataset
from lstm_tv.distributed import Dist, resolve_device, setup, teardown
from lstm_tv.engine import NonFinite, StepGuard
from lstm_tv.errors import DatasetError, TrainingError
from lstm_tv.fileio import write_text
from lstm_tv.metrics import TRACKED
from lstm_tv.model.classifier import build_model
from lstm_tv.phases import JointPhase, MemoryPhase
from lstm_tv.rundir import (
    Progress,
    best_values,
    check_training_state,
    point_latest,
    restore,
    run_directory,
    save_epoch,
    store_temperature,
)
from lstm_tv.schedule import (
    RemainingTime,
    allotment,
    lr_scale,
    next_phase,
    phase_end,
    phase_plan,
    total_epochs,
)
from lstm_tv.stream import load_model
from lstm_tv.ui import QUIET, Reporter
from lstm_tv.validation import calibrate, encode_videos, evaluate_model, frames_alone

# The joint phase's validation before a memory phase classifies every n-th frame alone (_validate), n
# chosen to keep at least ALONE_FRAMES frames. Encoding every frame took 4.5 s of a 17-20 s pictures-gaps
# joint epoch (16,800 validation frames, AVX2 kernels); adjacent frames are nearly alike, so every 4th gave
# frames-alone accuracy within 0.0005-0.0017 of every frame's (tenth round's gaps runs), while epochs differ
# by 0.01-0.05. A small validation split (7 videos of 300 frames: 2,100) is read whole.
ALONE_FRAMES = 4096
CURVES_EVERY = 30.0  # seconds between drawings of plots/learning_curves.png during a run


@dataclass
class Fitted:
    """What :func:`fit` leaves: the run directory and where the run stands (its ``metrics.csv`` rows)."""

    run_dir: Path
    progress: Progress


def fit(cfg: Config | None, *, resume: str | Path | None = None, reporter: Reporter | None = None) -> Fitted:
    """Train as ``cfg`` says, or continue the run of ``resume`` (a run directory or checkpoint, whose
    stored config is used; ``cfg`` is then ignored).

    Raises:
        LstmTvError: bad data, a checkpoint that cannot be resumed, or a non-finite step with
            ``train.nonfinite=stop`` (:class:`~lstm_tv.errors.TrainingError`).
    """
    ckpt, ckpt_path = None, None
    if resume is not None:
        ckpt_path = Path(resume) / "last.ckpt" if Path(resume).is_dir() else Path(resume)
        ckpt = load_checkpoint(ckpt_path)
        check_training_state(ckpt, ckpt_path)
        cfg = config_of(ckpt, ckpt_path)
    device = resolve_device(cfg.train.device, int(os.environ.get("LOCAL_RANK", "0")))
    dist = setup(device)
    try:
        return _fit(cfg, ckpt, ckpt_path, device, dist, (reporter or QUIET) if dist.main else QUIET)
    finally:
        teardown(dist)


class _Run:
    """Everything one run holds while its epochs run (built by :func:`_fit`, used by :func:`_epoch`)."""

    def __init__(self, cfg: Config, data: PreparedDataset, device: torch.device, dist: Dist, reporter: Reporter):
        self.cfg, self.data, self.device, self.dist, self.reporter = cfg, data, device, dist, reporter
        self.model = build_model(cfg.model, len(data.classes)).to(device)
        self.model.set_channels_last(True)
        self.model.encoder_autocast = autocast_dtype(cfg.train.amp, device)
        if cfg.train.compile:
            self.model.encoder.compile()  # in place: parameter names (and so checkpoints) stay the same
        weights = class_weights(cfg, data)
        self.loss_fn = nn.CrossEntropyLoss(weight=weights.to(device) if weights is not None else None,
                                           ignore_index=IGNORE, label_smoothing=cfg.train.label_smoothing)
        self.phases = {"joint": JointPhase(cfg, data, self.model, device, dist),
                       "memory": MemoryPhase(cfg, data, self.model, device, dist)}
        self.val_videos = data.split("val")
        self.clock = RemainingTime(phase_plan(cfg))
        self.warned: list = []
        self.run_dir = Path(".")
        self.curves_drawn = -math.inf  # time.monotonic() when plots/learning_curves.png was last drawn


def _fit(cfg: Config, ckpt: dict | None, ckpt_path: Path | None, device: torch.device, dist: Dist,
         reporter: Reporter) -> Fitted:
    torch.manual_seed(cfg.train.seed)
    data, cfg = open_training_data(cfg, dist, reporter)
    run = _Run(cfg, data, device, dist, reporter)
    progress = Progress()
    if ckpt is not None:
        # The optimiser state saved belongs to the phase of the saved epoch; at the joint/memory
        # boundary the memory phase starts fresh, as it does in an uninterrupted run.
        history = ckpt["progress"]["history"]
        phase = run.phases[history[-1]["phase"] if history else "joint"]
        progress = restore(ckpt, ckpt_path, run.model, phase.opt)
        run.run_dir = ckpt_path.parent
        _end_phase(run, progress)  # a checkpoint from before phases were recorded: decide as the run would have
        reporter.info(f"resuming {run.run_dir} after epoch {progress.epoch} (at most {total_epochs(cfg)})")
    else:
        run.run_dir = Path(dist.broadcast(str(run_directory(cfg) if dist.main else Path("."))))
    if dist.main:
        (run.run_dir / "plots").mkdir(parents=True, exist_ok=True)
        write_text(run.run_dir / "config.yaml", render_yaml(cfg))
        point_latest(run.run_dir)
    reporter.info(_banner(run))
    if cfg.train.time:
        run.clock.budget = cfg.train.time * 60 - sum(progress.used().values())
    while (name := next_phase(cfg, progress.phases)) is not None:
        if not progress.phases or progress.phases[-1]["ended"]:
            progress.phases.append({"name": name, "seconds": [], "ended": ""})
            run.phases[name].begin()  # not on resume into a phase: its weights are the checkpoint's
        _epoch(run, progress.epoch + 1, progress)
    if dist.main:
        _calibrate(run)
    dist.barrier()
    return Fitted(run.run_dir, progress)


def _calibrate(run: _Run) -> None:
    """Fit best.ckpt's softmax temperature by NLL on the validation videos and store it there (rank 0).

    The model is best.ckpt's own, streamed as validation streams it, so the temperature fits the
    weights that predict, evaluate and explain will load.
    """
    best = run.run_dir / "best.ckpt"
    if not run.val_videos or not best.exists():
        return  # no validation videos: T stays 1 (the banner already warned)
    _, model = load_model(best, run.device)
    with run.reporter.bar("calibrate", total=len(run.val_videos)) as bar:
        temperature, before, after = calibrate(model, run.data, run.val_videos, run.device, progress=bar.update)
    store_temperature(best, temperature)
    run.reporter.info(f"temperature T={temperature:.2f} (val NLL {before:.4f} -> {after:.4f}), stored in {best}")


def _end_phase(run: _Run, progress: Progress) -> None:
    """Record in ``progress`` whether (and why) the current phase ends after its epochs so far, and say so."""
    current = progress.phases[-1] if progress.phases else None
    if current is None or current["ended"]:
        return
    budget = allotment(run.cfg, current["name"], progress.used())
    rows = progress.phase_rows()
    reason = phase_end(run.cfg, current["name"], rows, current["seconds"], budget)
    if reason:
        current["ended"] = reason
        run.reporter.info(f"{current['name']} phase ended: {reason}")
    elif rows and (scale := lr_scale(run.cfg, current["name"], rows)) < lr_scale(run.cfg, current["name"], rows[:-1]):
        run.reporter.info(f"{current['name']} phase: val metric on a plateau for {run.cfg.train.patience} epochs; "
                          f"learning rate x{scale:g} from now on")


def _epoch(run: _Run, epoch: int, progress: Progress) -> None:
    """Train and validate one epoch of the current phase, record it, decide whether the phase ends, save."""
    cfg, reporter, start = run.cfg, run.reporter, time.perf_counter()
    phase = run.phases[progress.phases[-1]["name"]]
    # Reseeding per epoch makes an epoch's randomness independent of what came before,
    # so a resumed run repeats the uninterrupted one exactly.
    torch.manual_seed(cfg.train.seed * 100_003 + epoch)
    guard = StepGuard(cfg.train.nonfinite)
    phase.opt.set_lr_scale(lr_scale(cfg, phase.name, progress.phase_rows()))  # lowered by a plateau so far
    try:
        with reporter.bar(f"epoch {epoch} {phase.name} {len(progress.phases[-1]['seconds']) + 1}/"
                          f"{dict(phase_plan(cfg))[phase.name]}") as bar:
            stats = phase.run_epoch(epoch, run.loss_fn, bar, guard)
    except NonFinite as e:
        kept = (f"{run.run_dir / 'last.ckpt'} (epoch {progress.epoch}) is kept" if progress.epoch
                else "no checkpoint yet")
        raise TrainingError(f"epoch {epoch}, {e}; stopped, {kept}; lower train.lr, or set train.nonfinite=skip "
                            f"to skip such steps") from None
    report = _validate(run, phase)
    row = epoch_row(epoch, phase.name, stats, guard, phase.opt.lr, report, run.dist)
    _, value = best_values(cfg, report, reporter, run.warned)
    improved = progress.record(row, value)
    seconds = time.perf_counter() - start
    # Every rank must take the same decision; rank 0's time is the one that counts.
    progress.phases[-1]["seconds"].append(float(run.dist.broadcast(seconds)))
    run.clock.record(phase.name, seconds, one_off=phase.take_one_off())
    reporter.info(epoch_line(row, improved, run.clock.text()))
    _end_phase(run, progress)
    if run.dist.main:
        # Drawing the learning curves takes ~0.3 s, a few percent of a short epoch: at most every
        # CURVES_EVERY seconds, and after the last epoch.
        curves = next_phase(cfg, progress.phases) is None or time.monotonic() - run.curves_drawn >= CURVES_EVERY
        if curves:
            run.curves_drawn = time.monotonic()
        save_epoch(run.run_dir, run.model, cfg, run.data, phase.opt, progress, report, improved, curves)


def _validate(run: _Run, phase) -> dict | None:
    """The validation report of the model as it is now, or None without validation videos: the
    videos streamed as predict streams them, plus ``frame_accuracy_alone`` (each frame on its own).

    Both come from one encoding of the frames: the encoder is the costly part, the memory and head
    run twice on its embeddings. A joint epoch with a memory phase after it reports frames-alone
    accuracy alone, on every n-th frame (:func:`alone_stride`): the memory phase starts a new memory and
    head (:meth:`~lstm_tv.phases.MemoryPhase.begin`), so the streamed metrics would measure a memory
    about to be replaced, and the joint phase's plateau rule follows frames alone.
    """
    if not run.val_videos:
        return None
    videos, dist = run.val_videos, run.dist
    with run.reporter.bar("validate", total=len(videos)) as bar:
        if phase.name == "joint" and "memory" in dict(phase_plan(run.cfg)):
            stride = alone_stride(sum(v.frames for v in videos))
            alone = frames_alone(run.model, run.data, videos, run.device, bar, stride=stride, dist=dist)
            return {"frame_accuracy_alone": alone.compute(run.data.classes)["frame_accuracy"]}
        if phase.name == "memory":  # the encoder is frozen: its embeddings were cached
            embeddings = phase.val_embeddings(videos, bar)
        else:  # this process's share of the videos (evaluate_model takes the same share)
            mine = encode_videos(run.model, run.data, videos[dist.rank::dist.world], run.device, bar)
            embeddings = [mine[i // dist.world] if i % dist.world == dist.rank else None for i in range(len(videos))]
        metrics, alone = (evaluate_model(run.model, run.data, videos, run.device, dist=dist, embeddings=embeddings,
                                         alone=alone) for alone in (False, True))
    report = metrics.compute(run.data.classes)
    report["frame_accuracy_alone"] = alone.compute(run.data.classes)["frame_accuracy"]
    return report


def alone_stride(frames: int) -> int:
    """Every how many frames the joint phase's frames-alone validation reads, of ``frames`` validation
    frames: the most that still reads :data:`ALONE_FRAMES` of them (1 for fewer than twice that)."""
    return max(1, frames // ALONE_FRAMES)


def epoch_row(epoch: int, phase: str, stats: dict, guard: StepGuard, lr: float, report: dict | None,
              dist: Dist) -> dict:
    """One ``metrics.csv`` row: training statistics summed over ranks, and the tracked validation metrics."""
    frames = dist.sum(stats["frames"])
    row = {"epoch": epoch, "phase": phase, "train_loss": round(dist.sum(stats["train_loss"]) / dist.world, 6),
           "lr": lr, "frames_per_s": round(frames / stats["seconds"], 1), "skipped_steps": guard.skipped,
           "seconds": round(stats["seconds"], 2)}
    for m in TRACKED:
        value = report.get(m.key) if report is not None else None
        row[f"val_{m.key}"] = None if value is None else round(value, 6)
    return row


def epoch_line(row: dict, improved: bool, time_left: str = "") -> str:
    """The one line printed per epoch: loss, the metrics that have a short name, speed, time left."""
    parts = [f"epoch {row['epoch']}", f"loss {row['train_loss']:.4f}"]
    for m in TRACKED:
        if m.short and row.get(f"val_{m.key}") is not None:
            parts.append(f"{m.short} {m.format(row[f'val_{m.key}'])}")
    parts.append(f"{row['frames_per_s']:.0f} frames/s")
    if time_left:
        parts.append(time_left)
    return "  ".join(parts) + ("  [green]best[/]" if improved else "")


def _banner(run: _Run) -> str:
    cfg, dist, train = run.cfg, run.dist, run.data.split("train")
    return (f"training {cfg.model.encoder} + {cfg.model.cell} on {len(train)} videos "
            f"({sum(v.frames for v in train)} frames) on {run.device}"
            + (f" x {dist.world} processes" if dist.active else "")
            + f"; batch {cfg.train.batch_size * dist.world} clips x {cfg.train.clip_frames} frames"
            + (f" ({cfg.train.batch_size} per process)" if dist.active else "")
            + f", lr {cfg.train.lr}; run dir {run.run_dir}")


# ---------------------------------------------------------------------------------------------------
# Setting up: the data, the encoder's precision, the loss weights


def open_training_data(cfg: Config, dist: Dist, reporter: Reporter) -> tuple[PreparedDataset, Config]:
    """Open ``data.dir``; when it is missing, prepare it from ``data.raw`` (generating that first if
    ``data.synthesize``). Only rank 0 builds; the other ranks wait for it.

    Returns:
        The dataset, and ``cfg`` with ``data.classes``, ``data.background`` and ``data.size`` taken
        from the dataset's manifest (the data says what it holds; the config need not repeat it).

    Raises:
        DatasetError: no dataset and nothing to prepare it from, or no training videos.
    """
    from lstm_tv.data import run_prepare, run_synth  # deferred: only a missing dataset needs them

    data_dir, raw = Path(cfg.data.dir), Path(cfg.data.raw)
    if dist.main and not (data_dir / "manifest.json").exists():
        if not raw.exists():
            if not cfg.data.synthesize:
                raise DatasetError(f"{data_dir}: no prepared dataset and no raw dataset at {raw}; run "
                                   f"lstm-tv prepare SRC {data_dir}, or set data.dir")
            reporter.info(f"no dataset at {data_dir}: generating the synthetic TV dataset into {raw} first")
            run_synth(raw, cfg, reporter)
        reporter.info(f"no prepared dataset at {data_dir}: preparing {raw} (data.size={cfg.data.size})")
        run_prepare(raw, data_dir, cfg, reporter)
    dist.barrier()
    data = PreparedDataset(data_dir)
    if not data.split("train"):
        raise DatasetError(f"{data.root}: no training videos (splits: "
                           f"{ {s: len(data.split(s)) for s in ('train', 'val', 'test')} })")
    if not data.split("val"):
        reporter.warn(f"{data.root}: no validation videos; best.ckpt follows the last epoch")
    found = {"classes": data.classes, "background": data.background, "size": list(data.size)}
    differ = {k: v for k, v in found.items() if getattr(cfg.data, k) != v}
    if differ.get("size") and cfg.data.size == min(data.size):
        del differ["size"]  # the short side asked for: the same frames, now with their (W, H)
    if differ:
        reporter.info(f"using the dataset's {', '.join(f'data.{k}={v}' for k, v in differ.items())} "
                      f"(from {data_dir / 'manifest.json'})")
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, **found))
    return data, cfg


def autocast_dtype(amp: bool | str, device: torch.device) -> torch.dtype | None:
    """The encoder's mixed-precision dtype for ``train.amp`` on ``device`` (None = full precision).

    bf16 needs no loss scaling; on CPUs without native bf16 it is emulated and slower than fp32, so
    ``auto`` uses it only where oneDNN reports bf16 support (or on CUDA).
    """
    if amp == "auto":
        amp = device.type == "cuda" or bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if not amp:
        return None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def class_weights(cfg: Config, data: PreparedDataset) -> torch.Tensor | None:
    """Loss weight per class: ``auto`` = (mean count / count) ** 0.5 over the training frames.

    The background class dominates video; the square root lifts rare classes without letting a
    handful of frames swamp the loss.
    """
    setting = cfg.train.class_weights
    if setting == "none":
        return None
    if isinstance(setting, list):
        return torch.tensor(setting, dtype=torch.float32)
    counts = data.label_counts("train").astype(np.float64)
    present = counts > 0
    weights = np.ones_like(counts)
    weights[present] = np.sqrt(counts[present].mean() / counts[present])
    weights /= weights[present].mean()
    return torch.tensor(weights, dtype=torch.float32)
