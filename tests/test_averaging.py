"""The moving average of the weights: what it averages, when the model shows it, and how it resumes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lstm_tv.averaging import RAMP_STEPS, WeightAverage
from lstm_tv.checkpoint import load_checkpoint
from lstm_tv.config import load_config
from lstm_tv.train import train
from lstm_tv.ui import QUIET


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def take_steps(net: nn.Module, average: WeightAverage, steps: int, seed: int = 1) -> None:
    """SGD steps on random data, the average updated after each, as Optimisation does."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with average.training():
        net.train()
        for _ in range(steps):
            loss = net(torch.randn(8, 3, generator=gen)).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            average.update()


def weights(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_outside_training_the_model_shows_the_average_and_inside_the_weights_being_trained():
    net = tiny_net()
    average = WeightAverage(net, decay=0.99)
    take_steps(net, average, 20)
    shown = weights(net)
    assert all(torch.equal(shown[k], average.average[k]) for k in shown)
    with average.training():
        trained = weights(net)
    # The steps moved the trained weights past their average, which lags behind them.
    assert not torch.equal(trained["0.weight"], shown["0.weight"])
    assert torch.equal(net.state_dict()["0.weight"], shown["0.weight"])  # shown again on leaving


def test_training_continues_from_the_trained_weights_not_from_the_average():
    net, ref = tiny_net(), tiny_net()
    average, plain = WeightAverage(net, 0.99), WeightAverage(ref, 0.0)
    take_steps(net, average, 10, seed=1)
    take_steps(net, average, 10, seed=2)
    take_steps(ref, plain, 10, seed=1)
    take_steps(ref, plain, 10, seed=2)
    with average.training(), plain.training():
        assert torch.equal(net[0].weight, ref[0].weight)  # two epochs of steps, as if never swapped


def test_decay_zero_keeps_the_latest_weights():
    net = tiny_net()
    average = WeightAverage(net, decay=0.0)
    take_steps(net, average, 5)
    with average.training():
        trained = weights(net)
    assert all(torch.equal(trained[k], average.average[k]) for k in trained)


def test_the_average_is_a_weighted_mean_of_the_steps_and_integer_buffers_follow_the_model():
    net = tiny_net()
    average = WeightAverage(net, decay=0.9)
    first = weights(net)["0.bias"]
    d = average.current_decay()
    assert d == pytest.approx(0.9 * (1 - torch.exp(torch.tensor(-1 / RAMP_STEPS)).item()))
    take_steps(net, average, 1)
    with average.training():
        after = weights(net)
    assert torch.allclose(average.average["0.bias"], d * first + (1 - d) * after["0.bias"])
    assert average.average["1.num_batches_tracked"].item() == 1  # counted, not averaged


def test_state_round_trip_continues_exactly():
    net = tiny_net()
    average = WeightAverage(net, 0.95)
    take_steps(net, average, 7)
    state, shown = average.state_dict(), weights(net)
    take_steps(net, average, 5, seed=3)

    other = tiny_net()
    other.load_state_dict(shown)  # a checkpoint's model is the average
    again = WeightAverage(other, 0.95)
    again.load_state_dict(state)
    assert again.updates == 7
    take_steps(other, again, 5, seed=3)
    for k, v in net.state_dict().items():
        assert torch.equal(v, other.state_dict()[k]), k


def test_a_state_of_another_model_is_refused():
    average = WeightAverage(tiny_net(), 0.9)
    with pytest.raises(KeyError):
        average.load_state_dict({"trained": {"x": torch.zeros(1)}, "updates": 0})
    wrong = {k: torch.zeros(2, *v.shape) for k, v in tiny_net().state_dict().items()}
    with pytest.raises(RuntimeError):
        average.load_state_dict({"trained": wrong, "updates": 0})
    with pytest.raises(ValueError):
        WeightAverage(tiny_net(), 1.0)


def test_joint_checkpoints_hold_the_average_and_last_ckpt_the_trained_weights(tiny_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = train(load_config(None, tiny_config + ["train.epochs=2", "train.memory_epochs=0", "train.ema=0.99"]),
                reporter=QUIET)
    last, best = load_checkpoint(run / "last.ckpt"), load_checkpoint(run / "best.ckpt")
    trained = last["weight_average"]["trained"]
    assert last["weight_average"]["updates"] > 0
    assert set(trained) == set(last["model"])
    assert any(not torch.equal(trained[k], last["model"][k]) for k in trained if trained[k].is_floating_point())
    assert "weight_average" not in best  # weights for use only

    off = train(load_config(None, tiny_config + ["train.epochs=2", "train.memory_epochs=0",  # default: off
                                                 f"run.dir={tmp_path / 'off'}"]), reporter=QUIET)
    assert "weight_average" not in load_checkpoint(off / "last.ckpt")
