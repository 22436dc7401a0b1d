"""The reliability diagram and risk-coverage curve write whole image files from a report's dicts."""

import subprocess
import sys

import numpy as np
from PIL import Image

from lstm_tv.plots_scores import reliability_diagram, risk_coverage_curve
from lstm_tv.scores import FrameScores


def report():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 300)
    probs = rng.dirichlet(np.ones(3), 300) + np.eye(3)[truth]
    acc = FrameScores(["wolf", "dog", "unknown"], background=2)
    acc.add(truth, probs.argmax(axis=1), probs=probs / probs.sum(axis=1, keepdims=True), fps=25)
    return acc.report()


def assert_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        assert min(image.size) > 100
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_reliability_diagram_writes_a_png_with_empty_bins(tmp_path):
    r = report()
    assert None in r["reliability"]["accuracy"]  # low-confidence bins are empty with 3 classes
    reliability_diagram(r["reliability"], tmp_path / "reliability.png", ece=r["ece"])
    assert_png(tmp_path / "reliability.png")


def test_risk_coverage_curve_writes_a_png_marking_the_chosen_threshold(tmp_path):
    r = report()["risk_coverage"]
    r["accuracy"][-1] = None  # nothing kept at the highest threshold
    risk_coverage_curve(r, tmp_path / "risk.png", chosen=0.5)
    assert_png(tmp_path / "risk.png")


def test_importing_the_module_does_not_import_matplotlib():
    code = "import sys, lstm_tv.plots_scores; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
