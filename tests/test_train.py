"""`lstm-tv train`: truncated BPTT over clips, validation by streaming, a self-sufficient run directory."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import torch
from conftest import TINY_TRAIN

from lstm_tv.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from lstm_tv.config import load_config
from lstm_tv.data.dataset import PreparedDataset
from lstm_tv.engine import make_scheduler
from lstm_tv.errors import CheckpointError
from lstm_tv.train import train
from lstm_tv.training import class_weights
from lstm_tv.ui import QUIET, Reporter


def test_train_writes_a_complete_run_directory(tiny_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = train(load_config(None, tiny_config + ["train.epochs=2"]), reporter=QUIET)
    assert run == tmp_path / "run"
    for name in ["config.yaml", "best.ckpt", "last.ckpt", "metrics.csv", "plots/learning_curves.png",
                 "plots/confusion_best.png"]:
        assert (run / name).is_file(), name
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for key in ["train_loss", "val_frame_accuracy", "val_macro_f1", "val_masked_accuracy", "lr", "frames_per_s",
                "seconds"]:
        assert rows[-1][key] != "", key
    assert os.path.realpath("runs/latest") == str(run.resolve())
    assert load_checkpoint(run / "config.yaml".replace("config.yaml", "last.ckpt"))["progress"]["epoch"] == 2


def test_checkpoint_is_self_sufficient(tiny_config, tiny_prepared, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = train(load_config(None, tiny_config), reporter=QUIET)
    ckpt = load_checkpoint(run / "best.ckpt")
    assert ckpt["classes"] == ["wolf", "dog", "bear", "goldfish", "unknown"]
    assert ckpt["size"] == [16, 16] and len(ckpt["mean"]) == 3 and ckpt["version"] == 1
    assert "optimizer" not in ckpt                    # best.ckpt is for using, last.ckpt for resuming
    model = model_from_checkpoint(ckpt)
    data = PreparedDataset(tiny_prepared)
    frames = torch.from_numpy(np.array(data.frames(data.videos[0])[:20]))
    logits, _ = model(frames[None])
    assert logits.shape == (1, 20, 5) and torch.isfinite(logits).all()


@pytest.mark.parametrize("stop_in, extra", [("joint", []), ("memory", []), ("joint", ["train.ema=0.99"])])
def test_resume_matches_an_uninterrupted_run(tiny_config, tmp_path, monkeypatch, stop_in, extra):
    # Two joint epochs then two memory epochs, with augmentation and dropout: randomness everywhere
    # (and with train.ema, the average of the weights as well as the weights trained).
    monkeypatch.chdir(tmp_path)
    base = tiny_config + ["train.epochs=2", "train.memory_epochs=2", "model.dropout=0.1", *extra]
    whole = train(load_config(None, base + [f"run.dir={tmp_path / 'whole'}"]), reporter=QUIET)

    # The same run, interrupted in its second (joint) or third (first memory) epoch...
    from lstm_tv.phases import JointPhase, MemoryPhase

    target, name = (JointPhase if stop_in == "joint" else MemoryPhase), "run_epoch"
    real, calls = getattr(target, name), []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == (2 if stop_in == "joint" else 1):
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(load_config(None, base + [f"run.dir={tmp_path / 'cut'}"]), reporter=QUIET)
    assert load_checkpoint(tmp_path / "cut" / "last.ckpt")["progress"]["epoch"] == (1 if stop_in == "joint" else 2)
    monkeypatch.setattr(target, name, real)
    # ...and resumed from its directory alone, ends exactly where the uninterrupted run ended.
    resumed = train(None, resume=tmp_path / "cut", reporter=QUIET)
    a, b = load_checkpoint(whole / "last.ckpt"), load_checkpoint(resumed / "last.ckpt")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert a["progress"]["history"][-1]["train_loss"] == b["progress"]["history"][-1]["train_loss"]
    assert [(r["epoch"], r["phase"]) for r in b["progress"]["history"]] == [
        (1, "joint"), (2, "joint"), (3, "memory"), (4, "memory")]


def test_memory_epochs_train_only_the_memory(tiny_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    joint = train(load_config(None, tiny_config + ["train.epochs=1", f"run.dir={tmp_path / 'a'}"]), reporter=QUIET)
    both = train(load_config(None, tiny_config + ["train.epochs=1", "train.memory_epochs=1",
                                                  f"run.dir={tmp_path / 'b'}"]), reporter=QUIET)
    a, b = load_checkpoint(joint / "last.ckpt")["model"], load_checkpoint(both / "last.ckpt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("encoder."))       # the encoder is frozen
    assert not all(torch.equal(a[k], b[k]) for k in a if k.startswith(("cell.", "head.")))  # the memory moved
    rows = list(csv.DictReader(open(both / "metrics.csv")))
    assert [r["phase"] for r in rows] == ["joint", "memory"]


def test_auto_class_weights_lift_rare_classes(tiny_prepared):
    data = PreparedDataset(tiny_prepared)
    weights = class_weights(load_config(None, ["data.size=16"]), data)
    counts = data.label_counts("train")
    background = data.classes.index("unknown")
    present = counts > 0
    assert weights[background] == weights[present].min()          # the most frequent class weighs least
    assert torch.isclose(weights[present].mean(), torch.tensor(1.0))
    assert class_weights(load_config(None, ["data.size=16", "train.class_weights=none"]), data) is None


def test_schedule_warms_up_then_decays():
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1.0)
    sched = make_scheduler(opt, epochs=4, steps_per_epoch=10, warmup=1.0)
    lrs = []
    for _ in range(40):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] < lrs[5] < lrs[9]                    # warm-up over the first epoch
    assert max(lrs) == pytest.approx(1.0, abs=0.02)
    assert all(a >= b for a, b in zip(lrs[10:-1], lrs[11:], strict=True))  # then cosine decay
    assert lrs[-1] < 0.05


def test_crafted_checkpoint_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    path = tmp_path / "evil.ckpt"
    torch.save({"format": "lstm-tv/checkpoint", "payload": Evil()}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "checkpoint not found"),
    (lambda p: p.write_bytes(b"garbage" * 10), "not a readable checkpoint"),
    (lambda p: torch.save({"weights": torch.zeros(2)}, p), "not an lstm-tv checkpoint"),
])
def test_bad_checkpoints(tmp_path, make, message):
    path = tmp_path / "x.ckpt"
    make(path)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_newer_and_truncated_checkpoints(tiny_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = train(load_config(None, tiny_config), reporter=QUIET)
    ckpt = load_checkpoint(run / "best.ckpt")
    ckpt["version"] = 99
    save_checkpoint(tmp_path / "new.ckpt", ckpt)
    with pytest.raises(CheckpointError, match="newer lstm-tv"):
        load_checkpoint(tmp_path / "new.ckpt")
    data = (run / "best.ckpt").read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "cut.ckpt")


def test_train_and_evaluate_cli(tiny_config, tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    r = cli("train", *tiny_config)
    assert r.code == 0, r
    assert "training finished" in r.out
    report_path = tmp_path / "report.json"
    r = cli("evaluate", tmp_path / "run" / "best.ckpt", "--report", report_path, "--split", "test")
    assert r.code == 0, r
    import json

    report = json.loads(report_path.read_text())
    for key in ["frame_accuracy", "macro_f1", "per_class", "confusion", "edit", "f1@10", "f1@25", "f1@50",
                "masked_accuracy"]:
        assert key in report, key
    assert (tmp_path / "run" / "plots" / "confusion_test.png").is_file()
    r = cli("train", "--resume", tmp_path / "run", "train.epochs=5")
    assert r.code == 1 and "drop --config" in r.err
    r = cli("evaluate", tmp_path / "missing.ckpt")
    assert r.code == 1 and "checkpoint not found" in r.err


@pytest.mark.parametrize("extra", [[], ["train.amp=true", "train.memory_epochs=2", "train.epochs=1"]],
                         ids=["fp32", "bf16-with-memory-epochs"])
def test_validation_equals_evaluate(tiny_config, tmp_path, monkeypatch, extra):
    # The metrics stored for the best epoch are what `evaluate` of best.ckpt on val reports: validation
    # streams in full precision like evaluate, also after mixed-precision training and when it reuses
    # the frozen encoder's embeddings in memory epochs.
    from lstm_tv.evaluate import evaluate_checkpoint

    monkeypatch.chdir(tmp_path)
    run = train(load_config(None, tiny_config + extra), reporter=QUIET)
    report = evaluate_checkpoint(run / "best.ckpt", split="val")
    stored = load_checkpoint(run / "best.ckpt")["metrics"]
    assert report["frame_accuracy"] == stored["frame_accuracy"]
    assert report["confusion"] == stored["confusion"]
    assert report["edit"] == stored["edit"]


def nan_after(monkeypatch, calls: int):
    """Make the per-frame loss NaN from its ``calls``-th evaluation on."""
    import lstm_tv.engine as engine

    real, seen = engine.frame_loss, []

    def poisoned(*args):
        seen.append(1)
        loss = real(*args)
        return loss * float("nan") if len(seen) >= calls else loss

    monkeypatch.setattr(engine, "frame_loss", poisoned)


def test_nonfinite_loss_stops_with_a_message_and_keeps_the_last_checkpoint(tiny_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    nan_after(monkeypatch, calls=6)        # epoch 1 has 2 batches x 2 chunks = 4 steps; epoch 2 goes bad
    from lstm_tv.errors import TrainingError

    with pytest.raises(TrainingError) as e:
        train(load_config(None, tiny_config + ["train.epochs=3"]), reporter=QUIET)
    message = str(e.value)
    assert "epoch 2, step 2" in message and "not finite" in message and "train.nonfinite=skip" in message
    assert "last.ckpt (epoch 1) is kept" in message
    ckpt = load_checkpoint(tmp_path / "run" / "last.ckpt")
    assert ckpt["progress"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_nonfinite_steps_can_be_skipped_and_counted(tiny_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    nan_after(monkeypatch, calls=6)
    run = train(load_config(None, tiny_config + ["train.epochs=2", "train.nonfinite=skip"]), reporter=QUIET)
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [r["skipped_steps"] for r in rows] == ["0", "3"]            # steps 2, 3 and 4 of epoch 2
    model = load_checkpoint(run / "last.ckpt")["model"]
    assert all(torch.isfinite(v).all() for v in model.values() if v.is_floating_point())


def test_a_full_disk_leaves_the_previous_checkpoint_intact(tiny_config, tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    run = train(load_config(None, tiny_config), reporter=QUIET)
    before = (run / "last.ckpt").read_bytes()
    ckpt = load_checkpoint(run / "last.ckpt")

    def full_disk(obj, f, *args, **kwargs):
        open(f, "wb").write(b"partial")
        raise OSError(28, "No space left on device", str(f))

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError):
        save_checkpoint(run / "last.ckpt", ckpt)
    assert (run / "last.ckpt").read_bytes() == before
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == []      # no temporary file left
    # Through the CLI the same failure is one line, without a traceback.
    r = cli("train", *tiny_config[:-1], f"run.dir={tmp_path / 'other'}")
    assert r.code == 1 and "No space left on device" in r.err and "Traceback" not in r.err


def test_train_takes_classes_and_size_from_the_dataset(tiny_config, tmp_path, monkeypatch):
    # data.size=32 and other class names in the config: the prepared data (16 px, the TV classes) wins.
    monkeypatch.chdir(tmp_path)
    overrides = [o for o in tiny_config if not o.startswith("data.size")]
    run = train(load_config(None, overrides + ["data.size=32", "data.classes=[a, b, c]", "data.background=c"]),
                reporter=QUIET)
    ckpt = load_checkpoint(run / "best.ckpt")
    assert ckpt["size"] == [16, 16] and ckpt["classes"] == ["wolf", "dog", "bear", "goldfish", "unknown"]
    assert ckpt["config"]["data"]["classes"] == ckpt["classes"]
    assert "size: [16, 16]" in (run / "config.yaml").read_text()


def test_nonfinite_loss_through_the_cli_is_one_line_naming_the_step(tiny_config, tmp_path, monkeypatch, cli):
    # No monkeypatching: absurd class weights overflow the weighted mean of the loss (inf / inf) at the
    # first step. (An absurd learning rate does not do it: train.lr is capped at 10, which AdamW survives.)
    # The gradient of that NaN loss is 0, finite: the guard must look at the loss too.
    monkeypatch.chdir(tmp_path)
    r = cli("train", *tiny_config, "train.epochs=2", "train.class_weights=[1e38, 1e38, 1e38, 1e38, 1e38]")
    assert r.code == 1, r
    assert "Traceback" not in r.err + r.out
    errors = [line for line in r.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, r.err
    assert errors[0] == ("error: epoch 1, step 1: the loss or its gradient is not finite (loss nan); stopped, no "
                         "checkpoint yet; lower train.lr, or set train.nonfinite=skip to skip such steps"), errors[0]
    assert not (tmp_path / "run" / "last.ckpt").exists() and not (tmp_path / "run" / "best.ckpt").exists()


def test_validating_from_cached_embeddings_equals_streaming_frames(tiny_run, tiny_prepared):
    from lstm_tv.validation import encode_videos, evaluate_model

    model = model_from_checkpoint(load_checkpoint(tiny_run["ckpt"]))
    model.encoder_autocast = torch.bfloat16          # as during mixed-precision training
    data = PreparedDataset(tiny_prepared)
    videos, cpu = data.split("val") + data.split("test"), torch.device("cpu")

    class NoBar:
        def update(self, *args):
            pass

    embeddings = encode_videos(model, data, videos, cpu, NoBar(), chunk=40)
    streamed = evaluate_model(model, data, videos, cpu, chunk=40).compute(data.classes)
    cached = evaluate_model(model, data, videos, cpu, chunk=40, embeddings=embeddings).compute(data.classes)
    assert cached == streamed


def test_frames_alone_are_classified_with_an_empty_memory_each(tiny_run, tiny_prepared):
    from lstm_tv.stream import logits_alone, stream_embeddings

    model = model_from_checkpoint(load_checkpoint(tiny_run["ckpt"])).eval()
    torch.manual_seed(0)
    embeddings = torch.randn(30, model.encoder.out_dim)
    alone = logits_alone(model, embeddings, chunk=7)
    with torch.no_grad():
        one_by_one = torch.cat([model.forward_embeddings(e[None, None])[0][0] for e in embeddings])
    assert torch.allclose(alone, one_by_one, atol=1e-6)
    assert torch.allclose(alone[:1], stream_embeddings(model, embeddings, chunk=7)[:1], atol=1e-6)  # nothing before
    assert not torch.allclose(alone[1:], stream_embeddings(model, embeddings, chunk=7)[1:], atol=1e-4)  # memory


def test_each_epoch_records_frames_alone_beside_the_streamed_metrics(tiny_run):
    run = tiny_run["ckpt"].parent
    rows = load_checkpoint(run / "last.ckpt")["progress"]["history"]
    assert all(0.0 <= row["val_frame_accuracy_alone"] <= 1.0 for row in rows)
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "val_frame_accuracy_alone" in header


class NoBar:
    def update(self, *args):
        pass


def test_frames_alone_on_every_nth_frame_are_those_frames_of_the_whole_videos(tiny_run, tiny_prepared):
    from lstm_tv.metrics import FrameMetrics
    from lstm_tv.stream import logits_alone
    from lstm_tv.validation import encode_videos, evaluate_model, frames_alone

    model = model_from_checkpoint(load_checkpoint(tiny_run["ckpt"]))
    data = PreparedDataset(tiny_prepared)
    videos, cpu = data.split("val") + data.split("test"), torch.device("cpu")
    embeddings = encode_videos(model, data, videos, cpu, NoBar())
    whole = evaluate_model(model, data, videos, cpu, embeddings=embeddings, alone=True).compute(data.classes)
    assert frames_alone(model, data, videos, cpu, NoBar()).compute(data.classes) == whole
    expected = FrameMetrics(len(data.classes), data.classes.index(data.background))
    for video, emb in zip(videos, embeddings, strict=True):
        pred = logits_alone(model, emb, 256).argmax(-1).numpy()
        expected.update(pred[::3], data.labels(video)[::3], data.mask(video)[::3])
    strided = frames_alone(model, data, videos, cpu, NoBar(), stride=3).compute(data.classes)
    assert strided == expected.compute(data.classes)
    assert strided["frames"] == sum(len(range(0, v.frames, 3)) for v in videos) < whole["frames"]


def test_the_joint_phases_validation_reads_at_least_4096_frames():
    from lstm_tv.training import alone_stride

    assert [alone_stride(n) for n in (100, 2_100, 8_191, 8_192, 16_800, 40_000)] == [1, 1, 1, 2, 4, 9]


def test_joint_epochs_before_a_memory_phase_record_frames_alone_only(tiny_config, tmp_path, monkeypatch):
    # The memory phase starts a new memory and head, so the joint phase's streamed metrics would measure a
    # memory about to be replaced; with no memory phase after it, the joint phase streams as before.
    monkeypatch.chdir(tmp_path)
    run = train(load_config(None, tiny_config + ["train.epochs=1", "train.memory_epochs=1"]), reporter=QUIET)
    joint, memory = load_checkpoint(run / "last.ckpt")["progress"]["history"]
    assert 0.0 <= joint["val_frame_accuracy_alone"] <= 1.0
    assert joint["val_frame_accuracy"] is None and joint["val_masked_accuracy"] is None
    assert memory["val_frame_accuracy"] is not None and memory["val_frame_accuracy_alone"] is not None
    assert load_checkpoint(run / "best.ckpt")["epoch"] == 2


def test_learning_curves_are_drawn_at_most_every_30_s_and_after_the_last_epoch(tiny_config, tmp_path, monkeypatch):
    from lstm_tv import plots

    monkeypatch.chdir(tmp_path)
    drawn = []
    monkeypatch.setattr(plots, "learning_curves", lambda history, path: drawn.append([r["epoch"] for r in history]))
    train(load_config(None, tiny_config + ["train.epochs=2", "train.memory_epochs=2", "train.patience=0"]),
          reporter=QUIET)
    assert drawn == [[1], [1, 2, 3, 4]]  # epochs of a second each: the first, then the last with all four


def test_best_epoch_ties_go_to_the_better_frame_accuracy():
    from lstm_tv.rundir import best_values

    cfg, warned = load_config(None, []), []
    a = best_values(cfg, {"masked_accuracy": 1.0, "frame_accuracy": 0.97}, QUIET, warned)[1]
    b = best_values(cfg, {"masked_accuracy": 1.0, "frame_accuracy": 0.99}, QUIET, warned)[1]
    c = best_values(cfg, {"masked_accuracy": 0.98, "frame_accuracy": 0.999}, QUIET, warned)[1]
    assert c < a < b
    # Without masks the metric falls back to frame accuracy (with one warning).
    assert best_values(cfg, {"frame_accuracy": 0.5}, QUIET, warned) == ("frame_accuracy", [0.5, 0.5])
    # A joint epoch before a memory phase measures frames alone only.
    assert best_values(cfg, {"frame_accuracy_alone": 0.7}, QUIET, warned) == ("frame_accuracy_alone", [0.7])


def test_best_checkpoint_follows_the_latest_phase():
    from lstm_tv.rundir import Progress

    progress = Progress()
    lucky_joint = [0.72, 0.58]  # [masked, frame]: an untrained memory guessing well on few videos
    assert progress.record({"epoch": 1, "phase": "joint"}, [0.50, 0.55])
    assert progress.record({"epoch": 2, "phase": "joint"}, lucky_joint)
    assert not progress.record({"epoch": 3, "phase": "joint"}, [0.60, 0.86])
    # The memory phase's first epoch replaces the joint phase's best, although its values are lower...
    assert progress.record({"epoch": 4, "phase": "memory"}, [0.36, 0.86])
    assert progress.best_epoch == 4
    # ... and from then on memory epochs compete with each other only.
    assert not progress.record({"epoch": 5, "phase": "memory"}, [0.35, 0.86])
    assert progress.record({"epoch": 6, "phase": "memory"}, [0.70, 0.90])
    assert (progress.best_epoch, progress.best_value) == (6, [0.70, 0.90])
    # A tie in both values goes to the later epoch (trained longer; validation cannot tell them apart).
    assert progress.record({"epoch": 7, "phase": "memory"}, [0.70, 0.90])
    assert not progress.record({"epoch": 8, "phase": "memory"}, [0.70, 0.89])
    assert progress.best_epoch == 7


def constant_metrics(model, data, videos, *args, **kwargs):
    """Stands in for validation: the same metrics every epoch, so nothing ever improves."""
    from lstm_tv.metrics import FrameMetrics

    metrics = FrameMetrics(len(data.classes), data.classes.index(data.background))
    metrics.update(np.array([0, 1, 4]), np.array([0, 0, 4]), np.array([1, 0, 0]))
    return metrics


class Said(Reporter):
    """A silent reporter that keeps the lines training says."""

    def __init__(self):
        super().__init__(enabled=False)
        self.lines = []

    def info(self, message):
        self.lines.append(message)


def test_each_phase_ends_when_its_metric_stops_improving_and_says_why(tiny_config, tmp_path, monkeypatch):
    import lstm_tv.training as training

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(training, "evaluate_model", constant_metrics)
    monkeypatch.setattr(training, "frames_alone", constant_metrics)  # the joint phase's validation
    said = Said()
    run = train(load_config(None, tiny_config + ["train.epochs=8", "train.memory_epochs=12", "train.patience=2",
                                                    "train.joint_grace=0"]),
                reporter=said)
    history = load_checkpoint(run / "last.ckpt")["progress"]["history"]
    # Best at 1, then 2 stale epochs: the learning rate drops ten-fold; 2 more: the joint phase ends.
    # The memory phase likewise, from its own first epoch, once its epochs of grace are over (4 after the first).
    assert [(r["epoch"], r["phase"]) for r in history] == [(e, "joint") for e in range(1, 6)] + [
        (e, "memory") for e in range(6, 15)]
    assert "joint phase: val metric on a plateau for 2 epochs; learning rate x0.1 from now on" in said.lines
    assert history[3]["lr"] < 0.2 * history[2]["lr"]
    assert ("joint phase ended: val frame accuracy (frames alone) did not improve for 2 epochs at the lowered "
            "learning rate") in said.lines
    assert "memory phase ended: val masked accuracy did not improve for 2 epochs at the lowered learning rate" in said.lines
    # The same values every epoch: each tie goes to the later epoch, so best.ckpt is the memory phase's last
    # epoch (never the joint phase's).
    assert load_checkpoint(run / "best.ckpt")["epoch"] == 14


def test_the_epoch_limit_ends_a_phase_and_is_said(tiny_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    said = Said()
    run = train(load_config(None, tiny_config + ["train.epochs=1", "train.patience=0"]), reporter=said)
    assert "joint phase ended: epoch limit (train.epochs=1)" in said.lines
    phases = load_checkpoint(run / "last.ckpt")["progress"]["phases"]
    assert [(p["name"], len(p["seconds"]), p["ended"]) for p in phases] == [
        ("joint", 1, "epoch limit (train.epochs=1)")]


def test_a_non_square_dataset_keeps_its_shape_through_training_prediction_and_export(tmp_path, monkeypatch):
    from lstm_tv.data.prepare import prepare_dataset
    from lstm_tv.data.synth import generate_dataset
    from lstm_tv.export import export_checkpoint
    from lstm_tv.stream import load_model, predict_video

    # 4:3 videos (32x24) prepared at short side 12: 16x12 frames, not a 12x12 square.
    cfg = load_config(None, ["synth.videos=4", "synth.frames=64", "synth.size=[32, 24]", "synth.gap_min=4",
                             "synth.gap_max=10", "data.size=12"])
    generate_dataset(tmp_path / "raw", cfg.synth, workers=1)
    manifest = prepare_dataset(tmp_path / "raw", tmp_path / "prepared", cfg.data, workers=1)
    assert manifest["size"] == [16, 12]
    data = PreparedDataset(tmp_path / "prepared")
    assert data.size == (16, 12) and data.frames(data.videos[0]).shape[1:] == (12, 16, 3)

    monkeypatch.chdir(tmp_path)
    overrides = [o for o in TINY_TRAIN if not o.startswith("data.size")]
    run = train(load_config(None, overrides + [f"data.dir={tmp_path / 'prepared'}", f"run.dir={tmp_path / 'run'}"]),
                reporter=QUIET)
    assert load_checkpoint(run / "best.ckpt")["size"] == [16, 12]
    record, model = load_model(run / "best.ckpt", torch.device("cpu"))
    video = next((tmp_path / "raw" / "videos").iterdir())
    chunks = list(predict_video(model, video, record.size, torch.device("cpu"), batch=16))
    assert sum(len(c.probs) for c in chunks) == 64
    _, sidecar, worst = export_checkpoint(run / "best.ckpt", "onnx", tmp_path / "model.onnx")
    info = json.loads(sidecar.read_text())
    assert info["input"]["shape"][2:] == [12, 16, 3] and info["input"]["size"] == [16, 12] and worst < 1e-3


def test_checkpoints_with_one_side_still_load_as_square(tiny_run, tmp_path):
    ckpt = load_checkpoint(tiny_run["ckpt"])
    ckpt["size"] = 16                                    # as checkpoints stored it before non-square frames
    save_checkpoint(tmp_path / "old.ckpt", ckpt)
    from lstm_tv.stream import load_model

    record, _ = load_model(tmp_path / "old.ckpt", torch.device("cpu"))
    assert record.size == (16, 16)


def test_resume_after_a_plateau_ended_the_joint_phase_goes_on_with_the_memory_phase(tiny_config, tmp_path,
                                                                                     monkeypatch):
    import lstm_tv.training as training
    from lstm_tv.phases import MemoryPhase

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(training, "evaluate_model", constant_metrics)
    monkeypatch.setattr(training, "frames_alone", constant_metrics)  # the joint phase's validation
    base = tiny_config + ["train.epochs=5", "train.memory_epochs=4", "train.patience=1", "train.joint_grace=0"]
    whole = train(load_config(None, base + [f"run.dir={tmp_path / 'whole'}"]), reporter=QUIET)
    real = MemoryPhase.run_epoch

    def interrupted(*args, **kwargs):                             # stopped in the first memory epoch
        raise KeyboardInterrupt

    monkeypatch.setattr(MemoryPhase, "run_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(load_config(None, base + [f"run.dir={tmp_path / 'cut'}"]), reporter=QUIET)
    monkeypatch.setattr(MemoryPhase, "run_epoch", real)
    resumed = train(None, resume=tmp_path / "cut", reporter=QUIET)
    a, b = (load_checkpoint(r / "last.ckpt")["progress"] for r in (whole, resumed))
    # Joint lowers its learning rate after epoch 2 and ends on its plateau after epoch 3; the memory phase,
    # all of whose 4 epochs are epochs of grace, ends at its epoch limit -- in both runs.
    assert [(r["epoch"], r["phase"]) for r in b["history"]] == [(1, "joint"), (2, "joint"), (3, "joint"),
                                                                 (4, "memory"), (5, "memory"), (6, "memory"),
                                                                 (7, "memory")]
    assert [r["lr"] for r in a["history"]] == [r["lr"] for r in b["history"]]
    assert [(p["name"], p["ended"]) for p in a["phases"]] == [(p["name"], p["ended"]) for p in b["phases"]]
    assert a["history"][-1]["train_loss"] == b["history"][-1]["train_loss"]
