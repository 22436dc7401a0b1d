"""What each phase trains on and how it starts: the joint phase's clips and the labels it counts, the memory
phase's plan of videos and its new cell."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from conftest import write_raw

from lstm_tv.config import load_config
from lstm_tv.data.dataset import PreparedDataset
from lstm_tv.data.prepare import prepare_dataset
from lstm_tv.distributed import Dist
from lstm_tv.model.classifier import build_model
from lstm_tv.phases import (
    MIN_JOINT_STEPS,
    MIN_MEMORY_STEPS,
    JointPhase,
    MemoryPhase,
    clips_per_epoch,
    masked_label_prior,
    memory_plan,
)


def test_a_joint_epoch_covers_the_share_of_frames_it_is_given(tiny_prepared):
    data = PreparedDataset(tiny_prepared)
    frames = sum(v.frames for v in data.split("train"))
    base = ["train.batch_size=2", "train.clip_frames=1", "train.tbptt=1"]
    whole = clips_per_epoch(load_config(None, base + ["train.epoch_frames=1.0"]), data, world=1)
    half = clips_per_epoch(load_config(None, base + ["train.epoch_frames=0.5"]), data, world=1)
    assert whole == 2 * math.ceil(frames / 2)                         # every frame once, in whole batches
    assert whole / 2 - 2 <= half <= whole / 2 + 2 and half % 2 == 0  # half of them, still whole batches
    assert clips_per_epoch(load_config(None, base + ["train.steps_per_epoch=3"]), data, world=2) == 12


def test_the_joint_phase_augments_as_the_config_says(tiny_prepared):
    data = PreparedDataset(tiny_prepared)
    model = build_model(load_config(None, []).model, len(data.classes))
    dist = Dist()
    phase = JointPhase(load_config(None, ["train.zoom=[0.9, 1.1]", "train.rotate=5"]), data, model,
                       torch.device("cpu"), dist)
    assert (phase.clips.augment.scale, phase.clips.augment.rotate) == ((0.9, 1.1), 5.0)
    off = JointPhase(load_config(None, ["train.augment=false"]), data, model, torch.device("cpu"), dist)
    assert off.clips.augment is None


def test_a_joint_epoch_takes_at_least_the_minimum_of_steps(tiny_prepared):
    # 1% of the tiny dataset's frames would be a handful of steps, too few for its metric to move.
    data = PreparedDataset(tiny_prepared)
    cfg = load_config(None, ["train.batch_size=4", "train.clip_frames=1", "train.tbptt=1", "train.epoch_frames=0.01"])
    assert clips_per_epoch(cfg, data, world=1) == MIN_JOINT_STEPS * 4
    assert clips_per_epoch(cfg, data, world=2) == MIN_JOINT_STEPS * 8


def test_a_memory_epoch_is_whole_passes_over_the_videos_making_the_minimum_of_steps():
    lengths = [300, 120, 600, 90, 300, 450, 200]                      # 7 videos, 2 per step: 4 steps a pass
    plan = memory_plan(lengths, batch=2, world=1, rng=np.random.default_rng(0))
    passes = math.ceil(MIN_MEMORY_STEPS / 4)
    assert len(plan) == passes * 4 >= MIN_MEMORY_STEPS
    seen = Counter(video for per_rank, _ in plan for video, _, _ in per_rank[0])
    assert seen == {i: passes for i in range(7)}                      # every video once per pass
    for per_rank, length in plan:                                     # padded to the step's longest video
        assert all(lead_frames == 0 for _, _, lead_frames in per_rank[0])   # no splicing asked for
        assert length == max(lengths[video] for video, _, _ in per_rank[0])


def test_every_rank_follows_one_memory_plan_with_the_same_steps():
    lengths = [100, 200, 300, 400, 500]                               # 2 ranks x 2 videos: 2 steps a pass
    plan = memory_plan(lengths, batch=2, world=2, rng=np.random.default_rng(1), splice=0.5)
    assert all(len(per_rank) == 2 for per_rank, _ in plan)
    last_of_each_pass = plan[1::2]
    assert all(sum(len(items) for items in per_rank) == 1 for per_rank, _ in last_of_each_pass)  # 5 = 4 + 1
    for per_rank, length in plan:                                     # one pad length for both ranks
        assert length == max(lengths[v] for items in per_rank for v, _, _ in items)


def test_spliced_videos_follow_the_start_of_another_video_at_their_own_length():
    lengths = [300, 120, 600, 90, 300, 450, 200]
    plan = memory_plan(lengths, batch=2, world=1, rng=np.random.default_rng(0), splice=0.5)
    items = [item for per_rank, _ in plan for item in per_rank[0]]
    spliced = [(v, lead, n) for v, lead, n in items if n > 0]
    assert 0.35 < len(spliced) / len(items) < 0.65                    # about half, as asked
    assert all(lead != v and 0 < n < min(lengths[lead], lengths[v]) for v, lead, n in spliced)
    assert all(lead == v for v, lead, n in items if n == 0)
    assert Counter(v for v, _, _ in items) == Counter(v for v, _, _ in
                                                      (i for p, _ in memory_plan(lengths, 2, 1, np.random.default_rng(0))
                                                       for i in p[0]))  # splicing changes no video's share


def test_a_spliced_item_is_the_lead_videos_first_frames_then_the_start_of_the_video(tiny_prepared):
    cfg = load_config(None, [f"data.dir={tiny_prepared}", "train.memory_splice=1.0", "train.memory_shift=0"])
    data = PreparedDataset(tiny_prepared)
    phase = MemoryPhase(cfg, data, build_model(cfg.model, len(data.classes)), torch.device("cpu"), Dist())
    phase.cache = [(torch.full((n, 4), float(i)), torch.full((n,), i)) for i, n in enumerate([5, 7, 3])]
    emb, labels = phase._item(video=1, lead=2, lead_frames=2)        # as long as video 1: its end is left out
    assert emb[:, 0].tolist() == [2.0] * 2 + [1.0] * 5 and labels.tolist() == [2] * 2 + [1] * 5
    emb, labels = phase._item(video=0, lead=0, lead_frames=0)
    assert labels.tolist() == [0] * 5


def shifted_phase(prepared, shift: float) -> MemoryPhase:
    """A memory phase over three cached videos of 5, 7 and 3 frames whose embeddings count up."""
    cfg = load_config(None, [f"data.dir={prepared}", f"train.memory_shift={shift}", "train.memory_splice=1.0"])
    data = PreparedDataset(prepared)
    phase = MemoryPhase(cfg, data, build_model(cfg.model, len(data.classes)), torch.device("cpu"), Dist())
    phase.cache = [(torch.arange(n * 4, dtype=torch.float32).view(n, 4), torch.full((n,), i))
                   for i, n in enumerate([5, 7, 3])]
    phase.emb_std = torch.tensor([1.0, 2.0, 0.0, 1.0])
    return phase


def test_memory_shift_moves_every_frame_of_a_video_by_one_vector_drawn_anew_each_epoch(tiny_prepared):
    phase = shifted_phase(tiny_prepared, shift=1.5)
    phase.shifts.manual_seed(1)
    emb, labels = phase._item(video=1, lead=1, lead_frames=0)
    moved = emb - phase.cache[1][0]
    assert torch.allclose(moved, moved[0].expand_as(moved))          # one vector for the whole video
    assert moved[0].abs().min() == 0 and moved[0, 2] == 0             # a dimension that never varies stays put
    assert moved[0].abs().sum() > 0 and labels.tolist() == [1] * 7
    other, _ = phase._item(video=1, lead=1, lead_frames=0)             # the next item: a new vector
    assert not torch.allclose(other, emb)
    phase.shifts.manual_seed(1)                                       # the same epoch again (a resumed run)
    assert torch.equal(phase._item(video=1, lead=1, lead_frames=0)[0], emb)


def test_a_spliced_item_moves_its_two_videos_apart(tiny_prepared):
    phase = shifted_phase(tiny_prepared, shift=1.0)
    phase.shifts.manual_seed(0)
    emb, _ = phase._item(video=1, lead=2, lead_frames=2)
    lead_moved = emb[:2] - phase.cache[2][0][:2]
    video_moved = emb[2:] - phase.cache[1][0][:5]
    assert torch.allclose(lead_moved[0], lead_moved[1]) and torch.allclose(video_moved, video_moved[0].expand(5, 4))
    assert not torch.allclose(lead_moved[0], video_moved[0])


class _Bar:
    def update(self, *args) -> None:
        pass


def encoded_phase(prepared, *overrides: str) -> MemoryPhase:
    """A memory phase (tiny model, 16 px) whose encoder has frozen and encoded the training videos."""
    cfg = load_config(None, [f"data.dir={prepared}", "data.size=16", "model.width=4", "model.embed=8", *overrides])
    data = PreparedDataset(prepared)
    phase = MemoryPhase(cfg, data, build_model(cfg.model, len(data.classes)), torch.device("cpu"), Dist())
    phase._freeze_and_encode(_Bar())
    return phase


def test_the_shift_is_scaled_by_the_spread_of_each_dimension_over_the_training_frames(tiny_prepared):
    phase = encoded_phase(tiny_prepared, "train.memory_shift=1.0")
    frames = torch.cat([emb for emb, _ in phase.cache])               # every training frame, (N, 8)
    assert phase.emb_std.shape == (8,) and torch.allclose(phase.emb_std, frames.std(0), rtol=1e-4)


def test_by_default_the_memory_phase_moves_each_videos_embeddings(tiny_prepared):
    phase = encoded_phase(tiny_prepared)
    phase.shifts.manual_seed(0)
    emb, _ = phase._item(video=0, lead=0, lead_frames=0)
    assert not torch.allclose(emb, phase.cache[0][0])                 # the scene has moved
    moved = emb - phase.cache[0][0]
    assert torch.allclose(moved, moved[0].expand_as(moved), atol=1e-5)  # by one vector for the whole video


def test_without_a_shift_the_memory_phase_keeps_no_spread(tiny_prepared):
    phase = encoded_phase(tiny_prepared, "train.memory_shift=0")
    assert phase.cache and phase.emb_std is None


def test_no_memory_shift_leaves_the_embeddings_as_encoded(tiny_prepared):
    phase = shifted_phase(tiny_prepared, shift=0.0)
    assert torch.equal(phase._item(video=0, lead=0, lead_frames=0)[0], phase.cache[0][0])


def joint_labels(prepared, clip_frames: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The labels one joint epoch trains on, and the true labels and memory masks of the same frames."""
    cfg = load_config(None, [f"data.dir={prepared}", "train.batch_size=16", f"train.clip_frames={clip_frames}",
                             f"train.tbptt={clip_frames}", "train.workers=0", "train.epoch_frames=1.0"])
    data = PreparedDataset(prepared)
    phase = JointPhase(cfg, data, build_model(cfg.model, len(data.classes)), torch.device("cpu"), Dist())
    trained = torch.cat([labels.reshape(-1) for _, labels in phase._batches(epoch=1)])
    truth = torch.cat([batch["labels"].reshape(-1) for batch in phase.loader])
    masks = torch.cat([batch["mask"].reshape(-1) for batch in phase.loader]).bool()
    return trained, truth, masks


def test_single_frames_train_the_frames_that_need_memory_on_the_prior_of_such_frames(tiny_prepared):
    trained, truth, masked = joint_labels(tiny_prepared, clip_frames=1)
    data = PreparedDataset(tiny_prepared)
    prior = masked_label_prior(data, len(data.classes))
    assert prior[:2].sum() == pytest.approx(1.0) and prior[:2].min() > 0  # masked frames are wolves and dogs
    # A masked frame (an ambiguous canine) alone cannot say which it is: its label is drawn afresh from how
    # often each class labels such frames, so the encoder learns "ambiguous canine", not the video it is in.
    drawn = trained[masked]
    assert set(drawn.tolist()) == {0, 1}
    assert not torch.equal(drawn, truth[masked])
    assert torch.equal(trained[~masked], truth[~masked])  # every other frame keeps its label


def test_clips_train_every_frame_on_its_own_label(tiny_prepared):
    # A clip holds what came before the frame, so its label is trained on like any other.
    trained, truth, masked = joint_labels(tiny_prepared, clip_frames=8)
    assert masked.any() and torch.equal(trained, truth)


def test_the_drawn_labels_repeat_for_an_epoch(tiny_prepared):
    first, _, _ = joint_labels(tiny_prepared, clip_frames=1)
    again, _, _ = joint_labels(tiny_prepared, clip_frames=1)
    assert torch.equal(first, again)  # so a resumed run trains on the same labels


def test_data_without_masks_has_no_prior(tmp_path):
    raw = write_raw(tmp_path / "raw", {"a": 12, "b": 12, "c": 12}, masks=False, splits={"a": "train", "b": "val", "c": "test"})
    prepare_dataset(raw, tmp_path / "prepared", load_config(None, ["data.size=16"]).data, workers=1)
    data = PreparedDataset(tmp_path / "prepared")
    assert masked_label_prior(data, len(data.classes)) is None


def test_the_memory_phase_begins_with_a_new_cell_and_head_and_the_same_encoder(tiny_prepared):
    cfg = load_config(None, [f"data.dir={tiny_prepared}", "train.workers=0"])
    data = PreparedDataset(tiny_prepared)
    model = build_model(cfg.model, len(data.classes))
    phase = MemoryPhase(cfg, data, model, torch.device("cpu"), Dist())

    def after_joint_training() -> dict:
        with torch.no_grad():  # stands in for what the joint phase leaves: every weight moved
            for p in model.parameters():
                p.add_(0.5)
        return {k: v.clone() for k, v in model.state_dict().items()}

    trained = after_joint_training()
    phase.begin()
    first = {k: v.clone() for k, v in model.state_dict().items()}
    for name, value in first.items():
        if name.startswith(("cell.", "head.")):
            assert not torch.equal(value, trained[name]), name   # a new memory and head...
        else:
            assert torch.equal(value, trained[name]), name       # ... on the encoder the joint phase trained
    after_joint_training()
    phase.begin()
    assert all(torch.equal(v, first[k]) for k, v in model.state_dict().items() if k.startswith(("cell.", "head.")))
