"""The one resolved configuration that flows through every command.

Typed dataclasses (:mod:`~lstm_tv.config.schema`) hold every setting, its default and a one-line meaning;
:mod:`~lstm_tv.config.loading` reads, checks and writes them. ``configs/default.yaml``
is these defaults written out with their comments (``render_yaml(Config())``); a test keeps the two
identical, so there is a single source of truth and an installed package needs no source tree.

Resolution order: built-in defaults <- ``--config FILE`` (YAML) <- ``KEY=VALUE`` overrides (dotted keys,
values parsed as YAML). Every value is checked for key, type and range; errors are ``ConfigError``
with one line that names the key and says what is allowed.
"""

from lstm_tv.config.loading import from_dict, load_config, merge, parse_overrides, read_yaml, render_yaml
from lstm_tv.config.schema import (
    DEFAULT_CLASSES,
    SECTION_HELP,
    SYNTH_STYLE_SIZES,
    Config,
    DataConfig,
    ModelConfig,
    PredictConfig,
    RunConfig,
    SynthConfig,
    TrainConfig,
    all_keys,
    frame_wh,
    setting,
)

__all__ = [
    "DEFAULT_CLASSES", "SECTION_HELP", "SYNTH_STYLE_SIZES", "Config", "DataConfig", "ModelConfig", "PredictConfig",
    "RunConfig", "SynthConfig", "TrainConfig", "all_keys", "frame_wh", "from_dict", "load_config", "merge",
    "parse_overrides", "read_yaml", "render_yaml", "setting",
]
