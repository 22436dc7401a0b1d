"""The ``lstm-tv`` command line: parse, call the library, print. No logic of its own.

Every library error is an ``LstmTvError``; :func:`main` catches it once and prints one red line
(``--debug`` anywhere on the command line shows the traceback instead).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import click
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from lstm_tv.config import Config, load_config, render_yaml
from lstm_tv.errors import LstmTvError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Per-frame video classification with memory: a CNN frame encoder feeding an LSTM.")
config_app = typer.Typer(no_args_is_help=True, help="Show the configuration.")
app.add_typer(config_app, name="config")

console = Console()
err_console = Console(stderr=True)

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config file (merged onto the defaults).")]
Overrides = Annotated[Optional[list[str]], typer.Argument(help="Dotted overrides, e.g. train.epochs=5 model.cell=gru.",
                                                          show_default=False)]


class LazyBar:
    """A rich progress bar that appears at its first update, so early errors print without a bar."""

    def __init__(self, description: str):
        self.description = description
        self.progress: Progress | None = None

    def update(self, completed: int, total: int | None, info: str = "") -> None:
        if self.progress is None:
            self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                     console=err_console)
            self.task = self.progress.add_task(self.description, total=total, info="")
            self.progress.start()
        self.progress.update(self.task, completed=completed, total=total, info=info)

    def __enter__(self) -> "LazyBar":
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()


def warn(message: str) -> None:
    """Print a one-line warning to stderr."""
    err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


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
    make_synthetic(out, cfg, workers)


def make_synthetic(out: Path, cfg: Config, workers: int = 0) -> None:
    """Generate ``cfg.synth`` into ``out`` with a progress bar."""
    from lstm_tv.data.synth import generate_dataset

    start = time.perf_counter()
    with LazyBar("synth") as bar:
        generate_dataset(out, cfg.synth, workers=workers or os.cpu_count() or 1,
                         progress=lambda done, total: bar.update(done, total))
    console.print(f"wrote {cfg.synth.videos} synthetic videos to [bold]{out}[/] in {time.perf_counter() - start:.1f} s")


@app.command()
def prepare(src: Annotated[Path, typer.Argument(help="Raw dataset: videos/, labels/, optional masks/ and splits.csv.")],
            out: Annotated[Path, typer.Argument(help="Prepared dataset directory to create.")],
            config: ConfigOpt = None, overrides: Overrides = None,
            workers: Annotated[int, typer.Option(help="Processes decoding videos (default: CPU cores).")] = 0,
            skip_unlabeled: Annotated[bool, typer.Option(help="Leave out videos without labels instead of failing.")] = False,
            overwrite: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False) -> None:
    """Decode, resize and store videos with their labels for fast training."""
    cfg = load_config(config, overrides)
    make_prepared(src, out, cfg, workers=workers, skip_unlabeled=skip_unlabeled, overwrite=overwrite)


def make_prepared(src: Path, out: Path, cfg: Config, *, workers: int = 0, skip_unlabeled: bool = False,
                  overwrite: bool = False) -> dict:
    """Run ``prepare_dataset`` with a progress bar and a one-line summary."""
    from lstm_tv.data.prepare import prepare_dataset

    start = time.perf_counter()
    with LazyBar("prepare") as bar:
        manifest = prepare_dataset(src, out, cfg.data, workers=workers or None, skip_unlabeled=skip_unlabeled,
                                   overwrite=overwrite, progress=bar.update, warn=warn)
    seconds = time.perf_counter() - start
    frames = sum(v["frames"] for v in manifest["videos"])
    splits = {s: sum(v["split"] == s for v in manifest["videos"]) for s in ("train", "val", "test")}
    console.print(f"prepared {len(manifest['videos'])} videos ({frames} frames, {frames / seconds:.0f} frames/s) "
                  f"at {manifest['size']} px into [bold]{out}[/]; splits "
                  + ", ".join(f"{k} {v}" for k, v in splits.items()))
    return manifest


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
