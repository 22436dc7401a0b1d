"""The model: a frame encoder, a memory cell and a per-frame linear head (see ``classifier.py``).

- ``encoders.py``: frame encoders by name (``model.encoder``): compact ``cnn`` or torchvision backbones.
- ``cells.py``: memory cells by name (``model.cell``): ``lstm``, ``peephole``, ``gru``, ``rnn``,
  ``tdnn``, ``none``; all causal, all streaming with an explicit state tuple.
- ``reference.py``: a readable LSTM cell gate by gate, and :func:`trace_gates` for ``explain``.
- ``classifier.py``: :class:`FrameClassifier` (uint8 frames in, per-frame logits out) and :func:`build_model`.
"""

from lstm_tv.model.cells import (
    CELLS,
    MemoryCell,
    State,
    build_cell,
    detach_state,
    list_cells,
    register_cell,
)
from lstm_tv.model.classifier import FrameClassifier, build_model
from lstm_tv.model.encoders import (
    ENCODERS,
    FrameEncoder,
    build_encoder,
    list_encoders,
    load_state_dict_file,
    register_encoder,
)
from lstm_tv.model.reference import GateTrace, ReferenceLSTMCell, trace_gates

__all__ = [
    "CELLS", "ENCODERS", "FrameClassifier", "FrameEncoder", "GateTrace", "MemoryCell", "ReferenceLSTMCell",
    "State", "build_cell", "build_encoder", "build_model", "detach_state", "list_cells", "list_encoders",
    "load_state_dict_file", "register_cell", "register_encoder", "trace_gates",
]
