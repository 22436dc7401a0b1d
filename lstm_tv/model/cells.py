"""Memory cells: what carries information from frame to frame, chosen by name (``model.cell``).

Every cell maps per-frame features (B, T, F) to per-frame outputs (B, T, out_dim) and is causal: the
output at frame t depends on frames <= t only. The memory between calls is an explicit ``state``, always
a tuple of tensors with a batch dimension (possibly an empty tuple), so one streaming step serves every
use: truncated-BPTT training (carry it, :func:`detach_state` it between chunks), validation and
prediction (carry it from chunk to chunk of a long video) and export (state in, state out).

=========  ==========================================================  ==========================
name       memory                                                      state
=========  ==========================================================  ==========================
lstm       ``nn.LSTM`` (fused, fast; the default)                      (h, c): (layers, B, hidden)
peephole   LSTM whose gates also see c (reference cell, Python loop)   (h, c): (layers, B, hidden)
gru        ``nn.GRU``                                                  (h,): (layers, B, hidden)
rnn        ``nn.RNN`` with tanh                                        (h,): (layers, B, hidden)
tdnn       causal window of ``window`` frames, no recurrence           (x,): (B, window-1, F)
none       frame only, the baseline without memory                     ()
=========  ==========================================================  ==========================
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstm_tv.config import ModelConfig
from lstm_tv.model.reference import ReferenceLSTMCell, run_layers
from lstm_tv.model.registry import Registry

State = tuple[Tensor, ...]

CELLS: Registry[Callable[[ModelConfig, int], "MemoryCell"]] = Registry("model.cell")
register_cell = CELLS.register
list_cells = CELLS.names


def build_cell(cfg: ModelConfig, in_dim: int) -> "MemoryCell":
    """The memory cell named by ``cfg.cell``, reading ``in_dim`` features per frame.

    Raises:
        ConfigError: if ``cfg.cell`` is not a registered name.
    """
    return CELLS[cfg.cell](cfg, in_dim)


def detach_state(state: State) -> State:
    """The same state cut from the autograd graph (between truncated-BPTT chunks)."""
    return tuple(s.detach() for s in state)


class MemoryCell(nn.Module):
    """Interface of every memory cell.

    Attributes:
        out_dim: size of the per-frame output.
        state_batch_dim: the batch dimension of the state tensors (1 for recurrent cells, whose state
            is (layers, B, hidden) as in ``nn.LSTM``; 0 for tdnn), for code that resets or selects clips.
    """

    out_dim: int
    state_batch_dim: int = 1

    def initial_state(self, batch: int, device=None, dtype=None) -> State:
        """The state before the first frame (zeros) for ``batch`` clips."""
        raise NotImplementedError

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Run over a chunk: ``x`` (B, T, F), ``state`` from the previous chunk (None = initial)."""
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------------
# Recurrent cells on PyTorch's fused implementations


class FusedRecurrentMemory(MemoryCell):
    """``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` (batch first), with the state as a tuple.

    Args:
        rnn: the recurrent module; its state is (h, c) for an LSTM and (h,) otherwise.
    """

    def __init__(self, rnn: nn.RNNBase) -> None:
        super().__init__()
        if not rnn.batch_first:
            raise ValueError("the recurrent module must be batch_first")
        self.rnn = rnn
        self.out_dim = rnn.hidden_size
        self.num_states = 2 if isinstance(rnn, nn.LSTM) else 1

    def initial_state(self, batch: int, device=None, dtype=None) -> State:
        shape = (self.rnn.num_layers, batch, self.rnn.hidden_size)
        return tuple(torch.zeros(shape, device=device, dtype=dtype) for _ in range(self.num_states))

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        if state is None:
            # Explicit zeros rather than None, so a traced/exported graph always has a state input.
            state = self.initial_state(x.shape[0], x.device, x.dtype)
        hx = state if self.num_states == 2 else state[0]
        y, hx = self.rnn(x, hx)  # y: (B, T, hidden)
        return y, (tuple(hx) if self.num_states == 2 else (hx,))


class LSTMMemory(FusedRecurrentMemory):
    """The default cell: PyTorch's fused ``nn.LSTM``, with the forget-gate bias set to ``forget_bias``.

    Args:
        in_dim: features per frame.
        hidden: size of ``h`` and ``c``.
        layers: stacked LSTM layers.
        dropout: dropout between layers (only with ``layers > 1``).
        forget_bias: initial ``bias_ih + bias_hh`` of the forget gate. A positive value makes the
            untrained cell keep its memory (sigmoid(1) ~ 0.73 per frame) so that gradients through
            long gaps do not vanish at the start of training (Jozefowicz et al., 2015).
    """

    def __init__(self, in_dim: int, hidden: int, layers: int = 1, dropout: float = 0.0,
                 forget_bias: float = 1.0) -> None:
        lstm = nn.LSTM(in_dim, hidden, num_layers=layers, batch_first=True,
                       dropout=dropout if layers > 1 else 0.0)  # nn.LSTM warns about dropout with 1 layer
        super().__init__(lstm)
        init_forget_bias(lstm, forget_bias)

    def reference_cells(self) -> list[ReferenceLSTMCell]:
        """Copies of the layers as :class:`ReferenceLSTMCell`, for :func:`trace_gates`."""
        return [ReferenceLSTMCell.from_lstm(self.rnn, k) for k in range(self.rnn.num_layers)]


def init_forget_bias(module: nn.Module, value: float) -> None:
    """Zero every LSTM bias except the forget gate's, whose ``bias_ih + bias_hh`` becomes ``value``.

    Works on ``nn.LSTM`` (``bias_ih_l{k}``) and :class:`ReferenceLSTMCell` (``bias_ih``) parameters;
    PyTorch's gate order is i, f, g, o, so the forget gate is the second quarter.
    """
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.startswith("bias_ih") or name.startswith("bias_hh"):
                p.zero_()
                if name.startswith("bias_ih"):
                    hidden = p.shape[0] // 4
                    p[hidden:2 * hidden] = value


@register_cell("lstm")
def _lstm(cfg: ModelConfig, in_dim: int) -> MemoryCell:
    return LSTMMemory(in_dim, cfg.hidden, cfg.layers, cfg.dropout, cfg.forget_bias)


class PeepholeMemory(MemoryCell):
    """An LSTM with diagonal peephole connections, run by :class:`ReferenceLSTMCell` in a Python loop.

    Slower than ``lstm`` (one small step per frame in Python) but the same state layout, so it drops in.
    """

    def __init__(self, in_dim: int, hidden: int, layers: int = 1, dropout: float = 0.0,
                 forget_bias: float = 1.0) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            ReferenceLSTMCell(in_dim if k == 0 else hidden, hidden, peephole=True) for k in range(layers))
        for cell in self.layers:
            init_forget_bias(cell, forget_bias)
        self.dropout = dropout
        self.hidden = hidden
        self.out_dim = hidden

    def initial_state(self, batch: int, device=None, dtype=None) -> State:
        shape = (len(self.layers), batch, self.hidden)
        return torch.zeros(shape, device=device, dtype=dtype), torch.zeros(shape, device=device, dtype=dtype)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        if state is None:
            state = self.initial_state(x.shape[0], x.device, x.dtype)
        y, state, _ = run_layers(list(self.layers), x, (state[0], state[1]),
                                 dropout=self.dropout, training=self.training)
        return y, state

    def reference_cells(self) -> list[ReferenceLSTMCell]:
        """The layers themselves, for :func:`trace_gates`."""
        return list(self.layers)


@register_cell("peephole")
def _peephole(cfg: ModelConfig, in_dim: int) -> MemoryCell:
    return PeepholeMemory(in_dim, cfg.hidden, cfg.layers, cfg.dropout, cfg.forget_bias)


@register_cell("gru")
def _gru(cfg: ModelConfig, in_dim: int) -> MemoryCell:
    return FusedRecurrentMemory(nn.GRU(in_dim, cfg.hidden, num_layers=cfg.layers, batch_first=True,
                                       dropout=cfg.dropout if cfg.layers > 1 else 0.0))


@register_cell("rnn")
def _rnn(cfg: ModelConfig, in_dim: int) -> MemoryCell:
    return FusedRecurrentMemory(nn.RNN(in_dim, cfg.hidden, num_layers=cfg.layers, nonlinearity="tanh",
                                       batch_first=True, dropout=cfg.dropout if cfg.layers > 1 else 0.0))


# ---------------------------------------------------------------------------------------------------
# Memory without recurrence


class PointwiseStack(nn.Module):
    """``layers`` of Linear + ReLU applied to every frame alone (a kernel-1 convolution over time)."""

    def __init__(self, in_dim: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.linears = nn.ModuleList(nn.Linear(in_dim if k == 0 else hidden, hidden) for k in range(layers))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        for k, linear in enumerate(self.linears):
            if k > 0:
                x = self.dropout(x)
            x = F.relu(linear(x))  # (B, T, hidden)
        return x


class WindowMemory(MemoryCell):
    """``tdnn``: a causal window over the last ``window`` frames, no recurrence.

    The first layer is a Conv1d over time with kernel ``window``; its left context (the previous
    ``window - 1`` inputs) comes from the state, zeros at the start of a video, so chunked and whole
    runs agree. Further layers are pointwise, so the receptive field is exactly ``window`` frames: the
    model cannot remember anything older, which is the point of comparing it with the recurrent cells.

    Args:
        in_dim: features per frame.
        hidden: output size of every layer.
        window: frames the first layer sees (this one and ``window - 1`` before it).
        layers: total layers (1 window layer + ``layers - 1`` pointwise).
        dropout: dropout between layers.
    """

    state_batch_dim = 0

    def __init__(self, in_dim: int, hidden: int, window: int, layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.in_dim, self.window, self.out_dim = in_dim, window, hidden
        self.conv = nn.Conv1d(in_dim, hidden, kernel_size=window)
        self.dropout = nn.Dropout(dropout)
        self.pointwise = PointwiseStack(hidden, hidden, layers - 1, dropout)

    def initial_state(self, batch: int, device=None, dtype=None) -> State:
        return (torch.zeros(batch, self.window - 1, self.in_dim, device=device, dtype=dtype),)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        if state is None:
            state = self.initial_state(x.shape[0], x.device, x.dtype)
        seq = torch.cat([state[0], x], dim=1)  # (B, window-1 + T, F): left context, then this chunk
        y = self.conv(seq.transpose(1, 2))  # (B, F, window-1 + T) -> (B, hidden, T): valid conv, causal
        y = F.relu(y.transpose(1, 2))  # (B, T, hidden)
        if len(self.pointwise.linears):
            y = self.pointwise(self.dropout(y))
        keep = self.window - 1
        context = seq[:, seq.shape[1] - keep:]  # (B, window-1, F): the newest inputs, for the next chunk
        return y, (context,)


@register_cell("tdnn")
def _tdnn(cfg: ModelConfig, in_dim: int) -> MemoryCell:
    return WindowMemory(in_dim, cfg.hidden, cfg.window, cfg.layers, cfg.dropout)


class NoMemory(MemoryCell):
    """``none``: every frame on its own (Linear + ReLU per frame); the baseline the memory must beat."""

    state_batch_dim = 0

    def __init__(self, in_dim: int, hidden: int, layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.out_dim = hidden
        self.frame = PointwiseStack(in_dim, hidden, layers, dropout)

    def initial_state(self, batch: int, device=None, dtype=None) -> State:
        return ()

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        return self.frame(x), ()  # (B, T, F) -> (B, T, hidden)


@register_cell("none")
def _none(cfg: ModelConfig, in_dim: int) -> MemoryCell:
    return NoMemory(in_dim, cfg.hidden, cfg.layers, cfg.dropout)
