"""The settings themselves: one typed dataclass per config section, each field with its default, its
meaning and its allowed range or choices (:func:`setting`), and helpers that list them.

:mod:`lstm_tv.config.loading` turns YAML files and ``KEY=VALUE`` overrides into these dataclasses and
writes them back out as YAML.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Union

from lstm_tv.errors import ConfigError
from lstm_tv.metrics import TRACKED

DEFAULT_CLASSES = ["wolf", "dog", "bear", "goldfish", "unknown"]


def _registered_cells() -> str:
    # Deferred: the cell registry imports torch, which only rendering the help needs.
    from lstm_tv.model.cells import describe_cells

    return describe_cells()


def setting(default: Any, help: str, *, min: float | None = None, max: float | None = None,
            choices: tuple | None = None, names: Callable[[], str] | None = None) -> Any:
    """A dataclass field with its meaning and allowed range (inclusive) or choices; ``names`` fills
    ``{names}`` in ``help`` from a registry when the help is rendered."""
    meta = {"help": help, "min": min, "max": max, "choices": choices, "names": names}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    dir: str = setting("data/synth/prepared", "prepared dataset that train and evaluate read")
    raw: str = setting("data/synth/raw", "raw dataset (videos/ + labels/) that train prepares into data.dir when it "
                                         "is missing")
    synthesize: bool = setting(True, "generate the synthetic TV dataset into data.raw when both data.dir and data.raw "
                                     "are missing")
    size: Union[int, list[int]] = setting(48, "frame size prepare resizes every frame to: the short side N (the long "
                                          "side keeps the videos' aspect ratio) or [W, H]; 8 to 1024 px",
                                          min=8, max=1024)
    classes: list[str] = setting(DEFAULT_CLASSES, "class names, in the order the model outputs them")
    background: str = setting("unknown", "background class: frames no segment covers; makes no segment in metrics")
    split_ratios: list[float] = setting([0.7, 0.15, 0.15], "train/val/test shares for videos not named in splits.csv")
    class_map: Union[str, dict[str, str]] = setting(
        {}, "annotation-tool label -> class renames ({Canis lupus: wolf}), or a path to a YAML file of them")
    unmapped: str = setting(
        "error", "a tool label that is neither a class nor in data.class_map: error, or background "
        "(its frames become data.background)", choices=("error", "background"))
    eaf_tier: str = setting("", "ELAN .eaf files: the tier holding the labels (empty = the file's only tier)")


    def frame_size(self, source: tuple[int, int]) -> tuple[int, int]:
        """The (width, height) prepare resizes frames of ``source`` (width, height) to.

        A short side keeps the source's aspect ratio (the long side rounded to whole pixels; stored
        frames need no even sides); ``[W, H]`` is used as given.

        Raises:
            ConfigError: ``size`` is neither a side nor ``[W, H]``, or a side is outside 8..1024.
        """
        if isinstance(self.size, int) and not isinstance(self.size, bool):
            width, height = source
            long = round(self.size * max(width, height) / min(width, height))
            width, height = (long, self.size) if width >= height else (self.size, long)
        elif isinstance(self.size, (list, tuple)) and len(self.size) == 2:
            width, height = self.size
        else:
            raise ConfigError(f"data.size: {self.size!r} must be a short side such as 48, or [W, H]")
        if not all(isinstance(side, int) and 8 <= side <= 1024 for side in (width, height)):
            raise ConfigError(f"data.size: {self.size} gives {width}x{height} frames; each side must be within "
                              f"[8, 1024] px")
        return width, height


def frame_wh(size: int | list[int] | tuple[int, int]) -> tuple[int, int]:
    """A recorded frame size as (width, height): an int (square frames, as datasets and checkpoints
    from before non-square frames recorded it) or a ``[W, H]`` pair."""
    if isinstance(size, int):
        return size, size
    width, height = size
    return int(width), int(height)


# Frame size (width, height) each synth style draws when synth.size is auto; the keys are the styles.
SYNTH_STYLE_SIZES = {"shapes": (96, 96), "pictures": (160, 120)}


@dataclass
class SynthConfig:
    style: str = setting("shapes", "look of the synthetic videos: shapes (drawn animals, fast) or pictures "
                         "(emoji artwork of several designs over textured scenes)", choices=tuple(SYNTH_STYLE_SIZES))
    videos: int = setting(120, "number of synthetic videos", min=1)
    frames: int = setting(600, "frames per synthetic video", min=16)
    size: Union[int, list[int], str] = setting("auto", "frame size in pixels: auto (shapes 96x96, pictures 160x120), "
                                               "the short side N (aspect of the style), or [W, H]; even, 16 to 1024")
    fps: int = setting(24, "frames per second of the synthetic videos", min=1, max=240)
    gap_min: int = setting(10, "fewest unknown frames between the last cue and an ambiguous canine", min=1)
    gap_max: int = setting(120, "most unknown frames between the last cue and an ambiguous canine", min=1)
    switch_prob: float = setting(0.3, "probability that a video switches channel once, mid-video", min=0.0, max=1.0)
    seed: int = setting(0, "random seed: the same seed gives the same dataset", min=0)

    def frame_size(self) -> tuple[int, int]:
        """The (width, height) of the frames this config draws.

        Raises:
            ConfigError: ``size`` is not auto, a side or ``[W, H]``, or a side is odd or outside 16..1024.
        """
        width, height = SYNTH_STYLE_SIZES[self.style]
        if isinstance(self.size, int):
            # The short side is given; the long one keeps the style's aspect, rounded to even (H.264).
            long = 2 * round(self.size * max(width, height) / min(width, height) / 2)
            width, height = (long, self.size) if width >= height else (self.size, long)
        elif isinstance(self.size, list) and len(self.size) == 2:
            width, height = self.size
        elif self.size != "auto":
            raise ConfigError(f"synth.size: {self.size!r} must be auto, a short side such as 96, or [W, H]")
        if any(side % 2 or not 16 <= side <= 1024 for side in (width, height)):
            raise ConfigError(f"synth.size: {self.size} gives {width}x{height} frames; each side must be even "
                              f"(for H.264) and within [16, 1024]")
        return width, height


@dataclass
class ModelConfig:
    encoder: str = setting("cnn", "frame encoder: cnn (compact, for CPU) or a torchvision backbone (resnet18, "
                                  "mobilenet_v3_small, efficientnet_b0)")
    pretrained: Union[bool, str] = setting(False, "false, true (torchvision weights from the local cache only) or a "
                                                  "path to a state dict")
    width: int = setting(16, "channels of the first block of the compact cnn encoder (doubles per block): 16 "
                             "does a quarter of 32's convolution work at the same accuracy on the benchmarks",
                         min=4, max=512)
    embed: int = setting(128, "size of the per-frame embedding the encoder outputs", min=4, max=4096)
    cell: str = setting("lstm", "memory cell: {names}", names=_registered_cells)
    hidden: int = setting(128, "hidden (and cell) state size of the memory cell", min=1, max=8192)
    layers: int = setting(1, "stacked memory layers", min=1, max=16)
    dropout: float = setting(0.0, "dropout between embedding, memory layers and head", min=0.0, max=0.95)
    window: int = setting(16, "tdnn only: frames the causal window sees (this one and window-1 before)",
                          min=1, max=4096)
    forget_bias: float = setting(3.0, "initial forget-gate bias of lstm/peephole cells: 3 keeps ~95% of the "
                                      "cell state per frame at the start, so a cue's gradient reaches "
                                      "across long gaps", min=-10.0, max=10.0)


@dataclass
class TrainConfig:
    epochs: int = setting(60, "most joint epochs (encoder, memory and head trained together on clips; an epoch is "
                          "train.epoch_frames of the training frames); the phase ends sooner on a plateau or "
                          "train.time", min=1)
    batch_size: int = setting(64, "clips per optimisation step of the joint phase (per process under torchrun)",
                              min=1)
    clip_frames: int = setting(1, "frames per joint-phase clip: 1 = single frames drawn across all videos (the "
                               "encoder learns what a frame shows; the memory phase learns what came before)",
                               min=1)
    tbptt: int = setting(1, "frames per truncated-BPTT chunk; state is carried and detached between chunks", min=1)
    lr: float = setting(0.003, "peak learning rate of AdamW", min=0.0, max=10.0)
    weight_decay: float = setting(0.1, "AdamW weight decay of both phases (not on biases and norms): few training "
                                  "videos are few scenes, and without it encoder and memory learned them instead of "
                                  "the animals and cues", min=0.0, max=10.0)
    ema: float = setting(0.0, "decay per step of a moving average of the weights that the joint phase then "
                         "validates, keeps in its checkpoints and hands to the memory phase, e.g. 0.998 (0 = off: "
                         "the weights as the last step left them)", min=0.0, max=0.9999)
    memory_epochs: int = setting(30, "most memory epochs, after the joint ones: the memory and head alone on cached "
                                 "frame embeddings, whole videos at a time (0 = off); the phase ends sooner on a "
                                 "plateau or train.time", min=0)
    memory_batch: int = setting(8, "videos per optimisation step of the memory phase (per process under torchrun)",
                                min=1)
    memory_lr: float = setting(0.003, "peak learning rate of the memory epochs (cosine decay, no "
                                      "warm-up; lowered on a plateau like train.lr)", min=0.0, max=10.0)
    memory_splice: float = setting(0.0, "share of the memory phase's videos that start after the first part of "
                                   "another training video, as after a channel switch, e.g. 0.5 (0 = each video "
                                   "alone)", min=0.0, max=1.0)
    memory_shift: float = setting(1.0, "memory phase: each training video's embeddings move by one random vector, "
                                  "drawn afresh every epoch, of this many standard deviations of each embedding "
                                  "dimension (0 = off), so that the memory cannot recognise a training video by its "
                                  "scene and must learn from what happens in it", min=0.0, max=10.0)
    warmup: float = setting(0.5, "epochs of linear learning-rate warm-up before the cosine decay", min=0.0)
    grad_clip: float = setting(1.0, "clip the gradient norm to this (0 = off); recurrent nets explode", min=0.0)
    label_smoothing: float = setting(0.0, "label smoothing of the per-frame cross-entropy", min=0.0, max=0.99)
    class_weights: Union[str, list[float]] = setting("auto", "auto (inverse sqrt of label frequency), none, or one "
                                                             "weight per class")
    augment: bool = setting(True, "temporally consistent augmentation: one zoom/rotation/flip/colour change per clip")
    zoom: list[float] = setting([0.6, 2.0], "augmentation: [min, max] of the area each clip's box covers, in "
                                            "frame areas, drawn log-uniformly: below 1 a crop (zoom in), above 1 "
                                            "the frame shrunk inside its mean colour (zoom out)")
    rotate: float = setting(25.0, "augmentation: largest rotation of a clip in degrees, either way (0 = none)",
                            min=0.0, max=180.0)
    amp: Union[bool, str] = setting("auto", "mixed precision for the encoder (bf16; fp16 on old GPUs), the memory "
                                            "cell stays fp32: auto (on for CUDA and for CPUs with native bf16), true "
                                            "or false")
    compile: bool = setting(False, "torch.compile the encoder (slow first steps, faster after)")
    device: str = setting("auto", "auto, cpu, cuda or cuda:N")
    seed: int = setting(0, "random seed; CPU runs with the same seed repeat exactly", min=0)
    nonfinite: str = setting("stop", "a non-finite loss or gradient: stop (with a message naming the step; the last "
                                     "checkpoint is kept) or skip the step and count it",
                             choices=("stop", "skip"))
    patience: int = setting(3, "epochs without a better validation metric (joint: frame accuracy, memory: masked "
                            "accuracy) that make a plateau: the first lowers the phase's learning rate ten-fold, "
                            "the second ends the phase (0 = run every epoch); the memory phase's first 5 epochs "
                            "never count (fewer once its training loss has fallen ten-fold)", min=0)
    joint_grace: int = setting(10, "joint epochs at the start that never count towards a plateau (they can still set "
                               "the best; fewer once the training loss has fallen ten-fold): at the peak learning "
                               "rate frames-alone accuracy on a few validation videos moves by up to 0.1 from epoch "
                               "to epoch, and an early peak would lower the rate while the encoder still learns",
                               min=0)
    time: float = setting(0.0, "minutes the whole run may take (0 = no limit): each phase gets a share, and a "
                          "phase that ends early leaves its time to the next", min=0.0)
    best_metric: str = setting("masked_accuracy", "validation metric that picks best.ckpt among the last phase's "
                                                  "epochs (frame_accuracy when data has no masks)",
                               choices=tuple(m.key for m in TRACKED))
    workers: Union[int, str] = setting("auto", "data-loader worker processes: 0 = load in the training process; auto "
                                               "= 0 on machines with up to 2 cores (workers would compete with "
                                               "training for them), else min(4, cores - 2)")
    steps_per_epoch: int = setting(0, "optimisation steps per joint epoch (0 = enough clips to cover "
                                   "train.epoch_frames of the training frames, and at least 150 steps)", min=0)
    epoch_frames: float = setting(0.25, "share of the training frames one joint epoch covers, in clips drawn across "
                                  "all videos; below 1, the plateau and time rules judge the encoder more often",
                                  min=0.01, max=1.0)


@dataclass
class PredictConfig:
    min_confidence: float = setting(
        0.0, "label a frame with data.background when its calibrated top probability is below this "
        "(0 = never abstain); predict reads it from the checkpoint's config, --min-confidence overrides it",
        min=0.0, max=1.0)


@dataclass
class RunConfig:
    dir: str = setting("", "run directory; empty = runs/<name>, numbered so runs never overwrite (runs/train2, ...)")
    name: str = setting("train", "run name used when run.dir is empty")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        """Plain nested dict of the config (YAML- and checkpoint-safe: str, int, float, bool, lists)."""
        return dataclasses.asdict(self)


SECTION_HELP = {
    "data": "where the data is and how prepare shapes it",
    "synth": "the built-in synthetic TV dataset (lstm-tv synth, and train when no data exists)",
    "model": "CNN frame encoder -> memory cell -> per-frame linear head",
    "train": "optimisation",
    "predict": "what predict does with the probabilities (stored in the checkpoint with the model)",
    "run": "where the outputs of a run go",
}


# ---------------------------------------------------------------------------------------------------
# Introspection helpers


def section_types() -> dict[str, type]:
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config)}


def section_fields(section_cls: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(section_cls)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(section_cls)}


def all_keys() -> list[str]:
    """Every dotted key, in declaration order (``data.dir``, ``data.raw``, ...)."""
    return [f"{s}.{k}" for s, cls in section_types().items() for k in section_fields(cls)]


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list[{type_name(typing.get_args(tp)[0])}]"
    if origin is dict:
        return f"dict[{', '.join(type_name(a) for a in typing.get_args(tp))}]"
    return getattr(tp, "__name__", str(tp))


def example_value(tp: Any) -> str:
    return {int: "8", float: "0.001", bool: "true", str: "text"}.get(tp, "[...]")
