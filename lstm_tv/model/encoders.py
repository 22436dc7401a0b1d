"""Frame encoders: one frame in, one embedding out, chosen by name (``model.encoder``).

Every encoder maps normalised float frames (N, 3, H, W) to embeddings (N, embed) and says which
normalisation its weights expect (``mean``, ``std``), which :class:`~lstm_tv.model.classifier.FrameClassifier`
stores as buffers so that a checkpoint carries its own preprocessing.

- ``cnn`` (default): a compact CNN that trains from scratch on the CPU at 32-96 px.
- ``resnet18``, ``mobilenet_v3_small``, ``efficientnet_b0``, ``shufflenet_v2_x0_5``: torchvision
  backbones whose ImageNet classifier is replaced by a linear projection to ``embed``.

Pretrained weights (``model.pretrained``) are never downloaded: ``true`` uses torchvision's file only
if it is already in the local torch hub cache, a path loads a state dict saved with ``torch.save``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import torch
from torch import Tensor, nn

from lstm_tv.config import ModelConfig
from lstm_tv.errors import CheckpointError, ConfigError
from lstm_tv.model.registry import Registry

# Maps [0, 1] to about [-1, 1]; for encoders trained from scratch (BatchNorm makes the exact value moot).
DEFAULT_MEAN = (0.5, 0.5, 0.5)
DEFAULT_STD = (0.5, 0.5, 0.5)

ENCODERS: Registry[Callable[[ModelConfig], "FrameEncoder"]] = Registry("model.encoder")
register_encoder = ENCODERS.register
list_encoders = ENCODERS.names


def build_encoder(cfg: ModelConfig) -> "FrameEncoder":
    """The encoder named by ``cfg.encoder``, with weights as ``cfg.pretrained`` says.

    Raises:
        ConfigError: unknown encoder, or pretrained weights requested that are not available offline.
        CheckpointError: ``cfg.pretrained`` is a path to a missing, corrupt or mismatching state dict.
    """
    return ENCODERS[cfg.encoder](cfg)


class FrameEncoder(nn.Module):
    """Interface of every encoder: (N, 3, H, W) normalised floats -> (N, out_dim).

    Attributes:
        out_dim: embedding size (``cfg.embed``).
        mean: per-channel mean (RGB, on the [0, 1] scale) the weights expect to be subtracted.
        std: per-channel standard deviation the weights expect to be divided by.
    """

    out_dim: int
    mean: tuple[float, float, float] = DEFAULT_MEAN
    std: tuple[float, float, float] = DEFAULT_STD


# ---------------------------------------------------------------------------------------------------
# Reading state dicts without downloading or unpickling


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """Read a state dict saved with ``torch.save`` (tensors only; no arbitrary objects are unpickled).

    A dict wrapping the weights under ``state_dict`` or ``model`` is unwrapped, and a ``module.``
    prefix (from ``DataParallel``/DDP) is removed.

    Raises:
        CheckpointError: the file is missing, unreadable, unsafe or holds no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: state dict file not found")
    try:
        obj = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as e:  # corrupt zip, truncated file, or a pickle that weights_only refuses
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: cannot read a state dict ({first_line})") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: not a state dict (expected a mapping of parameter names to tensors)")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_into(module: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """``module.load_state_dict(state)`` with a one-line CheckpointError naming ``source`` on mismatch."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong_shape = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
                   for k, v in own.items() if k in state and state[k].shape != v.shape]

    def few(keys: list[str]) -> str:
        return ", ".join(keys[:3]) + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")

    problems = []
    if missing:
        problems.append(f"missing {few(missing)}")
    if unexpected:
        problems.append(f"unexpected {few(unexpected)}")
    if wrong_shape:
        problems.append(f"wrong shape {few(wrong_shape)}")
    if problems:
        raise CheckpointError(f"{source}: does not match the {type(module).__name__} encoder: {'; '.join(problems)}")
    module.load_state_dict(state)


# ---------------------------------------------------------------------------------------------------
# The compact CNN


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """conv3x3 (stride 2: downsample while convolving, 4x cheaper than conv then pool) -> BN -> ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, stride=2, padding=1, bias=False),  # BN has the bias
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class CompactCNN(FrameEncoder):
    """Four conv blocks (width, 2w, 4w, 8w channels, each halving H and W), global average pool, linear.

    Sized for training from scratch on a CPU: at 64 px the blocks see 32, 16, 8 and 4 px maps.
    Weights are kept in ``channels_last`` memory format, which oneDNN convolutions run fastest on CPU.

    Args:
        width: channels of the first block.
        embed: embedding size.
    """

    def __init__(self, width: int = 32, embed: int = 128) -> None:
        super().__init__()
        channels = [3, width, 2 * width, 4 * width, 8 * width]
        self.features = nn.Sequential(*(conv_block(a, b) for a, b in pairwise(channels)))
        self.proj = nn.Linear(channels[-1], embed)
        self.out_dim = embed
        self.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)  # (N, 3, H, W) -> (N, 8w, H/16, W/16)
        x = x.mean(dim=(2, 3))  # global average pool -> (N, 8w)
        return self.proj(x)  # (N, embed)


@register_encoder("cnn")
def _cnn(cfg: ModelConfig) -> FrameEncoder:
    if cfg.pretrained is True:
        raise ConfigError("model.pretrained: the cnn encoder has no published weights; use false, "
                          "or model.pretrained=/path/to/state_dict.pth saved from a cnn encoder")
    encoder = CompactCNN(cfg.width, cfg.embed)
    if isinstance(cfg.pretrained, str):
        load_into(encoder, load_state_dict_file(cfg.pretrained), cfg.pretrained)
    return encoder


# ---------------------------------------------------------------------------------------------------
# torchvision backbones


@dataclass(frozen=True)
class Backbone:
    """How to build one torchvision model and where its classifier is, by name.

    Names, not the objects: importing torchvision costs ~1.5 s, which a model with the ``cnn``
    encoder (predict, explain, export of most checkpoints) never needs; :meth:`resolve` imports it.

    Attributes:
        builder: name of the torchvision constructor in ``torchvision.models``, e.g. ``resnet18``.
        weights: name of the weights enum whose ``DEFAULT`` gives the file name and normalisation.
        head: attribute of the classifier that is replaced (``fc`` or ``classifier``).
    """

    builder: str
    weights: str
    head: str

    def resolve(self) -> tuple[Callable[..., nn.Module], type]:
        """``(constructor, weights enum)`` from torchvision."""
        import torchvision  # deferred: only a torchvision backbone needs it (see the class docstring)

        return getattr(torchvision.models, self.builder), getattr(torchvision.models, self.weights)


BACKBONES = {
    "resnet18": Backbone("resnet18", "ResNet18_Weights", "fc"),
    "mobilenet_v3_small": Backbone("mobilenet_v3_small", "MobileNet_V3_Small_Weights", "classifier"),
    "efficientnet_b0": Backbone("efficientnet_b0", "EfficientNet_B0_Weights", "classifier"),
    "shufflenet_v2_x0_5": Backbone("shufflenet_v2_x0_5", "ShuffleNet_V2_X0_5_Weights", "fc"),
}


def cached_weights_path(weights) -> Path:
    """Where ``torch.hub`` keeps the file of torchvision ``weights``: ``<hub dir>/checkpoints/<file>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def _head_in_features(head: nn.Module) -> int:
    """Input size of a classifier head: a Linear, or a Sequential whose first Linear reads the features."""
    linears = [head] if isinstance(head, nn.Linear) else [m for m in head.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"no Linear layer in the classifier head {head}")
    return linears[0].in_features


class TorchvisionEncoder(FrameEncoder):
    """A torchvision classification backbone with its classifier replaced by ``Linear(features, embed)``.

    Args:
        name: a key of :data:`BACKBONES`.
        embed: embedding size.
        pretrained: False (random init), True (torchvision's DEFAULT weights from the local hub cache)
            or a path to a state dict of the full torchvision model (its classifier keys are ignored).

    Raises:
        ConfigError: ``pretrained`` is True and the weights file is not in the local cache.
        CheckpointError: the state dict file is missing, corrupt or does not fit the backbone.
    """

    def __init__(self, name: str, embed: int, pretrained: bool | str = False) -> None:
        super().__init__()
        spec = BACKBONES[name]
        build, weights_enum = spec.resolve()
        weights = weights_enum.DEFAULT
        backbone = build(weights=None)  # never let torchvision fetch anything
        feature_dim = _head_in_features(getattr(backbone, spec.head))
        setattr(backbone, spec.head, nn.Identity())  # backbone now outputs pooled features (N, feature_dim)

        source = self._weights_source(name, weights, pretrained)
        if source is not None:
            state = load_state_dict_file(source)
            state = {k: v for k, v in state.items() if not k.startswith(spec.head + ".")}
            load_into(backbone, state, str(source))

        self.backbone = backbone
        self.proj = nn.Linear(feature_dim, embed)
        self.out_dim = embed
        # The normalisation the weights were trained with, from the weights' own transforms. Used even
        # for random init, so that switching pretrained on or off never changes preprocessing.
        preprocess = weights.transforms()
        self.mean = tuple(float(m) for m in preprocess.mean)
        self.std = tuple(float(s) for s in preprocess.std)
        self.to(memory_format=torch.channels_last)

    @staticmethod
    def _weights_source(name: str, weights, pretrained: bool | str) -> Path | None:
        """The state dict file to load, or None for random init."""
        if pretrained is False:
            return None
        if pretrained is True:
            path = cached_weights_path(weights)
            if not path.is_file():
                raise ConfigError(
                    f"model.pretrained=true: {name} weights are not in the local torch hub cache ({path}) and "
                    f"lstm-tv never downloads; copy the file there or pass model.pretrained=/path/to/state_dict.pth")
            return path
        return Path(pretrained)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.backbone(x))  # (N, 3, H, W) -> (N, feature_dim) -> (N, embed)


def _register_backbone(name: str) -> None:
    @register_encoder(name)
    def factory(cfg: ModelConfig) -> FrameEncoder:
        return TorchvisionEncoder(name, cfg.embed, cfg.pretrained)


for _name in BACKBONES:
    _register_backbone(_name)
