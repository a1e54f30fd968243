"""Files written whole or not at all: what the run store and a run's outcome (weights, predictions) need.

A reader (another thread, another process, the page after a crash) sees the old file or the new one,
never half of either: the bytes go to a temporary file in the same folder, are flushed and synced,
then renamed over the name, and the rename itself is synced where the platform allows.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def write_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Replace `path` with what `write(file)` writes into an open binary file."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    sync_folder(path.parent)


def write_text_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` (UTF-8, line endings as given)."""
    write_atomically(path, lambda file: file.write(text.encode("utf-8")))


def sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable where the platform allows (POSIX); best effort."""
    if os.name != "posix":
        return
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def remove_temporary_files(folder: Path) -> None:
    """Temporary files a killed writer left behind in `folder` (readers ignore them anyway)."""
    for leftover in Path(folder).glob(".*.tmp"):
        with contextlib.suppress(OSError):
            leftover.unlink()
