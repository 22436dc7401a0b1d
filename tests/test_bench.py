"""`lstm-tv bench`: every cell trained and tested on short and long gaps, tables and a figure, data reused."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest

from lstm_tv.bench import bench_config, run_bench
from lstm_tv.bench_data import GAP_SETTINGS, cue_distances
from lstm_tv.bench_report import distance_rows, summarise
from lstm_tv.config import load_config
from lstm_tv.data.synth import CUE_KINDS, video_plan
from lstm_tv.errors import ConfigError, LstmTvError


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_quick_bench_end_to_end_and_rerun_reuses_the_data(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # train() points runs/latest at its run, relative to the working directory
    out = tmp_path / "bench"
    result = cli("bench", "--quick", "--out", out)
    assert result.code == 0, result
    assert not os.path.lexists("runs/latest")  # the bench leaves the user's latest run as it was: none
    assert "memory bench" in result.out and result.out.count("│ lstm") == 2  # the table: one row per gap setting

    rows = read_csv(out / "results.csv")
    assert sorted((r["cell"], r["gaps"]) for r in rows) == sorted(
        (cell, gaps) for cell in ("none", "rnn", "lstm") for gaps in GAP_SETTINGS)
    for r in rows:
        assert r["seeds"] == "1" and r["failed"] == "0"
        for key in ("masked_accuracy", "frame_accuracy", "macro_f1"):
            assert 0.0 <= float(r[key]) <= 1.0, (r["cell"], key)
        assert 0.0 <= float(r["edit"]) <= 100.0 and 0.0 <= float(r["f1@50"]) <= 100.0
        assert 0 < int(r["memory_params"]) < int(r["total_params"])
    params = {r["cell"]: int(r["memory_params"]) for r in rows}
    assert params["none"] < params["lstm"]

    runs = read_csv(out / "runs.csv")
    assert len(runs) == 6 and {r["status"] for r in runs} == {"ok"}
    assert all((out / "runs" / f"{r['cell']}-{r['gaps']}-s{r['seed']}" / "best.ckpt").is_file() for r in runs)
    markdown = (out / "results.md").read_text()
    assert markdown.count("\n| none |") == 2 and "| lstm |" in markdown
    assert (out / "masked_accuracy_by_gap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Distance bins: masked frames of both datasets, each counted once per cell (one seed).
    by_distance = read_csv(out / "accuracy_by_distance.csv")
    masked_frames = sum(int(r["masked_frames"]) for r in runs if r["cell"] == "lstm")
    assert sum(int(r["frames"]) for r in by_distance if r["cell"] == "lstm") == masked_frames > 0
    assert max(int(r["distance_from"]) for r in by_distance) >= GAP_SETTINGS["long"][0]

    # A re-run trains again but generates and prepares nothing: the datasets keep their files.
    data_files = sorted(p for p in (out / "data").rglob("*") if p.is_file())
    mtimes = {p: p.stat().st_mtime_ns for p in data_files}
    again = cli("bench", "--quick", "--out", out, "--cells", "none")
    assert again.code == 0, again
    assert "reusing" in again.out and "generating" not in again.out
    assert sorted(p for p in (out / "data").rglob("*") if p.is_file()) == data_files
    assert {p: p.stat().st_mtime_ns for p in data_files} == mtimes
    assert [(r["cell"], r["gaps"]) for r in read_csv(out / "results.csv")] == [("none", "short"), ("none", "long")]


def test_resume_keeps_finished_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "mine").mkdir(parents=True)
    os.symlink("mine", tmp_path / "runs" / "latest")          # the user's own latest run
    first = run_bench(tmp_path / "b", cells=["none"], gaps=["short"], quick=True)
    ckpt = tmp_path / "b" / "runs" / "none-short-s0" / "best.ckpt"
    stamp = ckpt.stat().st_mtime_ns
    second = run_bench(tmp_path / "b", cells=["none"], gaps=["short"], quick=True, resume=True)
    assert ckpt.stat().st_mtime_ns == stamp                       # not retrained
    assert second.rows[0]["masked_accuracy"] == first.rows[0]["masked_accuracy"]
    # A changed budget is another run: retrained, not reused.
    run_bench(tmp_path / "b", cells=["none"], gaps=["short"], quick=True, resume=True, overrides=["train.lr=0.001"])
    assert ckpt.stat().st_mtime_ns != stamp
    assert os.readlink(tmp_path / "runs" / "latest") == "mine"


def test_a_failing_run_does_not_lose_the_others(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    import lstm_tv.bench as B

    real = B.evaluate_run

    def broken_for_rnn(checkpoint, dataset, *args):
        if "rnn-" in str(checkpoint):
            raise RuntimeError("simulated failure")
        return real(checkpoint, dataset, *args)

    monkeypatch.setattr(B, "evaluate_run", broken_for_rnn)
    with pytest.raises(LstmTvError, match="1 of 2 bench runs failed"):
        run_bench(tmp_path / "b", cells=["rnn", "none"], gaps=["short"], quick=True)
    runs = {r["cell"]: r for r in read_csv(tmp_path / "b" / "runs.csv")}
    assert runs["rnn"]["status"] == "failed" and "simulated failure" in runs["rnn"]["error"]
    assert runs["none"]["status"] == "ok" and runs["none"]["frame_accuracy"] != ""
    assert "simulated failure" in (tmp_path / "b" / "runs" / "rnn-short-s0" / "error.txt").read_text()


@pytest.mark.parametrize("args, message", [
    (["--cells", "lstm,transformer"], "--cells: unknown 'transformer'"),
    (["--gaps", "medium"], "--gaps: unknown 'medium'"),
    (["--seeds", "0"], "--seeds: need at least 1"),
    (["model.cell=gru"], "model.cell: set by the bench for each run; use --cells"),
    (["synth.gap_max=30"], "synth.gap_max: set by the bench"),
    (["train.epoch=3"], "did you mean train.epochs"),
])
def test_bad_options_are_one_line_errors(cli, tmp_path, args, message):
    result = cli("bench", "--quick", "--out", tmp_path / "b", *args)
    assert result.code == 1 and message in result.err, result
    assert not (tmp_path / "b" / "runs").exists()


def test_config_file_may_repeat_the_defaults_of_bench_keys(tmp_path):
    # A full copy of configs/default.yaml names model.cell and data.dir with their default values: fine.
    from lstm_tv.config import Config, render_yaml

    path = tmp_path / "full.yaml"
    default = Config()
    path.write_text(render_yaml(default).replace(f"memory_epochs: {default.train.memory_epochs}", "memory_epochs: 3"))
    cfg = bench_config(path)
    assert cfg.train.memory_epochs == 3
    path.write_text("model:\n  cell: gru\n")
    with pytest.raises(ConfigError, match="model.cell in .*full.yaml: set by the bench"):
        bench_config(path)


@pytest.mark.parametrize("gaps", list(GAP_SETTINGS))
def test_cue_distances_follow_the_plan(gaps):
    gap_min, gap_max = GAP_SETTINGS[gaps]
    cfg = load_config(None, ["synth.frames=600", f"synth.gap_min={gap_min}", f"synth.gap_max={gap_max}"]).synth
    for index in range(6):
        plan = video_plan(cfg, index)
        distance = cue_distances(plan)
        assert np.array_equal(distance > 0, plan.mask.astype(bool))
        for event in (e for e in plan.events if e.ambiguous):
            d = distance[event.start:event.end]
            # Frames since the cue: one more per frame, starting at gap + 1 (the gap is all unknown frames).
            assert np.array_equal(np.diff(d), np.ones(len(d) - 1))
            assert gap_min + 1 <= d[0] <= gap_max + 1
            cue_end = event.start - d[0] + 1
            assert any(c.end == cue_end and c.kind in CUE_KINDS for c in plan.events)


def test_summary_pools_seeds_and_bins_distances():
    def result(cell, seed, masked, frames, correct):
        return {"cell": cell, "gaps": "long", "seed": seed, "status": "ok", "masked_accuracy": masked,
                "frame_accuracy": 0.9, "macro_f1": 0.8, "edit": 70.0, "f1@50": 60.0, "train_seconds": 10.0,
                "memory_params": 100, "total_params": 1000, "by_distance": {"frames": frames, "correct": correct}}

    results = [result("lstm", 0, 0.8, [0] * 70 + [10], [0] * 70 + [8]),
               result("lstm", 1, 1.0, [0] * 70 + [10, 0, 5], [0] * 70 + [10, 0, 5]),
               {"cell": "lstm", "gaps": "long", "seed": 2, "status": "failed", "error": "x"}]
    (row,) = summarise(results, ["lstm"], ["long"])
    assert row["seeds"] == 2 and row["failed"] == 1
    assert row["masked_accuracy"] == pytest.approx(0.9)
    assert row["masked_accuracy_std"] == pytest.approx(0.1414, abs=1e-3)  # sample std of 0.8 and 1.0
    (bin_row,) = distance_rows(results, ["lstm"])
    assert (bin_row["distance_from"], bin_row["distance_to"], bin_row["frames"], bin_row["correct"]) == (60, 80, 25, 23)

