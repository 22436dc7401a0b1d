"""``lstm-tv train``: fit the frame encoder and the memory on clips, validate on whole videos.

One epoch::

    clips (B, L, S, S, 3)  --split along time-->  chunks of train.tbptt frames
    for each chunk: logits, state = model(chunk, state)   # the memory flows on from the last chunk
                    loss.backward(); clip grads; step      # gradients stop at the chunk start
                    state = detach(state)                  # truncated back-propagation through time
    validate: stream every val video through the model with the state carried (as predict does)

Everything a run writes goes to its run directory (``config.yaml``, ``last.ckpt``, ``best.ckpt``,
``metrics.csv``, ``plots/``); ``--resume`` continues from ``last.ckpt`` alone.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lstm_tv import plots
from lstm_tv.checkpoint import (
    checkpoint_payload,
    config_of,
    load_checkpoint,
    save_checkpoint,
)
from lstm_tv.config import Config, render_yaml
from lstm_tv.data.augment import ClipAugment
from lstm_tv.data.dataset import IGNORE, ClipDataset, PreparedDataset
from lstm_tv.distributed import Dist, resolve_device, setup, teardown
from lstm_tv.errors import CheckpointError, DatasetError, LstmTvError, TrainingError
from lstm_tv.evaluate import evaluate_model
from lstm_tv.fileio import write_text
from lstm_tv.model.cells import detach_state
from lstm_tv.model.classifier import FrameClassifier, build_model
from lstm_tv.ui import QUIET, Reporter

METRIC_COLUMNS = ["epoch", "phase", "train_loss", "val_frame_accuracy", "val_macro_f1", "val_masked_accuracy", "val_edit",
                  "val_f1@50", "lr", "frames_per_s", "skipped_steps", "seconds"]


@dataclass
class Progress:
    """What ``--resume`` needs besides weights and optimiser: where the run stands."""

    epoch: int = 0                      # epochs completed
    best_value: list[float] | None = None  # best [train.best_metric, frame accuracy] so far
    best_epoch: int = 0
    stale_epochs: int = 0               # epochs since the best one (early stopping)
    history: list[dict] = field(default_factory=list)  # metrics.csv rows


# ---------------------------------------------------------------------------------------------------
# Setting up a run


def run_directory(cfg: Config) -> Path:
    """``run.dir`` if set, else the first free ``runs/<name>``, ``runs/<name>2``, ..."""
    if cfg.run.dir:
        path = Path(cfg.run.dir)
        if (path / "last.ckpt").exists():
            raise LstmTvError(f"{path}: already holds a run; continue it with --resume {path}, or set another run.dir")
        return path
    base = Path("runs") / cfg.run.name
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{cfg.run.name}{n}")
    return path


def point_latest(run_dir: Path) -> None:
    """Make ``runs/latest`` a symlink to ``run_dir`` (what predict and evaluate use by default)."""
    runs = Path("runs")
    runs.mkdir(exist_ok=True)
    target = os.path.relpath(run_dir.resolve(), runs.resolve())
    tmp = runs / f".latest.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, runs / "latest")


def ensure_dataset(cfg: Config, dist: Dist, reporter: Reporter) -> tuple[PreparedDataset, Config]:
    """Open ``data.dir``; when it is missing, prepare it from ``data.raw`` (generating that first if
    ``data.synthesize``). Only rank 0 builds; the other ranks wait for it.

    Returns:
        The dataset, and ``cfg`` with ``data.classes``, ``data.background`` and ``data.size`` taken
        from the dataset's manifest (the data says what it holds; the config need not repeat it).
    """
    from lstm_tv.data import run_prepare, run_synth

    data_dir, raw = Path(cfg.data.dir), Path(cfg.data.raw)
    if dist.main and not (data_dir / "manifest.json").exists():
        if not raw.exists():
            if not cfg.data.synthesize:
                raise DatasetError(f"{data_dir}: no prepared dataset and no raw dataset at {raw}; run "
                                   f"lstm-tv prepare SRC {data_dir}, or set data.dir")
            reporter.info(f"no dataset at {data_dir}: generating the synthetic TV dataset into {raw} first")
            run_synth(raw, cfg, reporter)
        reporter.info(f"no prepared dataset at {data_dir}: preparing {raw} at {cfg.data.size} px")
        run_prepare(raw, data_dir, cfg, reporter)
    dist.barrier()
    data = PreparedDataset(data_dir)
    found = {"classes": data.classes, "background": data.background, "size": data.size}
    differ = {k: v for k, v in found.items() if getattr(cfg.data, k) != v}
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


def loader_workers(setting: int | str) -> int:
    """``train.workers``: a number, or ``auto`` — none on machines with up to 2 cores, where loader
    processes take CPU from the training threads (measured: workers=2 lost 10% of the frames/s that
    loading in the training process keeps), else up to 4, leaving 2 cores to training."""
    if setting != "auto":
        return int(setting)
    cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(4, cores - 2)


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


def make_optimizer(params, weight_decay: float, lr: float) -> torch.optim.Optimizer:
    """AdamW over a module's (or a list of) parameters; no weight decay on biases and normalisation
    parameters (1-D tensors)."""
    params = list(params.parameters() if isinstance(params, nn.Module) else params)
    decay = [p for p in params if p.requires_grad and p.dim() > 1]
    no_decay = [p for p in params if p.requires_grad and p.dim() <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr)


def make_scheduler(optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int, warmup: float):
    """Linear warm-up for ``warmup`` epochs, then cosine decay to 1% of the peak at the last step."""
    total = max(1, epochs * steps_per_epoch)
    warmup = min(total - 1, int(warmup * steps_per_epoch))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def clips_per_epoch(cfg: Config, data: PreparedDataset, world: int) -> int:
    """Clips drawn per epoch over all ranks: ``steps_per_epoch`` batches, or enough to cover the
    training frames once; a multiple of the global batch."""
    global_batch = cfg.train.batch_size * world
    if cfg.train.steps_per_epoch:
        return cfg.train.steps_per_epoch * global_batch
    frames = sum(v.frames for v in data.split("train"))
    clips = math.ceil(frames / cfg.train.clip_frames)
    return max(1, math.ceil(clips / global_batch)) * global_batch


# ---------------------------------------------------------------------------------------------------
# One epoch


def frame_loss(loss_fn, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-frame loss of logits (B, T, K) against labels (B, T); padding (IGNORE) does not count.

    A chunk that is all padding gives a zero that still has a graph: every process then runs the
    same backward passes, which DistributedDataParallel's gradient all-reduce needs.
    """
    if not bool((target != IGNORE).any()):
        return logits.sum() * 0.0
    return loss_fn(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))


class NonFinite(Exception):
    """Raised inside an epoch when a step's gradient is not finite and the policy is ``stop``."""


@dataclass
class StepGuard:
    """What to do about a non-finite loss or gradient (``train.nonfinite``), and the steps counted."""

    policy: str = "stop"
    steps: int = 0
    skipped: int = 0


def update(loss: torch.Tensor, params: list, optimizer, grad_clip: float, guard: StepGuard,
           scaler: torch.amp.GradScaler | None = None) -> None:
    """One optimisation step on ``loss``: backward, clip, step — unless the gradient is not finite.

    The gradient norm is computed after DistributedDataParallel's all-reduce, so every process
    reaches the same verdict. ``scaler`` scales the loss when the encoder runs in float16 (old GPUs),
    whose small gradients would otherwise underflow; its overflows are routine and handled by it.
    """
    guard.steps += 1
    optimizer.zero_grad(set_to_none=True)
    if not bool(torch.isfinite(loss.detach())):
        # A non-finite loss can have a finite gradient (class weights summing to inf give 0 / inf = 0):
        # make the gradient non-finite too, so the one check below -- after DDP's all-reduce, the same
        # on every process -- stops or skips this step.
        loss = loss * float("nan")
    (scaler.scale(loss) if scaler is not None else loss).backward()
    if scaler is not None:
        scaler.unscale_(optimizer)
    norm = nn.utils.clip_grad_norm_(params, grad_clip if grad_clip > 0 else math.inf)
    if scaler is not None:
        scaler.step(optimizer)  # skips the step itself on inf/nan and lowers the scale
        scaler.update()
    elif torch.isfinite(norm):
        optimizer.step()
    elif guard.policy == "stop":
        raise NonFinite(f"step {guard.steps}: the loss or its gradient is not finite (loss {loss.item():.4g})")
    else:
        guard.skipped += 1
        optimizer.zero_grad(set_to_none=True)


def train_one_epoch(model: nn.Module, loader, optimizer, scheduler, loss_fn, tbptt: int, grad_clip: float,
                    device: torch.device, bar, guard: StepGuard | None = None,
                    scaler: torch.amp.GradScaler | None = None) -> dict:
    """Truncated BPTT over each batch of clips; returns mean loss, frames seen and seconds."""
    guard = guard or StepGuard()
    params = list(model.parameters())
    model.train()
    total_loss, chunks, frames_seen = 0.0, 0, 0
    start = time.perf_counter()
    for i, batch in enumerate(loader):
        frames = batch["frames"].to(device, non_blocking=True)  # (B, L, S, S, 3) uint8
        labels = batch["labels"].to(device, non_blocking=True)  # (B, L)
        state = None
        for t in range(0, frames.shape[1], tbptt):
            logits, state = model(frames[:, t:t + tbptt], state)  # (B, T, K), memory carried in
            loss = frame_loss(loss_fn, logits, labels[:, t:t + tbptt])
            update(loss, params, optimizer, grad_clip, guard, scaler)
            scheduler.step()
            state = detach_state(state)  # keep the memory, cut the gradient path
            if math.isfinite(loss.item()):
                total_loss += loss.item()
                chunks += 1
        frames_seen += int((labels != IGNORE).sum())
        seconds = time.perf_counter() - start
        bar.update(i + 1, len(loader), f"loss {total_loss / max(chunks, 1):.4f}  {frames_seen / seconds:.0f} frames/s")
    return {"train_loss": total_loss / max(chunks, 1), "frames": frames_seen, "seconds": time.perf_counter() - start}


def total_epochs(cfg: Config) -> int:
    """Joint epochs followed by memory epochs."""
    return cfg.train.epochs + cfg.train.memory_epochs


class JointPhase:
    """Encoder and memory trained together on augmented clips with truncated BPTT (``train.epochs``)."""

    name = "joint"

    def __init__(self, cfg: Config, data: PreparedDataset, model: FrameClassifier, device: torch.device, dist: Dist):
        self.cfg, self.device = cfg, device
        self.net: nn.Module = model
        if dist.active:
            ids = [device.index] if device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        clips = clips_per_epoch(cfg, data, dist.world)
        self.clips = ClipDataset(data, "train", cfg.train.clip_frames, clips, cfg.train.seed,
                                 augment=ClipAugment() if cfg.train.augment else None, rank=dist.rank, world=dist.world)
        workers = loader_workers(cfg.train.workers)
        self.loader = torch.utils.data.DataLoader(
            self.clips, batch_size=cfg.train.batch_size, shuffle=False, num_workers=workers,
            persistent_workers=workers > 0, pin_memory=device.type == "cuda")
        steps_per_epoch = len(self.loader) * math.ceil(cfg.train.clip_frames / cfg.train.tbptt)
        self.optimizer = make_optimizer(model, cfg.train.weight_decay, cfg.train.lr)
        self.scheduler = make_scheduler(self.optimizer, cfg.train.epochs, steps_per_epoch, cfg.train.warmup)
        fp16 = model.encoder_autocast == torch.float16
        self.scaler = torch.amp.GradScaler(device.type) if fp16 else None

    def run_epoch(self, epoch: int, loss_fn, bar, guard: StepGuard) -> dict:
        self.clips.set_epoch(epoch)
        return train_one_epoch(self.net, self.loader, self.optimizer, self.scheduler, loss_fn, self.cfg.train.tbptt,
                               self.cfg.train.grad_clip, self.device, bar, guard, self.scaler)


class MemoryPhase:
    """The memory cell and head alone, over whole videos, on cached frame embeddings (``train.memory_epochs``).

    Learning to carry a cue across a long gap is the slow part of training (the encoder learns the
    frame classes in a few epochs). With the encoder frozen, each training video is encoded once and
    the memory then trains on the embeddings at thousands of times the frame rate, back-propagating
    through MEMORY_CHUNK frames at a time instead of ``train.tbptt``.
    """

    name = "memory"

    def __init__(self, cfg: Config, data: PreparedDataset, model: FrameClassifier, device: torch.device, dist: Dist):
        self.cfg, self.data, self.model, self.device, self.dist = cfg, data, model, device, dist
        self.videos = data.split("train")
        self.cache: list[tuple[torch.Tensor, torch.Tensor]] | None = None  # (embeddings, labels) per video
        self.val_cache: list[torch.Tensor] | None = None
        self.net: nn.Module | None = None
        self.params = [p for name, p in model.named_parameters() if not name.startswith("encoder.")]
        batches = math.ceil(len(self.videos) / (cfg.train.batch_size * dist.world))
        self.optimizer = make_optimizer(self.params, cfg.train.weight_decay, cfg.train.memory_lr)
        self.scheduler = make_scheduler(self.optimizer, max(1, cfg.train.memory_epochs), batches, warmup=0.0)

    def run_epoch(self, epoch: int, loss_fn, bar, guard: StepGuard) -> dict:
        if self.cache is None:  # first memory epoch (or the first after --resume): freeze and encode once
            self.model.encoder.requires_grad_(False)
            self.model.encoder.zero_grad(set_to_none=True)  # drop the joint phase's last gradients
            # Wrapped only now: DDP must be built after the encoder stops needing gradients.
            self.net = EmbeddingForward(self.model)
            if self.dist.active:
                ids = [self.device.index] if self.device.type == "cuda" else None
                self.net = nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
            # Every process caches every training video (embeddings are small), so all can follow one plan.
            embeddings = cache_embeddings(self.model, self.data, self.videos, self.device, bar)
            self.cache = [(e, torch.from_numpy(self.data.labels(v)).to(self.device)) for e, v in zip(embeddings, self.videos)]
        start = time.perf_counter()
        rng = np.random.default_rng([self.cfg.train.seed, epoch, 2])
        plan = memory_plan([len(labels) for _, labels in self.cache], self.cfg.train.batch_size, self.dist.world, rng)
        total_loss, steps, frames_seen = 0.0, 0, 0
        self.model.train()
        for i, (per_rank, length) in enumerate(plan):
            items = [self.cache[j] for j in per_rank[self.dist.rank]]
            emb, labels = pad_batch(items, length, self.cache[0][0].shape[1], self.device)
            state = None
            for t in range(0, length, MEMORY_CHUNK):
                logits, state = self.net(emb[:, t:t + MEMORY_CHUNK], state)
                loss = frame_loss(loss_fn, logits, labels[:, t:t + MEMORY_CHUNK])
                update(loss, self.params, self.optimizer, self.cfg.train.grad_clip, guard)
                state = detach_state(state)
                if math.isfinite(loss.item()):
                    total_loss += loss.item()
                    steps += 1
            self.scheduler.step()
            frames_seen += int((labels != IGNORE).sum())
            bar.update(i + 1, len(plan), f"loss {total_loss / max(steps, 1):.4f}")
        return {"train_loss": total_loss / max(steps, 1), "frames": frames_seen, "seconds": time.perf_counter() - start}

    def val_embeddings(self, videos, bar) -> list[torch.Tensor]:
        """The validation videos' embeddings, encoded once: with the encoder frozen, validating a
        memory epoch needs only the memory and head (the metrics are the same)."""
        if self.val_cache is None:
            self.val_cache = cache_embeddings(self.model, self.data, videos, self.device, bar)
        return self.val_cache


def memory_plan(lengths: list[int], batch: int, world: int, rng: np.random.Generator) -> list[tuple[list[list[int]], int]]:
    """One epoch of the memory phase: per step, each rank's video indices and the length to pad to.

    Every rank derives the same plan and pads to the longest video of the whole step, so all ranks
    run the same number of chunks (DDP's all-reduce needs it); a rank left without a video in the
    last step gets an empty (all-padding) one.
    """
    order = rng.permutation(len(lengths))
    plan = []
    for i in range(0, len(order), batch * world):
        group = order[i:i + batch * world]
        plan.append(([group[r::world].tolist() for r in range(world)], max(lengths[j] for j in group)))
    return plan


MEMORY_CHUNK = 1024  # frames back-propagated through at once in the memory phase (longer videos: TBPTT)


class EmbeddingForward(nn.Module):
    """``model.forward_embeddings`` as a module's forward, so DistributedDataParallel can wrap it."""

    def __init__(self, model: FrameClassifier):
        super().__init__()
        self.model = model

    def forward(self, emb: torch.Tensor, state=None):
        return self.model.forward_embeddings(emb, state)


@torch.no_grad()
def cache_embeddings(model: FrameClassifier, data: PreparedDataset, videos, device: torch.device, bar,
                     chunk: int = 256) -> list[torch.Tensor]:
    """Encode every frame of ``videos`` once, as evaluate and predict encode them (eval mode, full
    precision, no augmentation): one (T, F) tensor per video."""
    from lstm_tv.stream import array_chunks

    model.eval()
    cache = []
    with model.full_precision():
        for i, video in enumerate(videos):
            parts = [model.encode(torch.from_numpy(c).to(device)[None])[0] for c in array_chunks(data.frames(video), chunk)]
            cache.append(torch.cat(parts).float())
            bar.update(i + 1, len(videos), f"encoding {video.stem}")
    return cache


def pad_batch(items: list[tuple[torch.Tensor, torch.Tensor]], length: int, dim: int,
              device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack videos to ``length`` frames: embeddings padded with zeros, labels with IGNORE (the pad
    comes after each video's end, and the memory is causal, so it changes no real frame's output).
    No items give one all-padding row."""
    emb = torch.zeros(max(1, len(items)), length, dim, device=device)
    labels = torch.full((max(1, len(items)), length), IGNORE, dtype=torch.int64, device=device)
    for i, (e, y) in enumerate(items):
        emb[i, :len(e)] = e
        labels[i, :len(y)] = y
    return emb, labels


# ---------------------------------------------------------------------------------------------------
# Writing what a run produces


def write_metrics_csv(path: Path, history: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in METRIC_COLUMNS})
    write_text(path, buf.getvalue())


def pick_metric(cfg: Config, report: dict | None, reporter: Reporter,
                warned: list) -> tuple[str, list[float] | None]:
    """The validation values that decide ``best.ckpt``: ``[train.best_metric, frame accuracy]``, compared
    in that order, so that a tie (masked accuracy at 1.0 for many epochs) goes to the better frames.
    The metric falls back to frame accuracy when the data has no masks."""
    if report is None:
        return cfg.train.best_metric, None
    name = cfg.train.best_metric
    if name not in report:
        if not warned:
            reporter.warn(f"train.best_metric={name} is not available (no masks in the validation videos); "
                          f"using frame_accuracy")
            warned.append(True)
        name = "frame_accuracy"
    return name, [float(report[name]), float(report["frame_accuracy"])]


# ---------------------------------------------------------------------------------------------------
# The run


def train(cfg: Config | None, *, resume: str | Path | None = None, reporter: Reporter | None = None) -> Path:
    """Train as ``cfg`` says, or continue the run of ``resume`` (a run directory or checkpoint, whose
    stored config is used; ``cfg`` is then ignored); return the run directory.

    Under ``torchrun`` every rank calls this; rank 0 alone writes files and prints.
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
        return _train(cfg, ckpt, ckpt_path, device, dist, reporter or (Reporter() if dist.main else QUIET))
    finally:
        teardown(dist)


def check_training_state(ckpt: dict, path: Path) -> None:
    """What ``--resume`` needs from a checkpoint, checked before any data is touched.

    Raises:
        LstmTvError: the checkpoint holds weights only (a best.ckpt).
        CheckpointError: its training state is incomplete or of another shape than lstm-tv writes.
    """
    if "optimizer" not in ckpt or "progress" not in ckpt:
        raise LstmTvError(f"{path}: has no training state to resume from; resume from a run's last.ckpt")
    progress, optimizer, rng = ckpt["progress"], ckpt["optimizer"], ckpt.get("rng")
    ok = (isinstance(progress, dict) and all(k in progress for k in ("epoch", "best_value", "best_epoch", "stale_epochs", "history"))
          and isinstance(progress["epoch"], int) and isinstance(progress["history"], list)
          and isinstance(optimizer, dict) and isinstance(optimizer.get("state"), dict)
          and isinstance(optimizer.get("param_groups"), list) and isinstance(ckpt.get("scheduler"), dict)
          and isinstance(rng, dict) and isinstance(rng.get("torch"), torch.Tensor))
    if not ok:
        raise CheckpointError(f"{path}: its training state cannot be restored (incomplete, or not written by "
                              f"lstm-tv train); resume from a run's own last.ckpt")


def _train(cfg: Config, ckpt: dict | None, ckpt_path: Path | None, device: torch.device, dist: Dist,
           reporter: Reporter) -> Path:
    if not dist.main:
        reporter = QUIET
    torch.manual_seed(cfg.train.seed)
    data, cfg = ensure_dataset(cfg, dist, reporter)
    if not data.split("train"):
        raise DatasetError(f"{data.root}: no training videos (splits: "
                           f"{ {s: len(data.split(s)) for s in ('train', 'val', 'test')} })")
    val_videos = data.split("val")
    if not val_videos:
        reporter.warn(f"{data.root}: no validation videos; best.ckpt follows the last epoch")

    model = build_model(cfg.model, len(data.classes)).to(device)
    model.set_channels_last(True)
    model.encoder_autocast = autocast_dtype(cfg.train.amp, device)
    if cfg.train.compile:
        model.encoder.compile()  # in place: parameter names (and so checkpoints) stay the same
    weights = class_weights(cfg, data)
    loss_fn = nn.CrossEntropyLoss(weight=weights.to(device) if weights is not None else None, ignore_index=IGNORE,
                                  label_smoothing=cfg.train.label_smoothing)
    joint = JointPhase(cfg, data, model, device, dist)
    memory = MemoryPhase(cfg, data, model, device, dist)

    progress = Progress()
    if ckpt is not None:
        # The optimiser state saved belongs to the phase of the saved epoch; at the joint/memory
        # boundary the memory phase starts fresh, as it does in an uninterrupted run.
        try:
            phase = joint if ckpt["progress"]["epoch"] <= cfg.train.epochs else memory
            _restore(ckpt, model, phase, progress)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as e:  # a last.ckpt from elsewhere
            reason = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise CheckpointError(f"{ckpt_path}: its training state cannot be restored ({type(e).__name__}: "
                                  f"{reason}); resume from a run's own last.ckpt") from None
        run_dir = ckpt_path.parent
        reporter.info(f"resuming {run_dir} after epoch {progress.epoch} of {total_epochs(cfg)}")
    else:
        run_dir = run_directory(cfg) if dist.main else Path(".")
        run_dir = Path(dist.broadcast(str(run_dir)))
    if dist.main:
        (run_dir / "plots").mkdir(parents=True, exist_ok=True)
        write_text(run_dir / "config.yaml", render_yaml(cfg))
        point_latest(run_dir)
    reporter.info(f"training {cfg.model.encoder} + {cfg.model.cell} on {len(data.split('train'))} videos "
                  f"({sum(v.frames for v in data.split('train'))} frames) on {device}"
                  + (f" x {dist.world} processes" if dist.active else "")
                  + f"; batch {cfg.train.batch_size * dist.world} clips x {cfg.train.clip_frames} frames"
                  + (f" ({cfg.train.batch_size} per process)" if dist.active else "")
                  + f", lr {cfg.train.lr}; run dir {run_dir}")

    warned: list = []
    for epoch in range(progress.epoch + 1, total_epochs(cfg) + 1):
        phase = joint if epoch <= cfg.train.epochs else memory
        # Reseeding per epoch makes an epoch's randomness independent of what came before,
        # so a resumed run repeats the uninterrupted one exactly.
        torch.manual_seed(cfg.train.seed * 100_003 + epoch)
        guard = StepGuard(cfg.train.nonfinite)
        try:
            with reporter.bar(f"epoch {epoch}/{total_epochs(cfg)}" + (" memory" if phase is memory else "")) as bar:
                stats = phase.run_epoch(epoch, loss_fn, bar, guard)
        except NonFinite as e:
            kept = f"{run_dir / 'last.ckpt'} (epoch {progress.epoch}) is kept" if progress.epoch else "no checkpoint yet"
            raise TrainingError(f"epoch {epoch}, {e}; stopped, {kept}; lower train.lr, or set train.nonfinite=skip "
                                f"to skip such steps") from None
        report = None
        if val_videos:
            with reporter.bar("validate", total=len(val_videos)) as bar:
                embeddings = memory.val_embeddings(val_videos, bar) if phase is memory else None
                metrics = evaluate_model(model, data, val_videos, device, dist=dist, progress=bar.update,
                                         embeddings=embeddings)
            report = metrics.compute(data.classes)
        frames = dist.sum(stats["frames"])
        row = {"epoch": epoch, "phase": phase.name, "train_loss": round(dist.sum(stats["train_loss"]) / dist.world, 6),
               "lr": phase.optimizer.param_groups[0]["lr"], "frames_per_s": round(frames / stats["seconds"], 1),
               "skipped_steps": guard.skipped,
               "seconds": round(stats["seconds"], 2)}
        if report is not None:
            row.update({f"val_{k}": round(report[k], 6) for k in ("frame_accuracy", "macro_f1", "edit", "f1@50")})
            row["val_masked_accuracy"] = round(report["masked_accuracy"], 6) if "masked_accuracy" in report else None
        progress.history.append(row)
        progress.epoch = epoch
        name, value = pick_metric(cfg, report, reporter, warned)
        improved = value is None or progress.best_value is None or value > progress.best_value
        if improved:
            progress.best_value, progress.best_epoch, progress.stale_epochs = value, epoch, 0
        else:
            progress.stale_epochs += 1
        reporter.info(_epoch_line(row, name, improved))
        if dist.main:
            _save_epoch(run_dir, model, cfg, data, phase, progress, report, improved)
        if cfg.train.patience and progress.stale_epochs >= cfg.train.patience:
            reporter.info(f"early stop: no better {name} for {cfg.train.patience} epochs")
            break
    if dist.main:
        _summary(reporter, run_dir, progress)
    return run_dir


def _epoch_line(row: dict, metric: str, improved: bool) -> str:
    parts = [f"epoch {row['epoch']}", f"loss {row['train_loss']:.4f}"]
    for key, label in [("val_frame_accuracy", "acc"), ("val_masked_accuracy", "masked"), ("val_macro_f1", "F1")]:
        if row.get(key) is not None:
            parts.append(f"{label} {row[key]:.4f}")
    parts.append(f"{row['frames_per_s']:.0f} frames/s")
    return "  ".join(parts) + ("  [green]best[/]" if improved else "")


def _save_epoch(run_dir: Path, model: FrameClassifier, cfg: Config, data: PreparedDataset, phase,
                progress: Progress, report: dict | None, improved: bool) -> None:
    payload = checkpoint_payload(
        model, cfg, classes=data.classes, background=data.background, size=data.size, fps=data.fps,
        epoch=progress.epoch, metrics=report or {},
        optimizer=phase.optimizer.state_dict(), scheduler=phase.scheduler.state_dict(),
        progress={"epoch": progress.epoch, "best_value": progress.best_value, "best_epoch": progress.best_epoch,
                  "stale_epochs": progress.stale_epochs, "history": progress.history},
        rng={"torch": torch.get_rng_state()},
    )
    if improved:
        save_checkpoint(run_dir / "best.ckpt", {k: v for k, v in payload.items() if k not in ("optimizer", "scheduler")})
        if report is not None:
            plots.confusion_matrix(report["confusion"], data.classes, run_dir / "plots" / "confusion_best.png",
                                   title=f"validation, epoch {progress.epoch} (rows = truth)")
    save_checkpoint(run_dir / "last.ckpt", payload)
    write_metrics_csv(run_dir / "metrics.csv", progress.history)
    plots.learning_curves(progress.history, run_dir / "plots" / "learning_curves.png")


def _restore(ckpt: dict, model: FrameClassifier, phase, progress: Progress) -> None:
    model.load_state_dict(ckpt["model"])
    phase.optimizer.load_state_dict(ckpt["optimizer"])
    phase.scheduler.load_state_dict(ckpt["scheduler"])
    p = ckpt["progress"]
    progress.epoch, progress.best_value, progress.best_epoch = p["epoch"], p["best_value"], p["best_epoch"]
    progress.stale_epochs, progress.history = p["stale_epochs"], list(p["history"])
    torch.set_rng_state(ckpt["rng"]["torch"])


def _summary(reporter: Reporter, run_dir: Path, progress: Progress) -> None:
    best = next((row for row in progress.history if row["epoch"] == progress.best_epoch), progress.history[-1])
    rows = [("best epoch", f"{progress.best_epoch} (validation metrics below)")]
    for key, label in [("val_frame_accuracy", "frame accuracy"), ("val_masked_accuracy", "masked accuracy"),
                       ("val_macro_f1", "macro-F1"), ("val_edit", "edit"), ("val_f1@50", "F1@50")]:
        if best.get(key) is not None:
            rows.append((label, f"{best[key]:.4f}"))
    rows += [("run", str(run_dir)), ("best checkpoint", str(run_dir / "best.ckpt")),
             ("last checkpoint", str(run_dir / "last.ckpt")), ("metrics", str(run_dir / "metrics.csv")),
             ("plots", str(run_dir / "plots"))]
    reporter.table("training finished", rows)
