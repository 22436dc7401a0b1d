"""The package's own errors.

Everything that is the user's input going wrong (a file, a label, a config key, a checkpoint) raises a
subclass of :class:`LstmTvError` deep in the code; ``cli.py`` catches it once, prints its one-line
message and exits non-zero. Any other exception is a bug in lstm-tv.
"""

from __future__ import annotations


class LstmTvError(Exception):
    """Base class: a problem with the user's input, reported as one line."""


class ConfigError(LstmTvError):
    """A config file or ``KEY=VALUE`` override is invalid."""


class VideoError(LstmTvError):
    """A video cannot be opened, decoded or written."""


class LabelError(LstmTvError):
    """A label, mask or splits file is invalid or does not match its video."""


class DatasetError(LstmTvError):
    """A raw or prepared dataset is missing, incomplete or inconsistent."""


class CheckpointError(LstmTvError):
    """A checkpoint is missing, corrupt, incompatible or unsafe."""


class TrainingError(LstmTvError):
    """Training cannot go on (for example the loss became non-finite)."""


class PredictionError(LstmTvError):
    """A prediction file to be scored is missing, extra, or malformed."""
