"""``lstm-tv explain``: watch the model's memory work over a video.

The video streams through the model as in ``predict`` (same decoding, same chunks, state carried),
except that the memory cell runs as the readable reference cell (:func:`~lstm_tv.model.reference.trace_gates`),
which reports every gate. Per frame only a summary is kept -- the class probabilities, the mean forget,
input and output gate over the layer's units, the norm of the cell state ``c`` and the units of ``c`` --
in a :class:`~lstm_tv.traces.BoundedTrace`, so a long video costs bounded memory and its figure
bounded points. What to look for on the synthetic TV data: after a bear (a nature cue), a few cell
units jump and stay, the forget gate stays near 1 across the gap of unknown frames, and the next
ambiguous canine comes out as ``wolf``; at a channel switch the forget gate dips and those units are
rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lstm_tv.errors import LstmTvError
from lstm_tv.model.cells import gated_cells
from lstm_tv.model.classifier import FrameClassifier
from lstm_tv.stream import DEFAULT_BATCH, decode_chunks, open_for_inference, prefetch, probabilities
from lstm_tv.traces import Binned, BoundedTrace
from lstm_tv.truth import TruthLabels
from lstm_tv.writers import FIGURE_SUFFIXES

GATES = ("forget", "input", "output")  # the candidate is not a gate: it is what gets written
UNITS = 4  # cell-state units drawn: the ones that vary most over the video


@dataclass
class Explanation:
    """Per-bin summaries of the memory over one video (see :func:`explain_video`).

    Attributes:
        binned: bins of per-frame rows ``[p_0..p_{K-1}, forget, input, output, |c|, c_0..c_{H-1}]``,
            followed by the true label one-hot ``[t_0..t_{K-1}]`` when labels were given.
        num_classes: K; ``hidden``: H.
        layer: the layer traced (0 = first); ``layers`` how many the cell has.
    """

    binned: Binned
    num_classes: int
    hidden: int
    layer: int
    layers: int

    @property
    def probs(self) -> np.ndarray:
        """(B, K) class probabilities."""
        return self.binned.mean[:, :self.num_classes]

    @property
    def gates(self) -> dict[str, np.ndarray]:
        """Gate name -> (B,) mean activation over the layer's units."""
        k = self.num_classes
        return {name: self.binned.mean[:, k + j] for j, name in enumerate(GATES)}

    @property
    def cell_norm(self) -> np.ndarray:
        """(B,) Euclidean norm of the cell state ``c`` after each frame."""
        return self.binned.mean[:, self.num_classes + len(GATES)]

    @property
    def cell(self) -> np.ndarray:
        """(B, H) the cell state's units."""
        start = self.num_classes + len(GATES) + 1
        return self.binned.mean[:, start:start + self.hidden]

    @property
    def truth(self) -> np.ndarray | None:
        """(B,) the most frequent true label in each bin, when labels were given."""
        start = self.num_classes + len(GATES) + 1 + self.hidden
        return self.binned.mean[:, start:].argmax(axis=1) if self.binned.mean.shape[1] > start else None

    def busiest_units(self, n: int = UNITS) -> list[int]:
        """The ``n`` cell-state units with the largest standard deviation over the video."""
        return np.argsort(-self.cell.std(axis=0), kind="stable")[:n].tolist()


def has_gates(model: FrameClassifier) -> bool:
    """Whether the model's memory cell can be traced gate by gate (its class says ``has_gates``)."""
    return type(model.cell).has_gates


def explain_video(model: FrameClassifier, path: str | Path, size: tuple[int, int], device: torch.device, *,
                  layer: int = -1, batch: int = DEFAULT_BATCH, cap: int = 2048,
                  truth: TruthLabels | None = None, frame_time: float | None = None, progress=None,
                  temperature: float = 1.0) -> Explanation:
    """Stream a video through the model, tracing one layer's gates and cell state.

    Args:
        model: a classifier whose cell has gates (:func:`has_gates`), in eval mode on ``device``.
        path: the video; ``size`` the model's frame (width, height).
        layer: the memory layer to show (0 = first, -1 = last).
        batch: decoded frames per chunk; the state is carried from chunk to chunk.
        cap: keep between ``cap`` and ``2 * cap`` points per curve (see :class:`BoundedTrace`).
        truth: true labels, advanced with the frames (for the figure's truth strip).
        frame_time: 1 / fps, where the last frame ends on the time axis (default: the frame spacing).
        progress: called with the number of frames done.
        temperature: the checkpoint's calibrated softmax temperature.

    Raises:
        ValueError: the cell has no gates, or ``layer`` is out of range.
        VideoError: the video cannot be decoded.
    """
    from lstm_tv.model.reference import trace_gates

    if not has_gates(model):
        raise ValueError(f"the {type(model.cell).__name__} memory cell has no gates to trace")
    layers = len(model.cell.reference_cells())
    if not -layers <= layer < layers:
        raise ValueError(f"layer {layer} out of range; the memory cell has {layers} layer(s)")
    layer %= layers
    k = model.num_classes
    trace: BoundedTrace | None = None
    state = None
    for chunk in prefetch(decode_chunks(path, size, batch)):
        with torch.inference_mode():
            # The same steps as FrameClassifier.forward in eval mode, with the cell run gate by gate.
            emb = model.encode(torch.as_tensor(chunk.frames).to(device)[None])  # (1, T, F)
            traced = trace_gates(model.cell, emb, state)
            state = traced.state  # (h, c), each (layers, 1, H): carried to the next chunk
            probs = probabilities(model.head(traced.y)[0], temperature)  # (1, T, H) -> (T, K)
            c = traced.cell[:, layer, 0]  # (T, layers, 1, H) -> (T, H)
            hidden = c.shape[1]
            gates = [traced.gates[name][:, layer, 0].mean(dim=-1, keepdim=True) for name in GATES]  # (T, 1) each
            rows = torch.cat([probs, *gates, c.norm(dim=-1, keepdim=True), c], dim=1).float().cpu().numpy()
        if truth is not None:
            rows = np.hstack([rows, truth.one_hot(truth.for_chunk(chunk.start, chunk.times))])
        if trace is None:
            trace = BoundedTrace(rows.shape[1], cap)
        trace.add(chunk.times, rows)
        if progress is not None:
            progress(trace.frames)
    assert trace is not None  # decode_chunks yields at least one chunk or raises
    return Explanation(trace.result(frame_time), k, hidden, layer, layers)


def run_explain(video: Path, *, checkpoint: str | Path | None = None, out: Path | None = None,
                labels: Path | None = None, layer: int | None = None, device: str = "auto",
                batch: int = DEFAULT_BATCH, reporter=None) -> Path:
    """``lstm-tv explain``: check the inputs, trace the video, write the figure; return its path.

    Raises:
        LstmTvError: (one line each) a bad video, checkpoint, labels file or output path, a cell
            without gates, or a layer out of range -- all checked before decoding.
    """
    from rich.markup import escape

    from lstm_tv import plots  # deferred: matplotlib, only now that a figure will be written
    from lstm_tv.data.video import probe
    from lstm_tv.fileio import check_parent
    from lstm_tv.ui import QUIET

    reporter = reporter or QUIET
    video = Path(video)
    out = Path(out) if out is not None else Path(f"{video.stem}.explain.png")
    if out.suffix.lower() not in FIGURE_SUFFIXES:
        raise LstmTvError(f"{out}: --out must end in {', '.join(FIGURE_SUFFIXES)}")
    check_parent(out)
    path, record, model, dev = open_for_inference(checkpoint, device, batch=batch)
    cell_name = record.cell
    if not has_gates(model):
        gated = gated_cells()
        names = f"{', '.join(gated[:-1])} and {gated[-1]}" if len(gated) > 1 else "".join(gated)
        raise LstmTvError(f"{path}: explain traces LSTM gates, but this model's memory cell is {cell_name!r}; "
                          f"only {names} cells have gates")
    layers = len(model.cell.reference_cells())
    layer = layers - 1 if layer is None else layer
    if not 0 <= layer < layers:
        raise LstmTvError(f"--layer {layer}: the memory cell of {path} has {layers} layer(s), 0 to {layers - 1}")
    info = probe(video)
    truth = TruthLabels(labels, record.classes, record.background) if labels is not None else None
    if truth is not None:
        truth.check_count(info.frames)
    reporter.info(f"checkpoint [bold]{escape(str(path))}[/] ({cell_name}, layer {layer} of {layers})")
    with reporter.bar(f"explain {escape(video.name)}", total=info.frames or None) as bar:
        exp = explain_video(model, video, record.size, dev, layer=layer, batch=batch, truth=truth,
                            temperature=record.temperature,
                            frame_time=1.0 / info.fps if info.fps else None, progress=lambda done: bar.update(done))
    warning = truth.finish(int(exp.binned.count.sum())) if truth is not None else None
    if warning:
        reporter.warn(escape(warning))
    units = exp.busiest_units()
    per_point = int(exp.binned.count.max())
    title = (f"{video.name}: {cell_name} memory, layer {layer} of {layers}"
             + (f" (each point: mean of {per_point} frames)" if per_point > 1 else ""))
    plots.explain_figure(out, exp.binned.edges, exp.probs, exp.gates, exp.cell_norm, exp.cell[:, units], units,
                         list(record.classes), plots.class_colours(list(record.classes), record.background),
                         truth=exp.truth, title=title)
    reporter.info(f"wrote [bold]{escape(str(out))}[/]: class probabilities, mean forget/input/output gates, |c| and "
                  f"cell units {', '.join(map(str, units))} over {int(exp.binned.count.sum())} frames")
    return out
