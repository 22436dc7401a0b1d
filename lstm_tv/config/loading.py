"""Building a :class:`~lstm_tv.config.schema.Config` from defaults, a YAML file and ``KEY=VALUE``
overrides, checking every value on the way, and writing a config back out as commented YAML."""

from __future__ import annotations

import difflib
import math
import types
import typing
from pathlib import Path
from typing import Any, Union

import yaml

from lstm_tv.config.schema import (
    SECTION_HELP,
    Config,
    all_keys,
    example_value,
    section_fields,
    section_types,
    type_name,
)
from lstm_tv.errors import ConfigError

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
        raise ConfigError(f"{key}: {value!r} is not a valid {type_name(tp)}")
    if origin is dict:
        key_tp, value_tp = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected {type_name(tp)}, got {value!r}; write e.g. {key}={{a: b}}")
        return {_coerce(f"{key} key", k, key_tp): _coerce(f"{key}[{k!r}]", v, value_tp) for k, v in value.items()}
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected {type_name(tp)}, got {value!r}; write e.g. {key}=[a, b]")
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
    raise ConfigError(f"{key}: expected {type_name(tp)}, got {value!r} ({kind}); e.g. {key}={example_value(tp)}")


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
    if len(t.zoom) != 2 or not 0 < t.zoom[0] <= t.zoom[1] <= 4:
        raise ConfigError(f"train.zoom: need [min, max] box areas with 0 < min <= max <= 4, got {t.zoom}")
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
    for name, cls in section_types().items():
        kwargs = {}
        for key, (f, tp) in section_fields(cls).items():
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
    return section_fields(section_types()[section])[key][1]


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
    for name, cls in section_types().items():
        lines.append(f"{name}:" + (f"  # {SECTION_HELP[name]}" if comments else ""))
        for key, (f, tp) in section_fields(cls).items():
            entry = f"  {key}: {_yaml_value(tree[name][key])}"
            if comments:
                names = f.metadata.get("names")
                meaning = f.metadata["help"].format(names=names()) if names else f.metadata["help"]
                entry += f"  # ({type_name(tp)}) {meaning}"
            lines.append(entry)
        if comments:
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"
