"""Checkpoints: self-sufficient, versioned, written atomically, loaded without unpickling code.

A checkpoint holds everything later commands need — weights, the resolved config, the class list,
frame size and normalisation — plus, for ``train --resume``, the optimiser, scheduler, epoch, RNG
state and run history. It contains only tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)``: a file crafted to run code when unpickled is refused.
"""

from __future__ import annotations

import dataclasses
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lstm_tv import __version__
from lstm_tv.config import Config, frame_wh, from_dict
from lstm_tv.errors import CheckpointError, ConfigError
from lstm_tv.fileio import atomic_path

FORMAT = "lstm-tv/checkpoint"
FORMAT_VERSION = 1
REQUIRED = ("format", "version", "config", "classes", "background", "size", "model")


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (see :func:`checkpoint_payload`) to ``path`` atomically.

    The previous file at ``path`` stays intact until the new one is complete (also when the disk
    fills up mid-write: the temporary file is removed and the error propagates).
    """
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def checkpoint_payload(model: torch.nn.Module, cfg: Config, *, classes: list[str], background: str,
                       size: tuple[int, int], fps: float, **extra: Any) -> dict[str, Any]:
    """The dict stored in a checkpoint: model weights and everything needed to use them alone
    (``size``: the frames' (width, height), stored as ``[W, H]``)."""
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "lstm_tv_version": __version__,
        "config": cfg.to_dict(),
        "classes": list(classes),
        "background": background,
        "size": list(frame_wh(size)),
        "fps": float(fps),
        "mean": model.mean.flatten().tolist(),
        "std": model.std.flatten().tolist(),
        "temperature": 1.0,  # softmax temperature; calibration after training may store another
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **extra,
    }


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and check a checkpoint's payload (on the CPU), as the plain dict stored on disk.

    ``train --resume`` reads its training state from it; inference reads the typed
    :class:`CheckpointRecord` instead (:func:`load_record`).

    Raises:
        CheckpointError: missing, truncated or not a checkpoint; from a newer lstm-tv; containing
            objects other than plain data (a crafted file that would run code when unpickled); or
            with fields of the wrong type (frame size, classes, background, config, weights).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is not ours
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt: not a torch.save archive)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        blocked = [line.strip() for line in str(e).splitlines() if "GLOBAL" in line]
        if blocked:
            raise CheckpointError(f"{path}: refused: it contains objects other than tensors and plain values, "
                                  f"possibly crafted to run code when loaded ({blocked[0]})") from None
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt pickle data)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint "
                              f"(truncated or corrupt: {str(e).splitlines()[0]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an lstm-tv checkpoint")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint, missing {', '.join(missing)}")
    version = ckpt["version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path}: not an lstm-tv checkpoint (format version {version!r})")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer lstm-tv (checkpoint format {version}, this "
                              f"lstm-tv reads up to {FORMAT_VERSION}); upgrade lstm-tv")
    _check_fields(ckpt, path)
    return ckpt


def _check_fields(ckpt: dict, path: Path) -> None:
    """The fields every command relies on have the right types (a file from elsewhere may hold anything)."""
    size, classes = ckpt["size"], ckpt["classes"]
    sides = size if isinstance(size, list) and len(size) == 2 else [size]  # [W, H], or one side (older files)
    if not all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= 4096 for s in sides):
        raise CheckpointError(f"{path}: frame size {size!r} is not [W, H] (or one side) in pixels")
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise CheckpointError(f"{path}: class list {classes!r} is not a list of at least 2 names")
    if ckpt["background"] not in classes:
        raise CheckpointError(f"{path}: background class {ckpt['background']!r} is not one of {classes}")
    if not isinstance(ckpt["config"], dict):
        raise CheckpointError(f"{path}: stored config is not a mapping")
    model = ckpt["model"]
    if not isinstance(model, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in model.items()):
        raise CheckpointError(f"{path}: weights are not a mapping of names to tensors")
    for key in ("mean", "std"):  # normalisation, stored since format 1
        value = ckpt.get(key, [0.0, 0.0, 0.0])
        if not (isinstance(value, list) and len(value) == 3
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
            raise CheckpointError(f"{path}: {key} {value!r} is not 3 numbers (one per colour channel)")


def config_of(ckpt: dict, path: str | Path = "checkpoint") -> Config:
    """The resolved config stored in a checkpoint payload."""
    try:
        return from_dict(ckpt["config"])
    except ConfigError as e:
        raise CheckpointError(f"{path}: stored config is invalid ({e})") from None


# ---------------------------------------------------------------------------------------------------
# The typed record: what a checkpoint holds, by name


@dataclass(frozen=True)
class CheckpointRecord:
    """A checkpoint's contents, checked and typed (see :func:`load_record`).

    Attributes:
        config: the resolved config the model was trained with.
        classes: class names, in the order of the model's outputs.
        background: the background class (one of ``classes``).
        size: (width, height) in pixels of the frames the model reads (older files store one side: square).
        fps: frame rate of the training data, None when unknown (see :attr:`frame_rate`).
        mean, std: per-channel normalisation (RGB, on the [0, 1] scale) the model applies itself; None
            in a file that does not record it (the weights' ``mean``/``std`` buffers still hold it).
        weights: the model's state dict (CPU tensors).
        temperature: softmax temperature for calibrated probabilities (1.0 = none); stored, not yet applied.
        version: checkpoint format version of the file.
        lstm_tv_version: the lstm-tv that wrote it, when recorded.
        training: everything else ``train`` stored: ``epoch``, ``metrics`` (the validation report), and in
            a ``last.ckpt`` the optimiser, scheduler, progress and RNG state that ``--resume`` needs.
        path: the file it was read from (for messages).
    """

    config: Config
    classes: tuple[str, ...]
    background: str
    size: tuple[int, int]
    weights: dict[str, torch.Tensor]
    fps: float | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    temperature: float = 1.0
    version: int = FORMAT_VERSION
    lstm_tv_version: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    path: Path = Path("checkpoint")

    @classmethod
    def from_payload(cls, ckpt: dict[str, Any], path: str | Path = "checkpoint") -> "CheckpointRecord":
        """The record of a payload already checked by :func:`load_checkpoint`.

        Raises:
            CheckpointError: the stored config or temperature is invalid.
        """
        path = Path(path)
        temperature = ckpt.get("temperature", 1.0)
        if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not temperature > 0:
            raise CheckpointError(f"{path}: temperature {temperature!r} is not a positive number")
        fps = ckpt.get("fps")
        return cls(
            config=config_of(ckpt, path), classes=tuple(ckpt["classes"]), background=ckpt["background"],
            size=frame_wh(ckpt["size"]), weights=ckpt["model"],
            fps=float(fps) if isinstance(fps, (int, float)) and not isinstance(fps, bool) and fps > 0 else None,
            mean=tuple(ckpt["mean"]) if "mean" in ckpt else None, std=tuple(ckpt["std"]) if "std" in ckpt else None,
            temperature=float(temperature), version=ckpt["version"], lstm_tv_version=ckpt.get("lstm_tv_version"),
            training={k: v for k, v in ckpt.items() if k not in _RECORD_KEYS}, path=path)

    def to_payload(self) -> dict[str, Any]:
        """The dict :func:`save_checkpoint` writes: ``load_record(save(to_payload()))`` gives this record back."""
        payload = {"format": FORMAT, "version": self.version, "lstm_tv_version": self.lstm_tv_version,
                   "config": self.config.to_dict(), "classes": list(self.classes), "background": self.background,
                   "size": list(self.size), "fps": self.fps, "temperature": self.temperature, "model": self.weights}
        if self.mean is not None:
            payload["mean"] = list(self.mean)
        if self.std is not None:
            payload["std"] = list(self.std)
        return {**payload, **self.training}

    @property
    def cell(self) -> str:
        """The memory cell's registered name."""
        return self.config.model.cell

    @property
    def frame_rate(self) -> float:
        """The training data's frame rate (25 when unknown), for videos whose header has none."""
        return self.fps if self.fps is not None else 25.0

    def build_model(self):
        """The model of this checkpoint with its weights, in eval mode on the CPU.

        Raises:
            CheckpointError: the weights do not fit the model the stored config describes.
        """
        from lstm_tv.model.classifier import build_model  # the model imports torch.nn and its encoders

        # Pretrained weights are already in the state dict: build the bare architecture, load nothing else.
        model = build_model(dataclasses.replace(self.config.model, pretrained=False), len(self.classes))
        try:
            model.load_state_dict(self.weights)
        except (RuntimeError, KeyError, TypeError) as e:
            raise CheckpointError(f"{self.path}: weights do not match the model in its config "
                                  f"({str(e).splitlines()[0]})") from None
        return model.eval()


# Payload keys the record holds as fields; every other key goes to ``training``.
_RECORD_KEYS = frozenset({"format", "version", "lstm_tv_version", "config", "classes", "background", "size", "fps",
                          "mean", "std", "temperature", "model"})


def load_record(path: str | Path) -> CheckpointRecord:
    """Load, check and type a checkpoint (on the CPU): the one way to read one for inference.

    Raises:
        CheckpointError: as :func:`load_checkpoint`, or an invalid stored config or temperature.
    """
    return CheckpointRecord.from_payload(load_checkpoint(path), path)


def model_from_checkpoint(ckpt: dict, path: str | Path = "checkpoint"):
    """Rebuild the model of a checkpoint payload with its weights, in eval mode on the CPU.

    Raises:
        CheckpointError: invalid stored config, or weights that do not fit the model it describes.
    """
    return CheckpointRecord.from_payload(ckpt, path).build_model()
