"""Tests of lstm_tv.model: reference LSTM, memory cells, encoders and the whole classifier.

Tiny sizes throughout (16-32 px frames, embed 16, hidden 8) so the file runs in seconds on a CPU.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torchvision
from torch import nn

from lstm_tv.config import ModelConfig
from lstm_tv.errors import CheckpointError, ConfigError
from lstm_tv.model import (
    FrameClassifier,
    ReferenceLSTMCell,
    build_cell,
    build_encoder,
    build_model,
    detach_state,
    list_cells,
    list_encoders,
    trace_gates,
)
from lstm_tv.model.encoders import cached_weights_path

ATOL = 1e-5
IN_DIM = 6


def tiny_cfg(**changes) -> ModelConfig:
    """A model config small enough for fast tests."""
    base = ModelConfig(width=4, embed=16, hidden=8, window=4, layers=1)
    return dataclasses.replace(base, **changes)


def frames(b: int = 2, t: int = 12, px: int = 16, seed: int = 0) -> torch.Tensor:
    """Random uint8 frames (B, T, H, W, 3), the layout the model reads."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, t, px, px, 3), dtype=torch.uint8, generator=g)


def run_in_chunks(step, x: torch.Tensor, sizes: list[int], state=None):
    """Run ``step(x_chunk, state) -> (y, state)`` over consecutive chunks of x along time (dim 1)."""
    outputs = []
    for chunk in torch.split(x, sizes, dim=1):
        y, state = step(chunk, state)
        outputs.append(y)
    return torch.cat(outputs, dim=1), state


def assert_states_close(a: tuple, b: tuple) -> None:
    assert len(a) == len(b)
    for sa, sb in zip(a, b, strict=True):
        torch.testing.assert_close(sa, sb, atol=ATOL, rtol=0)


# ---------------------------------------------------------------------------------------------------
# Reference LSTM cell


@pytest.mark.parametrize("layers", [1, 2])
def test_reference_cell_reproduces_nn_lstm(layers):
    torch.manual_seed(0)
    lstm = nn.LSTM(IN_DIM, 8, num_layers=layers, batch_first=True)
    x = torch.randn(3, 10, IN_DIM)
    h0, c0 = torch.randn(layers, 3, 8), torch.randn(layers, 3, 8)
    with torch.no_grad():
        y_ref, (h_ref, c_ref) = lstm(x, (h0, c0))
        trace = trace_gates(lstm, x, (h0, c0))

    torch.testing.assert_close(trace.y, y_ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(trace.state[0], h_ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(trace.state[1], c_ref, atol=ATOL, rtol=0)
    assert trace.cell.shape == trace.hidden.shape == (10, layers, 3, 8)  # (T, layers, B, H)
    torch.testing.assert_close(trace.hidden[:, -1].transpose(0, 1), y_ref, atol=ATOL, rtol=0)
    for name in ("forget", "input", "output"):
        gate = trace.gates[name]
        assert gate.shape == (10, layers, 3, 8)
        assert gate.min() > 0 and gate.max() < 1, name
    assert trace.gates["candidate"].abs().max() < 1


def test_reference_cell_step_by_step_matches_one_layer():
    torch.manual_seed(1)
    lstm = nn.LSTM(IN_DIM, 5, batch_first=True)
    cell = ReferenceLSTMCell.from_lstm(lstm, layer=0)
    x = torch.randn(2, 7, IN_DIM)
    h, c = torch.zeros(2, 5), torch.zeros(2, 5)
    with torch.no_grad():
        y_ref, _ = lstm(x)
        for t in range(7):
            h, c, gates = cell.step(x[:, t], h, c)
            torch.testing.assert_close(h, y_ref[:, t], atol=ATOL, rtol=0)
    assert set(gates) == {"forget", "input", "candidate", "output"}


def test_from_lstm_rejects_bad_layer():
    with pytest.raises(ValueError, match="layer 2"):
        ReferenceLSTMCell.from_lstm(nn.LSTM(4, 4, num_layers=2), layer=2)


def test_trace_gates_of_memory_cells_matches_forward():
    x = torch.randn(2, 9, IN_DIM)
    for name in ("lstm", "peephole"):
        torch.manual_seed(0)
        cell = build_cell(tiny_cfg(cell=name, layers=2, dropout=0.5), IN_DIM).eval()
        with torch.no_grad():
            y, state = cell(x)
            trace = trace_gates(cell, x)
        torch.testing.assert_close(trace.y, y, atol=ATOL, rtol=0)
        assert_states_close(trace.state, state)


def test_trace_gates_refuses_cells_without_gates():
    with pytest.raises(TypeError, match="gates"):
        trace_gates(build_cell(tiny_cfg(cell="gru"), IN_DIM), torch.randn(1, 3, IN_DIM))


@pytest.mark.parametrize("cell", ["lstm", "peephole"])
@pytest.mark.parametrize("value", [1.0, -0.5])
def test_forget_bias_is_initialised_as_configured(cell, value):
    memory = build_cell(tiny_cfg(cell=cell, layers=2, forget_bias=value), IN_DIM)
    hidden = 8
    for ref in memory.reference_cells():
        forget = (ref.bias_ih + ref.bias_hh)[hidden:2 * hidden]  # gate order i, f, g, o
        torch.testing.assert_close(forget, torch.full((hidden,), value))


def test_lstm_forget_bias_on_the_fused_module():
    memory = build_cell(tiny_cfg(cell="lstm", forget_bias=2.0), IN_DIM)
    lstm = memory.rnn
    total = lstm.bias_ih_l0 + lstm.bias_hh_l0
    assert torch.allclose(total[8:16], torch.full((8,), 2.0))


# ---------------------------------------------------------------------------------------------------
# Memory cells: streaming, causality, interface


@pytest.mark.parametrize("name", list_cells())
def test_cell_chunked_equals_full(name):
    torch.manual_seed(0)
    cell = build_cell(tiny_cfg(cell=name, layers=2, dropout=0.3), IN_DIM).eval()
    x = torch.randn(3, 12, IN_DIM)
    with torch.no_grad():
        y_full, state_full = cell(x)
        y_chunks, state_chunks = run_in_chunks(cell, x, [5, 4, 3])
    assert y_full.shape == (3, 12, cell.out_dim)
    torch.testing.assert_close(y_chunks, y_full, atol=ATOL, rtol=0)
    assert_states_close(state_chunks, state_full)


@pytest.mark.parametrize("name", list_cells())
def test_cell_is_causal(name):
    torch.manual_seed(0)
    cell = build_cell(tiny_cfg(cell=name, layers=2), IN_DIM).eval()
    x = torch.randn(2, 12, IN_DIM)
    changed = x.clone()
    changed[:, 7:] = torch.randn(2, 5, IN_DIM)
    with torch.no_grad():
        y, _ = cell(x)
        y_changed, _ = cell(changed)
    torch.testing.assert_close(y_changed[:, :7], y[:, :7], atol=0, rtol=0)
    assert not torch.allclose(y_changed[:, 7:], y[:, 7:])


@pytest.mark.parametrize("name", list_cells())
def test_initial_state_equals_none(name):
    torch.manual_seed(0)
    cell = build_cell(tiny_cfg(cell=name), IN_DIM).eval()
    x = torch.randn(2, 5, IN_DIM)
    state = cell.initial_state(2)
    assert isinstance(state, tuple)
    for s in state:
        assert s.shape[cell.state_batch_dim] == 2 and not s.any()
    with torch.no_grad():
        torch.testing.assert_close(cell(x, state)[0], cell(x)[0])
    assert all(not s.requires_grad for s in detach_state(cell(x)[1]))


def test_tdnn_sees_exactly_window_frames():
    cell = build_cell(tiny_cfg(cell="tdnn", window=4, layers=3), IN_DIM).eval()
    x = torch.randn(1, 10, IN_DIM)
    changed = x.clone()
    changed[:, 2] += 1.0  # frame 2 is inside the windows of frames 2..5 only
    with torch.no_grad():
        diff = (cell(changed)[0] - cell(x)[0]).abs().amax(dim=-1)[0]  # (T,)
    assert (diff[2:6] > 0).all() and (diff[:2] == 0).all() and (diff[6:] == 0).all()
    assert cell.initial_state(3)[0].shape == (3, 3, IN_DIM)  # (B, window-1, F)


def test_unknown_cell_lists_valid_names():
    with pytest.raises(ConfigError, match=r"model\.cell: unknown 'lstn'; choose from lstm, peephole, gru"):
        build_cell(tiny_cfg(cell="lstn"), IN_DIM)


# ---------------------------------------------------------------------------------------------------
# The whole classifier


@pytest.mark.parametrize("cell", ["lstm", "tdnn", "none"])
def test_classifier_chunked_equals_full_on_uint8(cell):
    torch.manual_seed(0)
    model = build_model(tiny_cfg(cell=cell, dropout=0.2), num_classes=5)
    model.train()
    model(frames(2, 8, seed=1))  # move BatchNorm running stats away from their initial values
    model.eval()
    x = frames(2, 12)
    with torch.no_grad():
        logits, state = model(x)
        chunked, chunked_state = run_in_chunks(model, x, [5, 4, 3])
    assert logits.shape == (2, 12, 5) and logits.dtype == torch.float32
    torch.testing.assert_close(chunked, logits, atol=ATOL, rtol=0)
    assert_states_close(chunked_state, state)


def test_classifier_embeddings_path_matches_frames_path():
    torch.manual_seed(0)
    model = build_model(tiny_cfg(), num_classes=3).eval()
    x = frames(1, 6)
    with torch.no_grad():
        emb = model.encode(x)
        assert emb.shape == (1, 6, 16)
        torch.testing.assert_close(model.forward_embeddings(emb)[0], model(x)[0])
        state = model.initial_state(1)
        torch.testing.assert_close(model(x, state)[0], model(x)[0])


def test_preprocess_keeps_channels_last_and_normalises():
    model = build_model(tiny_cfg(), num_classes=3)
    x = frames(2, 3)
    pre = model.preprocess(x)
    assert pre.shape == (6, 3, 16, 16)
    assert pre.is_contiguous(memory_format=torch.channels_last)
    expected = (x[1, 2].permute(2, 0, 1).float() / 255 - 0.5) / 0.5  # cnn: mean 0.5, std 0.5
    torch.testing.assert_close(pre[5], expected)
    model.set_channels_last(False)
    assert model.preprocess(x).is_contiguous()
    with pytest.raises(ValueError, match="uint8"):
        model.preprocess(x.float())


def test_channels_last_off_gives_the_same_logits():
    torch.manual_seed(0)
    model = build_model(tiny_cfg(), num_classes=3).eval()
    x = frames(1, 4)
    with torch.no_grad():
        expected = model(x)[0]
        model.set_channels_last(False)
        torch.testing.assert_close(model(x)[0], expected, atol=1e-4, rtol=0)


def test_encoder_autocast_keeps_cell_in_float32():
    torch.manual_seed(0)
    model = build_model(tiny_cfg(), num_classes=3).eval()
    seen = []
    model.cell.register_forward_pre_hook(lambda module, args: seen.append(args[0].dtype))
    model.encoder_autocast = torch.bfloat16
    with torch.no_grad():
        logits, state = model(frames(1, 4))
        with torch.autocast("cpu", dtype=torch.bfloat16):  # even if the caller wraps everything
            logits2, _ = model(frames(1, 4))
    assert seen == [torch.float32, torch.float32]
    assert logits.dtype == logits2.dtype == torch.float32 and state[0].dtype == torch.float32


@pytest.mark.parametrize("cell", list_cells())
def test_backward_reaches_the_encoder(cell):
    torch.manual_seed(0)
    model = build_model(tiny_cfg(cell=cell), num_classes=5).train()
    logits, state = model(frames(2, 6))
    logits2, _ = model(frames(2, 4, seed=1), detach_state(state))  # a second truncated-BPTT chunk
    target = torch.randint(0, 5, (2, 10))
    loss = nn.functional.cross_entropy(torch.cat([logits, logits2], 1).reshape(-1, 5), target.reshape(-1))
    loss.backward()
    first_conv = model.encoder.features[0][0].weight
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.cell.parameters())


def test_build_model_needs_two_classes():
    with pytest.raises(ConfigError, match="2 classes"):
        build_model(tiny_cfg(), num_classes=1)


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::torch.jit.TracerWarning")
def test_traced_model_streams_state():
    """The streaming step exports: a traced graph takes and returns the state, for any B and T."""
    torch.manual_seed(0)
    model = build_model(tiny_cfg(), num_classes=3).eval()
    with torch.no_grad():
        traced = torch.jit.trace(model, (frames(1, 5), model.initial_state(1)))
        x, state = frames(2, 7, seed=2), model(frames(2, 3))[1]
        logits, new_state = traced(x, state)
        expected, expected_state = model(x, state)
    torch.testing.assert_close(logits, expected)
    assert_states_close(new_state, expected_state)


# ---------------------------------------------------------------------------------------------------
# Encoders and pretrained weights


def test_unknown_encoder_lists_valid_names():
    with pytest.raises(ConfigError, match=r"model\.encoder: unknown 'vgg'; choose from cnn, resnet18, "):
        build_encoder(tiny_cfg(encoder="vgg"))


@pytest.mark.parametrize("name", list_encoders())
def test_every_encoder_embeds_frames(name):
    torch.manual_seed(0)
    encoder = build_encoder(tiny_cfg(encoder=name)).eval()
    with torch.no_grad():
        emb = encoder(torch.randn(2, 3, 32, 32).contiguous(memory_format=torch.channels_last))
    assert emb.shape == (2, 16) and encoder.out_dim == 16
    assert len(encoder.mean) == len(encoder.std) == 3


def test_torchvision_normalisation_comes_from_the_weights():
    encoder = build_encoder(tiny_cfg(encoder="resnet18"))
    transforms = torchvision.models.ResNet18_Weights.DEFAULT.transforms()
    assert encoder.mean == pytest.approx(transforms.mean) and encoder.std == pytest.approx(transforms.std)


def test_pretrained_true_without_cache_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache
    with pytest.raises(ConfigError, match=r"not in the local torch hub cache.*model\.pretrained=/path/to/"):
        build_encoder(tiny_cfg(encoder="resnet18", pretrained=True))


def test_pretrained_true_uses_the_cached_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = torchvision.models.MobileNet_V3_Small_Weights.DEFAULT
    path = cached_weights_path(weights)
    assert path.parent == tmp_path / "hub" / "checkpoints"
    path.parent.mkdir(parents=True)
    torch.manual_seed(3)
    saved = torchvision.models.mobilenet_v3_small().state_dict()
    torch.save(saved, path)
    encoder = build_encoder(tiny_cfg(encoder="mobilenet_v3_small", pretrained=True))
    torch.testing.assert_close(encoder.backbone.features[0][0].weight, saved["features.0.0.weight"])


def test_pretrained_path_loads_a_resnet18_state_dict(tmp_path):
    torch.manual_seed(5)
    saved = torchvision.models.resnet18().state_dict()
    path = tmp_path / "resnet18.pth"
    torch.save(saved, path)
    encoder = build_encoder(tiny_cfg(encoder="resnet18", pretrained=str(path)))
    torch.testing.assert_close(encoder.backbone.conv1.weight, saved["conv1.weight"])
    torch.testing.assert_close(encoder.backbone.layer4[1].bn2.running_var, saved["layer4.1.bn2.running_var"])
    assert encoder.proj.out_features == 16  # the ImageNet classifier was replaced


def test_pretrained_path_loads_a_cnn_state_dict(tmp_path):
    source = build_encoder(tiny_cfg())
    path = tmp_path / "cnn.pth"
    torch.save(source.state_dict(), path)
    encoder = build_encoder(tiny_cfg(pretrained=str(path)))
    torch.testing.assert_close(encoder.proj.weight, source.proj.weight)
    with pytest.raises(ConfigError, match="no published weights"):
        build_encoder(tiny_cfg(pretrained=True))


@pytest.mark.parametrize("content, message", [
    (None, "state dict file not found"),
    (b"not a torch file", "cannot read a state dict"),
    ({"weight": 1}, "not a state dict"),
])
def test_bad_pretrained_file_is_a_checkpoint_error(tmp_path, content, message):
    path = tmp_path / "weights.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(CheckpointError, match=message) as info:
        build_encoder(tiny_cfg(encoder="resnet18", pretrained=str(path)))
    assert str(path) in str(info.value)


def test_mismatching_state_dict_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "mobilenet.pth"
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), path)
    with pytest.raises(CheckpointError, match=r"does not match .* missing conv1\.weight"):
        build_encoder(tiny_cfg(encoder="resnet18", pretrained=str(path)))


def test_unsafe_pickle_is_refused(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    torch.save({"weight": Exploit()}, path)
    with pytest.raises(CheckpointError, match="cannot read a state dict"):
        build_encoder(tiny_cfg(encoder="resnet18", pretrained=str(path)))


def test_model_is_a_frame_classifier():
    assert isinstance(build_model(tiny_cfg(), 5), FrameClassifier)


# ---------------------------------------------------------------------------------------------------
# The registry is the one list of cells: a cell registered here shows up everywhere cells are listed


@pytest.fixture
def decay_cell():
    """A cell defined and registered inside the test (one class, nothing else), unregistered after it."""
    from lstm_tv.model.cells import CELLS, MemoryCell, register_cell

    @register_cell("decay")
    class DecayMemory(MemoryCell):
        """h_t = tanh(W x_t + m), and the memory m moves halfway to the chunk's last output."""

        state_names = ("avg",)
        note = "a test cell"
        bench_order = 2.5  # between rnn (2) and gru (3)
        state_batch_dim = 0

        def __init__(self, in_dim: int, hidden: int) -> None:
            super().__init__()
            self.proj, self.out_dim = nn.Linear(in_dim, hidden), hidden

        @classmethod
        def from_config(cls, cfg, in_dim):
            return cls(in_dim, cfg.hidden)

        def initial_state(self, batch, device=None, dtype=None):
            return (torch.zeros(batch, self.out_dim, device=device, dtype=dtype),)

        def forward(self, x, state=None):
            avg = (state or self.initial_state(x.shape[0], x.device, x.dtype))[0]
            y = torch.tanh(self.proj(x) + avg[:, None])  # (B, T, hidden)
            return y, (0.5 * avg + 0.5 * y[:, -1],)

    yield "decay"
    CELLS.unregister("decay")


def test_a_registered_cell_appears_in_config_show_and_bench(decay_cell, cli):
    from lstm_tv import bench

    shown = cli("config", "show")
    assert shown.code == 0
    cell_line = next(line for line in shown.out.splitlines() if line.strip().startswith("cell:"))
    assert "decay (a test cell)" in cell_line and "lstm" in cell_line
    assert bench.bench_cells() == ["none", "tdnn", "rnn", "decay", "gru", "lstm", "peephole"]
    assert bench._checked("--cells", ["decay"], (), list_cells()) == ["decay"]


def test_the_registry_forgets_a_cell_after_the_test():
    assert "decay" not in list_cells()


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_a_registered_cell_exports_with_its_own_state_names(decay_cell, fmt, tmp_path):
    import json

    from lstm_tv.checkpoint import checkpoint_payload, save_checkpoint
    from lstm_tv.config import load_config
    from lstm_tv.export import export_checkpoint

    cfg = load_config(None, ["model.width=4", "model.embed=8", "model.hidden=6", f"model.cell={decay_cell}"])
    torch.manual_seed(0)
    net = build_model(cfg.model, 5)
    path = tmp_path / "decay.ckpt"
    save_checkpoint(path, checkpoint_payload(net, cfg, classes=cfg.data.classes, background="unknown", size=16, fps=24))
    out, sidecar, worst = export_checkpoint(path, fmt)
    info = json.loads(sidecar.read_text())
    assert out.is_file() and info["cell"] == "decay"
    assert [s["name"] for s in info["state"]] == ["avg"] and info["state"][0]["shape"] == ["batch", 6]
    assert info["time"].startswith("dynamic")                    # the class did not say otherwise
    assert worst <= 1e-4                                          # checked over a 3-chunk stream, state carried


@pytest.mark.parametrize("encoder", ["cnn", "mobilenet_v3_small"])
def test_encoders_read_non_square_frames(encoder):
    # 4:3 frames (H 24, W 32): the encoders pool globally, so any (H, W) gives one embedding per frame.
    model = build_model(tiny_cfg(encoder=encoder), 5).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (1, 3, 24, 32, 3), dtype=torch.uint8, generator=g)  # (B, T, H, W, 3)
    with torch.inference_mode():
        logits, _ = model(x)
    assert logits.shape == (1, 3, 5) and torch.isfinite(logits).all()
