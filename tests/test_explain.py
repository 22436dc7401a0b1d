"""`lstm-tv explain`: the gates and cell state over a video, streamed with the state carried, bounded in memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstm_tv.checkpoint import checkpoint_payload, save_checkpoint
from lstm_tv.config import load_config
from lstm_tv.explain import explain_video
from lstm_tv.model.classifier import build_model
from lstm_tv.stream import load_model, predict_video

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def trained(tiny_run):
    """The session's tiny trained lstm model, and a synthetic video with its labels."""
    raw = tiny_run["raw"]
    video = sorted((raw / "videos").glob("*.mp4"))[1]
    return {"ckpt": tiny_run["ckpt"], "video": video, "labels": next((raw / "labels").glob(f"{video.stem}.*"))}


def untrained_checkpoint(path, cell: str, layers: int = 1):
    """A tiny model of any cell, as a checkpoint (weights need no training to test plumbing)."""
    cfg = load_config(None, ["data.size=16", "model.width=4", "model.embed=8", "model.hidden=6",
                             f"model.cell={cell}", f"model.layers={layers}"])
    torch.manual_seed(0)
    model = build_model(cfg.model, 5)
    save_checkpoint(path, checkpoint_payload(model, cfg, classes=cfg.data.classes, background="unknown", size=16, fps=24))
    return path


def test_explained_probabilities_are_the_predicted_ones(trained):
    ckpt, model = load_model(trained["ckpt"], CPU)
    exp = explain_video(model, trained["video"], 16, CPU, batch=9)         # traced gate by gate, chunk by chunk
    predicted = np.concatenate([c.probs for c in predict_video(model, trained["video"], 16, CPU, batch=64)])
    assert exp.binned.count.tolist() == [1] * 160                           # short video: one point per frame
    np.testing.assert_allclose(exp.probs, predicted, atol=1e-5)
    for name, values in exp.gates.items():
        assert values.shape == (160,) and np.all((values > 0) & (values < 1)), name
    assert np.all(exp.cell_norm >= 0) and exp.cell.shape == (160, 8)
    np.testing.assert_allclose(exp.cell_norm, np.linalg.norm(exp.cell, axis=1), rtol=1e-5)


def test_true_labels_ride_along(trained, tiny_prepared):
    from lstm_tv.data.dataset import PreparedDataset
    from lstm_tv.truth import TruthLabels

    ckpt, model = load_model(trained["ckpt"], CPU)
    truth = TruthLabels(trained["labels"], ckpt.classes, ckpt.background)
    exp = explain_video(model, trained["video"], 16, CPU, batch=50, truth=truth)
    data = PreparedDataset(tiny_prepared)
    record = next(v for v in data.videos if v.stem == trained["video"].stem)
    np.testing.assert_array_equal(exp.truth, data.labels(record))           # what prepare made of the same file


def test_long_videos_are_summarised_into_bounded_points(trained):
    ckpt, model = load_model(trained["ckpt"], CPU)
    full = explain_video(model, trained["video"], 16, CPU, batch=16)
    small = explain_video(model, trained["video"], 16, CPU, batch=16, cap=10)
    assert 10 <= len(small.binned.start) <= 20 and small.binned.count.sum() == 160
    first = small.binned.count[0]
    np.testing.assert_allclose(small.probs[0], full.probs[:first].mean(axis=0), atol=1e-6)  # each point a bin mean
    assert small.busiest_units(3) != [] and len(set(small.busiest_units(3))) == 3


@pytest.mark.parametrize("cell, layers", [("peephole", 1), ("lstm", 2)])
def test_other_gated_cells_and_layers(tmp_path, trained, cell, layers):
    ckpt, model = load_model(untrained_checkpoint(tmp_path / "m.ckpt", cell, layers), CPU)
    last = explain_video(model, trained["video"], 16, CPU, batch=32)
    first = explain_video(model, trained["video"], 16, CPU, batch=32, layer=0)
    predicted = np.concatenate([c.probs for c in predict_video(model, trained["video"], 16, CPU)])
    np.testing.assert_allclose(last.probs, predicted, atol=1e-5)
    assert last.layer == layers - 1
    assert (layers == 1) == np.allclose(first.cell, last.cell)             # two layers: two different memories


def test_explain_cli_writes_the_figure(cli, trained, tmp_path):
    out = tmp_path / "memory.png"
    r = cli("explain", trained["video"], "--checkpoint", trained["ckpt"], "--out", out, "--labels", trained["labels"])
    assert r.code == 0, r
    assert out.read_bytes()[:4] == b"\x89PNG" and out.stat().st_size > 20000
    said = " ".join(r.out.split())                                           # as one line: rich wraps at 80 columns
    assert "forget/input/output gates" in said and "layer 0 of 1" in said
    assert {p.name for p in tmp_path.iterdir()} == {"memory.png"}


@pytest.mark.parametrize("cell", ["gru", "none"])
def test_cells_without_gates_get_one_clear_line(cli, trained, tmp_path, cell):
    ckpt = untrained_checkpoint(tmp_path / f"{cell}.ckpt", cell)
    r = cli("explain", trained["video"], "--checkpoint", ckpt, "--out", tmp_path / "x.png")
    assert r.code == 1 and f"memory cell is '{cell}'; only lstm and peephole cells have gates" in r.err
    assert "Traceback" not in r.err and not (tmp_path / "x.png").exists()


def test_bad_explain_inputs(cli, trained, tmp_path):
    cases = [
        (["--layer", "1"], "--layer 1: the memory cell of"),
        (["--out", tmp_path / "missing" / "x.png"], "does not exist"),
        (["--out", tmp_path / "x.csv"], "--out must end in .png"),
    ]
    for args, message in cases:
        r = cli("explain", trained["video"], "--checkpoint", trained["ckpt"], *args)
        assert r.code == 1 and message in r.err.replace("\n", ""), (args, r)
    r = cli("explain", tmp_path / "nope.mp4", "--checkpoint", trained["ckpt"], "--out", tmp_path / "x.png")
    assert r.code == 1 and "nope.mp4: video not found" in r.err
    assert list(tmp_path.iterdir()) == []
