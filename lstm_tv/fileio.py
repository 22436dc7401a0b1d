"""Atomic writes: a file appears whole under its final name or not at all.

Every output of lstm-tv (checkpoints, reports, predictions, plots, videos, datasets) is written to a
temporary name beside its destination and renamed at the end. ``os.replace`` is atomic on one file
system, so an interrupted command leaves at most a ``.tmp`` file, never a file that loads as if whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

from lstm_tv.errors import LstmTvError

# mkstemp creates files readable by the owner only; finished files get the usual permissions.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def check_parent(path: str | Path) -> Path:
    """Return ``path`` as a Path, raising a one-line error if its directory does not exist."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise LstmTvError(f"{path}: directory {parent} does not exist; create it first")
    return path


def temp_path_beside(path: str | Path, *, suffix: str = "") -> Path:
    """Create and return a new empty temporary file in ``path``'s directory (``.<name>.XXXX.tmp<suffix>``).

    ``suffix`` keeps a file extension on the temporary name for writers that infer the format from it.
    """
    path = check_parent(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | Path, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on error delete it."""
    tmp_path = temp_path_beside(path, suffix=suffix)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (flushed to disk before the rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def write_json(path: str | Path, obj) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=2) + "\n")
