"""A moving average of a model's weights, which the model shows whenever it is not taking steps.

Trained at a steady learning rate on a few dozen videos, the encoder's weights wander from step to
step: validation of the weights as they are after an epoch moves by several points from one epoch to
the next, so the plateau rule judges noise and the phase hands its successor whichever point the last
step landed on. The exponential moving average of the weights over the last few hundred steps is
the point those steps wander around: its validation is smoother and higher (pictures data, 30
training videos, the encoder alone for 18 epochs: on test frames the average held 0.91-0.92 from epoch
12 on, while the weights as trained moved between 0.82 and 0.93 from epoch 7 on). Ultralytics'
``ModelEMA`` and timm's ``ModelEmaV2`` keep the same average. In whole ``lstm-tv train`` runs it did
not give better models (pictures data, four seeds of two families: better and worse by turns, beyond
the seeds' spread), so ``train.ema`` is 0 (off) by default.

:class:`WeightAverage` keeps the average next to the weights being trained and swaps them: inside
:meth:`WeightAverage.training` the model holds the trained weights and every optimiser step updates
the average (:meth:`WeightAverage.update`); outside it the model holds the average, so validation,
checkpoints and the phase that follows all see the averaged model without knowing it exists. A
``last.ckpt`` stores the trained weights beside (:meth:`WeightAverage.state_dict`), so ``--resume``
continues both exactly.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator

import torch
from torch import Tensor, nn

# The average starts close to the latest weights and lengthens its memory over its first steps
# (decay * (1 - exp(-updates / RAMP_STEPS))), so the untrained initial weights do not linger in it.
RAMP_STEPS = 300


class WeightAverage:
    """The exponential moving average (decay ``decay`` per optimiser step) of ``model``'s floating-point
    parameters and buffers; integer buffers (BatchNorm's step counter) follow the model as they are.

    Args:
        model: the module whose weights are averaged (not a DistributedDataParallel wrapper).
        decay: the average's weight on its previous value after the ramp, in [0, 1).
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.model, self.decay, self.updates = model, decay, 0
        self.average = _copy(model.state_dict())
        self.trained: dict[str, Tensor] | None = None  # the weights being trained, while the model shows the average

    def current_decay(self) -> float:
        """The decay the next :meth:`update` uses (it grows towards ``decay`` over the first steps)."""
        return self.decay * (1.0 - math.exp(-(self.updates + 1) / RAMP_STEPS))

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the model's weights as they are now (call after each optimiser step)."""
        weight = 1.0 - self.current_decay()
        self.updates += 1
        for name, value in self.model.state_dict().items():
            average = self.average[name]
            if average.is_floating_point():
                average.lerp_(value.detach().to(average.dtype), weight)  # average += weight * (value - average)
            else:
                average.copy_(value)

    @contextlib.contextmanager
    def training(self) -> Iterator[None]:
        """Within: the model holds the weights being trained. On leaving (also on an error) those are put
        aside and the model holds the average again."""
        if self.trained is not None:
            _load(self.model, self.trained)
        try:
            yield
        finally:
            self.trained = _copy(self.model.state_dict())
            _load(self.model, self.average)

    def state_dict(self) -> dict:
        """What a checkpoint needs besides the model's (averaged) weights: the trained weights and the step count."""
        trained = self.trained if self.trained is not None else self.model.state_dict()
        return {"trained": {k: v.detach().cpu() for k, v in trained.items()}, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a checkpoint whose weights the model holds now (they are the average) and whose
        :meth:`state_dict` is ``state``.

        Raises:
            KeyError, RuntimeError, TypeError: ``state`` does not fit this model.
        """
        trained, shown = state["trained"], self.model.state_dict()
        if not isinstance(trained, dict) or set(trained) != set(shown):
            raise KeyError("the trained weights name other tensors than the model's")
        for name, value in trained.items():
            if value.shape != shown[name].shape:
                raise RuntimeError(f"trained weight {name}: shape {tuple(value.shape)}, "
                                   f"model {tuple(shown[name].shape)}")
        # Checked before anything changes, so a refused state leaves this average as it was.
        self.average = _copy(shown)
        self.trained = {name: value.to(shown[name].device) for name, value in trained.items()}
        self.updates = int(state["updates"])


def _copy(weights: dict[str, Tensor]) -> dict[str, Tensor]:
    return {name: value.detach().clone() for name, value in weights.items()}


@torch.no_grad()
def _load(model: nn.Module, weights: dict[str, Tensor]) -> None:
    """Copy ``weights`` into the model's own tensors (in place: an optimiser or DDP holding them keeps working)."""
    for name, value in model.state_dict().items():
        value.copy_(weights[name])
