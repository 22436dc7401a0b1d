"""How much one joint epoch trains on: the clips drawn per epoch."""

from __future__ import annotations

import math

from lstm_tv.config import load_config
from lstm_tv.data.dataset import PreparedDataset
from lstm_tv.phases import clips_per_epoch


def test_a_joint_epoch_covers_the_share_of_frames_it_is_given(tiny_prepared):
    data = PreparedDataset(tiny_prepared)
    frames = sum(v.frames for v in data.split("train"))
    base = ["train.batch_size=2", "train.clip_frames=32", "train.tbptt=16"]
    whole = clips_per_epoch(load_config(None, base), data, world=1)
    half = clips_per_epoch(load_config(None, base + ["train.epoch_frames=0.5"]), data, world=1)
    assert whole == 2 * math.ceil(math.ceil(frames / 32) / 2)        # every frame once, in whole batches
    assert whole / 2 - 2 <= half <= whole / 2 + 2 and half % 2 == 0  # half of them, still whole batches
    assert clips_per_epoch(load_config(None, base + ["train.steps_per_epoch=3"]), data, world=2) == 12
