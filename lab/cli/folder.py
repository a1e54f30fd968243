"""The run folder a command writes, and how a failed or cancelled run takes its writes back."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.errors import RunCancelled, TrainingFailed

EXIT_FAILED = 1
EXIT_CANCELLED = 130


def exit_code(folder: RunFolder, command: Callable[..., int], *args: Any) -> int:
    """Run a training command: its own exit code, or that of a cancel or a failed run (said on stderr).

    A run that does not finish takes back what it wrote (half a run's files would read as a result).
    """
    try:
        return command(*args)
    except (KeyboardInterrupt, RunCancelled, TrainingFailed, WriteFailed, OSError) as exc:
        folder.discard()
        if isinstance(exc, RunCancelled | KeyboardInterrupt):
            if isinstance(exc, KeyboardInterrupt):
                print("cancelled", file=sys.stderr)
            return EXIT_CANCELLED
        if isinstance(exc, OSError):
            said = f"training failed: {_os_reason(exc)}" + (f" ({exc.filename})" if exc.filename else "")
        else:
            said = str(exc) if isinstance(exc, WriteFailed) else f"training failed: {exc}"
        print(f"python -m lab: {said}", file=sys.stderr)
        return EXIT_FAILED


class WriteFailed(Exception):
    """A file or folder of the run could not be written; the message says which and why, in one line."""

    def __init__(self, action: str, exc: OSError) -> None:
        super().__init__(f"{_os_reason(exc)}: could not {action}")


def _os_reason(exc: OSError) -> str:
    """Why a file operation failed, in words; the two a user can act on by name."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return exc.strerror or str(exc) or type(exc).__name__


class RunFolder:
    """The run folder one command writes, and how to take its writes back when the run fails.

    After a failed or cancelled run a user expects the disk as it was: the folders the run made
    go (when nothing else was put in them), the files it added go, and a file it replaced (an
    earlier run's summary.json in the same --out) comes back. Nothing else is touched.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._made: list[Path] = []  # outermost first
        self._added: list[Path] = []
        self._set_aside: dict[Path, Path] = {}  # a replaced file -> its earlier version

    def open(self) -> None:
        missing = [p for p in (self.path, *self.path.parents) if not p.exists()]
        for folder in reversed(missing):
            try:
                folder.mkdir()
            except FileExistsError:
                continue  # made meanwhile by someone else: not ours to remove
            except OSError as exc:
                raise WriteFailed(f"create the folder {folder}", exc) from None
            self._made.append(folder)

    def write(self, name: str, text: str) -> None:
        path = self.path / name
        try:
            if path not in self._added and path not in self._set_aside:
                self._note(path)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise WriteFailed(f"write {path}", exc) from None

    def adopt(self, name: str) -> Path:
        """A subfolder that the trainer writes itself (a run's outcome): taken back like the run's own files."""
        path = self.path / name
        try:
            if path not in self._added and path not in self._set_aside:
                self._note(path)
        except OSError as exc:
            raise WriteFailed(f"set aside {path}", exc) from None
        return path

    def _note(self, path: Path) -> None:
        if path.exists() or path.is_symlink():
            # Moved, not copied: a full disk cannot stop it, and a rename is all it takes to undo.
            earlier = path.with_name(f".{path.name}.before-run-{os.getpid()}")
            path.replace(earlier)
            self._set_aside[path] = earlier
        else:
            self._added.append(path)

    def keep(self) -> None:
        """The run finished: nothing is to be taken back, and the files it replaced are not needed."""
        for earlier in self._set_aside.values():
            with contextlib.suppress(OSError):
                _remove(earlier)
        self._added, self._set_aside, self._made = [], {}, []

    def discard(self) -> None:
        # Each step on its own: one that fails must not stop the others, nor end in a traceback.
        for path in self._added:
            with contextlib.suppress(OSError):
                _remove(path)
        for path, earlier in self._set_aside.items():
            with contextlib.suppress(OSError):
                _remove(path)  # what the run wrote in its place (a folder is not replaced by a rename)
            with contextlib.suppress(OSError):
                earlier.replace(path)
        for folder in reversed(self._made):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: a file someone else put there stays
        self._added, self._set_aside, self._made = [], {}, []


def _remove(path: Path) -> None:
    """A file, or a folder with what is in it; nothing when it is not there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
