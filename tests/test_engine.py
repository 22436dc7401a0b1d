"""The training engine: one optimiser step, the non-finite guard, truncated BPTT over chunks."""

from __future__ import annotations

import warnings

import pytest
import torch

from lstm_tv.data.dataset import IGNORE
from lstm_tv.engine import NonFinite, Optimisation, StepGuard, make_optimizer, make_scheduler, tbptt_batch, train_epoch


class NoBar:
    def update(self, *args):
        pass


class Recurrent(torch.nn.Module):
    """A tiny causal model with a state, called as the phases call theirs: net(x, state) -> (logits, state)."""

    def __init__(self):
        super().__init__()
        self.cell = torch.nn.GRU(3, 4, batch_first=True)
        self.head = torch.nn.Linear(4, 2)
        self.calls: list[tuple[int, bool]] = []   # (chunk length, whether a state came in)

    def forward(self, x, state=None):
        self.calls.append((x.shape[1], state is not None))
        out, h = self.cell(x, None if state is None else state[0])
        return self.head(out), (h,)  # a state is a tuple of tensors, as the memory cells' are


def optimisation(net, **kwargs) -> Optimisation:
    opt = make_optimizer(net, 0.0, 0.01)
    return Optimisation(list(net.parameters()), opt, make_scheduler(opt, 1, 10, 0.0), 1.0, **kwargs)


def test_chunks_carry_the_state_and_step_once_each():
    torch.manual_seed(0)
    net = Recurrent()
    opt = optimisation(net)
    x, y = torch.randn(2, 10, 3), torch.randint(0, 2, (2, 10))
    guard = StepGuard()
    total, counted = tbptt_batch(net, x, y, 4, torch.nn.CrossEntropyLoss(ignore_index=IGNORE), opt, guard)
    assert net.calls == [(4, False), (4, True), (2, True)]       # 10 frames in chunks of 4, state carried
    assert guard.steps == counted == 3 and total > 0
    assert opt.scheduler.last_epoch == 3                          # the schedule moved per chunk


def test_a_per_batch_schedule_moves_once_per_batch():
    net = Recurrent()
    opt = optimisation(net, schedule_per_chunk=False)
    batches = [(torch.randn(1, 6, 3), torch.randint(0, 2, (1, 6))) for _ in range(2)]
    stats = train_epoch(net, batches, 2, 2, torch.nn.CrossEntropyLoss(), opt, StepGuard(), NoBar())
    assert opt.scheduler.last_epoch == 2 and stats["frames"] == 12


def test_skipping_the_first_step_leaves_no_scheduler_warning():
    # train.nonfinite=skip when the very first loss is NaN: PyTorch would warn that the schedule
    # moved before the optimiser did; the skip is deliberate, so no warning may reach the user.
    net = Recurrent()
    opt = optimisation(net)
    x, y = torch.randn(1, 4, 3), torch.randint(0, 2, (1, 4))

    def nan_loss(logits, target):
        return logits.sum() * float("nan")

    guard = StepGuard("skip")
    before = [p.detach().clone() for p in net.parameters()]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tbptt_batch(net, x, y, 4, nan_loss, opt, guard)
    assert [str(w.message) for w in caught if "lr_scheduler" in str(w.message)] == []
    assert guard.skipped == 1 and opt.scheduler.last_epoch == 1    # skipped, and still counted as a step
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    with pytest.raises(NonFinite, match="step 1: the loss or its gradient is not finite"):
        tbptt_batch(net, x, y, 4, nan_loss, optimisation(net), StepGuard("stop"))
