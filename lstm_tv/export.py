"""``lstm-tv export``: the streaming step as a stand-alone ONNX or TorchScript model.

What is exported is :func:`lstm_tv.stream.stream_step` -- one chunk of frames plus the memory in,
logits plus the new memory out -- so a runtime without lstm-tv streams a video of any length the
way ``predict`` does: start from zero state, feed chunks, pass each returned state to the next call.

Inputs and outputs, by name (the ONNX graph's names; TorchScript takes and returns them in this order):

========================  =====================================  ============================================
input                     shape, dtype                           meaning
========================  =====================================  ============================================
``frames``                (batch, time, H, W, 3) uint8           RGB frames, HWC, resized to ``size`` (W, H); the
                                                                 model normalises them itself
state inputs (by cell)    see below, float32                     the memory after the previous chunk
                                                                 (zeros at the start of a video)
========================  =====================================  ============================================

Outputs: ``logits`` (batch, time, classes) float32, then one ``<name>_out`` per state input.

The state inputs are the memory cell's own: their names are its class's ``state_names`` (``h``, ``c``
for lstm; ``context`` for tdnn; none for ``none``), their shapes its ``initial_state``; the sidecar
lists both, and docs/formats.md tabulates them per cell. ``time`` (the chunk length) and ``batch``
are dynamic for every cell whose class says ``dynamic_length``; a cell that runs a Python loop over
frames (``peephole``) is unrolled by tracing to the traced length, so it is exported for chunks of
exactly ``--chunk`` frames (default 16; the sidecar says so under ``"time"``). Pad a video's last,
shorter chunk by repeating its last frame and drop the extra outputs: the model is causal, so padding
after a frame never changes that frame's output.

Beside the model, ``<out>.json`` records everything needed to use it alone: classes, frame size and
layout, normalisation (already inside the model), state names and shapes, fps of the training data.
Both files are written under temporary names and renamed only after the exported model was run
(onnxruntime, or ``torch.jit.load``) over a three-chunk stream and matched PyTorch to 1e-4.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from lstm_tv.checkpoint import CheckpointRecord
from lstm_tv.errors import LstmTvError
from lstm_tv.model.cells import MemoryCell
from lstm_tv.model.classifier import FrameClassifier

FORMATS = ("onnx", "torchscript")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}
DEFAULT_FIXED_CHUNK = 16
OPSET = 17
TOLERANCE = 1e-4  # verification: max |exported - PyTorch| over logits and state


class StreamingStep(nn.Module):
    """``(frames, *state) -> (logits, *new_state)``: the model's forward with the state as flat tensors.

    Args:
        model: the classifier (put in eval mode; it is not changed otherwise).
    """

    def __init__(self, model: FrameClassifier) -> None:
        super().__init__()
        self.model = model
        self.eval()  # BatchNorm with its running statistics, no dropout: what predict runs

    def forward(self, frames: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        logits, new_state = self.model(frames, tuple(state))
        return (logits, *new_state)


def state_names(cell: MemoryCell, count: int) -> tuple[str, ...]:
    """Names of a cell's ``count`` state tensors, as its class declares them (``state0``, ``state1``...
    for a cell that declares none, or a different number)."""
    names = type(cell).state_names
    return names if len(names) == count else tuple(f"state{i}" for i in range(count))


def default_out(checkpoint: str | Path, fmt: str) -> Path:
    """Beside the checkpoint: ``best.ckpt`` -> ``best.onnx`` / ``best.torchscript.pt``."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + SUFFIXES[fmt])


def sidecar_path(out: str | Path) -> Path:
    """``<out>.json``: the model's description, beside it."""
    return Path(f"{out}.json")


def _require_onnx():
    try:
        import onnx  # noqa: F401  (deferred: only ONNX export needs onnx, ~0.5 s to import; the exporter writes its protobufs)
        import onnxruntime  # deferred likewise: it runs the exported file to verify it
    except ImportError:
        raise LstmTvError("ONNX export needs the onnx and onnxruntime packages: pip install 'lstm-tv[onnx]'") from None
    return onnxruntime


def describe(record: CheckpointRecord, model: FrameClassifier, fmt: str, model_file: str, time_steps: int | None,
             checkpoint: str | Path) -> dict:
    """The sidecar JSON: everything a runtime needs to feed the exported model and read its outputs."""
    size, classes, cell = record.size, record.classes, record.cell
    initial = model.initial_state(1)
    names = state_names(model.cell, len(initial))
    batch_dim = model.cell.state_batch_dim
    state = []
    for name, tensor in zip(names, initial, strict=True):
        shape: list = list(tensor.shape)
        shape[batch_dim] = "batch"
        state.append({"name": name, "output": f"{name}_out", "shape": shape, "dtype": "float32",
                      "batch_dim": batch_dim, "initial": "zeros"})
    time_dim = "time" if time_steps is None else time_steps
    return {
        "format": "lstm-tv/export",
        "version": 1,
        "model_file": model_file,
        "model_format": fmt,
        "checkpoint": str(checkpoint),
        "cell": cell,
        "classes": list(classes),
        "background": record.background,
        "fps": record.fps,
        "input": {
            "name": "frames",
            "shape": ["batch", time_dim, size[1], size[0], 3],
            "dtype": "uint8",
            "layout": "batch, time, height, width, channel (RGB)",
            "size": list(size),  # [width, height]
            "resize": f"every frame to {size[0]}x{size[1]} (width x height) pixels, aspect ratio not kept "
                      f"(lstm-tv uses FFmpeg's area filter)",
            "normalisation": "inside the model: (frames / 255 - mean) / std per channel; feed raw uint8",
            "mean": [float(v) for v in (record.mean or model.mean.flatten().tolist())],
            "std": [float(v) for v in (record.std or model.std.flatten().tolist())],
        },
        "state": state,
        "outputs": [{"name": "logits", "shape": ["batch", time_dim, len(classes)], "dtype": "float32",
                     "meaning": "per-frame class scores; softmax over the last axis gives probabilities"}]
                   + [{"name": s["output"], "shape": s["shape"], "dtype": "float32",
                       "meaning": f"the new {s['name']}: pass it as {s['name']} with the next chunk"} for s in state],
        "time": ("dynamic: any chunk length" if time_steps is None else
                 f"fixed: exactly {time_steps} frames per call; pad the last chunk by repeating its last frame "
                 f"and drop the padded outputs (the model is causal)"),
        "usage": "state = zeros for each state entry; for each chunk of frames: logits, *state = model(frames, *state)",
    }


def _example_frames(size: tuple[int, int], steps: int, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (1, steps, size[1], size[0], 3), dtype=torch.uint8, generator=gen)  # (1, T, H, W, 3)


def _export_onnx(step: StreamingStep, example: tuple[Tensor, ...], names: tuple[str, ...], batch_dim: int,
                 fixed_time: bool, path: Path) -> None:
    dynamic = {"frames": {0: "batch"} if fixed_time else {0: "batch", 1: "time"},
               "logits": {0: "batch"} if fixed_time else {0: "batch", 1: "time"}}
    for name in names:
        dynamic[name] = dynamic[f"{name}_out"] = {batch_dim: "batch"}
    torch.onnx.export(step, example, str(path), dynamo=False, opset_version=OPSET,
                      input_names=["frames", *names], output_names=["logits", *[f"{n}_out" for n in names]],
                      dynamic_axes=dynamic)


def _runner(fmt: str, path: Path, names: tuple[str, ...]):
    """A function ``(frames, state) -> (logits, state)`` on numpy arrays, running the exported file."""
    if fmt == "onnx":
        ort = _require_onnx()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        def run(frames: np.ndarray, state: list[np.ndarray]):
            out = session.run(None, {"frames": frames, **dict(zip(names, state, strict=True))})
            return out[0], out[1:]
        return run
    loaded = torch.jit.load(str(path), map_location="cpu")

    def run_ts(frames: np.ndarray, state: list[np.ndarray]):
        with torch.inference_mode():
            out = loaded(torch.from_numpy(frames), *map(torch.from_numpy, state))
        return out[0].numpy(), [s.numpy() for s in out[1:]]
    return run_ts


def verify_stream(run, model: FrameClassifier, size: tuple[int, int], lengths: list[int], *, seed: int = 0) -> float:
    """Stream random chunks through ``run`` (see :func:`_runner`) and the model, state carried in each.

    Returns:
        The largest absolute difference over every chunk's logits and state.
    """
    state_t = model.initial_state(1)
    state_n = [s.numpy() for s in state_t]
    worst = 0.0
    for i, steps in enumerate(lengths):
        frames = _example_frames(size, steps, seed + i)
        with torch.inference_mode():
            logits_t, state_t = model(frames, state_t)
        logits_n, state_n = run(frames.numpy(), state_n)
        worst = max(worst, float(np.abs(logits_n - logits_t.numpy()).max()),
                    *(float(np.abs(a - b.numpy()).max()) for a, b in zip(state_n, state_t, strict=True) if b.numel()))
    return worst


def _checked_out(checkpoint: Path, fmt: str, out: str | Path | None, chunk: int | None) -> Path:
    """The model file to write, after checking the format, the onnx packages, ``chunk`` and the path."""
    from lstm_tv.fileio import check_parent

    if fmt not in FORMATS:
        raise LstmTvError(f"--format {fmt!r}: choose {' or '.join(FORMATS)}")
    if fmt == "onnx":
        _require_onnx()
    if chunk is not None and chunk < 1:
        raise LstmTvError(f"--chunk {chunk}: must be at least 1 frame")
    out = check_parent(Path(out) if out is not None else default_out(checkpoint, fmt))
    if out.resolve() == checkpoint.resolve():
        raise LstmTvError(f"{out}: would overwrite the checkpoint; choose another --out")
    return out


def export_checkpoint(checkpoint: str | Path, fmt: str, out: str | Path | None = None, *,
                      chunk: int | None = None) -> tuple[Path, Path, float]:
    """Export a checkpoint's streaming step; verify it; write the model and its JSON sidecar atomically.

    Args:
        checkpoint: the checkpoint file.
        fmt: ``onnx`` or ``torchscript``.
        out: the model file (default: :func:`default_out`); the sidecar is ``<out>.json``.
        chunk: frames per call for cells exported with a fixed chunk length (not ``dynamic_length``;
            default 16);
            for the others, the length traced (any length runs).

    Returns:
        ``(model path, sidecar path, max difference found by the verification)``.

    Raises:
        LstmTvError: unknown format, missing onnx packages, bad checkpoint or output path, a failed
            verification -- with nothing written.
    """
    from lstm_tv.fileio import atomic_path
    from lstm_tv.stream import load_model

    checkpoint = Path(checkpoint)
    out = _checked_out(checkpoint, fmt, out, chunk)
    record, model = load_model(checkpoint, torch.device("cpu"))
    cell, size = record.cell, record.size
    fixed = not type(model.cell).dynamic_length
    steps = chunk or (DEFAULT_FIXED_CHUNK if fixed else 8)
    initial = model.initial_state(1)
    if any(s.numel() == 0 for s in initial):
        raise LstmTvError(f"{checkpoint}: the {cell} cell's state is empty (model.window=1?); export needs "
                          f"a window of at least 2 frames, or model.cell=none")
    names = state_names(model.cell, len(initial))
    step = StreamingStep(model)
    example = (_example_frames(size, steps, seed=1234), *initial)
    # Three chunks of different lengths (one length when it is fixed), the state carried between them.
    lengths = [steps] * 3 if fixed else [steps, max(1, steps // 2) + 1, steps + 3]
    with contextlib.ExitStack() as files, warnings.catch_warnings():
        # Tracing warns about Python-side checks in the model (dtype and shape asserts) and about
        # TorchScript's deprecation; neither concerns the exported graph, which is verified below.
        warnings.simplefilter("ignore")
        tmp_model = files.enter_context(atomic_path(out, suffix=SUFFIXES[fmt]))
        tmp_json = files.enter_context(atomic_path(sidecar_path(out)))
        try:
            if fmt == "onnx":
                _export_onnx(step, example, names, model.cell.state_batch_dim, fixed, tmp_model)
            else:
                traced = torch.jit.trace(step, example, check_trace=False)
                torch.jit.save(traced, str(tmp_model))
        except Exception as e:  # an exporter failure is ours, but the user needs one line and no file
            reason = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise LstmTvError(f"{checkpoint}: {fmt} export of the {cell} model failed "
                              f"({type(e).__name__}: {reason})") from e
        worst = verify_stream(_runner(fmt, tmp_model, names), model, size, lengths)
        if not worst <= TOLERANCE:
            raise LstmTvError(f"{out}: the exported model differs from PyTorch by {worst:.2e} (> {TOLERANCE}) over a "
                              f"3-chunk stream; not written")
        info = describe(record, model, fmt, out.name, steps if fixed else None, checkpoint)
        tmp_json.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return out, sidecar_path(out), worst


def run_export(checkpoint: Path, fmt: str, out: Path | None = None, *, chunk: int | None = None, reporter=None) -> Path:
    """``lstm-tv export``: export, verify, and say what was written."""
    from rich.markup import escape

    from lstm_tv.ui import QUIET

    reporter = reporter or QUIET
    model_path, json_path, worst = export_checkpoint(checkpoint, fmt, out, chunk=chunk)
    info = json.loads(json_path.read_text(encoding="utf-8"))
    states = ", ".join(f"{s['name']} {tuple(s['shape'])}" for s in info["state"]) or "none"
    reporter.info(f"wrote [bold]{escape(str(model_path))}[/] and [bold]{escape(str(json_path))}[/]: "
                  f"{info['cell']} model, frames "
                  f"{tuple(info['input']['shape'])} uint8, state {states}; time {info['time'].split(':')[0]}; "
                  f"matches PyTorch to {worst:.1e} over a 3-chunk stream")
    return model_path
