"""``lstm-tv evaluate``: the field's metrics and figures from a checkpoint, and the same report from prediction
files of any tool (``--pred DIR --labels SRC``), label-only files included; bad files are one line."""

import csv
import json

import numpy as np
import pytest

from lstm_tv.checkpoint import load_record
from lstm_tv.metrics import METRICS

NEW_KEYS = ("ece", "nll", "map", "cmap", "per_class_ap", "per_class_cap", "detection_delay", "risk_coverage",
            "reliability")
FORMATS_KEYS = ("frame_accuracy", "macro_f1", "per_class", "confusion", "edit", "f1@10", "f1@25", "f1@50",
                "masked_accuracy", "frames", "videos", "masked_frames")


@pytest.fixture(scope="module")
def checkpoint_report(tiny_run, tmp_path_factory):
    """``evaluate`` of the session's checkpoint on its test split: the report, its figures, what it printed."""
    from lstm_tv.evaluate import evaluate_checkpoint
    from lstm_tv.ui import Reporter

    out = tmp_path_factory.mktemp("evaluate")
    (out / "plots").mkdir()
    lines = []

    class Recorder(Reporter):
        def info(self, message):
            lines.append(message)

        def warn(self, message):
            lines.append(message)

    report = evaluate_checkpoint(tiny_run["ckpt"], split="test", report_path=out / "report.json",
                                 plot_path=out / "plots" / "confusion.png", device="cpu", reporter=Recorder())
    return report, out, lines


@pytest.fixture(scope="module")
def predictions(tiny_run, tmp_path_factory):
    """``predict --out`` of every raw video of the session's dataset: a folder of <stem>.csv."""
    from lstm_tv.predict import run_predict

    out = tmp_path_factory.mktemp("predictions")
    run_predict([tiny_run["raw"] / "videos"], checkpoint=tiny_run["ckpt"], out=out, device="cpu")
    return out


def rewrite(src, dst, keep):
    """Copy the prediction files of ``src`` into ``dst`` with only the columns ``keep(name)`` accepts."""
    dst.mkdir()
    for path in src.glob("*.csv"):
        with open(path) as f:
            rows = list(csv.reader(f))
        columns = [i for i, name in enumerate(rows[0]) if keep(name)]
        (dst / path.name).write_text("".join(",".join(row[i] for i in columns) + "\n" for row in rows))
    return dst


def test_checkpoint_report_adds_the_field_metrics_to_the_formats_keys(checkpoint_report, tiny_run):
    report, out, _ = checkpoint_report
    assert set(FORMATS_KEYS + NEW_KEYS) <= set(report)
    assert json.loads((out / "report.json").read_text()).keys() == report.keys()
    assert report["temperature"] == load_record(tiny_run["ckpt"]).temperature
    ap = [v for name, v in report["per_class_ap"].items() if name != "unknown" and v is not None]
    assert report["map"] == pytest.approx(np.mean(ap))
    assert 0 <= report["ece"] <= 1 and report["nll"] > 0
    delay = report["detection_delay"]
    assert delay["segments"] == delay["detected"] + delay["missed"] > 0
    risk = report["risk_coverage"]
    assert risk["threshold"][0] == 0 and risk["abstained"][0] == 0
    assert risk["accuracy"][0] == pytest.approx(report["frame_accuracy"])  # P = 0 keeps every frame
    assert sum(report["reliability"]["count"]) == report["frames"]
    assert report["skipped"] == {}


def test_checkpoint_report_prints_every_scalar_of_the_metric_table_and_draws_three_figures(checkpoint_report):
    report, out, lines = checkpoint_report
    figures = [out / "plots" / name for name in ("confusion.png", "reliability_test.png", "risk_coverage_test.png")]
    for path in figures:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert any(str(path) in line for line in lines)  # the path is printed
    assert {m.key for m in METRICS if m.source == "scores"} == {"map", "cmap", "ece", "nll"}


def test_print_report_shows_the_new_metrics_delay_and_the_sweep(checkpoint_report, capsys):
    from lstm_tv.evaluate import print_report
    from lstm_tv.ui import Reporter

    report, _, _ = checkpoint_report
    print_report(report, list(report["per_class"]), Reporter(), chosen=0.5)
    text = capsys.readouterr().out
    for label in ("mAP", "cmAP", "ECE", "NLL", "temperature", "detection delay", "segments never detected",
                  "risk-coverage", "0.50 (chosen)", "AP", "cAP"):
        assert label in text


def test_pred_scores_predict_files_as_the_checkpoint_is_scored(cli, predictions, checkpoint_report, tiny_run,
                                                               tmp_path):
    ckpt_report, _, _ = checkpoint_report
    r = cli("evaluate", "--pred", predictions, "--labels", tiny_run["raw"], "--split", "test",
            "--report", tmp_path / "r.json", "--plot", tmp_path / "confusion.png")
    assert r.code == 0, r.err
    report = json.loads((tmp_path / "r.json").read_text())
    for key in ("confusion", "frames", "videos", "masked_frames", "edit", "f1@50"):
        assert report[key] == ckpt_report[key]  # predict decodes the frames exactly as prepare stored them
    for key in ("frame_accuracy", "masked_accuracy", "detection_delay"):
        assert report[key] == pytest.approx(ckpt_report[key])
    for key in ("ece", "nll", "map", "cmap"):  # files round probabilities to 6 decimals
        assert report[key] == pytest.approx(ckpt_report[key], abs=2e-3)
    assert (tmp_path / "reliability_test.png").exists() and (tmp_path / "risk_coverage_test.png").exists()
    assert "mAP" in r.out and "left out" in r.out  # the other splits' files are named as left out


def test_pred_without_split_scores_every_video(cli, predictions, tiny_run, tmp_path):
    r = cli("evaluate", "--pred", predictions, "--labels", tiny_run["raw"], "--report", tmp_path / "r.json",
            "--plot", tmp_path / "c.png")
    assert r.code == 0, r.err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["videos"] == len(list(predictions.glob("*.csv"))) and report["split"] == "all"


def test_a_label_only_file_gets_every_metric_without_scores_and_says_what_it_skipped(cli, predictions, tiny_run,
                                                                                    tmp_path):
    labels_only = rewrite(predictions, tmp_path / "labels_only", lambda name: name in ("frame", "time", "label"))
    r = cli("evaluate", "--pred", labels_only, "--labels", tiny_run["raw"], "--report", tmp_path / "r.json",
            "--plot", tmp_path / "c.png")
    assert r.code == 0, r.err
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(FORMATS_KEYS) | {"detection_delay"} <= set(report)
    skipped = set(NEW_KEYS) - {"detection_delay"}
    assert skipped.isdisjoint(report) and set(report["skipped"]) == skipped
    assert "skipped map" in r.err and "skipped ece" in r.err
    assert not (tmp_path / "reliability_all.png").exists()


def test_labels_and_confidence_give_ece_without_ap(cli, predictions, tiny_run, tmp_path):
    no_probs = rewrite(predictions, tmp_path / "no_probs", lambda name: not name.startswith("p_"))
    r = cli("evaluate", "--pred", no_probs, "--labels", tiny_run["raw"], "--report", tmp_path / "r.json",
            "--plot", tmp_path / "c.png")
    assert r.code == 0, r.err
    report = json.loads((tmp_path / "r.json").read_text())
    assert "ece" in report and "risk_coverage" in report and "map" not in report and "map" in report["skipped"]


def test_classes_and_background_come_from_config_overrides(cli, predictions, tiny_run, tmp_path):
    r = cli("evaluate", "--pred", predictions, "--labels", tiny_run["raw"], "data.background=wolf",
            "--report", tmp_path / "r.json", "--plot", tmp_path / "c.png")
    assert r.code == 0, r.err
    report = json.loads((tmp_path / "r.json").read_text())
    ap = [v for name, v in report["per_class_ap"].items() if name != "wolf" and v is not None]
    assert report["map"] == pytest.approx(np.mean(ap))  # mAP leaves out the background class it was given
    r = cli("evaluate", "--pred", predictions, "--labels", tiny_run["raw"], "data.classes=[a,b]")
    assert r.code == 1 and "data.background" in r.err


def bad_predictions(predictions, tmp):
    """Broken copies of the prediction folder: name -> (folder, what the one-line error must say)."""
    missing = rewrite(predictions, tmp / "missing", lambda name: True)
    gone = sorted(missing.glob("*.csv"))[0]
    gone.unlink()
    nan = rewrite(predictions, tmp / "nan", lambda name: True)
    first = sorted(nan.glob("*.csv"))[0]
    lines = first.read_text().splitlines()
    cells = lines[3].split(",")
    cells[-1] = "nan"
    lines[3] = ",".join(cells)
    first.write_text("\n".join(lines) + "\n")
    negative = rewrite(predictions, tmp / "negative", lambda name: True)
    first_neg = sorted(negative.glob("*.csv"))[0]
    lines = first_neg.read_text().splitlines()
    cells = lines[2].split(",")
    cells[-1] = "-0.5"
    lines[2] = ",".join(cells)
    first_neg.write_text("\n".join(lines) + "\n")
    return {"missing file": (missing, f"{gone.stem}.csv: missing"),
            "NaN probability": (nan, f"{first.name}: line 4: probability 'nan' is not a finite number"),
            "negative probability": (negative, f"{first_neg.name}: line 3: negative probability")}


def test_bad_prediction_files_are_one_line_naming_the_file(cli, predictions, tiny_run, tmp_path):
    for name, (folder, message) in bad_predictions(predictions, tmp_path).items():
        r = cli("evaluate", "--pred", folder, "--labels", tiny_run["raw"], "--plot", tmp_path / "c.png")
        assert r.code == 1, name
        assert r.err.startswith("error:") and r.err.strip().count("\n") == 0, (name, r.err)
        assert message in r.err, (name, r.err)


@pytest.mark.parametrize("args, message", [
    (["--pred", "P"], "--pred needs --labels"),
    (["best.ckpt", "--pred", "P", "--labels", "L"], "without a checkpoint"),
    (["best.ckpt", "--labels", "L"], "go with --pred"),
    ([], "evaluate needs a CHECKPOINT"),
])
def test_evaluate_usage_errors_are_one_line(cli, args, message):
    r = cli("evaluate", *args)
    assert r.code == 1 and message in r.err and r.err.strip().count("\n") == 0
