"""The pictures style of the synthetic TV dataset: real artwork, several pictures per class, 4:3 frames.

The guarantees both styles share (identical silhouettes, cues, masks, determinism, files) are tested
for both in test_synth.py.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from lstm_tv.config import SynthConfig
from lstm_tv.data.synth import Event, artwork, pictures
from lstm_tv.data.video import read_frames
from lstm_tv.errors import ConfigError


@pytest.mark.parametrize("width, height", [(160, 120), (48, 36), (40, 64)])
def test_pictures_stay_inside_the_frame(width, height):
    # The picture, tilted and mirrored, fits the square of its side centred on its pose.
    for i, kind in enumerate(["bear", "goldfish", "wolf", "dog", "ambiguous", "distractor"] * 10):
        obj = pictures.appearance_for(Event(kind, "x", 0, 30, "nature"), width, height, np.random.default_rng(i))
        for t in (0, 29):
            x, y, side = obj.pose(t)
            pic = pictures.placed(obj.design, obj.code, obj.dark, obj.flip, obj.angle, max(4, round(side)))
            assert max(pic.size) == max(4, round(side))
            assert pic.width / 2 <= x + 0.5 <= width - pic.width / 2 + 0.5
            assert pic.height / 2 <= y + 0.5 <= height - pic.height / 2 + 0.5


# ---------------------------------------------------------------------------------------------------
# The pictures style: real artwork, several pictures per class, one dark silhouette pool


@pytest.mark.parametrize("kind, least", [("wolf", 2), ("dog", 8), ("bear", 5), ("goldfish", 6), ("distractor", 20)])
def test_every_class_has_several_distinct_pictures(kind, least):
    pool = artwork.PICTURES[kind]
    assert len(pool) >= least and {design for design, _ in pool} == set(artwork.DESIGNS)
    images = [np.asarray(artwork.sprite(design, code)) for design, code in pool]
    for img in images:
        assert img.ndim == 3 and img.shape[2] == 4 and max(img.shape[:2]) >= 64  # a real drawing, not a blank
        assert (img[..., 3] >= 128).mean() > 0.2
    assert all(a.shape != b.shape or not np.array_equal(a, b) for a, b in itertools.combinations(images, 2))


@pytest.mark.parametrize("kind", ["wolf", "dog", "bear", "goldfish"])
def test_objects_of_one_class_vary_in_picture_pose_and_scale(kind):
    looks = [pictures.appearance_for(Event(kind, kind, 0, 20, "nature"), 160, 120, np.random.default_rng(i))
             for i in range(60)]
    assert {(a.design, a.code) for a in looks} == set(artwork.PICTURES[kind])  # every picture gets drawn
    assert {a.flip for a in looks} == {False, True}
    assert len({a.angle for a in looks}) > 10 and len({round(a.p0[2]) for a in looks}) > 10


def test_the_silhouette_pool_is_every_canine_picture_in_one_flat_colour():
    assert set(artwork.PICTURES["ambiguous"]) == set(artwork.PICTURES["wolf"]) | set(artwork.PICTURES["dog"])
    for design, code in artwork.PICTURES["ambiguous"]:
        img = np.asarray(artwork.silhouette(design, code, pictures.SILHOUETTE))
        opaque = img[..., 3] == 255
        assert opaque.mean() > 0.2 and set(np.unique(img[..., 3])) == {0, 255}
        assert (img[opaque][:, :3] == pictures.SILHOUETTE).all()


def test_a_missing_artwork_package_is_a_clear_error():
    with pytest.raises(artwork.ArtworkError, match="pip install no-such-artwork"):
        artwork._package_file("no_such_artwork_module", "no-such-artwork", "x.png")


# ---------------------------------------------------------------------------------------------------
# Frame sizes


@pytest.mark.parametrize("style, size, expected", [
    ("shapes", "auto", (96, 96)), ("pictures", "auto", (160, 120)), ("shapes", 32, (32, 32)),
    ("pictures", 24, (32, 24)), ("pictures", 120, (160, 120)), ("pictures", 32, (42, 32)),
    ("shapes", [64, 48], (64, 48)), ("pictures", [40, 40], (40, 40)),
])
def test_frame_size_follows_the_style(style, size, expected):
    assert SynthConfig(style=style, size=size).frame_size() == expected


@pytest.mark.parametrize("size, message", [(33, r"33 gives 44x33 frames; each side must be even"),
                                           ([160, 121], r"\[160, 121\] gives 160x121"), (8, "8 gives 10x8"),
                                           ([16], "must be auto"), ("big", "must be auto")])
def test_a_bad_frame_size_is_a_config_error(size, message):
    with pytest.raises(ConfigError, match=f"synth.size: .*{message}"):
        SynthConfig(style="pictures", size=size).frame_size()


# ---------------------------------------------------------------------------------------------------
# The synth command


def test_the_synth_command_writes_a_pictures_dataset(tmp_path, cli):
    result = cli("synth", tmp_path / "raw", "--style", "pictures", "--videos", 1, "--frames", 16, "--size", 24,
                 "--workers", 1)
    assert result.code == 0, result
    frames = _decoded(tmp_path / "raw" / "videos" / "tv_0000.mp4")
    assert len(frames) == 16 and frames[0].shape == (24, 32, 3)


def test_the_synth_command_names_the_styles_on_a_wrong_one(tmp_path, cli):
    result = cli("synth", tmp_path / "raw", "--style", "photos")
    assert result.code == 1 and "synth.style: 'photos' is not one of shapes, pictures" in result.err
    assert not (tmp_path / "raw").exists()


def _decoded(path) -> list[np.ndarray]:
    return [rgb for rgb, _ in read_frames(path)]
