"""Clip augmentation: one transform per clip, drawn reproducibly, applied to a whole batch at once."""

from __future__ import annotations

import math

import numpy as np
import torch

from lstm_tv.config import load_config
from lstm_tv.data.augment import PARAMS, ClipAugment
from lstm_tv.data.dataset import ClipDataset, PreparedDataset

# top, left, box 24 x 32 (the whole frame), no flip, gain 1, contrast 1, no rotation
IDENTITY = [0, 0, 24, 32, 0, 1, 1, 1, 1, 0]
DEFAULT = ClipAugment.from_config(load_config(None, []).train)  # the augmentation training uses


def frames(b=2, length=3, h=24, w=32, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (b, length, h, w, 3), dtype=np.uint8))


def params(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_the_identity_transform_returns_the_frames_unchanged():
    x = frames()
    assert torch.equal(ClipAugment.apply(x, params(IDENTITY, IDENTITY)), x)


def test_a_flip_mirrors_every_frame_of_its_clip_only():
    x = frames()
    flipped = list(IDENTITY)
    flipped[4] = 1
    y = ClipAugment.apply(x, params(flipped, IDENTITY))
    assert torch.equal(y[0], x[0].flip(2)) and torch.equal(y[1], x[1])


def test_a_crop_magnifies_its_box_to_the_whole_frame():
    x = torch.zeros(1, 2, 24, 32, 3, dtype=torch.uint8)
    x[..., 16:, :] = 255                                   # left half black, right half white
    left_half = [0, 0, 24, 16, 0, 1, 1, 1, 1, 0]
    right_half = [4, 16, 16, 16, 0, 1, 1, 1, 1, 0]
    # At the box's edges bilinear sampling may blend in a quarter of the pixel beside it (beyond the frame,
    # the frame's mean colour); everywhere inside, only the box shows.
    assert int(ClipAugment.apply(x, params(left_half))[..., 1:-1, :].max()) == 0
    assert int(ClipAugment.apply(x, params(right_half))[..., 1:-1, :].min()) == 255


def test_a_box_larger_than_the_frame_shrinks_it_onto_its_mean_colour():
    x = torch.zeros(1, 1, 24, 32, 3, dtype=torch.uint8)
    x[..., 16:, :] = 200                                   # mean colour 100
    twice = [-12, -16, 48, 64, 0, 1, 1, 1, 1, 0]           # the frame in the middle of a box twice its size
    y = ClipAugment.apply(x, params(twice))[0, 0]
    assert y[0, 0].tolist() == [100, 100, 100] and y[-1, -1].tolist() == [100, 100, 100]  # around: the mean
    assert y[12, 8].tolist() == [0, 0, 0] and y[12, 23].tolist() == [200, 200, 200]  # inside: the frame, halved


def test_a_rotation_turns_the_frame_about_the_box_centre():
    x = frames(b=1, length=1)
    half_turn = [0, 0, 24, 32, 0, 1, 1, 1, 1, math.pi]
    assert torch.equal(ClipAugment.apply(x, params(half_turn)), x.flip(2, 3))  # upside down and mirrored
    x = torch.zeros(1, 1, 24, 32, 3, dtype=torch.uint8)
    x[:, :, 11:13, :] = 255                                # a horizontal bar through the centre
    quarter = [0, 0, 24, 32, 0, 1, 1, 1, 1, math.pi / 2]
    y = ClipAugment.apply(x, params(quarter))[0, 0, :, :, 0]
    # Turned in pixels, not in the -1..1 grid: the bar stands vertical and the turned frame is 24 px wide,
    # with the frame's mean colour (2/24 of 255) beside it.
    assert int(y[:, 15:17].min()) == 255 and int(y[0, 4:14].max()) == 0
    assert int(y[:, :3].min()) == int(y[:, -3:].max()) == 21


def test_colour_is_a_gain_per_channel_and_a_contrast_around_mid_grey():
    x = torch.full((1, 1, 24, 32, 3), 100, dtype=torch.uint8)
    colour = [0, 0, 24, 32, 0, 2.0, 1.0, 0.5, 1.0, 0]
    assert ClipAugment.apply(x, params(colour))[0, 0, 0, 0].tolist() == [200, 100, 50]
    contrast = [0, 0, 24, 32, 0, 1.0, 1.0, 1.0, 2.0, 0]
    assert ClipAugment.apply(x, params(contrast))[0, 0, 0, 0].tolist() == [72, 72, 72]   # (100-128)*2+128
    bright = [0, 0, 24, 32, 0, 4.0, 4.0, 4.0, 1.0, 0]
    assert ClipAugment.apply(x, params(bright))[0, 0, 0, 0].tolist() == [255, 255, 255]  # clipped, not wrapped


def test_every_frame_of_a_clip_gets_the_same_transform():
    still = frames(b=1, length=1).repeat(1, 4, 1, 1, 1)   # a clip of 4 identical frames
    drawn = DEFAULT.draw(np.random.default_rng(3), 24, 32)
    y = ClipAugment.apply(still, torch.from_numpy(drawn)[None])
    assert all(torch.equal(y[0, t], y[0, 0]) for t in range(4))
    assert not torch.equal(y[0, 0], still[0, 0])


def test_draws_repeat_for_a_seed_and_zoom_both_ways_without_losing_the_frame():
    augment = DEFAULT
    a = augment.draw(np.random.default_rng([1, 2, 3]), 48, 64)
    assert a.shape == (PARAMS,) and np.array_equal(a, augment.draw(np.random.default_rng([1, 2, 3]), 48, 64))
    areas = []
    for seed in range(300):
        top, left, ch, cw, flip, *_, angle = augment.draw(np.random.default_rng(seed), 48, 64)
        for start, extent, side in ((top, ch, 48), (left, cw, 64)):
            if extent <= side:   # a crop lies inside the frame
                assert 0 <= start and start + extent <= side
            else:                # a larger box holds the whole frame
                assert start <= 0 and start + extent >= side
        assert flip in (0.0, 1.0) and abs(angle) <= math.radians(augment.rotate) + 1e-6
        areas.append(ch * cw / (48 * 64))
    assert min(areas) < 0.8 and max(areas) > 1.4  # zooms in and out


def test_the_dataset_hands_each_clip_its_transform_and_leaves_the_pixels_alone(tiny_prepared):
    data = PreparedDataset(tiny_prepared)
    plain = ClipDataset(data, "train", 4, 6, seed=0)
    augmented = ClipDataset(data, "train", 4, 6, seed=0, augment=DEFAULT)
    assert "augment" not in plain[0]
    assert torch.equal(augmented[0]["frames"], plain[0]["frames"])  # applied later, to the whole batch
    assert augmented[0]["augment"].shape == (PARAMS,)
    again = ClipDataset(data, "train", 4, 6, seed=0, augment=DEFAULT)
    assert torch.equal(again[0]["augment"], augmented[0]["augment"])
