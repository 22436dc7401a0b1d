"""The ``lstm-tv`` command line: parse, call the library, print. No logic of its own.

Every library error is an ``LstmTvError``; :func:`main` catches it once and prints one red line
(``--debug`` anywhere on the command line shows the traceback instead).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import click
import typer
from rich.console import Console

from lstm_tv import data
from lstm_tv.config import load_config, render_yaml
from lstm_tv.errors import LstmTvError
from lstm_tv.ui import Reporter

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Per-frame video classification with memory: a CNN frame encoder feeding an LSTM.")
config_app = typer.Typer(no_args_is_help=True, help="Show the configuration.")
app.add_typer(config_app, name="config")

err_console = Console(stderr=True)

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config file (merged onto the defaults).")]
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
          size: Annotated[Optional[int], typer.Option(help="Frame side in pixels [synth.size].")] = None,
          workers: Annotated[int, typer.Option(help="Processes rendering videos (default: CPU cores).")] = 0,
          config: ConfigOpt = None, overrides: Overrides = None) -> None:
    """Generate the synthetic TV dataset: channels, cues, gaps and ambiguous canines."""
    flags = {"videos": videos, "frames": frames, "seed": seed, "size": size}
    extra = [f"synth.{k}={v}" for k, v in flags.items() if v is not None]
    cfg = load_config(config, (overrides or []) + extra)
    data.run_synth(out, cfg, Reporter(), workers=workers)


@app.command()
def prepare(src: Annotated[Path, typer.Argument(help="Raw dataset: videos/, labels/, optional masks/ and splits.csv.")],
            out: Annotated[Path, typer.Argument(help="Prepared dataset directory to create.")],
            config: ConfigOpt = None, overrides: Overrides = None,
            workers: Annotated[int, typer.Option(help="Processes decoding videos (default: CPU cores).")] = 0,
            skip_unlabeled: Annotated[bool, typer.Option(help="Leave out videos without labels instead of failing.")] = False,
            overwrite: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False) -> None:
    """Decode, resize and store videos with their labels for fast training."""
    cfg = load_config(config, overrides)
    data.run_prepare(src, out, cfg, Reporter(), workers=workers, skip_unlabeled=skip_unlabeled, overwrite=overwrite)


# ------------------------------------------------------------------------------------------------
# train / evaluate


@app.command()
def train(config: ConfigOpt = None, overrides: Overrides = None,
          resume: Annotated[Optional[Path], typer.Option(help="Continue a run: its directory or last.ckpt.")] = None) -> None:
    """Train the frame encoder and memory (no arguments: the synthetic TV dataset, configs/default.yaml)."""
    from lstm_tv.train import train as run_training

    if resume is not None and (config is not None or overrides):
        raise LstmTvError("--resume continues a run with the config stored in its checkpoint; "
                          "drop --config and KEY=VALUE overrides")
    run_training(None if resume else load_config(config, overrides), resume=resume)


@app.command()
def evaluate(checkpoint: Annotated[Path, typer.Argument(help="A checkpoint (best.ckpt).")],
             data_dir: Annotated[Optional[Path], typer.Option("--data", help="Prepared dataset (default: the checkpoint's data.dir).")] = None,
             split: Annotated[str, typer.Option(help="train, val or test.")] = "test",
             report: Annotated[Optional[Path], typer.Option(help="Write the full report as JSON here.")] = None,
             plot: Annotated[Optional[Path], typer.Option(help="Confusion-matrix PNG (default: beside the checkpoint, plots/confusion_<split>.png).")] = None,
             device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto") -> None:
    """Per-frame and segment metrics of a checkpoint on a split, streaming each video as predict does."""
    from lstm_tv.evaluate import evaluate_checkpoint

    evaluate_checkpoint(checkpoint, data_dir=data_dir, split=split, report_path=report, plot_path=plot,
                        device=device, reporter=Reporter())


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
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except (KeyboardInterrupt, click.exceptions.Abort):
        err_console.print("[bold red]interrupted[/]")
        sys.exit(130)
    sys.exit(0)
