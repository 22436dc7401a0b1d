"""`lstm-tv export`: the streaming step as ONNX / TorchScript, equal to PyTorch over a stream with state carried."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from lstm_tv.checkpoint import checkpoint_payload, save_checkpoint
from lstm_tv.config import load_config
from lstm_tv.export import export_checkpoint
from lstm_tv.model.classifier import build_model
from lstm_tv.stream import load_model, stream_step

CPU = torch.device("cpu")
CELLS = ["lstm", "peephole", "gru", "tdnn", "none"]
STATE = {"lstm": ["h", "c"], "peephole": ["h", "c"], "gru": ["h"], "tdnn": ["context"], "none": []}


def tiny_checkpoint(path, cell: str = "lstm", **model):
    """A tiny model of ``cell`` as a checkpoint; BatchNorm statistics made non-trivial, as after training."""
    overrides = ["data.size=16", "model.width=4", "model.embed=8", "model.hidden=6", f"model.cell={cell}",
                 "model.window=4"] + [f"model.{k}={v}" for k, v in model.items()]
    cfg = load_config(None, overrides)
    torch.manual_seed(0)
    net = build_model(cfg.model, 5)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    save_checkpoint(path, checkpoint_payload(net, cfg, classes=cfg.data.classes, background="unknown", size=16, fps=24))
    return path


def torch_stream(model, chunks):
    """Logits of each chunk from lstm-tv's own streaming step, the state carried."""
    state, out = None, []
    for chunk in chunks:
        logits, state = stream_step(model, chunk[0], state, CPU)
        out.append(logits.numpy())
    return out


def frames(t: int, seed: int, batch: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (batch, t, 16, 16, 3), dtype=np.uint8)


def lengths_for(info) -> list[int]:
    """Three chunk lengths the export accepts: different ones, or its fixed length."""
    fixed = info["input"]["shape"][1]
    return [fixed] * 3 if isinstance(fixed, int) else [5, 1, 11]


@pytest.mark.parametrize("cell", CELLS)
def test_onnx_stream_matches_pytorch(tmp_path, cell):
    import onnxruntime as ort
    ckpt_path = tiny_checkpoint(tmp_path / "m.ckpt", cell)
    out, sidecar, _ = export_checkpoint(ckpt_path, "onnx")
    info = json.loads(sidecar.read_text())
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["frames"] + STATE[cell]
    assert [o.name for o in session.get_outputs()] == ["logits"] + [f"{n}_out" for n in STATE[cell]]

    _, model = load_model(ckpt_path, CPU)
    chunks = [frames(t, seed) for seed, t in enumerate(lengths_for(info))]
    state = [np.zeros([1 if d == "batch" else d for d in s["shape"]], np.float32) for s in info["state"]]
    for chunk, expected in zip(chunks, torch_stream(model, chunks), strict=True):   # the runtime carries the state itself
        logits, *state = session.run(None, {"frames": chunk, **{s["name"]: v for s, v in zip(info["state"], state, strict=True)}})
        np.testing.assert_allclose(logits[0], expected, atol=1e-4)


@pytest.mark.filterwarnings("ignore::FutureWarning")                       # torch.jit is deprecated, still works
@pytest.mark.parametrize("cell", CELLS)
def test_torchscript_stream_matches_pytorch(tmp_path, cell):
    ckpt_path = tiny_checkpoint(tmp_path / "m.ckpt", cell)
    out, sidecar, _ = export_checkpoint(ckpt_path, "torchscript")
    assert out == tmp_path / "m.torchscript.pt"                           # default: beside the checkpoint
    info = json.loads(sidecar.read_text())
    scripted = torch.jit.load(str(out))
    _, model = load_model(ckpt_path, CPU)
    chunks = [frames(t, 10 + seed) for seed, t in enumerate(lengths_for(info))]
    state = [torch.zeros([1 if d == "batch" else d for d in s["shape"]]) for s in info["state"]]
    for chunk, expected in zip(chunks, torch_stream(model, chunks), strict=True):
        logits, *state = scripted(torch.from_numpy(chunk), *state)
        np.testing.assert_allclose(logits[0].detach().numpy(), expected, atol=1e-4)


def test_batch_is_dynamic_too(tmp_path):
    import onnxruntime as ort
    out, _, _ = export_checkpoint(tiny_checkpoint(tmp_path / "m.ckpt"), "onnx")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    two = frames(4, 0, batch=2)
    zeros = np.zeros((1, 2, 6), np.float32)
    logits, h, c = session.run(None, {"frames": two, "h": zeros, "c": zeros})
    one, _, _ = session.run(None, {"frames": two[1:], "h": zeros[:, :1], "c": zeros[:, :1]})
    assert logits.shape == (2, 4, 5) and h.shape == (1, 2, 6)
    np.testing.assert_allclose(logits[1:], one, atol=1e-5)                # clips in a batch do not mix


def test_sidecar_makes_the_export_usable_alone(tmp_path):
    out, sidecar, _ = export_checkpoint(tiny_checkpoint(tmp_path / "m.ckpt", "lstm", hidden=7, layers=2), "onnx",
                                        tmp_path / "tv.onnx")
    assert sidecar == tmp_path / "tv.onnx.json"
    info = json.loads(sidecar.read_text())
    assert info["model_file"] == "tv.onnx" and info["cell"] == "lstm"
    assert info["classes"] == ["wolf", "dog", "bear", "goldfish", "unknown"] and info["background"] == "unknown"
    assert info["fps"] == 24
    assert info["input"]["shape"] == ["batch", "time", 16, 16, 3] and info["input"]["dtype"] == "uint8"
    assert info["input"]["size"] == [16, 16] and len(info["input"]["mean"]) == len(info["input"]["std"]) == 3
    assert "RGB" in info["input"]["layout"] and "inside the model" in info["input"]["normalisation"]
    assert [(s["name"], s["shape"], s["output"]) for s in info["state"]] == [
        ("h", [2, "batch", 7], "h_out"), ("c", [2, "batch", 7], "c_out")]
    assert info["outputs"][0]["shape"] == ["batch", "time", 5]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ckpt", "tv.onnx", "tv.onnx.json"]


def test_peephole_is_exported_for_a_fixed_chunk_length(tmp_path):
    _, sidecar, _ = export_checkpoint(tiny_checkpoint(tmp_path / "m.ckpt", "peephole"), "onnx", chunk=5)
    info = json.loads(sidecar.read_text())
    assert info["input"]["shape"][1] == 5 and info["time"].startswith("fixed: exactly 5 frames")


def test_export_cli(cli, tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "best.ckpt")
    r = cli("export", ckpt, "--format", "onnx")
    assert r.code == 0, r
    assert (tmp_path / "best.onnx").is_file() and (tmp_path / "best.onnx.json").is_file()
    assert "matches PyTorch" in " ".join(r.out.split())


def test_bad_export_inputs_write_nothing(cli, tmp_path, monkeypatch):
    ckpt = tiny_checkpoint(tmp_path / "m.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"\x00" * 100)
    cases = [
        ([ckpt, "--format", "tflite"], "--format 'tflite': choose onnx or torchscript"),
        ([tmp_path / "none.ckpt", "--format", "onnx"], "none.ckpt: checkpoint not found"),
        ([tmp_path / "junk.ckpt", "--format", "onnx"], "junk.ckpt: not a readable checkpoint"),
        ([ckpt, "--format", "onnx", "--out", tmp_path / "no" / "m.onnx"], "does not exist"),
        ([ckpt, "--format", "onnx", "--out", ckpt], "would overwrite the checkpoint"),
    ]
    for args, message in cases:
        r = cli("export", *args)
        assert r.code == 1 and message in " ".join(r.err.split()) and "Traceback" not in r.err, (args, r)
    r = cli("export", ckpt)                                                 # a usage error: click's message, no traceback
    assert r.code == 2 and "Missing option '--format'" in r.err and "Traceback" not in r.err
    monkeypatch.setitem(sys.modules, "onnxruntime", None)                 # as if the extra were not installed
    r = cli("export", ckpt, "--format", "onnx")
    assert r.code == 1 and "pip install 'lstm-tv[onnx]'" in r.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.ckpt", "m.ckpt"]


def test_failed_verification_writes_nothing(tmp_path, monkeypatch):
    import lstm_tv.export as E

    monkeypatch.setattr(E, "verify_stream", lambda *a, **k: 0.5)           # as if the runtime disagreed
    with pytest.raises(E.LstmTvError, match="differs from PyTorch by 5.00e-01"):
        export_checkpoint(tiny_checkpoint(tmp_path / "m.ckpt"), "torchscript")
    assert [p.name for p in tmp_path.iterdir()] == ["m.ckpt"]
