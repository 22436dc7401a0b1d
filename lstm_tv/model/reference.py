"""A readable LSTM cell, written out gate by gate, and a tracer of its gates for ``lstm-tv explain``.

The story an LSTM tells, one frame at a time. It carries two memories from frame to frame:

- **long-term memory** ``c`` (the cell state): what the model has learned about the video so far,
  e.g. "the last channel logo said this is the wolf documentary". It changes only through gates.
- **short-term memory** ``h`` (the hidden state): what the model reports about this frame, and what it
  looks at, together with the frame, to decide how to update the long-term memory.

At each frame four small layers read the frame's embedding ``x_t`` and the short-term memory ``h``:

- the **forget** gate ``f`` (0..1): how much of each long-term memory to keep;
- the **input** ("learn") gate ``i`` (0..1): how much of the candidate to write into long-term memory;
- the **candidate** ``g`` (-1..1): the new memory this frame proposes;
- the **output** ("use") gate ``o`` (0..1): how much of the long-term memory to use as ``h`` now.

``c_t = f * c_{t-1} + i * g`` and ``h_t = o * tanh(c_t)``.

:class:`ReferenceLSTMCell` is this cell in plain tensor code (PyTorch's gate order i, f, g, o and
weight layout, so it loads the weights of an ``nn.LSTM`` layer and reproduces it). With peephole
weights it is the Gers & Schmidhuber variant whose gates also look at the long-term memory, which the
``peephole`` memory cell runs in a Python loop. :func:`trace_gates` runs a whole stack of such cells and
keeps every gate activation and memory per frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

GATE_NAMES = ("forget", "input", "candidate", "output")


class ReferenceLSTMCell(nn.Module):
    """One LSTM layer, one frame at a time, with each gate on its own line.

    Parameters follow ``nn.LSTM``'s layout for one layer: the rows of ``weight_ih`` (4H, in_dim),
    ``weight_hh`` (4H, H), ``bias_ih`` and ``bias_hh`` (4H) are the gates in the order i, f, g, o.

    Args:
        in_dim: size of the input ``x_t``.
        hidden: size of the memories ``h`` and ``c``.
        peephole: add diagonal peephole weights so that the input and forget gates also see
            ``c_{t-1}`` and the output gate sees ``c_t`` (Gers & Schmidhuber, 2000).
    """

    def __init__(self, in_dim: int, hidden: int, *, peephole: bool = False) -> None:
        super().__init__()
        self.in_dim, self.hidden, self.peephole = in_dim, hidden, peephole
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden, in_dim))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden, hidden))
        self.bias_ih = nn.Parameter(torch.empty(4 * hidden))
        self.bias_hh = nn.Parameter(torch.empty(4 * hidden))
        if peephole:
            # Diagonal: each memory unit is seen only by the gates of the same unit.
            self.weight_ci = nn.Parameter(torch.empty(hidden))  # c_{t-1} -> input gate
            self.weight_cf = nn.Parameter(torch.empty(hidden))  # c_{t-1} -> forget gate
            self.weight_co = nn.Parameter(torch.empty(hidden))  # c_t     -> output gate
        else:
            self.register_parameter("weight_ci", None)
            self.register_parameter("weight_cf", None)
            self.register_parameter("weight_co", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform(-1/sqrt(H), 1/sqrt(H)) for every weight, as ``nn.LSTM`` initialises."""
        bound = 1.0 / math.sqrt(self.hidden)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    @classmethod
    def from_lstm(cls, lstm: nn.LSTM, layer: int = 0) -> "ReferenceLSTMCell":
        """A cell holding a copy of layer ``layer`` of ``lstm``'s weights.

        Raises:
            ValueError: for layouts this cell does not model (bidirectional, proj_size) or a bad layer.
        """
        if lstm.bidirectional or lstm.proj_size:
            raise ValueError("ReferenceLSTMCell models unidirectional LSTMs without projection only")
        if not 0 <= layer < lstm.num_layers:
            raise ValueError(f"layer {layer} out of range; the LSTM has {lstm.num_layers} layers")
        w_ih = getattr(lstm, f"weight_ih_l{layer}")
        cell = cls(w_ih.shape[1], lstm.hidden_size).to(device=w_ih.device, dtype=w_ih.dtype)
        with torch.no_grad():
            cell.weight_ih.copy_(w_ih)
            cell.weight_hh.copy_(getattr(lstm, f"weight_hh_l{layer}"))
            if lstm.bias:
                cell.bias_ih.copy_(getattr(lstm, f"bias_ih_l{layer}"))
                cell.bias_hh.copy_(getattr(lstm, f"bias_hh_l{layer}"))
            else:
                cell.bias_ih.zero_()
                cell.bias_hh.zero_()
        return cell

    def project_input(self, x: Tensor) -> Tensor:
        """The input's share of all four gates, ``W_ih x + b_ih``: (..., in_dim) -> (..., 4H).

        It does not depend on the memories, so a caller with a whole sequence computes it for all frames
        in one matrix product and passes it to :meth:`step_projected` frame by frame.
        """
        return F.linear(x, self.weight_ih, self.bias_ih)

    def step(self, x_t: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """One frame: ``x_t`` (B, in_dim), ``h`` and ``c`` (B, H) -> new ``h``, new ``c``, gates.

        Returns:
            ``(h, c, gates)`` where ``gates`` maps ``forget``, ``input``, ``candidate``, ``output`` to
            their activations (B, H).
        """
        return self.step_projected(self.project_input(x_t), h, c)

    def step_projected(self, xw_t: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """:meth:`step` given the input projection ``xw_t = project_input(x_t)`` (B, 4H)."""
        z = xw_t + F.linear(h, self.weight_hh, self.bias_hh)  # (B, 4H): what frame and short-term memory say
        z_i, z_f, z_g, z_o = z.chunk(4, dim=1)  # (B, H) each, PyTorch's gate order i, f, g, o
        if self.peephole:
            z_i = z_i + self.weight_ci * c  # the gates may also look at the long-term memory itself
            z_f = z_f + self.weight_cf * c
        forget = torch.sigmoid(z_f)  # forget gate: which long-term memories to keep (1) or drop (0)
        learn = torch.sigmoid(z_i)  # input ("learn") gate: how much of the candidate to write
        candidate = torch.tanh(z_g)  # candidate: the new memory this frame proposes
        c = forget * c + learn * candidate  # long-term memory: kept part of the old + learned part of the new
        if self.peephole:
            z_o = z_o + self.weight_co * c  # the output gate peeks at the *updated* memory
        use = torch.sigmoid(z_o)  # output ("use") gate: which memories matter for this frame
        h = use * torch.tanh(c)  # short-term memory: the used part of long-term memory, squashed to (-1, 1)
        return h, c, {"forget": forget, "input": learn, "candidate": candidate, "output": use}


@dataclass
class GateTrace:
    """Everything a stack of LSTM layers did over a clip (see :func:`trace_gates`).

    Attributes:
        y: outputs of the last layer (B, T, H), as the memory cell's ``forward`` returns them.
        state: final ``(h, c)``, each (layers, B, H).
        gates: ``forget``, ``input``, ``candidate``, ``output`` -> activations (T, layers, B, H).
        cell: long-term memory ``c`` after each frame (T, layers, B, H).
        hidden: short-term memory ``h`` after each frame (T, layers, B, H).
    """

    y: Tensor
    state: tuple[Tensor, Tensor]
    gates: dict[str, Tensor]
    cell: Tensor
    hidden: Tensor


def run_layers(cells: list[ReferenceLSTMCell], x: Tensor, state: tuple[Tensor, Tensor] | None = None, *,
               dropout: float = 0.0, training: bool = False, record: bool = False
               ) -> tuple[Tensor, tuple[Tensor, Tensor], dict[str, list[list[Tensor]]] | None]:
    """Run stacked cells over a clip, layer after layer, one frame at a time.

    Args:
        cells: one cell per layer; layer k+1 reads layer k's ``h``.
        x: input (B, T, F).
        state: ``(h, c)`` each (layers, B, H); zeros when None.
        dropout: dropout between layers (as ``nn.LSTM``'s ``dropout``), applied when ``training``.
        training: whether to apply ``dropout``.
        record: keep every frame's gates and memories (costs memory; for tracing).

    Returns:
        ``(y, (h, c), records)``: ``y`` (B, T, H) the last layer's outputs, the final state, and when
        ``record`` a dict of per-layer lists of per-frame (B, H) tensors, else None.
    """
    batch, steps = x.shape[:2]
    if state is None:
        hidden = cells[0].hidden
        zeros = x.new_zeros(len(cells), batch, hidden)  # (layers, B, H)
        state = (zeros, zeros)
    h0, c0 = state
    records: dict[str, list[list[Tensor]]] | None = (
        {name: [] for name in (*GATE_NAMES, "cell", "hidden")} if record else None)
    h_last, c_last = [], []
    for k, cell in enumerate(cells):
        if k > 0 and dropout > 0:
            x = F.dropout(x, dropout, training)
        xw = cell.project_input(x)  # (B, T, 4H): all frames' input projections in one matrix product
        h, c = h0[k], c0[k]  # (B, H) each
        outputs = []
        per_frame: dict[str, list[Tensor]] = {name: [] for name in records} if records is not None else {}
        for t in range(steps):
            h, c, gates = cell.step_projected(xw[:, t], h, c)
            outputs.append(h)
            if records is not None:
                for name in GATE_NAMES:
                    per_frame[name].append(gates[name])
                per_frame["cell"].append(c)
                per_frame["hidden"].append(h)
        if records is not None:
            for name, frames in per_frame.items():
                records[name].append(frames)
        x = torch.stack(outputs, dim=1) if outputs else x.new_zeros(batch, 0, cell.hidden)  # (B, T, H)
        h_last.append(h)
        c_last.append(c)
    return x, (torch.stack(h_last), torch.stack(c_last)), records  # state: (layers, B, H) each


def _cells_of(module: nn.Module) -> list[ReferenceLSTMCell]:
    """The reference cells equivalent to ``module``: an ``nn.LSTM`` or a memory cell that provides them."""
    if isinstance(module, nn.LSTM):
        return [ReferenceLSTMCell.from_lstm(module, k) for k in range(module.num_layers)]
    if getattr(type(module), "has_gates", False):
        return module.reference_cells()
    raise TypeError(f"cannot trace gates of {type(module).__name__}: its memory cell class has no gates (has_gates)")


def trace_gates(cell: nn.Module, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> GateTrace:
    """Run an ``lstm`` or ``peephole`` memory cell (or an ``nn.LSTM``) over ``x`` and keep every gate.

    The outputs and final state equal the cell's own ``forward`` in eval mode (no dropout between
    layers); wrap the call in ``torch.no_grad()`` when no gradients are needed.

    Args:
        cell: the memory cell.
        x: input (B, T, F).
        state: ``(h, c)`` each (layers, B, H); zeros when None.

    Returns:
        A :class:`GateTrace` with outputs, final state and per-frame gates and memories (T, layers, B, H).

    Raises:
        TypeError: for a cell without gates (gru, rnn, tdnn, none).
    """
    y, final, records = run_layers(_cells_of(cell), x, state, record=True)
    assert records is not None  # record=True always returns them
    batch, steps = x.shape[:2]
    if steps == 0:
        hidden = y.shape[-1]
        empty = x.new_zeros(0, final[0].shape[0], batch, hidden)
        stacked = {name: empty for name in records}
    else:
        # per layer: T tensors (B, H) -> (T, B, H); then layers -> (T, layers, B, H)
        stacked = {name: torch.stack([torch.stack(frames) for frames in layers], dim=1)
                   for name, layers in records.items()}
    gates = {name: stacked[name] for name in GATE_NAMES}
    return GateTrace(y=y, state=final, gates=gates, cell=stacked["cell"], hidden=stacked["hidden"])
