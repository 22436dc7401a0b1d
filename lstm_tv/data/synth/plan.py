"""The timeline of a synthetic TV video: channels, scenes, cues, gaps, silhouettes and distractors.

A plan says what is on screen when and with which label; it draws no pixels, so every style of
:mod:`lstm_tv.data.synth` shares it, and with it every memory guarantee (see the package docstring).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from lstm_tv.config import DEFAULT_CLASSES, SynthConfig

WOLF, DOG, BEAR, GOLDFISH, UNKNOWN = DEFAULT_CLASSES
CHANNELS = ("nature", "dog_office")
NATURE, DOG_OFFICE = CHANNELS

# Per channel: the animal only it shows and its canine (the label of an ambiguous canine there).
CHANNEL_ANIMAL = {NATURE: BEAR, DOG_OFFICE: GOLDFISH}
CHANNEL_CANINE = {NATURE: WOLF, DOG_OFFICE: DOG}
CUE_KINDS = ("bear", "goldfish", "wolf", "dog")  # Event.kind of the events that reveal the channel

APPEARANCE_FRAMES = (12, 36)  # inclusive range of an animal's or distractor's on-screen frames
LEAD_IN_FRAMES = (2, 12)      # empty frames at the start of a scene, before its first cue
FILLER_FRAMES = (4, 30)       # unknown frames after a silhouette (and between a double cue)
DISTRACTOR_WAIT = (0, 20)     # empty frames before each distractor in an unknown stretch
EXTRA_CUE_PROB = 0.25         # a cycle sometimes shows two cues, so the cue count carries no signal

# Seed streams: each piece of a video draws from its own generator (see rng_for).
PLAN, SCENE, OBJECT, NOISE = range(4)


@dataclass
class Event:
    """One object on screen for frames ``[start, end)``.

    ``kind`` is what is drawn: ``bear``, ``goldfish``, ``wolf`` / ``dog`` (clear canines), ``ambiguous``
    (the silhouette) or ``distractor``; ``label`` is its class (``unknown`` for distractors).
    """

    kind: str
    label: str
    start: int
    end: int
    channel: str
    ambiguous: bool = False


@dataclass
class VideoPlan:
    """A video's timeline: per-frame labels, mask and hidden channel, the events, and the scene cuts."""

    labels: list[str]
    mask: np.ndarray        # uint8 (T,): 1 where the frame alone cannot settle the class
    channel: list[str]
    events: list[Event]
    cuts: list[int] = field(default_factory=list)  # first frame of every scene after the first


def plan_video(cfg: SynthConfig, rng: np.random.Generator) -> VideoPlan:
    """Draw one video's timeline (no rendering): two scenes around a cut, cues, gaps, silhouettes.

    Args:
        cfg: frames, gap range and switch probability.
        rng: the only source of randomness.
    Returns:
        The plan; ``labels``, ``mask`` and ``channel`` have ``cfg.frames`` entries.
    """
    frames = cfg.frames
    cut = int(rng.integers(frames // 3, 2 * frames // 3 + 1))  # somewhere in the middle third
    first = CHANNELS[int(rng.integers(len(CHANNELS)))]
    switch = bool(rng.random() < cfg.switch_prob)
    second = _other(first) if switch else first
    scenes = [(0, cut, first), (cut, frames, second)]

    events: list[Event] = []
    for start, end, channel in scenes:
        events += _plan_scene(start, end, channel, cfg, rng)
    for start, end, channel in scenes:
        events += _plan_distractors(start, end, channel, events, rng)
    events.sort(key=lambda e: e.start)

    labels = [UNKNOWN] * frames
    mask = np.zeros(frames, dtype=np.uint8)
    for e in events:
        labels[e.start:e.end] = [e.label] * (e.end - e.start)
        mask[e.start:e.end] = e.ambiguous
    channel_of = [first] * cut + [second] * (frames - cut)
    return VideoPlan(labels, mask, channel_of, events, [cut])


def video_plan(cfg: SynthConfig, index: int) -> VideoPlan:
    """The plan of video ``index`` of the dataset ``cfg`` describes."""
    return plan_video(cfg, rng_for(cfg.seed, index, PLAN))


def _plan_scene(start: int, end: int, channel: str, cfg: SynthConfig, rng: np.random.Generator) -> list[Event]:
    """Fill one scene with cycles of [cue, gap of unknown, silhouette, unknown filler].

    A scene holds one channel, so a cue never straddles a switch, and the scene's first silhouette
    always follows a cue of the scene's own channel.
    """
    events: list[Event] = []
    t = start + draw_int(rng, LEAD_IN_FRAMES)
    while True:
        # Draw every length of the cycle up front, so the number of draws does not depend on what fits.
        cue, gap, silhouette, filler = (draw_int(rng, APPEARANCE_FRAMES), draw_int(rng, (cfg.gap_min, cfg.gap_max)),
                                        draw_int(rng, APPEARANCE_FRAMES), draw_int(rng, FILLER_FRAMES))
        extra, extra_filler = draw_int(rng, APPEARANCE_FRAMES), draw_int(rng, FILLER_FRAMES)
        want_extra = rng.random() < EXTRA_CUE_PROB
        kinds = [_cue_kind(channel, rng) for _ in range(2)]

        cycle = cue + gap + silhouette
        if want_extra and t + extra + extra_filler + cycle <= end:
            events.append(_animal(kinds[1], t, t + extra, channel))
            t += extra + extra_filler
        if t + cycle > end:
            # No room for cue + gap + silhouette: end the scene with a lone cue if it fits.
            if t + cue <= end:
                events.append(_animal(kinds[0], t, t + cue, channel))
            return events
        events.append(_animal(kinds[0], t, t + cue, channel))
        t += cue + gap  # the gap stays empty of animals: distractors only
        events.append(Event("ambiguous", CHANNEL_CANINE[channel], t, t + silhouette, channel, ambiguous=True))
        t += silhouette + filler


def _plan_distractors(start: int, end: int, channel: str, events: Sequence[Event],
                      rng: np.random.Generator) -> list[Event]:
    """Put distractors in the free stretches of one scene (same rule on both channels)."""
    busy = sorted((e.start, e.end) for e in events if start <= e.start < end)
    free, t = [], start
    for a, b in busy:
        free.append((t, a))
        t = b
    free.append((t, end))

    out = []
    for a, b in free:
        t = a
        while True:
            t += draw_int(rng, DISTRACTOR_WAIT)
            n = draw_int(rng, APPEARANCE_FRAMES)
            if t + n > b:
                break
            out.append(Event("distractor", UNKNOWN, t, t + n, channel))
            t += n
    return out


def _cue_kind(channel: str, rng: np.random.Generator) -> str:
    """A cue of ``channel``: its own animal or its clear canine, half and half on both channels."""
    return CHANNEL_ANIMAL[channel] if rng.random() < 0.5 else CHANNEL_CANINE[channel]


def _animal(kind: str, start: int, end: int, channel: str) -> Event:
    return Event(kind, kind, start, end, channel)


def _other(channel: str) -> str:
    return CHANNELS[1 - CHANNELS.index(channel)]


def draw_int(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    """Uniform integer in the inclusive range ``bounds``."""
    return int(rng.integers(bounds[0], bounds[1] + 1))


def rng_for(seed: int, index: int, stream: int, *more: int) -> np.random.Generator:
    """The generator of one piece of one video: depends on nothing but its numbers."""
    return np.random.default_rng([seed, index, stream, *more])


