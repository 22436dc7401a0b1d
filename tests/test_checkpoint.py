"""The typed checkpoint record: what a checkpoint holds, by name, round-tripping through the file."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lstm_tv.checkpoint import CheckpointRecord, checkpoint_payload, load_checkpoint, load_record, save_checkpoint
from lstm_tv.config import load_config
from lstm_tv.errors import CheckpointError
from lstm_tv.model.classifier import build_model


@pytest.fixture
def saved(tmp_path):
    cfg = load_config(None, ["model.width=4", "model.embed=8", "model.hidden=6", "model.cell=gru"])
    torch.manual_seed(0)
    model = build_model(cfg.model, 5)
    path = tmp_path / "m.ckpt"
    save_checkpoint(path, checkpoint_payload(model, cfg, classes=cfg.data.classes, background="unknown", size=16,
                                             fps=24, epoch=3, metrics={"frame_accuracy": 0.5}))
    return path, model


def test_the_record_names_every_field_with_its_type(saved):
    path, model = saved
    record = load_record(path)
    assert record.classes == ("wolf", "dog", "bear", "goldfish", "unknown") and record.background == "unknown"
    assert (record.size, record.fps, record.frame_rate, record.cell) == ((16, 16), 24.0, 24.0, "gru")
    assert record.mean == (0.5, 0.5, 0.5) and record.std == (0.5, 0.5, 0.5)
    assert record.temperature == 1.0 and record.version == 1
    assert record.training == {"epoch": 3, "metrics": {"frame_accuracy": 0.5}}
    rebuilt = record.build_model()
    assert not rebuilt.training
    for key, value in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.size = 32


def test_a_new_temperature_round_trips_and_nothing_else_changes(saved, tmp_path):
    path, _ = saved
    calibrated = dataclasses.replace(load_record(path), temperature=1.5)
    save_checkpoint(tmp_path / "c.ckpt", calibrated.to_payload())
    again = load_record(tmp_path / "c.ckpt")
    assert again.temperature == 1.5
    assert dataclasses.replace(again, temperature=1.0, path=path).to_payload().keys() == load_checkpoint(path).keys()
    assert again.training == load_record(path).training and again.classes == load_record(path).classes


def test_an_unknown_fps_falls_back_to_25_and_a_bad_temperature_is_refused(saved, tmp_path):
    path, _ = saved
    payload = load_checkpoint(path)
    payload.pop("fps")
    assert CheckpointRecord.from_payload(payload).frame_rate == 25.0
    payload["temperature"] = -1
    save_checkpoint(tmp_path / "t.ckpt", payload)
    with pytest.raises(CheckpointError, match=r"t\.ckpt: temperature -1 is not a positive number"):
        load_record(tmp_path / "t.ckpt")
