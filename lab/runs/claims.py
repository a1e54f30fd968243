"""Claims on run keys, so that two servers over one run store never train a key twice.

Two replicas of the app (two `Worker`s, in one process or in two) may share a run store.
Before a worker queues a key it claims it: `<root>/<key>/claim`, created exclusively (a
complete file hard-linked into place, so it appears whole or not at all) and holding the
claiming worker's identity: the process (`lab.runs.store._process_identity`) plus an id of
the `Worker` instance, since two workers of one process must not share a claim. The claim
is released when the run ends. A worker that finds the key claimed by a live holder follows
the run through the store instead of training it. A claim whose holder is gone (its process
died, or its worker was shut down) may be taken over.

A worker that follows a run touches `<root>/<key>/watched` while one of its own pages
watches it, so that the holder does not cancel the run as unwatched (see `Worker`).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from lab.runs.store import _PROCESS_TOKEN, _owner_alive, _process_identity

CLAIM_FILE = "claim"
WATCHED_FILE = "watched"
_GUARD_FILE = ".claim.lock"
# A claim file that cannot be read is being written (only on a file system without hard
# links) for this long at most; older, it is a leftover and may be broken.
_UNREADABLE_GRACE_SECONDS = 30.0

# The workers of this process that are open: a claim of this process by a worker not in
# here was left by a worker that has been shut down.
_LIVE_WORKERS: set[str] = set()
_LIVE_LOCK = threading.Lock()

Holder = dict[str, Any]


def new_identity() -> Holder:
    """A fresh identity for one `Worker`, registered as live until `retire`."""
    identity = {**_process_identity(), "worker": uuid.uuid4().hex}
    with _LIVE_LOCK:
        _LIVE_WORKERS.add(identity["worker"])
    return identity


def retire(identity: Holder) -> None:
    """The worker has been shut down: claims it still holds may be taken over."""
    with _LIVE_LOCK:
        _LIVE_WORKERS.discard(identity.get("worker"))


def holder(folder: Path) -> Holder | None:
    """Who claims the run in `folder`: None when nobody does, {} when the claim cannot be read."""
    path = folder / CLAIM_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def alive(claim: Holder | None, folder: Path | None = None) -> bool:
    """Whether the holder of `claim` may still train the run."""
    if claim is None:
        return False
    if not claim:  # unreadable: being written, or a leftover
        return folder is not None and _younger_than(folder / CLAIM_FILE, _UNREADABLE_GRACE_SECONDS)
    if claim.get("token") == _PROCESS_TOKEN:
        with _LIVE_LOCK:
            return claim.get("worker") in _LIVE_WORKERS
    return _owner_alive(claim)


def acquire(folder: Path, me: Holder) -> Holder | None:
    """Claim the run in `folder` for `me`: None when `me` holds it now, else who holds it.

    A claim whose holder is gone is broken and taken over.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        if _create(folder / CLAIM_FILE, me):
            return None
        current = holder(folder)
        if current is None:
            continue  # released in between: try again
        if current == me:
            return None
        if alive(current, folder):
            return current
        _break(folder, current)
    return holder(folder) or {}  # others keep taking it: treat it as held


def release(folder: Path, me: Holder) -> None:
    """Give up `me`'s claim on the run in `folder` (nothing happens when `me` does not hold it)."""
    if holder(folder) == me:
        with contextlib.suppress(FileNotFoundError):
            (folder / CLAIM_FILE).unlink()


def touch_watched(folder: Path, now: float) -> None:
    """Say that a page of a following worker watches the run in `folder` (wall-clock `now`)."""
    path = folder / WATCHED_FILE
    with contextlib.suppress(OSError):
        path.touch()
        os.utime(path, (now, now))


def watched_within(folder: Path, seconds: float, now: float) -> bool:
    """Whether a following worker's page watched the run in `folder` in the last `seconds`."""
    try:
        return now - (folder / WATCHED_FILE).stat().st_mtime <= seconds
    except OSError:
        return False


# -- internals ------------------------------------------------------------------------------
def _create(path: Path, me: Holder) -> bool:
    """Create the claim file exclusively, with its whole content; False when it exists."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(me, handle)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # atomic and exclusive: fails when a claim exists
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: O_EXCL, written in place
            return _create_exclusively(path, me)
        return True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _create_exclusively(path: Path, me: Holder) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(me, handle)
    return True


def _break(folder: Path, stale: Holder) -> None:
    """Remove the claim `stale`, unless someone replaced it meanwhile."""
    with _guard(folder):
        # Under the guard no other breaker can remove a fresh claim between our read and unlink.
        if holder(folder) == stale:
            with contextlib.suppress(FileNotFoundError):
                (folder / CLAIM_FILE).unlink()


@contextlib.contextmanager
def _guard(folder: Path):
    """An exclusive lock between processes breaking claims in `folder` (best effort off POSIX)."""
    try:
        import fcntl
    except ImportError:  # Windows: a rare race between two breakers of one dead claim remains
        yield
        return
    with open(folder / _GUARD_FILE, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _younger_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime < seconds
    except OSError:
        return False
