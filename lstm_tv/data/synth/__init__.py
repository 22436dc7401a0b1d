"""Synthetic TV: a video dataset whose labels only a model with memory can get right.

The story
---------
Every video is a TV programme on a hidden channel, ``nature`` or ``dog_office``. Each video has one
scene cut somewhere in its middle third (new background, new lighting); with probability
``cfg.switch_prob`` the channel changes at that cut.

How memory is made necessary
----------------------------
* **Cues name the channel.** Bears appear only on nature, goldfish only on dog_office. Clear canines
  look different for the two species: wolves appear only on nature, dogs only on dog_office.
* **Ambiguous canines do not.** A near-black silhouette is drawn by the same code from the same random
  draw whether its label is wolf or dog: every style's ``appearance_for`` looks only at ``Event.kind``
  (``"ambiguous"``), never at the label or the channel. Its label is the channel's canine (wolf on
  nature, dog on dog_office) and its frames get mask 1. Both channels show silhouettes equally often,
  so from one frame a silhouette is a coin flip.
* **The answer lies in the past.** Every silhouette is preceded, within its scene, by a cue of its own
  channel, then a gap of ``gap_min..gap_max`` (uniform) ``unknown`` frames -- empty scenes and
  distractors -- so the model must carry the cue across the gap.
* **Nothing else tells the channels apart.** Backgrounds, lighting, noise and distractors come from one
  pool drawn by the same code, and the plan is symmetric: swapping the channels (with bear<->goldfish,
  wolf<->dog) maps every plan to an equally likely one.
* **Cuts do not reveal switches.** Every video has a cut, switch or not, and every scene opens with a
  fresh cue before its first silhouette, so the model must trust the newest cue, not the first.

Randomness
----------
Each video draws from generators seeded by ``(seed, video index, stream)`` -- one for the timeline,
one per scene, one per object, one for noise -- so a video's content depends only on ``(seed, index)``,
not on the worker count or on the order in which videos are rendered.

Styles
------
The plan is drawn by one of the styles in :data:`~lstm_tv.data.synth.render.STYLES` (``synth.style``):
``shapes`` (drawn animals, the default) or ``pictures`` (emoji artwork; see
:mod:`lstm_tv.data.synth.pictures` for the artwork and its licences). Every style draws an ambiguous
canine from ``Event.kind`` alone.

Modules: ``plan`` (the timeline), ``look`` (scene, motion, the style interface), ``shapes`` and
``shapes_draw``, ``pictures`` and ``artwork``, ``render`` (plan -> frames), ``dataset`` (files on disk).
Output is the raw layout of docs/formats.md, written to a temporary sibling directory and renamed
into place at the end, so an interrupted run leaves nothing under ``OUT``.
"""

from lstm_tv.data.synth.dataset import (
    generate_dataset,
    label_segments,
    segments_csv,
    split_names,
    video_stem,
    write_video,
)
from lstm_tv.data.synth.plan import CHANNELS, CUE_KINDS, Event, VideoPlan, plan_video, video_plan
from lstm_tv.data.synth.render import STYLES, render_canine, render_event_frame, synth_frames

__all__ = [
    "CHANNELS", "CUE_KINDS", "STYLES", "Event", "VideoPlan", "generate_dataset", "label_segments", "plan_video",
    "render_canine", "render_event_frame", "segments_csv", "split_names", "synth_frames", "video_plan",
    "video_stem", "write_video",
]
