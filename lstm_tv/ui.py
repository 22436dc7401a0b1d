"""What a person sees while a command runs: messages, warnings, progress bars, tables (rich).

Library code takes a ``Reporter`` argument instead of printing, so tests can run it silently and,
under torchrun, only rank 0 talks.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table


class Bar:
    """A progress bar that appears at its first update, so errors before it print without a bar."""

    def __init__(self, reporter: "Reporter", description: str, total: int | None = None):
        self.reporter, self.description, self.total = reporter, description, total
        self.progress: Progress | None = None

    def update(self, completed: int, total: int | None = None, info: str = "") -> None:
        """Show ``completed`` of ``total`` (None: unknown) with a short ``info`` text."""
        if not self.reporter.enabled:
            return
        total = total if total is not None else self.total
        if self.progress is None:
            self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                     console=self.reporter.err, transient=self.reporter.transient_bars)
            self.task = self.progress.add_task(self.description, total=total, info="")
            self.progress.start()
        self.progress.update(self.task, completed=completed, total=total, info=info)

    def __enter__(self) -> "Bar":
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()


class Reporter:
    """Prints to the terminal when ``enabled`` (rank 0, not quiet); otherwise every call is a no-op."""

    def __init__(self, enabled: bool = True, *, transient_bars: bool = False):
        self.enabled = enabled
        self.transient_bars = transient_bars
        self.out = Console()
        self.err = Console(stderr=True)

    def info(self, message: str) -> None:
        if self.enabled:
            self.out.print(message, highlight=False, soft_wrap=True)

    def warn(self, message: str) -> None:
        if self.enabled:
            self.err.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)

    def bar(self, description: str, total: int | None = None) -> Bar:
        return Bar(self, description, total)

    def table(self, title: str, rows: list[tuple[str, str]]) -> None:
        """A two-column table (name, value)."""
        if not self.enabled:
            return
        table = Table(title=title, show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        for name, value in rows:
            table.add_row(name, value)
        self.out.print(table)

    def grid(self, title: str, header: list[str], rows: list[list[str]]) -> None:
        """A table with a header row."""
        if not self.enabled:
            return
        table = Table(title=title, title_justify="left")
        for h in header:
            table.add_column(h, justify="right" if h != header[0] else "left")
        for row in rows:
            table.add_row(*row)
        self.out.print(table)


QUIET = Reporter(enabled=False)
