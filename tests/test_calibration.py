"""Temperature scaling: T recovers a known over-/under-confidence, and never makes NLL worse."""

import numpy as np
import pytest

from lstm_tv import scores
from lstm_tv.calibration import TEMPERATURE_BOUNDS, apply_temperature, fit_temperature, temperature_nll
from lstm_tv.errors import LstmTvError


def calibrated_data(n=20000, k=5, seed=0):
    """Logits and labels drawn from softmax(logits): calibrated by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, (n, k))
    probs = apply_temperature(logits, 1.0).astype(np.float64)
    labels = (probs.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return logits, labels


def top_ece(probs, labels):
    return scores.ece(probs.max(axis=1), probs.argmax(axis=1) == labels)


def test_calibrated_logits_get_a_temperature_of_one():
    logits, labels = calibrated_data()
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("factor", [3.0, 0.5])  # over-confident, under-confident
def test_scaled_logits_get_the_scale_back_and_ece_drops(factor):
    logits, labels = calibrated_data()
    scaled = logits * factor
    t = fit_temperature(scaled, labels)
    assert t == pytest.approx(factor, rel=0.05)
    before, after = top_ece(apply_temperature(scaled, 1.0), labels), top_ece(apply_temperature(scaled, t), labels)
    assert after < before / 3 and after < 0.02
    assert temperature_nll(scaled, labels, t) < temperature_nll(scaled, labels)


def test_the_fitted_temperature_is_the_minimum_of_nll():
    logits, labels = calibrated_data(n=5000, seed=1)
    logits = logits * 2.0
    t = fit_temperature(logits, labels)
    best = temperature_nll(logits, labels, t)
    for nearby in (t * 0.98, t * 1.02, 1.0):
        assert temperature_nll(logits, labels, nearby) >= best


def test_ignored_frames_are_skipped():
    logits, labels = calibrated_data(n=4000, seed=2)
    junk = np.random.default_rng(3).normal(0, 50, (1000, logits.shape[1]))
    with_ignored = np.concatenate([logits, junk]), np.concatenate([labels, np.full(500, -1), np.full(500, -100)])
    assert fit_temperature(*with_ignored) == pytest.approx(fit_temperature(logits, labels), rel=1e-9)


def test_degenerate_data_stays_within_bounds():
    # Perfectly separated and always right: no evidence either way, T stays 1 (see the test below).
    labels = np.arange(100) % 3
    separated = 5.0 * np.eye(3)[labels]
    assert fit_temperature(separated, labels) == 1.0
    # Under-confident and right but for one frame: sharper is better up to the bound, never past it.
    nearly = 0.01 * np.eye(3)[labels]
    nearly[0] = [0.0, 0.0, 0.001]
    assert TEMPERATURE_BOUNDS[0] <= fit_temperature(nearly, labels) < 0.5
    # Constant logits say nothing: every T is the same, and 1 is returned.
    assert fit_temperature(np.zeros((10, 4)), np.arange(10) % 4) == 1.0


def test_float32_logits_give_the_same_temperature_as_float64():
    logits, labels = calibrated_data(n=5000, seed=4)
    assert fit_temperature(logits.astype(np.float32) * 3, labels) == pytest.approx(fit_temperature(logits * 3, labels),
                                                                                    rel=1e-5)


def test_apply_temperature_is_softmax_of_logits_over_t():
    logits = np.array([[2.0, 0.0, -1.0], [1000.0, 0.0, 0.0]])  # second row would overflow a naive exp
    probs = apply_temperature(logits, 2.0)
    e = np.exp(np.array([1.0, 0.0, -0.5]))
    np.testing.assert_allclose(probs[0], e / e.sum(), rtol=1e-6)
    np.testing.assert_allclose(probs[1], [1.0, 0.0, 0.0], atol=1e-7)
    with pytest.raises(ValueError):
        apply_temperature(logits, 0.0)


def test_no_labelled_frame_is_a_one_line_error():
    with pytest.raises(LstmTvError, match="no labelled frames"):
        fit_temperature(np.zeros((3, 2)), np.full(3, -100))


# ---------------------------------------------------------------------------------------------------
# In use: training stores T in best.ckpt, predict applies it and abstains below --min-confidence


def _val_logits(ckpt_path):
    """best.ckpt's model streamed over its validation videos, as validation streams them."""
    import torch

    from lstm_tv.data.dataset import PreparedDataset
    from lstm_tv.stream import load_model
    from lstm_tv.validation import stream_videos

    record, model = load_model(ckpt_path, torch.device("cpu"))
    data = PreparedDataset(record.config.data.dir)
    pairs = list(stream_videos(model, data, data.split("val"), torch.device("cpu")))
    return (record, np.concatenate([logits.numpy() for _, logits in pairs]),
            np.concatenate([data.labels(video) for video, _ in pairs]))


def test_training_stores_the_temperature_fitted_on_the_validation_logits(tiny_run):
    record, logits, labels = _val_logits(tiny_run["ckpt"])
    assert record.temperature == pytest.approx(fit_temperature(logits, labels), rel=1e-6)
    assert abs(record.temperature - 1.0) > 1e-3  # two training steps leave the logits far from calibrated
    assert temperature_nll(logits, labels, record.temperature) < temperature_nll(logits, labels)


def test_training_logs_the_temperature(tiny_config, cli):
    r = cli("train", *tiny_config)
    assert r.code == 0, r.err
    line = next(line for line in r.out.splitlines() if line.startswith("temperature T="))
    assert "(val NLL " in line and " -> " in line and "best.ckpt" in line


def _predict_csv(cli, video, ckpt, out, *extra):
    import csv

    r = cli("predict", video, "--checkpoint", ckpt, "--out", out, *extra)
    assert r.code == 0, r.err
    with open(out) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def video_logits(tiny_run):
    """A raw video of the session's run and its logits from one forward over all its frames."""
    import torch

    from lstm_tv.data.video import read_frames
    from lstm_tv.stream import load_model

    record, model = load_model(tiny_run["ckpt"], torch.device("cpu"))
    video = sorted((tiny_run["raw"] / "videos").glob("*.mp4"))[0]
    frames = np.stack([rgb for rgb, _ in read_frames(video, record.size)])
    with torch.inference_mode():
        logits = model(torch.from_numpy(frames)[None])[0][0].numpy()  # (1, T, K) -> (T, K)
    return record, video, logits


def test_predict_writes_the_calibrated_probabilities(cli, tiny_run, video_logits, tmp_path):
    record, video, logits = video_logits
    rows = _predict_csv(cli, video, tiny_run["ckpt"], tmp_path / "p.csv")
    written = np.array([[float(row[f"p_{c}"]) for c in record.classes] for row in rows])
    np.testing.assert_allclose(written, apply_temperature(logits, record.temperature), atol=2e-5)
    assert not np.allclose(written, apply_temperature(logits, 1.0), atol=1e-3)


@pytest.fixture(scope="module")
def never_background(tiny_run, tmp_path_factory):
    """The session's checkpoint with the background logit lowered by 5: its top class is never background."""
    import dataclasses

    from lstm_tv.checkpoint import load_record, save_checkpoint

    record = load_record(tiny_run["ckpt"])
    weights = dict(record.weights)
    bias = weights["head.bias"].clone()
    bias[record.classes.index(record.background)] -= 5.0
    weights["head.bias"] = bias
    path = tmp_path_factory.mktemp("never_background") / "best.ckpt"
    save_checkpoint(path, dataclasses.replace(record, weights=weights).to_payload())
    return path


def test_min_confidence_labels_unsure_frames_background_and_keeps_the_probabilities(cli, never_background,
                                                                                      video_logits, tmp_path):
    record, video, _ = video_logits
    plain = _predict_csv(cli, video, never_background, tmp_path / "plain.csv")
    assert record.background not in {row["label"] for row in plain}
    confidence = np.array([float(row["confidence"]) for row in plain])
    p = float(np.median(confidence))  # about half the frames fall below
    sure = _predict_csv(cli, video, never_background, tmp_path / "sure.csv", "--min-confidence", p)
    for a, b in zip(plain, sure, strict=True):
        assert {k: v for k, v in a.items() if k != "label"} == {k: v for k, v in b.items() if k != "label"}
        assert b["label"] == (record.background if float(a["confidence"]) < p else a["label"])
    abstained = sum(row["label"] == record.background for row in sure)
    assert 0 < abstained < len(sure)


def test_min_confidence_defaults_to_the_checkpoint_config_key(cli, never_background, video_logits, tmp_path):
    import dataclasses

    from lstm_tv.checkpoint import load_record, save_checkpoint

    record, video, _ = video_logits
    stored = load_record(never_background)
    config = dataclasses.replace(stored.config, predict=dataclasses.replace(stored.config.predict, min_confidence=1.0))
    save_checkpoint(tmp_path / "sure.ckpt", dataclasses.replace(stored, config=config).to_payload())
    rows = _predict_csv(cli, video, tmp_path / "sure.ckpt", tmp_path / "p.csv")
    assert {row["label"] for row in rows} == {record.background}  # no frame is sure at P = 1
    rows = _predict_csv(cli, video, tmp_path / "sure.ckpt", tmp_path / "q.csv", "--min-confidence", 0)
    assert record.background not in {row["label"] for row in rows}


def test_min_confidence_outside_0_1_is_one_line(cli, tiny_run, video_logits, tmp_path):
    r = cli("predict", video_logits[1], "--checkpoint", tiny_run["ckpt"], "--min-confidence", 1.5)
    assert r.code == 1 and r.err.strip().count("\n") == 0 and "--min-confidence 1.5" in r.err


def test_a_split_without_a_single_mistake_keeps_the_temperature_at_one():
    # Every frame's top class is right: the NLL only falls as T -> 0, a fit would make every later
    # mistake near-certain. There is no evidence of over-confidence, so T stays 1.
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 500)
    logits = rng.normal(size=(500, 4)).astype(np.float32)
    logits[np.arange(500), labels] += 6.0
    assert (logits.argmax(1) == labels).all()
    assert fit_temperature(logits, labels) == 1.0
