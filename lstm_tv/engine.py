"""The training engine: truncated back-propagation through time over batches of sequences, for both phases.

One epoch, whatever the inputs are (frames in the joint phase, cached embeddings in the memory phase)::

    for each batch (B, L, ...) with labels (B, L):
        state = None
        for each chunk of ``chunk`` steps along L:
            logits, state = net(chunk, state)   # the memory flows on from the last chunk
            loss.backward(); clip grads; step   # gradients stop at the chunk start
            state = detach(state)               # truncated back-propagation through time

:class:`Optimisation` is what a phase optimises and how (parameters, AdamW, the learning-rate
schedule, gradient clipping, fp16 loss scaling); :class:`StepGuard` decides what a non-finite
loss or gradient does (``train.nonfinite``).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Iterable

import torch
from torch import nn

from lstm_tv.averaging import WeightAverage
from lstm_tv.data.dataset import IGNORE
from lstm_tv.model.cells import detach_state


def frame_loss(loss_fn, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-frame loss of logits (B, T, K) against labels (B, T); padding (IGNORE) does not count.

    A chunk that is all padding gives a zero that still has a graph: every process then runs the
    same backward passes, which DistributedDataParallel's gradient all-reduce needs.
    """
    if not bool((target != IGNORE).any()):
        return logits.sum() * 0.0
    return loss_fn(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))  # (B, T, K) -> (B*T, K)


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


class NonFinite(Exception):
    """Raised inside an epoch when a step's gradient is not finite and the policy is ``stop``."""


@dataclass
class StepGuard:
    """What to do about a non-finite loss or gradient (``train.nonfinite``), and the steps counted."""

    policy: str = "stop"
    steps: int = 0
    skipped: int = 0


@dataclass
class Optimisation:
    """What one phase optimises and how.

    Attributes:
        params: the parameters trained (their gradients are clipped together).
        optimizer: AdamW over them (:func:`make_optimizer`).
        scheduler: its learning-rate schedule (:func:`make_scheduler`).
        grad_clip: the largest gradient norm (0 = no clipping).
        scaler: scales the loss when the encoder runs in float16 (old GPUs), whose small gradients
            would otherwise underflow; None in bf16 and fp32.
        schedule_per_chunk: the schedule advances after every chunk's step (joint phase), or once
            per batch (memory phase).
        lr_scale: a factor on the scheduled learning rate (:meth:`set_lr_scale`: lowered on a plateau).
        average: the moving average of the weights that each step taken updates (joint phase,
            ``train.ema``), or None.
    """

    params: list
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    grad_clip: float
    scaler: torch.amp.GradScaler | None = None
    schedule_per_chunk: bool = True
    lr_scale: float = 1.0
    average: WeightAverage | None = None

    @property
    def lr(self) -> float:
        """The current learning rate (of the first parameter group)."""
        return self.optimizer.param_groups[0]["lr"]

    def optimizer_step(self, loss: torch.Tensor, guard: StepGuard) -> None:
        """One optimisation step on ``loss``: backward, clip, step — unless the gradient is not finite.

        The gradient norm is computed after DistributedDataParallel's all-reduce, so every process
        reaches the same verdict. The scaler's own overflows (fp16) are routine and handled by it.

        Raises:
            NonFinite: the loss or gradient is not finite and ``guard.policy`` is ``stop``.
        """
        guard.steps += 1
        self.optimizer.zero_grad(set_to_none=True)
        if not bool(torch.isfinite(loss.detach())):
            # A non-finite loss can have a finite gradient (class weights summing to inf give 0 / inf = 0):
            # make the gradient non-finite too, so the one check below -- after DDP's all-reduce, the same
            # on every process -- stops or skips this step.
            loss = loss * float("nan")
        scaler = self.scaler
        (scaler.scale(loss) if scaler is not None else loss).backward()
        if scaler is not None:
            scaler.unscale_(self.optimizer)
        norm = nn.utils.clip_grad_norm_(self.params, self.grad_clip if self.grad_clip > 0 else math.inf)
        if scaler is not None:
            scaler.step(self.optimizer)  # skips the step itself on inf/nan and lowers the scale
            scaler.update()
            self._average()
        elif torch.isfinite(norm):
            self.optimizer.step()
            self._average()
        elif guard.policy == "stop":
            raise NonFinite(f"step {guard.steps}: the loss or its gradient is not finite (loss {loss.item():.4g})")
        else:
            guard.skipped += 1
            self.optimizer.zero_grad(set_to_none=True)

    def _average(self) -> None:
        if self.average is not None:
            self.average.update()

    def advance_schedule(self) -> None:
        """Move the learning rate one step along its schedule (skipped steps count as steps)."""
        with warnings.catch_warnings():
            # When the very first optimiser step was skipped (train.nonfinite=skip, or the fp16 scaler
            # skipping an overflow), PyTorch warns that the schedule moved before the optimiser did.
            # That order is deliberate here: the schedule follows steps taken or skipped alike.
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
            self.scheduler.step()
        self.set_lr_scale(self.lr_scale)

    def set_lr_scale(self, scale: float) -> None:
        """Run at ``scale`` times the scheduled learning rate from now on (the schedule's shape is kept)."""
        self.lr_scale = scale
        for group, scheduled in zip(self.optimizer.param_groups, self.scheduler.get_last_lr(), strict=True):
            group["lr"] = scheduled * scale


def tbptt_batch(net: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, chunk: int, loss_fn,
                opt: Optimisation, guard: StepGuard) -> tuple[float, int]:
    """Truncated BPTT over one batch: a step per ``chunk`` steps along time, the state carried and detached.

    Args:
        net: called as ``net(inputs[:, t:t + chunk], state) -> (logits (B, T, K), state)``.
        inputs: (B, L, ...) frames or embeddings.
        labels: (B, L) class per step, IGNORE on padding.
        chunk: steps back-propagated through at once.
        loss_fn, opt, guard: the loss, what is optimised, the non-finite policy.

    Returns:
        ``(summed finite chunk losses, finite chunks)``.
    """
    state, total, counted = None, 0.0, 0
    for t in range(0, inputs.shape[1], chunk):
        logits, state = net(inputs[:, t:t + chunk], state)  # (B, T, K), memory carried in
        loss = frame_loss(loss_fn, logits, labels[:, t:t + chunk])
        opt.optimizer_step(loss, guard)
        if opt.schedule_per_chunk:
            opt.advance_schedule()
        state = detach_state(state)  # keep the memory, cut the gradient path
        if math.isfinite(loss.item()):
            total += loss.item()
            counted += 1
    return total, counted


def train_epoch(net: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], num_batches: int, chunk: int,
                loss_fn, opt: Optimisation, guard: StepGuard, bar) -> dict:
    """One epoch of :func:`tbptt_batch` over ``batches`` of ``(inputs, labels)``, already on the device.

    Returns:
        ``train_loss`` (mean over finite chunks), ``frames`` (labelled steps seen) and ``seconds``.
    """
    net.train()
    total, counted, frames = 0.0, 0, 0
    start = time.perf_counter()
    for i, (inputs, labels) in enumerate(batches):
        batch_loss, batch_chunks = tbptt_batch(net, inputs, labels, chunk, loss_fn, opt, guard)
        if not opt.schedule_per_chunk:
            opt.advance_schedule()
        total, counted = total + batch_loss, counted + batch_chunks
        frames += int((labels != IGNORE).sum())
        rate = frames / max(time.perf_counter() - start, 1e-9)
        bar.update(i + 1, num_batches, f"loss {total / max(counted, 1):.4f}  {rate:.0f} frames/s")
    return {"train_loss": total / max(counted, 1), "frames": frames, "seconds": time.perf_counter() - start}
