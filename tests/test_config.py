"""The config: one source of truth, dotted overrides, and one-line errors for every mistake."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lstm_tv.config import Config, all_keys, from_dict, load_config, parse_overrides, render_yaml
from lstm_tv.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_default_yaml_is_the_builtin_defaults_written_out():
    # If this fails, regenerate: lstm-tv config show > configs/default.yaml
    assert (ROOT / "configs" / "default.yaml").read_text() == render_yaml(Config())


def test_default_yaml_documents_every_key_with_type_and_meaning():
    text = (ROOT / "configs" / "default.yaml").read_text()
    tree = yaml.safe_load(text)
    assert from_dict(tree) == Config()
    for key in all_keys():
        leaf = key.split(".")[1]
        lines = [line for line in text.splitlines() if line.strip().startswith(f"{leaf}:")]
        assert any("# (" in line and ") " in line.split("# (", 1)[1] for line in lines), key


def test_contract_keys_exist():
    # docs/formats.md §3: scripts and docs rely on these names.
    for key in ["data.dir", "data.size", "model.encoder", "model.cell", "model.hidden", "model.layers",
                "train.epochs", "train.batch_size", "train.lr", "train.seed", "train.tbptt", "run.dir"]:
        assert key in all_keys()


def test_file_then_overrides_merge_onto_defaults(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  epochs: 3\n  lr: 0.01\nmodel:\n  cell: gru\n")
    cfg = load_config(f, ["train.epochs=5", "data.classes=[a, b, bg]", "data.background=bg"])
    assert (cfg.train.epochs, cfg.train.lr, cfg.model.cell) == (5, 0.01, "gru")
    assert cfg.data.classes == ["a", "b", "bg"]
    assert cfg.train.batch_size == Config().train.batch_size


@pytest.mark.parametrize("item, key, value", [
    ("train.epochs=5", "epochs", 5),
    ("train.lr=1e-3", "lr", 1e-3),
    ("train.amp=true", "amp", True),
    ("run.name=yes", "name", "yes"),            # text keys stay text, even YAML's yes/no
    ("run.dir=2024", "dir", "2024"),
    ("run.name='with space'", "name", "with space"),
    ("train.class_weights=[1, 2, 3, 4, 0.5]", "class_weights", [1, 2, 3, 4, 0.5]),
])
def test_override_values(item, key, value):
    tree = parse_overrides([item])
    section = item.split(".")[0]
    cfg = from_dict(tree)
    assert getattr(getattr(cfg, section), key) == value


@pytest.mark.parametrize("items, message", [
    (["train.epoch=5"], "did you mean train.epochs"),
    (["epochs=5"], "did you mean train.epochs"),
    (["trian.lr=0.1"], "did you mean train.lr"),
    (["train.epochs=five"], "train.epochs: expected int, got 'five'"),
    (["train.epochs=2.5"], "train.epochs: expected int"),
    (["train.amp=maybe"], "train.amp: 'maybe' must be auto, true or false"),
    (["train.lr=-0.1"], "train.lr: -0.1 is out of range; allowed [0.0"),
    (["synth.frames=0"], "synth.frames: 0 is out of range"),
    (["train.best_metric=loss"], "train.best_metric: 'loss' is not one of"),
    (["data.background=cat"], "data.background: 'cat' is not one of data.classes"),
    (["data.split_ratios=[0.5, 0.5]"], "data.split_ratios"),
    (["train.class_weights=[1, 2]"], "train.class_weights: need 5"),
    (["train.class_weights=sqrt"], "train.class_weights"),
    (["synth.gap_min=50", "synth.gap_max=10"], "synth.gap_min: 50 is larger than synth.gap_max 10"),
    (["train.tbptt=512", "train.clip_frames=64"], "train.tbptt"),
    (["train.zoom=[1.5, 0.7]"], "train.zoom: need [min, max]"),
    (["train.zoom=[0, 1]"], "train.zoom: need [min, max]"),
    (["train.rotate=200"], "train.rotate: 200.0 is out of range"),
    (["train.epochs"], "must look like KEY=VALUE"),
    (["train.lr=[1, 2"], "train.lr: cannot parse"),
])
def test_bad_overrides_name_the_key(items, message):
    with pytest.raises(ConfigError, match=None) as e:
        load_config(None, items)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("text, message", [
    ("train:\n  epochs: [\n", "invalid YAML"),
    ("- a\n- b\n", "must be a mapping"),
    ("train:\n  epohcs: 3\n", "did you mean train.epochs"),
    ("trainer:\n  epochs: 3\n", "unknown section 'trainer'"),
    ("epochs: 3\n", "did you mean train.epochs"),
    ("train: 3\n", "expected a mapping"),
    ("model:\n  hidden: big\n", "model.hidden: expected int"),
])
def test_bad_config_files_name_file_and_key(tmp_path, text, message):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(f)
    assert message in str(e.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_resolved_config_round_trips_through_yaml():
    cfg = load_config(None, ["model.cell=tdnn", "model.window=8", "model.pretrained=/w.pth"])
    assert from_dict(yaml.safe_load(render_yaml(cfg, comments=False))) == cfg


def test_config_show_cli(cli):
    r = cli("config", "show", "train.epochs=7")
    assert r.code == 0
    assert yaml.safe_load(r.out)["train"]["epochs"] == 7
    r = cli("config", "show", "train.epoch=7")
    assert r.code == 1
    assert "did you mean train.epochs" in r.err
    assert "Traceback" not in r.err


def test_installed_package_needs_no_source_tree(tmp_path):
    # Defaults live in code, so running from an unrelated directory gives the same config.
    out = subprocess.run([sys.executable, "-m", "lstm_tv", "config", "show", "--plain"], cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    assert yaml.safe_load(out) == Config().to_dict()


def test_data_size_is_the_short_side_or_w_and_h():
    from lstm_tv.config import DataConfig, frame_wh

    assert DataConfig(size=48).frame_size((160, 120)) == (64, 48)      # 4:3 kept, not squashed
    assert DataConfig(size=48).frame_size((120, 160)) == (48, 64)      # portrait: the width is the short side
    assert DataConfig(size=16).frame_size((96, 96)) == (16, 16)
    assert DataConfig(size=[40, 20]).frame_size((160, 120)) == (40, 20)
    with pytest.raises(ConfigError, match="data.size"):
        load_config(None, ["data.size=[4, 40]"])
    assert frame_wh(16) == (16, 16) and frame_wh([64, 48]) == (64, 48)  # as datasets and checkpoints record it
