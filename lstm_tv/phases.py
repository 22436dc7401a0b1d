"""The two phases of training, each feeding :func:`lstm_tv.engine.train_epoch` its own batches.

* :class:`JointPhase` (``train.epochs``): encoder and memory together on augmented clips of
  ``train.clip_frames`` frames, ``train.tbptt`` frames per step.
* :class:`MemoryPhase` (``train.memory_epochs``): the encoder frozen, every training video encoded
  once; the memory cell and head then train on whole videos of embeddings, :data:`MEMORY_CHUNK`
  frames per step, at thousands of times the frame rate.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from typing import Iterator

import numpy as np
import torch
from torch import nn

from lstm_tv.averaging import WeightAverage
from lstm_tv.config import Config
from lstm_tv.data.augment import ClipAugment
from lstm_tv.data.dataset import IGNORE, ClipDataset, PreparedDataset
from lstm_tv.distributed import Dist
from lstm_tv.engine import Optimisation, StepGuard, make_optimizer, make_scheduler, train_epoch
from lstm_tv.model.cells import build_cell
from lstm_tv.model.classifier import FrameClassifier
from lstm_tv.validation import encode_videos

MEMORY_SEED = 7919  # added to train.seed for the memory phase's new cell and head
MEMORY_CHUNK = 1024  # frames back-propagated through at once in the memory phase (longer videos: TBPTT)
# Optimisation steps an epoch takes at least. The plateau rule judges a phase by its epochs; on a small
# dataset a pass is too few steps for a metric to move beyond its noise: 30 videos of 300 frames are 35
# joint steps of 64 frames at train.epoch_frames=0.25 (measured: the joint phase then ended after 13 such
# epochs, its encoder half-trained), and one memory pass over them in batches of 8 is 4 steps. A new
# memory cell learns a long-range cue suddenly, after a flat stretch of a few hundred steps (synthetic data:
# loss flat at 0.13 for ~400 steps, then 0.005 within 50); 50-step memory epochs let the plateau rule end
# the phase inside that stretch (test masked accuracy 0.56), 150-step ones did not (1.000).
MIN_JOINT_STEPS = 150
MIN_MEMORY_STEPS = 150
Item = tuple[int, int, int]  # a memory-phase item: (video, lead, lead_frames), see splice_item


def loader_workers(setting: int | str) -> int:
    """``train.workers``: a number, or ``auto`` — none on machines with up to 2 cores, where loader
    processes take CPU from the training threads (measured: workers=2 lost 10% of the frames/s that
    loading in the training process keeps), else up to 4, leaving 2 cores to training."""
    if setting != "auto":
        return int(setting)
    cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(4, cores - 2)


def clips_per_epoch(cfg: Config, data: PreparedDataset, world: int) -> int:
    """Clips drawn per epoch over all ranks: ``steps_per_epoch`` batches, or enough to cover
    ``train.epoch_frames`` of the training frames (clips drawn across all videos) in at least
    MIN_JOINT_STEPS batches; a multiple of the global batch."""
    global_batch = cfg.train.batch_size * world
    if cfg.train.steps_per_epoch:
        return cfg.train.steps_per_epoch * global_batch
    frames = sum(v.frames for v in data.split("train")) * cfg.train.epoch_frames
    clips = math.ceil(frames / cfg.train.clip_frames)
    return max(MIN_JOINT_STEPS, math.ceil(clips / global_batch)) * global_batch


def _wrap(net: nn.Module, device: torch.device, dist: Dist) -> nn.Module:
    """``net`` under DistributedDataParallel when several processes train, else itself."""
    if not dist.active:
        return net
    return nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)


class JointPhase:
    """Encoder and memory trained together on augmented clips with truncated BPTT (``train.epochs``)."""

    name = "joint"

    def __init__(self, cfg: Config, data: PreparedDataset, model: FrameClassifier, device: torch.device, dist: Dist):
        self.cfg, self.device = cfg, device
        self.net = _wrap(model, device, dist)
        clips = clips_per_epoch(cfg, data, dist.world)
        self.clips = ClipDataset(data, "train", cfg.train.clip_frames, clips, cfg.train.seed,
                                 augment=ClipAugment.from_config(cfg.train), rank=dist.rank, world=dist.world)
        workers = loader_workers(cfg.train.workers)
        self.loader = torch.utils.data.DataLoader(
            self.clips, batch_size=cfg.train.batch_size, shuffle=False, num_workers=workers,
            persistent_workers=workers > 0, pin_memory=device.type == "cuda")
        steps_per_epoch = len(self.loader) * math.ceil(cfg.train.clip_frames / cfg.train.tbptt)
        optimizer = make_optimizer(model, cfg.train.weight_decay, cfg.train.lr)
        fp16 = model.encoder_autocast == torch.float16
        self.opt = Optimisation(list(model.parameters()), optimizer,
                                make_scheduler(optimizer, cfg.train.epochs, steps_per_epoch, cfg.train.warmup),
                                cfg.train.grad_clip, torch.amp.GradScaler(device.type) if fp16 else None,
                                average=WeightAverage(model, cfg.train.ema) if cfg.train.ema > 0 else None)
        # Stand-in labels for masked frames (:meth:`_stand_in`) only where a clip is a single frame: a longer
        # clip holds what came before, and each of its frames trains on its own label. None: no stand-ins.
        prior = masked_label_prior(data, len(data.classes)) if cfg.train.clip_frames == 1 else None
        self.masked_prior = prior.to(device) if prior is not None else None
        self.draws = torch.Generator(device=device)

    def begin(self) -> None:
        """Start the phase (nothing to do: the model is as built)."""

    def take_one_off(self) -> float:
        """Seconds of one-off work in the last epoch (none: every joint epoch does the same work)."""
        return 0.0

    def run_epoch(self, epoch: int, loss_fn, bar, guard: StepGuard) -> dict:
        """One pass over this epoch's clips; ``train_loss``, ``frames`` and ``seconds``. With ``train.ema``
        the model holds the moving average of its weights again when the epoch ends (:mod:`lstm_tv.averaging`)."""
        average = self.opt.average
        with average.training() if average is not None else contextlib.nullcontext():
            return train_epoch(self.net, self._batches(epoch), len(self.loader), self.cfg.train.tbptt, loss_fn,
                               self.opt, guard, bar)

    def _batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.clips.set_epoch(epoch)
        self.draws.manual_seed(self.cfg.train.seed * 100_003 + epoch)  # the same stand-in labels after --resume
        for batch in self.loader:
            frames = batch["frames"].to(self.device, non_blocking=True)  # (B, L, H, W, 3) uint8
            if "augment" in batch:
                frames = ClipAugment.apply(frames, batch["augment"])
            labels = batch["labels"].to(self.device, non_blocking=True)  # (B, L)
            if self.masked_prior is not None:
                labels = self._stand_in(labels, batch["mask"].to(self.device).bool())
            yield frames, labels

    def _stand_in(self, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Single-frame labels (B, 1) with each frame the memory mask marks given a label drawn from
        :func:`masked_label_prior` instead of its own.

        Alone, such a frame cannot show its label (it needs what came before). Asked for it anyway, the
        encoder learns to recognise the video it comes from (its background), and the memory phase then
        reads the answer off that instead of the cue. Left out of the loss, the encoder never learns what
        such a frame looks like (silhouettes read as unknown). With a label drawn afresh each time, the
        best the encoder can answer is how often each class labels such frames: "an ambiguous canine".
        Measured (pictures data, seed 102; test masked accuracy left out -> drawn): 120 training videos
        0.893 -> 0.953, 30 training videos 0.496 -> 0.665.
        """
        drawn = torch.multinomial(self.masked_prior, labels.numel(), replacement=True, generator=self.draws)
        return torch.where(mask, drawn.view_as(labels), labels)


def masked_label_prior(data: PreparedDataset, classes: int) -> torch.Tensor | None:
    """How often each class labels a masked training frame (K,), summing to 1; None without masked frames."""
    counts = np.zeros(classes, dtype=np.float64)
    for video in data.split("train"):
        mask = data.mask(video)
        if mask is not None:
            counts += np.bincount(data.labels(video)[mask.astype(bool)], minlength=classes)
    return torch.tensor(counts / counts.sum(), dtype=torch.float32) if counts.sum() else None


class EmbeddingForward(nn.Module):
    """``model.forward_embeddings`` as a module's forward, so DistributedDataParallel can wrap it."""

    def __init__(self, model: FrameClassifier):
        super().__init__()
        self.model = model

    def forward(self, emb: torch.Tensor, state=None):
        return self.model.forward_embeddings(emb, state)


class MemoryPhase:
    """The memory cell and head alone, over whole videos, on cached frame embeddings (``train.memory_epochs``).

    Learning to carry a cue across a long gap is the slow part of training (the encoder learns the
    frame classes in a few epochs). With the encoder frozen, each training video is encoded once and
    the memory then trains on the embeddings, back-propagating through MEMORY_CHUNK frames at a time
    instead of ``train.tbptt``.
    """

    name = "memory"

    def __init__(self, cfg: Config, data: PreparedDataset, model: FrameClassifier, device: torch.device, dist: Dist):
        self.cfg, self.data, self.model, self.device, self.dist = cfg, data, model, device, dist
        self.videos = data.split("train")
        self.cache: list[tuple[torch.Tensor, torch.Tensor]] | None = None  # (embeddings, labels) per video
        self.emb_std: torch.Tensor | None = None  # (F,) spread of each embedding dimension over the cache
        self.shifts = torch.Generator()  # draws train.memory_shift's vectors, seeded per epoch
        self.val_cache: list[torch.Tensor] | None = None
        self.one_off = 0.0  # seconds spent encoding since last asked (take_one_off): not repeated each epoch
        self.net: nn.Module | None = None
        params = [p for name, p in model.named_parameters() if not name.startswith("encoder.")]
        passes, steps = memory_passes(len(self.videos), cfg.train.memory_batch, dist.world)
        optimizer = make_optimizer(params, cfg.train.weight_decay, cfg.train.memory_lr)
        self.opt = Optimisation(params, optimizer,
                                make_scheduler(optimizer, max(1, cfg.train.memory_epochs), passes * steps, warmup=0.0),
                                cfg.train.grad_clip, schedule_per_chunk=False)

    def begin(self) -> None:
        """Start the phase with a new memory cell and head, initialised as :func:`build_model` initialises
        them (and seeded by ``train.seed`` alone, so a resumed run starts it the same way).

        The joint phase's cell and head were trained on single frames: its input weights grown to pass
        one frame's class through saturated gates, its recurrent weights never used. Continued from
        there, the memory fitted the training videos within one epoch and generalised worse than a new
        cell (pictures data, 30 training videos, seed 101: masked test accuracy 0.53 against 0.92).
        """
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.cfg.train.seed + MEMORY_SEED)
            self.model.cell.load_state_dict(build_cell(self.cfg.model, self.model.encoder.out_dim).state_dict())
            self.model.head.reset_parameters()

    def run_epoch(self, epoch: int, loss_fn, bar, guard: StepGuard) -> dict:
        """One epoch of :func:`memory_plan`: whole passes over the training videos, in orders drawn for it."""
        if self.cache is None:  # first memory epoch (or the first after --resume): freeze and encode once
            start = time.perf_counter()
            self._freeze_and_encode(bar)
            self.one_off += time.perf_counter() - start
        rng = np.random.default_rng([self.cfg.train.seed, epoch, 2])
        self.shifts.manual_seed(self.cfg.train.seed * 100_003 + epoch)  # the same shifts after --resume
        plan = memory_plan([len(labels) for _, labels in self.cache], self.cfg.train.memory_batch, self.dist.world, rng,
                           self.cfg.train.memory_splice)
        return train_epoch(self.net, self._batches(plan), len(plan), MEMORY_CHUNK, loss_fn, self.opt, guard, bar)

    def _freeze_and_encode(self, bar) -> None:
        self.model.encoder.requires_grad_(False)
        self.model.encoder.zero_grad(set_to_none=True)  # drop the joint phase's last gradients
        # Wrapped only now: DDP must be built after the encoder stops needing gradients.
        self.net = _wrap(EmbeddingForward(self.model), self.device, self.dist)
        # Every process caches every training video (embeddings are small), so all can follow one plan.
        embeddings = encode_videos(self.model, self.data, self.videos, self.device, bar)
        labels = [torch.from_numpy(self.data.labels(v)).to(self.device) for v in self.videos]
        self.cache = list(zip(embeddings, labels, strict=True))
        if self.cfg.train.memory_shift:  # only the shift needs it: a copy of every embedding
            self.emb_std = torch.cat(embeddings).std(0)  # (all training frames, F) -> (F,)

    def _batches(self, plan) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for per_rank, length in plan:
            items = [self._item(*item) for item in per_rank[self.dist.rank]]
            yield pad_batch(items, length, self.cache[0][0].shape[1], self.device)

    def _item(self, video: int, lead: int, lead_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A plan item's embeddings (T, F) and labels (T,), T = ``video``'s length: ``lead``'s first
        ``lead_frames`` frames, then ``video``'s first T - ``lead_frames``."""
        emb, labels = self.cache[video]
        if not lead_frames:
            return self._shifted(emb), labels
        lead_emb, lead_labels = self.cache[lead]
        keep = len(labels) - lead_frames
        return (torch.cat([self._shifted(lead_emb[:lead_frames]), self._shifted(emb[:keep])]),
                torch.cat([lead_labels[:lead_frames], labels[:keep]]))

    def _shifted(self, emb: torch.Tensor) -> torch.Tensor:
        """One video's embeddings (T, F), all moved by one random vector (``train.memory_shift``).

        On few videos the memory learned to recognise each training video by its scene (which every
        embedding carries) and to answer from that: 30 training videos fitted completely, validation
        masked accuracy at chance. A scene moved to a new place every epoch is no key; what happens
        in the video (a cue appears, then a silhouette) still is.
        """
        scale = self.cfg.train.memory_shift
        if not scale:
            return emb
        noise = torch.randn(emb.shape[1], generator=self.shifts).to(emb.device)
        return emb + scale * self.emb_std * noise

    def val_embeddings(self, videos, bar) -> list[torch.Tensor]:
        """The validation videos' embeddings, encoded once: with the encoder frozen, validating a
        memory epoch needs only the memory and head (the metrics are the same)."""
        if self.val_cache is None:
            start = time.perf_counter()
            self.val_cache = encode_videos(self.model, self.data, videos, self.device, bar)
            self.one_off += time.perf_counter() - start
        return self.val_cache

    def take_one_off(self) -> float:
        """Seconds of one-off encoding since the last call (for the remaining-time estimate)."""
        seconds, self.one_off = self.one_off, 0.0
        return seconds


def memory_passes(videos: int, batch: int, world: int) -> tuple[int, int]:
    """``(passes, steps per pass)`` of one memory epoch over ``videos`` videos: at least MIN_MEMORY_STEPS steps."""
    steps = math.ceil(videos / (batch * world))
    return math.ceil(MIN_MEMORY_STEPS / steps), steps


def memory_plan(lengths: list[int], batch: int, world: int, rng: np.random.Generator,
                splice: float = 0.0) -> list[tuple[list[list[Item]], int]]:
    """One epoch of the memory phase: per step, each rank's items and the length to pad to.

    An epoch is whole passes over the videos, each in its own random order, as many as make
    MIN_MEMORY_STEPS steps. Each item is ``(video, lead, lead_frames)`` (:func:`splice_item`): the
    video alone when ``lead_frames`` is 0, else the first ``lead_frames`` frames of video ``lead``
    followed by the start of ``video``, as long as ``video`` is. Every rank derives the same plan and
    pads to the longest video of the whole step, so all ranks run the same number of chunks (DDP's
    all-reduce needs it); a rank left without a video in a pass's last step gets an empty (all-padding) one.
    """
    passes, _ = memory_passes(len(lengths), batch, world)
    plan = []
    for _ in range(passes):
        order = rng.permutation(len(lengths))
        for i in range(0, len(order), batch * world):
            group = [splice_item(int(j), lengths, splice, rng) for j in order[i:i + batch * world]]
            plan.append(([group[r::world] for r in range(world)], max(lengths[v] for v, _, _ in group)))
    return plan


def splice_item(video: int, lengths: list[int], splice: float, rng: np.random.Generator) -> Item:
    """``(video, lead, lead_frames)``: with probability ``splice``, the first ``lead_frames`` frames of
    another video ``lead`` (a uniform share of the shorter of the two), then ``video`` from its start,
    cut to ``video``'s own length; else ``video`` alone (``(video, video, 0)``).

    What a memory must do on TV: the channel changes, and what the new one shows overrides what the
    old one showed. A training video has only its own history; spliced, its cues follow another's,
    so that the memory sees more switches than its training videos hold (pictures-gaps, seed 301: two
    of four wrong silhouettes followed a switch inside their video and took the label of the channel
    before it). Every label stays true, as both parts start where their video starts and only a
    video's end is left out (what a frame's label depends on comes before it). Cut to ``video``'s
    length, an item costs what ``video`` alone costs. Off by default (``train.memory_splice=0``):
    measured, it did not change test accuracy beyond the memory's seed-to-seed spread (docs/benchmarks.md).
    """
    if not splice:  # no draws: without splicing the plan is what it was before splicing existed
        return video, video, 0
    draws = rng.random(3)  # always three draws: the plan does not depend on which branch is taken
    if len(lengths) < 2 or draws[0] >= splice:
        return video, video, 0
    lead = int(draws[1] * (len(lengths) - 1))
    lead += lead >= video  # any video but this one
    frames = int(draws[2] * min(lengths[lead], lengths[video]))
    return (video, lead, frames) if frames else (video, video, 0)


def pad_batch(items: list[tuple[torch.Tensor, torch.Tensor]], length: int, dim: int,
              device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack videos to ``length`` frames: embeddings (B, length, dim) padded with zeros, labels
    (B, length) with IGNORE (the pad comes after each video's end, and the memory is causal, so it
    changes no real frame's output). No items give one all-padding row."""
    emb = torch.zeros(max(1, len(items)), length, dim, device=device)
    labels = torch.full((max(1, len(items)), length), IGNORE, dtype=torch.int64, device=device)
    for i, (e, y) in enumerate(items):
        emb[i, :len(e)] = e
        labels[i, :len(y)] = y
    return emb, labels
