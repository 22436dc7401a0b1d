"""The front door: every module imports on the declared dependencies, and every command answers --help."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import subprocess
import sys

import pytest

import lstm_tv
from lstm_tv.cli import app


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(lstm_tv.__path__, prefix="lstm_tv."))


def _commands() -> list[list[str]]:
    """Every command line that has a --help: the top level, each command, each command of each group."""
    lines = [[]]
    for command in app.registered_commands:
        lines.append([command.name or command.callback.__name__.replace("_", "-")])
    for group in app.registered_groups:
        lines.append([group.name])
        lines += [[group.name, c.name or c.callback.__name__] for c in group.typer_instance.registered_commands]
    return lines


def test_the_package_has_modules_to_check():
    assert {"lstm_tv.cli", "lstm_tv.config", "lstm_tv.data.video"} <= set(_modules())


@pytest.mark.parametrize("module", _modules())
def test_every_module_imports(module):
    importlib.import_module(module)


def test_every_command_is_listed():
    names = {line[0] for line in _commands() if line}
    assert {"synth", "prepare", "train", "evaluate", "predict", "explain", "export", "bench", "config"} <= names


@pytest.mark.parametrize("line", _commands(), ids=lambda line: " ".join(line) or "lstm-tv")
def test_every_command_help_runs_in_a_fresh_process(line, tmp_path):
    # A fresh interpreter outside the checkout: what a user's shell runs, with only the installed dependencies.
    r = subprocess.run([sys.executable, "-m", "lstm_tv", *line, "--help"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Usage: " in r.stdout and "Traceback" not in r.stderr


COMMANDS = {"lstm_tv.train", "lstm_tv.evaluate", "lstm_tv.predict", "lstm_tv.explain", "lstm_tv.export", "lstm_tv.bench"}


def _imports(module: str) -> set[str]:
    """Every lstm_tv module that ``module``'s source imports (at any depth of the file, deferred ones too)."""
    import ast

    spec = importlib.util.find_spec(module)
    tree = ast.parse(open(spec.origin).read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {name for name in found if name.startswith("lstm_tv")}


@pytest.mark.parametrize("module", [m for m in _modules() if m != "lstm_tv.cli"])
def test_commands_stand_side_by_side_on_the_library(module):
    # No command imports another command, and the library imports no command: only cli.py sees them all.
    assert not (_imports(module) & COMMANDS) - {module}
