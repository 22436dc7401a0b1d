"""The one resolved configuration that flows through every command.

Typed dataclasses below hold every setting, its default and a one-line meaning. ``configs/default.yaml``
is these defaults written out with their comments (``render_yaml(Config())``); a test keeps the two
identical, so there is a single source of truth and an installed package needs no source tree.

Resolution order: built-in defaults <- ``--config FILE`` (YAML) <- ``KEY=VALUE`` overrides (dotted keys,
values parsed as YAML). Every value is checked for key, type and range; errors are ``ConfigError``
with one line that names the key and says what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Union

import yaml

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
    width: int = setting(32, "channels of the first block of the compact cnn encoder (doubles per block)",
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
    weight_decay: float = setting(0.0001, "AdamW weight decay", min=0.0, max=10.0)
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
    warmup: float = setting(0.5, "epochs of linear learning-rate warm-up before the cosine decay", min=0.0)
    grad_clip: float = setting(1.0, "clip the gradient norm to this (0 = off); recurrent nets explode", min=0.0)
    label_smoothing: float = setting(0.0, "label smoothing of the per-frame cross-entropy", min=0.0, max=0.99)
    class_weights: Union[str, list[float]] = setting("auto", "auto (inverse sqrt of label frequency), none, or one "
                                                             "weight per class")
    augment: bool = setting(True, "temporally consistent augmentation: one crop/flip/colour jitter per clip")
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
                            "never count", min=0)
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


def _sections() -> dict[str, type]:
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config)}


def _fields(section_cls: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(section_cls)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(section_cls)}


def all_keys() -> list[str]:
    """Every dotted key, in declaration order (``data.dir``, ``data.raw``, ...)."""
    return [f"{s}.{k}" for s, cls in _sections().items() for k in _fields(cls)]


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list[{_type_name(typing.get_args(tp)[0])}]"
    if origin is dict:
        return f"dict[{', '.join(_type_name(a) for a in typing.get_args(tp))}]"
    return getattr(tp, "__name__", str(tp))


def _example(tp: Any) -> str:
    return {int: "8", float: "0.001", bool: "true", str: "text"}.get(tp, "[...]")


# ---------------------------------------------------------------------------------------------------
# Checking one value


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Return ``value`` as type ``tp`` or raise ConfigError naming key, value and expected type."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(key, value, arg)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: {value!r} is not a valid {_type_name(tp)}")
    if origin is dict:
        key_tp, value_tp = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}; write e.g. {key}={{a: b}}")
        return {_coerce(f"{key} key", k, key_tp): _coerce(f"{key}[{k!r}]", v, value_tp) for k, v in value.items()}
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}; write e.g. {key}=[a, b]")
        return [_coerce(f"{key}[{i}]", v, item_tp) for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as text
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        # A path such as data.dir=2024 arrives from YAML as a number; it was meant as text.
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    kind = type(value).__name__ if value is not None else "null"
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r} ({kind}); e.g. {key}={_example(tp)}")


def _check_range(key: str, value: Any, meta: dict) -> None:
    lo, hi, choices = meta.get("min"), meta.get("max"), meta.get("choices")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}: {value} is not a finite number")
    for i, item in enumerate(value if isinstance(value, list) else []):  # e.g. train.class_weights=[1, .nan]
        if isinstance(item, float) and not math.isfinite(item):
            raise ConfigError(f"{key}[{i}]: {item} is not a finite number")
    if choices is not None and value not in choices:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, choices))}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            allowed = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
            raise ConfigError(f"{key}: {value} is out of range; allowed {allowed}")


def _check_consistency(cfg: Config) -> None:
    """Checks that involve more than one key."""
    d, s, t = cfg.data, cfg.synth, cfg.train
    if len(d.classes) < 2 or len(set(d.classes)) != len(d.classes) or any(not c.strip() for c in d.classes):
        raise ConfigError(f"data.classes: need at least 2 distinct non-empty names, got {d.classes}")
    if d.background not in d.classes:
        raise ConfigError(f"data.background: {d.background!r} is not one of data.classes {d.classes}")
    if len(d.split_ratios) != 3 or any(r < 0 for r in d.split_ratios) or abs(sum(d.split_ratios) - 1) > 1e-6:
        raise ConfigError(f"data.split_ratios: need 3 non-negative shares (train, val, test) summing to 1, got "
                           f"{d.split_ratios}")
    if isinstance(d.class_map, dict):
        for label, name in d.class_map.items():
            if name not in d.classes:
                raise ConfigError(f"data.class_map: {label!r} -> {name!r}, which is not one of data.classes "
                                  f"{d.classes}")
    if s.gap_min > s.gap_max:
        raise ConfigError(f"synth.gap_min: {s.gap_min} is larger than synth.gap_max {s.gap_max}")
    s.frame_size()  # raises on a size that is not auto, N or [W, H] of even sides
    d.frame_size((1, 1))  # raises on a size that is neither N nor [W, H] within range
    if isinstance(t.workers, str) and t.workers != "auto":
        raise ConfigError(f"train.workers: {t.workers!r} must be auto or a number of processes")
    if isinstance(t.workers, int) and not 0 <= t.workers <= 64:
        raise ConfigError(f"train.workers: {t.workers} is out of range; allowed [0, 64] or auto")
    if isinstance(t.amp, str) and t.amp != "auto":
        raise ConfigError(f"train.amp: {t.amp!r} must be auto, true or false")
    if isinstance(t.class_weights, str) and t.class_weights not in ("auto", "none"):
        raise ConfigError(f"train.class_weights: {t.class_weights!r} must be auto, none or a list of weights")
    if isinstance(t.class_weights, list):
        if len(t.class_weights) != len(d.classes) or any(w < 0 for w in t.class_weights):
            raise ConfigError(f"train.class_weights: need {len(d.classes)} non-negative weights (one per class), "
                              f"got {t.class_weights}")
        if not any(w > 0 for w in t.class_weights):  # all zero: the weighted loss is 0 / 0 from the first step
            raise ConfigError(f"train.class_weights: need at least one positive weight, got {t.class_weights}")
    if t.tbptt > t.clip_frames:
        raise ConfigError(f"train.tbptt: {t.tbptt} is longer than train.clip_frames {t.clip_frames}; "
                          f"a chunk is part of a clip")


# ---------------------------------------------------------------------------------------------------
# Building a config from nested dicts


def _suggest(key: str) -> str:
    keys = all_keys()
    leaf_matches = [k for k in keys if k.split(".")[-1] == key.split(".")[-1]]
    close = leaf_matches or difflib.get_close_matches(key, keys, n=1, cutoff=0.5)
    return f"; did you mean {close[0]}?" if close else "; see `lstm-tv config show` for valid keys"


def merge(base: dict, update: dict, *, source: str = "") -> dict:
    """Deep-merge ``update`` onto ``base`` (both nested dicts keyed like the config); unknown keys raise."""
    where = f" in {source}" if source else ""
    if not isinstance(update, dict):
        raise ConfigError(f"config{where} must be a mapping of sections (data:, model:, ...), got "
                           f"{type(update).__name__}")
    out = {s: dict(v) for s, v in base.items()}
    for section, values in update.items():
        if section not in out:
            if not isinstance(values, dict):
                raise ConfigError(f"unknown key {section!r}{where}{_suggest(str(section))}")
            raise ConfigError(f"unknown section {section!r}{where}; valid sections: {', '.join(out)}")
        if not isinstance(values, dict):
            raise ConfigError(f"{section}{where}: expected a mapping of keys, got {values!r}")
        for key, value in values.items():
            dotted = f"{section}.{key}"
            if key not in out[section]:
                raise ConfigError(f"unknown key {dotted!r}{where}{_suggest(dotted)}")
            out[section][key] = value
    return out


def from_dict(tree: dict) -> Config:
    """Validate a complete or partial nested dict (merged onto defaults) into a Config."""
    merged = merge(Config().to_dict(), tree)
    sections = {}
    for name, cls in _sections().items():
        kwargs = {}
        for key, (f, tp) in _fields(cls).items():
            dotted = f"{name}.{key}"
            value = _coerce(dotted, merged[name][key], tp)
            _check_range(dotted, value, f.metadata)
            kwargs[key] = value
        sections[name] = cls(**kwargs)
    cfg = Config(**sections)
    _check_consistency(cfg)
    return cfg


def _field_type(dotted: str) -> Any:
    section, key = dotted.split(".", 1)
    return _fields(_sections()[section])[key][1]


def parse_overrides(items: list[str]) -> dict:
    """Turn ``["train.epochs=5", "model.cell=gru"]`` into a nested dict; values are parsed as YAML.

    Values of plain text keys (paths, names) are taken literally, so ``run.name=yes`` stays a string.
    """
    tree: dict = {}
    keys = set(all_keys())
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like KEY=VALUE, e.g. train.epochs=5")
        key, text = item.split("=", 1)
        key = key.strip()
        if key not in keys:
            raise ConfigError(f"unknown key {key!r}{_suggest(key)}")
        if _field_type(key) is str and not (len(text) >= 2 and text[0] == text[-1] and text[0] in "'\""):
            value: Any = text
        else:
            try:
                value = yaml.safe_load(text) if text.strip() else None
            # Not only YAMLError: PyYAML's constructors raise ValueError ('!!float x'), AttributeError
            # ('!!timestamp x') or RecursionError ('[[[[...') on text a user may well type.
            except Exception as e:  # noqa: BLE001
                raise ConfigError(f"{key}: cannot parse {text!r} as a YAML value ({_first_line(e)})") from None
        section, leaf = key.split(".", 1)
        tree.setdefault(section, {})[leaf] = value
    return tree


def _first_line(e: Exception) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def read_yaml(path: str | Path) -> dict:
    """Read a YAML config file into a nested dict, with one-line errors for missing or invalid files."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or _first_line(e)
        raise ConfigError(f"{path}:{where} invalid YAML ({problem})") from None
    except Exception as e:  # noqa: BLE001 - bad tagged scalars (see parse_overrides)
        raise ConfigError(f"{path}: invalid YAML ({_first_line(e)})") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections (data:, model:, ...)")
    return tree


def load_config(config_file: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults <- YAML file <- dotted overrides, validated into one Config."""
    tree = Config().to_dict()
    if config_file is not None:
        tree = merge(tree, read_yaml(config_file), source=str(config_file))
    if overrides:
        tree = merge(tree, parse_overrides(overrides))
    return from_dict(tree)


# ---------------------------------------------------------------------------------------------------
# Writing a config


def _yaml_value(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000).strip()
    return text.removesuffix("\n...").strip()


def render_yaml(cfg: Config, *, comments: bool = True) -> str:
    """The config as YAML; with ``comments`` every key carries ``# (type) meaning``."""
    lines = []
    if comments:
        lines += ["# lstm-tv configuration. Every key, its type and meaning. Copy this file, edit it and pass",
                  "# it with --config FILE, or override single keys: lstm-tv train train.epochs=5 model.cell=gru",
                  "# (This file is the built-in defaults written out; tests keep the two identical.)", ""]
    tree = cfg.to_dict()
    for name, cls in _sections().items():
        lines.append(f"{name}:" + (f"  # {SECTION_HELP[name]}" if comments else ""))
        for key, (f, tp) in _fields(cls).items():
            entry = f"  {key}: {_yaml_value(tree[name][key])}"
            if comments:
                names = f.metadata.get("names")
                meaning = f.metadata["help"].format(names=names()) if names else f.metadata["help"]
                entry += f"  # ({_type_name(tp)}) {meaning}"
            lines.append(entry)
        if comments:
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"
