"""The ``lstm-tv`` command line: parse, call the library, print. No logic of its own.

Every library error is an ``LstmTvError``; :func:`main` catches it once and prints one red line
(``--debug`` anywhere on the command line shows the traceback instead).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from lstm_tv import data
from lstm_tv.config import load_config, render_yaml
from lstm_tv.errors import LstmTvError
from lstm_tv.ui import Reporter

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Per-frame video classification with memory: a CNN frame encoder feeding an LSTM.")
config_app = typer.Typer(no_args_is_help=True, help="Show the configuration.")
app.add_typer(config_app, name="config")

err_console = Console(stderr=True)

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config file (merged onto the "
                                                                          "defaults).")]
Overrides = Annotated[Optional[list[str]], typer.Argument(help="Dotted overrides, e.g. train.epochs=5 model.cell=gru.",
                                                          show_default=False)]


# ------------------------------------------------------------------------------------------------
# config


@config_app.command("show")
def config_show(config: ConfigOpt = None, overrides: Overrides = None,
                plain: Annotated[bool, typer.Option(help="Without the comments.")] = False) -> None:
    """Print the resolved configuration (defaults <- --config <- KEY=VALUE) as YAML."""
    cfg = load_config(config, overrides)
    sys.stdout.write(render_yaml(cfg, comments=not plain))


# ------------------------------------------------------------------------------------------------
# data


@app.command()
def synth(out: Annotated[Path, typer.Argument(help="Directory to create (raw dataset layout).")],
          videos: Annotated[Optional[int], typer.Option(help="Number of videos [synth.videos].")] = None,
          frames: Annotated[Optional[int], typer.Option(help="Frames per video [synth.frames].")] = None,
          seed: Annotated[Optional[int], typer.Option(help="Random seed [synth.seed].")] = None,
          size: Annotated[Optional[int], typer.Option(help="Short side of the frames in pixels [synth.size].")] = None,
          style: Annotated[Optional[str], typer.Option(help="shapes (drawn animals) or pictures (emoji artwork, "
                                                       "160x120) [synth.style].")] = None,
          workers: Annotated[int, typer.Option(help="Processes rendering videos (default: CPU cores).")] = 0,
          config: ConfigOpt = None, overrides: Overrides = None) -> None:
    """Generate the synthetic TV dataset: channels, cues, gaps and ambiguous canines."""
    flags = {"videos": videos, "frames": frames, "seed": seed, "size": size, "style": style}
    extra = [f"synth.{k}={v}" for k, v in flags.items() if v is not None]
    cfg = load_config(config, (overrides or []) + extra)
    data.run_synth(out, cfg, Reporter(), workers=workers)


@app.command()
def prepare(src: Annotated[Path, typer.Argument(help="Raw dataset: videos/, labels/, optional masks/ and splits.csv.")],
            out: Annotated[Path, typer.Argument(help="Prepared dataset directory to create.")],
            config: ConfigOpt = None, overrides: Overrides = None,
            workers: Annotated[int, typer.Option(help="Processes decoding videos (default: CPU cores).")] = 0,
            skip_unlabeled: Annotated[bool, typer.Option(
                help="Leave out videos without labels instead of failing.")] = False,
            overwrite: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
            labels_format: Annotated[Optional[str], typer.Option(
                help="Read every label file as this format: native (.txt/.csv), cvat, labelstudio, eaf, mstcn or "
                     "activitynet (default: detected from the files; see docs/annotation-tools.md).")] = None,
            eaf_tier: Annotated[Optional[str], typer.Option(
                help="ELAN tier holding the labels (data.eaf_tier).")] = None,
            ) -> None:
    """Decode, resize and store videos with their labels for fast training."""
    cfg = load_config(config, (overrides or []) + ([f"data.eaf_tier={eaf_tier}"] if eaf_tier is not None else []))
    data.run_prepare(src, out, cfg, Reporter(), workers=workers, skip_unlabeled=skip_unlabeled, overwrite=overwrite,
                     labels_format=labels_format)


# ------------------------------------------------------------------------------------------------
# train / evaluate


@app.command()
def train(config: ConfigOpt = None, overrides: Overrides = None,
          resume: Annotated[Optional[Path], typer.Option(
              help="Continue a run: its directory or last.ckpt.")] = None) -> None:
    """Train the frame encoder and memory (no arguments: the synthetic TV dataset, configs/default.yaml)."""
    from lstm_tv.train import train as run_training

    if resume is not None and (config is not None or overrides):
        raise LstmTvError("--resume continues a run with the config stored in its checkpoint; "
                          "drop --config and KEY=VALUE overrides")
    run_training(None if resume else load_config(config, overrides), resume=resume)


@app.command()
def evaluate(checkpoint: Annotated[Optional[str], typer.Argument(
                 help="A checkpoint (best.ckpt); with --pred none (then KEY=VALUE overrides may follow).",
                 show_default=False)] = None,
             overrides: Overrides = None,
             data_dir: Annotated[Optional[Path], typer.Option("--data", help="Prepared dataset (default: the "
                                                                             "checkpoint's data.dir).")] = None,
             split: Annotated[Optional[str], typer.Option(
                 help="train, val or test (default: test; with --pred every video of --labels).")] = None,
             report: Annotated[Optional[Path], typer.Option(help="Write the full report as JSON here.")] = None,
             plot: Annotated[Optional[Path], typer.Option(
                 help="Confusion-matrix PNG (default: plots/confusion_<split>.png beside the checkpoint, or in "
                      "--pred DIR); the reliability and risk-coverage PNGs go beside it.")] = None,
             pred: Annotated[Optional[Path], typer.Option(
                 help="Score this folder of prediction files (one <stem>.csv/.jsonl per video, docs/formats.md "
                      "§4, from lstm-tv or any tool) instead of a checkpoint; needs --labels.")] = None,
             labels: Annotated[Optional[Path], typer.Option(
                 help="With --pred: the raw dataset (videos/, labels/, masks/, splits.csv; docs/formats.md §1) "
                      "holding the true labels. Classes and background come from the config "
                      "(data.classes=...).")] = None,
             labels_format: Annotated[Optional[str], typer.Option(
                 help="With --pred: read every label file as this format (as prepare --labels-format).")] = None,
             config: ConfigOpt = None,
             device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto") -> None:
    """Per-frame, segment and probability metrics (mAP, cmAP, ECE, NLL, detection delay, risk-coverage) of a
    checkpoint on a split, streaming each video as predict does -- or, with --pred and --labels, of any tool's
    prediction files, without a checkpoint."""
    from lstm_tv.evaluate import evaluate_checkpoint, evaluate_predictions

    if pred is None:
        if labels is not None or labels_format is not None or config is not None or overrides:
            raise LstmTvError("--labels, --labels-format, --config and KEY=VALUE overrides go with --pred; "
                              "a checkpoint carries its own config")
        if checkpoint is None:
            raise LstmTvError("evaluate needs a CHECKPOINT, or --pred DIR --labels SRC to score prediction files")
        evaluate_checkpoint(Path(checkpoint), data_dir=data_dir, split=split or "test", report_path=report,
                            plot_path=plot, device=device, reporter=Reporter())
        return
    if checkpoint is not None and "=" not in checkpoint:
        raise LstmTvError(f"{checkpoint}: --pred scores prediction files without a checkpoint; drop the checkpoint")
    if labels is None:
        raise LstmTvError("--pred needs --labels SRC: the raw dataset whose labels are the truth")
    if data_dir is not None:
        raise LstmTvError("--data is the prepared dataset of a checkpoint; with --pred give --labels SRC")
    cfg = load_config(config, ([checkpoint] if checkpoint else []) + (overrides or []))
    evaluate_predictions(pred, labels, cfg, split=split, labels_format=labels_format, report_path=report,
                         plot_path=plot, reporter=Reporter())


# ------------------------------------------------------------------------------------------------
# predict / explain / export

CheckpointOpt = Annotated[Optional[Path], typer.Option(
    help="A checkpoint (default: runs/latest/best.ckpt, the latest run's best, relative to the current directory).")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
LabelsOpt = Annotated[Optional[Path], typer.Option(
    help="True labels: a per-frame .txt or a segment .csv (docs/formats.md §1); with several videos a directory "
         "of <stem>.txt/.csv. Adds a truth strip to figures and the accuracy to the summary.")]


# predict's options for events, live sources and precision, named here to keep the command's signature readable
EventsOpt = Annotated[Optional[Path], typer.Option(
    help="One JSON line per closed segment (label, start, end, start_time, end_time, frames, "
         "mean_confidence), written as soon as it closes: FILE.jsonl, a directory, or - for "
         "stdout.")]
MinFramesOpt = Annotated[int, typer.Option(
    help="With --events: a run of another label shorter than N frames is flicker, absorbed into the "
         "open segment (docs/formats.md, events).")]
ChunkOpt = Annotated[Optional[int], typer.Option(
    help="Frames per model step of a live source (1 = a row per frame as it arrives; default: --batch); "
         "rows come at most one chunk plus one step after a frame arrives.", show_default=False)]
FollowOpt = Annotated[bool, typer.Option(
    help="Read a file that is still being written, while it grows.")]
FollowTimeoutOpt = Annotated[float, typer.Option(
    help="With --follow: seconds without growth that end the file.")]
OpenTimeoutOpt = Annotated[float, typer.Option(
    help="Live sources: seconds to open the source; then a one-line error.")]
ReadTimeoutOpt = Annotated[float, typer.Option(
    help="Live sources: seconds without data after which the stream counts as stalled.")]
ReconnectOpt = Annotated[int, typer.Option(
    help="Live sources: reopen a dropped network source or device up to N times in a row "
         "(the model's memory is reset and the gap marked).")]
RealtimeOpt = Annotated[bool, typer.Option(
    help="Live sources: drop the oldest frames when the model falls behind, keeping the lag bounded "
         "(the count is reported); without it no frame is dropped.")]
AmpOpt = Annotated[bool, typer.Option(
    "--amp/--no-amp", help="Run the frame encoder in bfloat16 on the CPU (float16 on CUDA): the encoder "
                           "alone runs ~1.5-2x faster on CPUs with native bf16, but decoding bounds the "
                           "whole pipeline (docs/benchmarks.md); probabilities stay within ~1e-2 of fp32.")]
StrideOpt = Annotated[int, typer.Option(
    help="Run the model on every N-th frame only and repeat its last prediction in between (faster "
         "on long videos). The memory cell then sees every N-th frame, i.e. time N times faster "
         "than it was trained at.")]
FpsOpt = Annotated[Optional[float], typer.Option(
    help="Like --stride, with N chosen so the model runs at about this many frames per second.")]


@app.command()
def predict(videos: Annotated[list[str], typer.Argument(
                help="Video files, directories of videos, or glob patterns; or one live source: a URL (udp://, "
                     "rtp://, rtsp://, http(s)://, .m3u8), - for standard input, a capture device (/dev/video0, "
                     "avfoundation:0, dshow:video=NAME, lavfi:GRAPH), or a file with --follow (docs/live.md).",
                show_default=False)],
            checkpoint: CheckpointOpt = None,
            out: Annotated[Optional[Path], typer.Option(
                help="Per-frame results: FILE.csv or FILE.jsonl (one row per decoded frame: frame,time,label,"
                     "confidence,p_<class>...), or an existing directory for <stem>.csv per video. Without it "
                     "no per-frame file is written, only the summary.")] = None,
            annotate: Annotated[Optional[Path], typer.Option(
                help="Write the video with label, confidence and probability bars drawn on each frame "
                     "(OUT.mp4, original size and fps; a directory for several videos).")] = None,
            timeline: Annotated[Optional[Path], typer.Option(
                help="Figure of the labels over time with the confidence (OUT.png; a directory for several "
                     "videos).")] = None,
            labels: LabelsOpt = None,
            format: Annotated[Optional[str], typer.Option(
                "--format", help="Format of --out: csv, jsonl (default: from its suffix; csv for a directory or -), "
                                 "events (as --events), or "
                                 "an annotation tool's import format to correct the predictions in: cvat, "
                                 "labelstudio, eaf, mstcn, activitynet (docs/annotation-tools.md).",
                show_default=False)] = None,
            batch: Annotated[int, typer.Option(
                help="Decoded frames per streamed chunk (memory, not results, depends on it).")] = 64,
            stride: StrideOpt = 1,
            fps: FpsOpt = None,
            events: EventsOpt = None,
            min_frames: MinFramesOpt = 1,
            chunk: ChunkOpt = None,
            follow: FollowOpt = False,
            follow_timeout: FollowTimeoutOpt = 10.0,
            open_timeout: OpenTimeoutOpt = 10.0,
            read_timeout: ReadTimeoutOpt = 10.0,
            reconnect: ReconnectOpt = 0,
            realtime: RealtimeOpt = False,
            amp: AmpOpt = False,
            min_confidence: Annotated[Optional[float], typer.Option(
                help="Label a frame with the background class when its calibrated top probability is below P "
                     "(the probabilities are written unchanged) [the checkpoint's predict.min_confidence].",
                metavar="P")] = None,
            device: DeviceOpt = "auto") -> None:
    """Label every frame of videos, streaming each through the model in constant memory.

    Results go where --out, --annotate and --timeline say (with several videos: existing directories, one file per video); every file is written under a temporary name and renamed when its video is done, so an interrupted run leaves nothing that looks complete. A live source runs until it ends or Ctrl-C / SIGTERM stops it: rows and events are written and flushed as each chunk is decided (--out - writes them to stdout), the annotated video and timeline are finished at the end, and the exit code is 130 / 143 (docs/live.md).
    """  # noqa: E501 - Typer shows a docstring's line breaks as they are: a paragraph is one line
    from lstm_tv.data.sources import LiveOptions
    from lstm_tv.predict import run_predict

    live = LiveOptions(open_timeout=open_timeout, read_timeout=read_timeout, reconnect=reconnect, follow=follow,
                       follow_timeout=follow_timeout, realtime=realtime)
    summaries = run_predict(videos, checkpoint=checkpoint, out=out, annotate=annotate, timeline=timeline, labels=labels,
                            device=device, batch=batch, stride=stride, fps=fps, amp=amp, fmt=format,
                            events=events, min_frames=min_frames, chunk=chunk, live=live,
                            min_confidence=min_confidence, reporter=Reporter())
    code = max((s.exit_code for s in summaries), default=0)  # 130 / 143: a live run stopped by SIGINT / SIGTERM
    if code:
        sys.exit(code)  # not typer.Exit: click returns that code from main() instead of exiting with it


@app.command()
def explain(video: Annotated[Path, typer.Argument(help="The video to explain.")],
            checkpoint: CheckpointOpt = None,
            out: Annotated[Optional[Path], typer.Option(
                help="The figure (.png, .pdf or .svg; default: <video stem>.explain.png in the current "
                     "directory).")] = None,
            labels: LabelsOpt = None,
            layer: Annotated[Optional[int], typer.Option(
                help="Memory layer to show, 0 = first (default: the last).")] = None,
            batch: Annotated[int, typer.Option(help="Decoded frames per streamed chunk.")] = 64,
            device: DeviceOpt = "auto") -> None:
    """Figure of the memory over a video: class probabilities, forget/input/output gates, cell state.

    For memory cells with gates (lstm, peephole). Long videos are summarised into at most ~4000 points per curve (each the mean of consecutive frames).
    """  # noqa: E501 - Typer shows a docstring's line breaks as they are: a paragraph is one line
    from lstm_tv.explain import run_explain

    run_explain(video, checkpoint=checkpoint, out=out, labels=labels, layer=layer, device=device, batch=batch,
                reporter=Reporter())


@app.command()
def export(checkpoint: Annotated[Path, typer.Argument(help="The checkpoint to export.")],
           format: Annotated[str, typer.Option("--format", "-f", help="onnx or torchscript.", show_default=False)],
           out: Annotated[Optional[Path], typer.Option(
               help="The model file (default: beside the checkpoint, <stem>.onnx or <stem>.torchscript.pt); "
                    "its description goes to <out>.json.")] = None,
           chunk: Annotated[Optional[int], typer.Option(
               help="peephole cells only: the fixed number of frames per call (default 16); other cells take "
                    "any.")] = None) -> None:
    """Export the streaming step (frames + state in, logits + state out) as ONNX or TorchScript.

    The state inputs are the memory cell's own (lstm: h, c; see docs/formats.md for each cell). The export is checked against PyTorch over a 3-chunk stream before it is written. ONNX needs pip install 'lstm-tv\\[onnx]'.
    """  # noqa: E501 - Typer shows a docstring's line breaks as they are: a paragraph is one line
    from lstm_tv.export import run_export

    run_export(checkpoint, format, out, chunk=chunk, reporter=Reporter())


# ------------------------------------------------------------------------------------------------
# bench


@app.command()
def bench(config: Annotated[Optional[Path], typer.Option(
              "--config", "-c", help="YAML config file merged onto the bench budget, for every run.")] = None,
          overrides: Annotated[Optional[list[str]], typer.Argument(
              help="Dotted overrides for every run, e.g. train.memory_epochs=20 model.hidden=32.",
              show_default=False)] = None,
          out: Annotated[Path, typer.Option(
              help="Bench directory: datasets, runs, results.csv/.md, the figure.")] = Path("runs/bench"),
          cells: Annotated[Optional[str], typer.Option(
              help="Comma-separated memory cells (default: every registered cell, as lstm-tv config show lists "
                   "them under model.cell; with --quick: none,rnn,lstm).",
              show_default=False)] = None,
          gaps: Annotated[Optional[str], typer.Option(
              help="Comma-separated gap settings: short (5-20 frames), long (60-150) (default: both).",
              show_default=False)] = None,
          seeds: Annotated[Optional[int], typer.Option(
              help="Training seeds per cell and gap setting: train.seed, train.seed+1, ... (default: 1).",
              show_default=False)] = None,
          quick: Annotated[bool, typer.Option(
              help="Tiny data and model: a smoke test of the whole bench in seconds.")] = False,
          resume: Annotated[bool, typer.Option(
              help="Keep runs in OUT that finished with the same config; train only the others.")] = False) -> None:
    """Train and test each memory cell on short and long gaps with one budget; table, CSV, Markdown, PNG.

    Default budget per run: 80 videos x 600 frames at 32 px per gap setting; cnn encoder width 16, embed 64, hidden 64; 8 joint epochs x 30 steps of 8 clips x 256 frames, then 60 memory epochs. 6 cells x 2 gap settings x 1 seed = 12 runs: about 40 minutes on 2 idle CPU cores (peephole, a Python loop per frame, takes ~9 of them per run). --config and KEY=VALUE change the budget of every run (not model.cell, synth.gap_*, data.dir/raw, run.*). Datasets are generated once into OUT and reused; --seeds 3 --resume later adds seeds to a finished bench.
    """  # noqa: E501 - Typer shows a docstring's line breaks as they are: a paragraph is one line
    from lstm_tv.bench import run_bench, split_names

    run_bench(out, cells=split_names(cells), gaps=split_names(gaps), seeds=seeds, quick=quick, config_file=config,
              overrides=overrides, resume=resume, reporter=Reporter())


# ------------------------------------------------------------------------------------------------
# entry point


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; library errors become one line on stderr and exit code 1."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or bool(os.environ.get("LSTM_TV_DEBUG"))
    args = [a for a in args if a != "--debug"]
    command = typer.main.get_command(app)
    try:
        command.main(args=args, prog_name="lstm-tv", standalone_mode=False)
    except LstmTvError as e:
        if debug:
            raise
        # escape: a message naming "clip [1080p].mp4" must not be read as rich markup
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except OSError as e:  # the disk is full, a path is not writable, ...: the system's own words, one line
        if debug:
            raise
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        err_console.print(f"[bold red]error:[/] {e.strerror or e}{where}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.TyperException as e:
        # usage errors (missing argument, unknown option, bad type): Typer vendors click, whose errors derive
        # from TyperException; we import no click of our own, since Typer no longer installs it
        e.show()
        sys.exit(e.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        err_console.print("[bold red]interrupted[/]")
        sys.exit(130)
    sys.exit(0)
