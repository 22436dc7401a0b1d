"""Reading a prepared dataset: whole videos for evaluation, fixed-length clips for training.

Frames are memory-mapped, never loaded whole: a clip reads only its own pages, so datasets larger
than memory train as fast as the page cache allows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lstm_tv.config import frame_wh
from lstm_tv.data.augment import ClipAugment
from lstm_tv.data.prepare import FORMAT, FORMAT_VERSION, MANIFEST
from lstm_tv.errors import DatasetError

IGNORE = -100  # label of padding frames; ignored by the loss (torch's CrossEntropyLoss default)


@dataclass(frozen=True)
class VideoRecord:
    """One video of a prepared dataset (a manifest entry)."""

    stem: str
    split: str
    frames: int
    fps: float
    source: str
    has_mask: bool


class PreparedDataset:
    """A prepared dataset directory (see ``lstm_tv.data.prepare``), opened read-only."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        path = self.root / MANIFEST
        if not path.is_file():
            partial = self.root.with_name(self.root.name + ".partial")
            hint = (f" ({partial} is an unfinished prepare: re-run lstm-tv prepare)" if partial.exists()
                    else "; run lstm-tv prepare SRC " + str(self.root))
            raise DatasetError(f"{self.root}: not a prepared dataset, no {MANIFEST}{hint}")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            if manifest.get("format") != FORMAT:
                raise ValueError("not an lstm-tv manifest")
            if manifest["version"] > FORMAT_VERSION:
                raise DatasetError(f"{path}: prepared by a newer lstm-tv (format {manifest['version']}); upgrade lstm-tv")
            self.classes: list[str] = list(manifest["classes"])
            self.background: str = manifest["background"]
            self.size: tuple[int, int] = frame_wh(manifest["size"])  # (W, H); one side in old manifests
            self.fps: float = float(manifest["fps"])
            self.videos = [VideoRecord(v["stem"], v["split"], int(v["frames"]), float(v["fps"]), v["source"],
                                       v["mask"] is not None) for v in manifest["videos"]]
        except (ValueError, KeyError, TypeError) as e:
            raise DatasetError(f"{path}: invalid manifest ({e}); re-run lstm-tv prepare") from None
        self.manifest = manifest

    def split(self, name: str) -> list[VideoRecord]:
        """Videos of one split (``train``, ``val`` or ``test``), in manifest order."""
        return [v for v in self.videos if v.split == name]

    def frames(self, video: VideoRecord) -> np.ndarray:
        """Memory-mapped uint8 frames (T, H, W, 3)."""
        path = self.root / "videos" / video.stem / "frames.u8"
        shape = (video.frames, self.size[1], self.size[0], 3)
        try:
            if path.stat().st_size != int(np.prod(shape)):
                raise DatasetError(f"{path}: has {path.stat().st_size} bytes, expected {int(np.prod(shape))}; "
                                   f"re-run lstm-tv prepare")
            return np.memmap(path, dtype=np.uint8, mode="r", shape=shape)
        except FileNotFoundError:
            raise DatasetError(f"{path}: missing; re-run lstm-tv prepare") from None

    def labels(self, video: VideoRecord) -> np.ndarray:
        """Class indices (T,), int64."""
        return self._array(video, "labels.npy")

    def mask(self, video: VideoRecord) -> np.ndarray | None:
        """The memory mask (T,), uint8, or None when the video has none."""
        return self._array(video, "mask.npy") if video.has_mask else None

    def times(self, video: VideoRecord) -> np.ndarray:
        """Frame times in seconds from the first frame (T,)."""
        return self._array(video, "times.npy")

    def _array(self, video: VideoRecord, name: str) -> np.ndarray:
        path = self.root / "videos" / video.stem / name
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DatasetError(f"{path}: cannot read ({e}); re-run lstm-tv prepare") from None
        if arr.shape != (video.frames,):
            raise DatasetError(f"{path}: shape {arr.shape}, expected ({video.frames},); re-run lstm-tv prepare")
        return arr

    def label_counts(self, split: str) -> np.ndarray:
        """Frames per class over a split (from the manifest; no file is read)."""
        counts = np.zeros(len(self.classes), dtype=np.int64)
        for entry in self.manifest["videos"]:
            if entry["split"] == split:
                counts += np.asarray(entry["label_counts"], dtype=np.int64)
        return counts


def plan_clips(lengths: list[int], clip_frames: int, count: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Draw ``count`` clips as ``(video_index, start)``, videos chosen in proportion to their length.

    Every frame of every video is equally likely to be in a clip (up to the ends); a video shorter
    than a clip gives one clip starting at 0 (padded later).
    """
    lengths_arr = np.asarray(lengths, dtype=np.float64)
    videos = rng.choice(len(lengths), size=count, p=lengths_arr / lengths_arr.sum())
    starts = [int(rng.integers(0, max(1, lengths[v] - clip_frames + 1))) for v in videos]
    return list(zip(videos.tolist(), starts))


class ClipDataset(torch.utils.data.Dataset):
    """Fixed-length training clips from the videos of one split.

    Each item is a dict: ``frames`` uint8 (L, H, W, 3), ``labels`` int64 (L,) with ``IGNORE`` on
    padding, ``mask`` uint8 (L,) (zeros without masks or on padding), and with ``augment``, the clip's
    transform (:meth:`ClipAugment.draw`), which the training step applies to the whole batch
    (:meth:`ClipAugment.apply`). The clip plan and each clip's transform are drawn from
    ``(seed, epoch, clip)`` (:meth:`set_epoch`), so runs repeat, loader workers change nothing, and a
    resumed run sees the same clips.
    Under distributed training each rank takes every ``world``-th clip of the same plan.
    """

    def __init__(self, data: PreparedDataset, split: str, clip_frames: int, clips_per_epoch: int, seed: int,
                 *, augment: ClipAugment | None = None, rank: int = 0, world: int = 1):
        self.data, self.clip_frames, self.seed, self.augment = data, clip_frames, seed, augment
        self.videos = data.split(split)
        if not self.videos:
            raise DatasetError(f"{data.root}: no {split} videos; check splits.csv or data.split_ratios")
        self.clips_per_epoch, self.rank, self.world = clips_per_epoch, rank, world
        self._arrays: dict[int, tuple] = {}
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's clips (the same on every rank; each rank keeps its share)."""
        self.epoch = epoch
        rng = np.random.default_rng([self.seed, epoch])
        plan = plan_clips([v.frames for v in self.videos], self.clip_frames, self.clips_per_epoch, rng)
        self.plan = [(i, *clip) for i, clip in enumerate(plan)][self.rank::self.world]

    def __len__(self) -> int:
        return len(self.plan)

    def _open(self, index: int) -> tuple:
        # Opened lazily in each loader worker: memmaps must not be shared across processes.
        if index not in self._arrays:
            v = self.videos[index]
            mask = self.data.mask(v)
            self._arrays[index] = (self.data.frames(v), self.data.labels(v),
                                   mask if mask is not None else np.zeros(v.frames, np.uint8))
        return self._arrays[index]

    def __getitem__(self, i: int) -> dict:
        clip_id, video, start = self.plan[i]
        frames, labels, mask = self._open(video)
        end = min(start + self.clip_frames, len(labels))
        pad = self.clip_frames - (end - start)
        clip = {
            "frames": torch.from_numpy(np.array(frames[start:end])),  # a copy: the memmap is read-only
            "labels": torch.from_numpy(labels[start:end].astype(np.int64)),
            "mask": torch.from_numpy(mask[start:end].astype(np.uint8)),
        }
        if pad:
            clip["frames"] = torch.cat([clip["frames"], clip["frames"].new_zeros((pad, *frames.shape[1:]))])
            clip["labels"] = torch.cat([clip["labels"], torch.full((pad,), IGNORE, dtype=torch.int64)])
            clip["mask"] = torch.cat([clip["mask"], torch.zeros(pad, dtype=torch.uint8)])
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, clip_id, 1])
            clip["augment"] = torch.from_numpy(self.augment.draw(rng, *frames.shape[1:3]))
        return clip
