"""Training speed, measured side by side in one run (ratios; absolute seconds vary on shared machines).

1. Cost of memory: one training step (forward, backward, AdamW) of the default model against the same
   model with ``model.cell=none``, on the same batch. Goal: lstm / none <= 1.25.
2. Input pipeline: frames/s of ``engine.train_epoch`` reading clips through the real DataLoader
   (memory maps, augmentation, ``train.workers`` processes) against the same batches already held in
   memory. Goal: loader / in-memory >= 0.9.

    python benchmarks/bench_train_speed.py [--data DIR] [--steps N] [KEY=VALUE ...]

``--data`` is a prepared dataset (default: data/synth/prepared, made by ``lstm-tv train`` or
``lstm-tv prepare``); KEY=VALUE overrides the default config (e.g. ``train.workers=1``).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from lstm_tv.config import load_config
from lstm_tv.data.augment import ClipAugment
from lstm_tv.data.dataset import IGNORE, ClipDataset, PreparedDataset
from lstm_tv.engine import Optimisation, StepGuard, make_optimizer, make_scheduler, train_epoch
from lstm_tv.model.classifier import build_model
from lstm_tv.phases import loader_workers
from lstm_tv.training import autocast_dtype


class NoBar:
    def update(self, *args, **kwargs) -> None:
        pass


def step_time(model: nn.Module, frames: torch.Tensor, labels: torch.Tensor, optimizer, tbptt: int) -> float:
    """Seconds for one clip batch: truncated-BPTT chunks, each forward + backward + step."""
    loss_fn = nn.CrossEntropyLoss(ignore_index=IGNORE)
    start = time.perf_counter()
    state = None
    for t in range(0, frames.shape[1], tbptt):
        logits, state = model(frames[:, t:t + tbptt], state)
        loss = loss_fn(logits.reshape(-1, logits.shape[-1]), labels[:, t:t + tbptt].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        state = tuple(s.detach() for s in state)
    return time.perf_counter() - start


def cost_of_memory(cfg, data: PreparedDataset, repeats: int) -> None:
    clips = ClipDataset(data, "train", cfg.train.clip_frames, cfg.train.batch_size, cfg.train.seed)
    batch = torch.utils.data.default_collate([clips[i] for i in range(len(clips))])
    device = torch.device("cpu")
    models = {}
    for cell in ("lstm", "none"):
        cfg.model.cell = cell
        torch.manual_seed(0)
        model = build_model(cfg.model, len(data.classes))
        model.set_channels_last(True)
        model.encoder_autocast = autocast_dtype(cfg.train.amp, device)
        models[cell] = (model, torch.optim.AdamW(model.parameters(), lr=1e-4))
    times = {cell: [] for cell in models}
    for r in range(repeats + 1):
        for cell, (model, opt) in models.items():  # interleaved, so drifts in machine load hit both
            t = step_time(model, batch["frames"], batch["labels"], opt, cfg.train.tbptt)
            if r:  # the first round warms up oneDNN's kernels
                times[cell].append(t)
    lstm, none = statistics.median(times["lstm"]), statistics.median(times["none"])
    frames = batch["frames"].shape[0] * batch["frames"].shape[1]
    print(f"cost of memory: step of {frames} frames: lstm {lstm * 1000:.0f} ms, none {none * 1000:.0f} ms "
          f"(medians of {repeats}); lstm / none = {lstm / none:.3f}  (goal <= 1.25)")


def input_pipeline(cfg, data: PreparedDataset, steps: int, rounds: int) -> None:
    device = torch.device("cpu")
    clips = ClipDataset(data, "train", cfg.train.clip_frames, steps * cfg.train.batch_size, cfg.train.seed,
                        augment=ClipAugment.from_config(cfg.train))
    clips.set_epoch(1)
    workers = loader_workers(cfg.train.workers)
    loader = torch.utils.data.DataLoader(clips, batch_size=cfg.train.batch_size, num_workers=workers,
                                         persistent_workers=workers > 0)
    in_memory = list(loader)  # the very same batches, produced beforehand
    loss_fn = nn.CrossEntropyLoss(ignore_index=IGNORE)
    rates = {"loader": [], "in memory": []}
    for r in range(rounds + 1):
        for name, source in (("loader", loader), ("in memory", in_memory)):  # interleaved, as above
            torch.manual_seed(0)
            model = build_model(cfg.model, len(data.classes))
            model.set_channels_last(True)
            model.encoder_autocast = autocast_dtype(cfg.train.amp, device)
            opt = make_optimizer(model, cfg.train.weight_decay, cfg.train.lr)
            optimisation = Optimisation(list(model.parameters()), opt, make_scheduler(opt, 1, 10**6, 0.0),
                                        cfg.train.grad_clip)
            # Augmentation is applied in the training step, batched, whichever way the batches arrive.
            batches = ((ClipAugment.apply(b["frames"], b["augment"]) if "augment" in b else b["frames"], b["labels"])
                       for b in source)
            stats = train_epoch(model, batches, len(source), cfg.train.tbptt, loss_fn, optimisation, StepGuard(),
                                NoBar())
            if r:
                rates[name].append(stats["frames"] / stats["seconds"])
    loader_rate, memory_rate = statistics.median(rates["loader"]), statistics.median(rates["in memory"])
    print(f"input pipeline: {steps} batches, workers={workers} ({cfg.train.workers}), "
          f"augment={cfg.train.augment}: loader "
          f"{loader_rate:.0f} frames/s, in memory {memory_rate:.0f} frames/s; loader / in memory = "
          f"{loader_rate / memory_rate:.3f}  (medians of {rounds} rounds; goal >= 0.9)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=None, help="prepared dataset (default: data.dir of the config)")
    parser.add_argument("--steps", type=int, default=12, help="batches per input-pipeline measurement")
    parser.add_argument("--rounds", type=int, default=4,
                        help="measured rounds of the input pipeline (after one warm-up)")
    parser.add_argument("--repeats", type=int, default=8, help="timed steps per model for the cost of memory")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    cfg = load_config(None, args.overrides)
    data = PreparedDataset(args.data or cfg.data.dir)
    print(f"threads {torch.get_num_threads()}, amp {cfg.train.amp}, batch {cfg.train.batch_size} x "
          f"{cfg.train.clip_frames} frames, tbptt {cfg.train.tbptt}, {data.size} px")
    cost_of_memory(cfg, data, args.repeats)
    input_pipeline(cfg, data, args.steps, args.rounds)


if __name__ == "__main__":
    main()
