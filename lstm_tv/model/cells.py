"""Memory cells: what carries information from frame to frame, chosen by name (``model.cell``).

This module is the one list of cells. A cell is one class, registered with ``@register_cell(name)``,
that builds itself from the config (:meth:`MemoryCell.from_config`) and describes itself in class
attributes: its state tensors' names, whether it exports for any chunk length, whether ``explain``
can trace its gates, a few words for the config's help, and where ``bench`` tables list it. The
config help, ``export``, ``explain`` and ``bench`` read these; adding a cell touches nothing else.

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

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstm_tv.config import ModelConfig
from lstm_tv.model.reference import ReferenceLSTMCell, run_layers
from lstm_tv.model.registry import Registry

State = tuple[Tensor, ...]

CELLS: Registry[type["MemoryCell"]] = Registry("model.cell")
list_cells = CELLS.names


def register_cell(name: str):
    """Class decorator: register a :class:`MemoryCell` subclass as ``model.cell=name``."""

    def wrap(cls: type["MemoryCell"]) -> type["MemoryCell"]:
        cls.name = name
        return CELLS.register(name)(cls)

    return wrap


def cell_class(name: str) -> type["MemoryCell"]:
    """The class registered as ``name`` (a ConfigError listing the names if there is none)."""
    return CELLS[name]


def build_cell(cfg: ModelConfig, in_dim: int) -> "MemoryCell":
    """The memory cell named by ``cfg.cell``, reading ``in_dim`` features per frame.

    Raises:
        ConfigError: if ``cfg.cell`` is not a registered name.
    """
    return CELLS[cfg.cell].from_config(cfg, in_dim)


def gated_cells() -> list[str]:
    """Registered cells whose gates ``explain`` can trace."""
    return [name for name in list_cells() if CELLS[name].has_gates]


def bench_cells() -> list[str]:
    """Every registered cell in the order bench tables list them (least memory first)."""
    return sorted(list_cells(), key=lambda name: CELLS[name].bench_order)


def describe_cells() -> str:
    """The registered cells for help texts: ``lstm, peephole, ... tdnn (causal window) or none (frame only)``."""
    names = [f"{n} ({CELLS[n].note})" if CELLS[n].note else n for n in list_cells()]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def detach_state(state: State) -> State:
    """The same state cut from the autograd graph (between truncated-BPTT chunks)."""
    return tuple(s.detach() for s in state)


class MemoryCell(nn.Module):
    """Interface of every memory cell; a subclass describes itself in its class attributes.

    Class attributes:
        name: the registered name (set by :func:`register_cell`).
        state_names: names of the state tensors, in order (export's input names).
        dynamic_length: True if an exported model runs chunks of any length; False for a Python loop
            over frames, which tracing unrolls to the traced length (exported for a fixed chunk).
        has_gates: True if the cell has a ``reference_cells()`` method giving its layers as gate-by-gate
            :class:`~lstm_tv.model.reference.ReferenceLSTMCell` s, which ``explain`` traces.
        note: a few words after the name in the config's help, or empty.
        bench_order: where bench tables list it: less memory first.

    Attributes:
        out_dim: size of the per-frame output.
        state_batch_dim: the batch dimension of the state tensors (1 for recurrent cells, whose state
            is (layers, B, hidden) as in ``nn.LSTM``; 0 for tdnn), for code that resets or selects clips.
    """

    name: ClassVar[str] = ""
    state_names: ClassVar[tuple[str, ...]] = ()
    dynamic_length: ClassVar[bool] = True
    has_gates: ClassVar[bool] = False
    note: ClassVar[str] = ""
    bench_order: ClassVar[float] = 100.0

    out_dim: int
    state_batch_dim: int = 1

    @classmethod
    def from_config(cls, cfg: ModelConfig, in_dim: int) -> "MemoryCell":
        """The cell as ``cfg`` (``model.hidden``, ``model.layers``, ...) describes, reading ``in_dim`` features."""
        raise NotImplementedError

    def initial_state(self, batch: int, device=None, dtype=None) -> State:
        """The state before the first frame (zeros) for ``batch`` clips."""
        raise NotImplementedError

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Run over a chunk: ``x`` (B, T, F), ``state`` from the previous chunk (None = initial)."""
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------------
# Recurrent cells on PyTorch's fused implementations


class FusedRecurrentMemory(MemoryCell):
    """``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` (batch first), with the state as a tuple (registered subclasses).

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


@register_cell("lstm")
class LSTMMemory(FusedRecurrentMemory):
    """The default cell: PyTorch's fused ``nn.LSTM``, with the forget-gate bias set to ``forget_bias``.

    Args:
        in_dim: features per frame.
        hidden: size of ``h`` and ``c``.
        layers: stacked LSTM layers.
        dropout: dropout between layers (only with ``layers > 1``).
        forget_bias: initial ``bias_ih + bias_hh`` of the forget gate. A positive value makes the
            untrained cell keep its memory (sigmoid(3) ~ 0.95 per frame, sigmoid(1) ~ 0.73) so that
            gradients through long gaps do not vanish at the start of training (Jozefowicz et al.,
            2015; Tallec and Ollivier's chrono initialisation, 2018, sets it from the gaps' length).
            Defaults to ``model.forget_bias`` (3: at 1 some new memories never learned a cue 100-300
            frames back).
    """

    state_names = ("h", "c")
    has_gates = True
    bench_order = 4

    def __init__(self, in_dim: int, hidden: int, layers: int = 1, dropout: float = 0.0,
                 forget_bias: float = ModelConfig.forget_bias) -> None:
        lstm = nn.LSTM(in_dim, hidden, num_layers=layers, batch_first=True,
                       dropout=dropout if layers > 1 else 0.0)  # nn.LSTM warns about dropout with 1 layer
        super().__init__(lstm)
        init_forget_bias(lstm, forget_bias)

    @classmethod
    def from_config(cls, cfg: ModelConfig, in_dim: int) -> MemoryCell:
        return cls(in_dim, cfg.hidden, cfg.layers, cfg.dropout, cfg.forget_bias)

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


@register_cell("peephole")
class PeepholeMemory(MemoryCell):
    """An LSTM with diagonal peephole connections, run by :class:`ReferenceLSTMCell` in a Python loop.

    Slower than ``lstm`` (one small step per frame in Python) but the same state layout, so it drops in.
    """

    state_names = ("h", "c")
    dynamic_length = False  # the Python loop over frames is unrolled by tracing
    has_gates = True
    bench_order = 5

    def __init__(self, in_dim: int, hidden: int, layers: int = 1, dropout: float = 0.0,
                 forget_bias: float = ModelConfig.forget_bias) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            ReferenceLSTMCell(in_dim if k == 0 else hidden, hidden, peephole=True) for k in range(layers))
        for cell in self.layers:
            init_forget_bias(cell, forget_bias)
        self.dropout = dropout
        self.hidden = hidden
        self.out_dim = hidden

    @classmethod
    def from_config(cls, cfg: ModelConfig, in_dim: int) -> MemoryCell:
        return cls(in_dim, cfg.hidden, cfg.layers, cfg.dropout, cfg.forget_bias)

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


@register_cell("gru")
class GRUMemory(FusedRecurrentMemory):
    """PyTorch's fused ``nn.GRU``: gated like the LSTM, with one state tensor."""

    state_names = ("h",)
    bench_order = 3

    @classmethod
    def from_config(cls, cfg: ModelConfig, in_dim: int) -> MemoryCell:
        return cls(nn.GRU(in_dim, cfg.hidden, num_layers=cfg.layers, batch_first=True,
                          dropout=cfg.dropout if cfg.layers > 1 else 0.0))


@register_cell("rnn")
class RNNMemory(FusedRecurrentMemory):
    """PyTorch's fused ``nn.RNN`` with tanh: recurrence without gates."""

    state_names = ("h",)
    bench_order = 2

    @classmethod
    def from_config(cls, cfg: ModelConfig, in_dim: int) -> MemoryCell:
        return cls(nn.RNN(in_dim, cfg.hidden, num_layers=cfg.layers, nonlinearity="tanh", batch_first=True,
                          dropout=cfg.dropout if cfg.layers > 1 else 0.0))


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


@register_cell("tdnn")
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

    state_names = ("context",)
    note = "causal window"
    bench_order = 1
    state_batch_dim = 0

    def __init__(self, in_dim: int, hidden: int, window: int, layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.in_dim, self.window, self.out_dim = in_dim, window, hidden
        self.conv = nn.Conv1d(in_dim, hidden, kernel_size=window)
        self.dropout = nn.Dropout(dropout)
        self.pointwise = PointwiseStack(hidden, hidden, layers - 1, dropout)

    @classmethod
    def from_config(cls, cfg: ModelConfig, in_dim: int) -> MemoryCell:
        return cls(in_dim, cfg.hidden, cfg.window, cfg.layers, cfg.dropout)

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


@register_cell("none")
class NoMemory(MemoryCell):
    """``none``: every frame on its own (Linear + ReLU per frame); the baseline the memory must beat."""

    note = "frame only"
    bench_order = 0
    state_batch_dim = 0

    def __init__(self, in_dim: int, hidden: int, layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.out_dim = hidden
        self.frame = PointwiseStack(in_dim, hidden, layers, dropout)

    @classmethod
    def from_config(cls, cfg: ModelConfig, in_dim: int) -> MemoryCell:
        return cls(in_dim, cfg.hidden, cfg.layers, cfg.dropout)

    def initial_state(self, batch: int, device=None, dtype=None) -> State:
        return ()

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        return self.frame(x), ()  # (B, T, F) -> (B, T, hidden)
