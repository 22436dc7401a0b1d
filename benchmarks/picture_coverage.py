"""Test errors of a pictures-style run by how often each test picture was shown in the training split.

A diagnosis for ``bench_recipe.py``'s pictures families: every test event (a clear animal or a distractor,
12-36 frames of one picture) is put in a bucket by the number of training events that show the same
picture (design and code, e.g. OpenMoji's guide dog), and the bucket's frames are scored twice: streamed
through the memory as ``evaluate`` does, and each frame alone (the memory empty). The plan and the
picture of every event are rebuilt from the synth seed (``video_plan``, ``appearance_for``), so nothing
beyond the bench's work directories is needed.

    python benchmarks/picture_coverage.py runs/bench-recipe/pictures-30-1001 [...more work dirs]

Each work directory is one of ``bench_recipe.py``'s: ``raw/``, ``prepared/``, ``run/best.ckpt``, and a
name ``FAMILY-SEED`` that says how ``raw/`` was made.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_recipe import FAMILIES  # noqa: E402  (a sibling script, not a package)

from lstm_tv.config import load_config  # noqa: E402
from lstm_tv.data.dataset import PreparedDataset  # noqa: E402
from lstm_tv.data.synth import video_plan  # noqa: E402
from lstm_tv.data.synth.plan import OBJECT, rng_for  # noqa: E402
from lstm_tv.data.synth.render import STYLES  # noqa: E402
from lstm_tv.stream import load_model  # noqa: E402
from lstm_tv.validation import encode_videos, stream_videos  # noqa: E402

BUCKETS = ((0, 0, "0"), (1, 2, "1-2"), (3, 5, "3-5"), (6, 10**9, "6+"))  # training events showing the picture


class _NoBar:
    def update(self, *args) -> None:
        pass


def synth_config(work: Path):
    """The synth config ``bench_recipe.py`` made ``work/raw`` with, from the directory's name FAMILY-SEED."""
    family, seed = work.name.rsplit("-", 1)
    args, overrides = FAMILIES[family]["synth"], [f"synth.seed={seed}"]
    i = 0
    while i < len(args):  # "--videos 46" -> synth.videos=46; "synth.gap_min=100" as it is
        if args[i].startswith("--"):
            overrides.append(f"synth.{args[i][2:]}={args[i + 1]}")
            i += 2
        else:
            overrides.append(args[i])
            i += 1
    return load_config(None, overrides).synth


def events(cfg, stem: str) -> list[tuple[object, tuple[str, str]]]:
    """``(event, (kind, design, code))`` of every event of the video ``stem``, as synth drew it."""
    index = int(stem.rsplit("_", 1)[1])
    width, height = cfg.frame_size()
    style = STYLES[cfg.style]
    out = []
    for i, event in enumerate(video_plan(cfg, index).events):
        look = style.appearance_for(event, width, height, rng_for(cfg.seed, index, OBJECT, i))
        out.append((event, (event.kind, look.design, look.code)))
    return out


def coverage(work: Path, totals: dict) -> None:
    """Add one work directory's test frames to ``totals``: bucket -> [frames, wrong streamed, wrong alone]."""
    cfg = synth_config(work)
    data = PreparedDataset(work / "prepared")
    device = torch.device("cpu")
    _, model = load_model(work / "run" / "best.ckpt", device)
    shown = collections.Counter(picture for video in data.split("train")
                                for event, picture in events(cfg, video.stem) if event.kind != "ambiguous")
    test = data.split("test")
    embeddings = encode_videos(model, data, test, device, _NoBar())
    streamed = [logits.argmax(-1).numpy() for _, logits in stream_videos(model, data, test, device)]
    alone = [logits.argmax(-1).numpy() for _, logits in
             stream_videos(model, data, test, device, embeddings=embeddings, alone=True)]
    for video, pred, pred_alone in zip(test, streamed, alone, strict=True):
        labels = data.labels(video)
        for event, picture in events(cfg, video.stem):
            if event.kind == "ambiguous":  # a silhouette's picture says nothing; memory decides it
                continue
            n = shown[picture]
            bucket = next(name for lo, hi, name in BUCKETS if lo <= n <= hi)
            span = slice(event.start, event.end)
            row = totals.setdefault(bucket, [0, 0, 0])
            row[0] += event.end - event.start
            row[1] += int((pred[span] != labels[span]).sum())
            row[2] += int((pred_alone[span] != labels[span]).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", nargs="+", type=Path, help="bench_recipe work directories (FAMILY-SEED)")
    args = parser.parse_args()
    totals: dict[str, list[int]] = {}
    for work in args.work:
        coverage(work, totals)
    print("| training events showing the picture | test frames | wrong, streamed | wrong, frame alone |")
    print("|---|---|---|---|")
    for _, _, name in BUCKETS:
        frames, wrong, wrong_alone = totals.get(name, [0, 0, 0])
        print(f"| {name} | {frames} | {_share(wrong, frames)} | {_share(wrong_alone, frames)} |")


def _share(count: int, frames: int) -> str:
    return f"{count} ({count / frames:.1%})" if frames else "-"


if __name__ == "__main__":
    main()
