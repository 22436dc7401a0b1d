"""The whole model: uint8 frames -> frame encoder -> memory cell -> per-frame class logits.

::

    frames (B, T, H, W, 3) uint8          as stored on disk and decoded by PyAV
      -> normalise                         inside the model: prediction and export need nothing else
      -> encoder, all B*T frames at once   (B*T, 3, H, W) -> (B*T, F) -> (B, T, F)
      -> dropout -> memory cell            (B, T, F) -> (B, T, hidden), state carried between chunks
      -> dropout -> linear head            (B, T, hidden) -> (B, T, K) logits

Training can cache embeddings and train the memory alone with :meth:`FrameClassifier.forward_embeddings`.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn

from lstm_tv.config import ModelConfig
from lstm_tv.errors import ConfigError
from lstm_tv.model.cells import MemoryCell, State, build_cell
from lstm_tv.model.encoders import FrameEncoder, build_encoder


class FrameClassifier(nn.Module):
    """Per-frame video classifier with memory.

    Args:
        encoder: maps normalised frames (N, 3, H, W) to (N, F); its ``mean``/``std`` become buffers.
        cell: memory cell reading (B, T, F).
        num_classes: K, the number of classes.
        dropout: dropout on the embeddings and on the cell's outputs.

    Attributes:
        encoder_autocast: dtype to run the encoder in under autocast (``torch.bfloat16`` on CPU,
            ``torch.float16`` on CUDA), or None for full precision. The cell always gets float32.
        channels_last: keep frames in channels-last memory layout (the layout they arrive in, and the
            fastest for CPU convolutions); False converts them to contiguous NCHW.
    """

    def __init__(self, encoder: FrameEncoder, cell: MemoryCell, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.encoder = encoder
        self.cell = cell
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(cell.out_dim, num_classes)
        self.num_classes = num_classes
        # Persistent buffers: a checkpoint carries the normalisation its encoder was trained with.
        self.register_buffer("mean", torch.tensor(encoder.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(encoder.std, dtype=torch.float32).view(1, 3, 1, 1))
        self.encoder_autocast: torch.dtype | None = None
        self.channels_last = True

    @contextlib.contextmanager
    def full_precision(self):
        """Within this block the encoder runs in float32 whatever ``encoder_autocast`` says: what
        evaluate and predict compute, so validation during mixed-precision training matches them."""
        saved, self.encoder_autocast = self.encoder_autocast, None
        try:
            yield self
        finally:
            self.encoder_autocast = saved

    def set_channels_last(self, enabled: bool) -> "FrameClassifier":
        """Switch frames and encoder weights between channels-last and contiguous NCHW layouts."""
        self.channels_last = enabled
        self.encoder.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)
        return self

    def preprocess(self, frames: Tensor) -> Tensor:
        """uint8 frames (B, T, H, W, 3) -> normalised float frames (B*T, 3, H, W)."""
        if frames.dtype != torch.uint8 or frames.dim() != 5 or frames.shape[-1] != 3:
            raise ValueError(f"expected uint8 frames (B, T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
        b, t, h, w, _ = frames.shape
        x = frames.reshape(b * t, h, w, 3)  # (B, T, H, W, 3) -> (B*T, H, W, 3)
        # (B*T, H, W, 3) -> (B*T, 3, H, W) as a view: its strides already are channels-last, no copy.
        x = x.permute(0, 3, 1, 2)
        x = (x.float() / 255.0 - self.mean) / self.std  # elementwise ops keep the channels-last layout
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        return x.contiguous(memory_format=memory_format)  # no-op when the layout already matches

    def encode(self, frames: Tensor) -> Tensor:
        """Embed every frame in one batched encoder pass: (B, T, H, W, 3) uint8 -> (B, T, F) float32."""
        b, t = frames.shape[:2]
        x = self.preprocess(frames)  # (B*T, 3, H, W)
        with self._encoder_precision(x.device.type):
            emb = self.encoder(x)  # (B*T, F)
        emb = emb.to(self.head.weight.dtype)  # back to full precision for the memory cell
        return emb.reshape(b, t, -1)  # (B*T, F) -> (B, T, F)

    def _encoder_precision(self, device_type: str) -> contextlib.AbstractContextManager:
        if self.encoder_autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device_type, dtype=self.encoder_autocast)

    def forward(self, frames: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Classify every frame of a chunk of clips.

        Args:
            frames: uint8 (B, T, H, W, 3).
            state: the memory after the previous chunk of the same clips; None at the start of a video.

        Returns:
            ``(logits, state)``: logits (B, T, K) and the memory after the last frame.
        """
        return self.forward_embeddings(self.encode(frames), state)

    def forward_embeddings(self, emb: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """:meth:`forward` from frame embeddings (B, T, F) instead of frames (no encoder)."""
        x = self.dropout(emb)
        # The memory cell stays in full precision even if the caller wraps everything in autocast:
        # recurrent state summed over hundreds of frames loses too much in bf16/fp16.
        with _autocast_off(x.device.type):
            y, state = self.cell(x.float() if x.dtype in (torch.float16, torch.bfloat16) else x, state)
            logits = self.head(self.dropout(y))  # (B, T, hidden) -> (B, T, K)
        return logits, state

    def initial_state(self, batch: int, device=None) -> State:
        """The memory before the first frame for ``batch`` clips (zeros)."""
        return self.cell.initial_state(batch, device=device, dtype=self.head.weight.dtype)


def _autocast_off(device_type: str) -> contextlib.AbstractContextManager:
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type=device_type, enabled=False)
    return contextlib.nullcontext()


def build_model(cfg: ModelConfig, num_classes: int) -> FrameClassifier:
    """Encoder + memory cell + head as ``cfg`` describes, for ``num_classes`` classes.

    Raises:
        ConfigError: unknown encoder or cell, unavailable pretrained weights, or fewer than 2 classes.
        CheckpointError: ``cfg.pretrained`` names a missing or unusable state dict file.
    """
    if num_classes < 2:
        raise ConfigError(f"need at least 2 classes to classify frames, got {num_classes}")
    encoder = build_encoder(cfg)
    cell = build_cell(cfg, encoder.out_dim)
    return FrameClassifier(encoder, cell, num_classes, cfg.dropout)
