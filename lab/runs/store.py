"""The run store: finished and unfinished runs on disk, one folder per configuration hash.

A run lives in `<root>/<RunConfig.key()>/`:

- `config.json`  the configuration (`RunConfig.to_json`), so a run can be re-created;
- `history.csv`  one row per finished epoch (the columns of `lab.history.COLUMNS`,
                 written and read by `lab.history.to_csv` and `from_csv`);
- `status.json`  the state and bookkeeping (see `RunStatus`);
- `weights.npz`, `predictions.npz`  a finished run's final weights and validation predictions
                 (`lab.training.outcome`); runs stored before they were kept have neither.

Why this shape: the key is a hash of everything that decides the result, so a second
request for the same configuration - from another session, or after a restart - can be
answered from disk instead of retraining. Only a run in state "done" is such a cache hit;
a failed, cancelled or interrupted run is kept for the history panel but is retrained
(and its folder overwritten) when asked for again.

Every file is written atomically (temporary file in the same folder, flush, fsync,
`os.replace`), so a reader polling the store, or a process killed mid-write, only ever
sees a complete old file or a complete new one. Within one update the history is written
before the status, so a status of "done" is only ever on disk once the final history is.

A history comes in and goes out as epoch rows (`lab.history`), checked on the way in and
on the way out. Kept free of TensorFlow, streamlit and pandas: the page, the command line
and the worker share it.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import re
import socket
import threading
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lab.config import SCHEMA_VERSION, ConfigError, RunConfig
from lab.files import remove_temporary_files, write_text_atomically
from lab.history import Row, from_csv, from_rows, to_csv, total_seconds
from lab.training.outcome import remove_outcome

log = logging.getLogger(__name__)

STATES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
# A run in one of these states is still owned by some process that may write to it.
ACTIVE_STATES = ("queued", "running")

CONFIG_FILE = "config.json"
HISTORY_FILE = "history.csv"
STATUS_FILE = "status.json"

# `RunConfig.key()` is 16 hex digits today; accept a little more so a longer hash in a
# later schema still works. Anything else (`..`, slashes) can never name a run folder.
_KEY_PATTERN = re.compile(r"^[0-9a-f]{8,64}$")

# Identifies this process in `status.json`: the pid alone is not enough, since a
# restarted container often gets the same pid as the process it replaces.
_PROCESS_TOKEN = uuid.uuid4().hex


def default_store_root() -> Path:
    """Where runs are kept unless told otherwise: `$LAB_RUN_STORE`, else the user cache."""
    configured = os.environ.get("LAB_RUN_STORE")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "overfitting-lab" / "runs"


def _now() -> str:
    """The current time as an ISO 8601 UTC timestamp (a function so tests can fix it)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class RunStatus:
    """What `status.json` holds.

    `owner` identifies the process that last wrote an active ("queued"/"running") run, so
    a later process can tell a run still being trained elsewhere from one whose process
    died (see `RunStore.mark_interrupted`). `seconds` is the training time summed over
    finished epochs; `schema` is `lab.config.SCHEMA_VERSION` at the time of writing.
    """

    state: str
    epochs_total: int
    epochs_done: int = 0
    error: str | None = None
    created: str | None = None
    started: str | None = None
    finished: str | None = None
    seconds: float = 0.0
    schema: int = SCHEMA_VERSION
    owner: dict[str, Any] = field(default_factory=dict)
    device: str = ""  # what trained it ("CPU (2 threads)", "GPU: ..."); "" for runs stored before it was kept

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> RunStatus:
        """Read a status, raising ValueError on anything a writer of this code never wrote."""
        if not isinstance(data, dict):
            raise ValueError("status is not a JSON object")
        if data.get("state") not in STATES:
            raise ValueError(f"unknown state {data.get('state')!r}")
        known = {f for f in cls.__dataclass_fields__}
        try:
            status = cls(**{k: v for k, v in data.items() if k in known})
            return replace(
                status,
                epochs_total=int(status.epochs_total),
                epochs_done=int(status.epochs_done),
                seconds=float(status.seconds),
                schema=int(status.schema),
                owner=dict(status.owner or {}),
                device=str(status.device or ""),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"malformed status: {exc}") from None

    @property
    def done(self) -> bool:
        return self.state == "done"

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


@dataclass(frozen=True, eq=False)
class StoredRun:
    """One run as read back from disk: its configuration, status and history so far (epoch rows)."""

    key: str
    config: RunConfig
    status: RunStatus
    history: list[Row]

    @property
    def done(self) -> bool:
        return self.status.done


class RunStore:
    """Runs on disk under `root`, keyed by `RunConfig.key()`.

    Safe for one writer (the worker thread) and any number of readers, threads or
    processes: readers never see a half-written file. Reading never raises for a damaged
    run folder; such a folder is skipped with a logged warning (once per folder).
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_store_root()
        self.root.mkdir(parents=True, exist_ok=True)
        self._warned: set[str] = set()
        self._warned_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    # -- reading ------------------------------------------------------------------------
    def run_dir(self, key: str) -> Path:
        """The folder of run `key`; raises ValueError for a key that is not a run key."""
        if not isinstance(key, str) or not _KEY_PATTERN.match(key):
            raise ValueError(f"not a run key: {key!r}")
        return self.root / key

    def load(self, key: str) -> StoredRun | None:
        """The run stored under `key`, or None when there is none or it cannot be read.

        A damaged folder gives None (and a warning), never an exception: the caller then
        treats the key as unknown and may retrain, which overwrites the damaged folder.
        """
        if not isinstance(key, str) or not _KEY_PATTERN.match(key):
            return None
        folder = self.root / key
        if not folder.is_dir():
            return None
        try:
            run = self._read(key, folder)
        except (OSError, ValueError, ConfigError, csv.Error) as exc:
            self._warn_once(key, f"skipping unreadable run folder {folder}: {exc}")
            return None
        self._forget_warning(key)
        return run

    def load_status(self, key: str) -> RunStatus | None:
        """Only the status of run `key` (cheaper than `load`: no history is parsed)."""
        if not isinstance(key, str) or not _KEY_PATTERN.match(key):
            return None
        path = self.root / key / STATUS_FILE
        try:
            return RunStatus.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            self._warn_once(key, f"unreadable run status {path}: {exc}")
            return None

    def cache_hit(self, key: str) -> StoredRun | None:
        """The finished run for `key`, or None. Only state "done" counts: anything else
        (failed, cancelled, interrupted, or still active) must be trained again."""
        run = self.load(key)
        return run if run is not None and run.done else None

    def list_runs(self, limit: int | None = None) -> list[StoredRun]:
        """Every readable run, newest first (by when it was queued), for the history panel.

        Damaged folders are skipped with a warning; stray files in the root are ignored.
        """
        runs: list[StoredRun] = []
        try:
            entries = list(os.scandir(self.root))
        except OSError as exc:
            log.warning("cannot list run store %s: %s", self.root, exc)
            return []
        for entry in entries:
            if not _KEY_PATTERN.match(entry.name):
                continue
            with contextlib.suppress(OSError):
                if not entry.is_dir():
                    continue
            run = self.load(entry.name)
            if run is not None:
                runs.append(run)
        runs.sort(key=lambda r: (_sortable_time(r.status.created), r.key), reverse=True)
        return runs[:limit] if limit is not None else runs

    # -- writing (the worker calls these, in this order) --------------------------------
    def record_queued(self, config: RunConfig, *, overwrite_done: bool = False) -> RunStatus:
        """Start a fresh record for `config`: state "queued", no history, no error.

        Overwrites a failed, cancelled, interrupted or damaged record for the same key so
        that nothing of the old attempt survives. Refuses to overwrite a "done" run unless
        `overwrite_done`: that result is the cache and retraining it is a deliberate act.
        """
        key = config.key()
        folder = self.run_dir(key)
        old = self.load_status(key)
        if old is not None and old.done and not overwrite_done:
            raise ValueError(f"run {key} is already done; pass overwrite_done=True to train it again")
        folder.mkdir(parents=True, exist_ok=True)
        # Drop the old history first: a crash right after leaves the old status with no
        # history, which is still not a cache hit, rather than a new status over old rows.
        with contextlib.suppress(FileNotFoundError):
            (folder / HISTORY_FILE).unlink()
        remove_outcome(folder)  # an earlier attempt's weights and predictions are not this run's
        status = RunStatus(
            state="queued",
            epochs_total=config.epochs,
            created=_now(),
            owner=_process_identity(),
        )
        self._write_status(folder, status)
        write_text_atomically(folder / CONFIG_FILE, config.to_json() + "\n")
        self._forget_warning(key)
        return status

    def record_start(self, key: str) -> RunStatus:
        """The worker began training run `key`."""
        return self._update(key, state="running", started=_now(), owner=_process_identity())

    def record_epoch(self, key: str, history: list[Row]) -> RunStatus:
        """Another epoch finished: persist the whole history so far (rows), then the status.

        Called once per epoch; rewriting the small CSV keeps every file complete on disk.
        Raises ValueError for rows that are not a history (`lab.history.from_rows`).
        """
        history = from_rows(history)
        folder = self.run_dir(key)
        write_text_atomically(folder / HISTORY_FILE, to_csv(history))
        return self._update(
            key,
            state="running",
            epochs_done=len(history),
            seconds=total_seconds(history),
            owner=_process_identity(),
        )

    def record_finish(self, key: str, history: list[Row], device: str = "") -> RunStatus:
        """Training completed: the final history, then state "done" (the cache hit), and what trained it."""
        return self._end(key, "done", history, error=None, **({"device": device} if device else {}))

    def record_failure(self, key: str, error: str, history: list[Row] | None = None) -> RunStatus:
        """Training raised: keep the error text and whatever epochs finished."""
        return self._end(key, "failed", history, error=error)

    def record_cancel(self, key: str, history: list[Row] | None = None, reason: str | None = None) -> RunStatus:
        """The run was cancelled (queued or running); partial history is kept.

        `reason` is kept as the status's error text when it was not a user's click
        (e.g. "cancelled: nobody was watching the run").
        """
        return self._end(key, "cancelled", history, error=reason)

    def record_interrupted(self, key: str, history: list[Row] | None = None) -> RunStatus:
        """The run was stopped by a shutdown rather than by a user or an error."""
        return self._end(key, "interrupted", history, error=None)

    def mark_interrupted(self) -> list[str]:
        """Turn runs left "queued" or "running" by a process that is gone into "interrupted".

        Called when a worker opens the store: such a run will never be finished by anyone,
        so it must not look active forever, and it is not a cache hit. Its partial history
        is kept. A run whose owner is this process, or another process still alive on this
        machine, is left alone. Returns the keys that were marked.
        """
        marked = []
        for run in self.list_runs():
            status = run.status
            if not status.active or _owner_alive(status.owner):
                continue
            new = replace(status, state="interrupted", finished=_now(), error=None)
            try:
                self._write_status(self.root / run.key, new)
            except OSError as exc:
                log.warning("cannot mark run %s interrupted: %s", run.key, exc)
                continue
            remove_temporary_files(self.root / run.key)
            marked.append(run.key)
        if marked:
            log.info("marked %d run(s) left unfinished by a previous process as interrupted", len(marked))
        return marked

    # -- seeding (a server starting over a fresh store) -----------------------------------
    def seed(self, config: RunConfig, history: list[Row]) -> bool:
        """Store `config` as done with `history` (a recording, `lab.runs.seeding`), unless it is done or active
        here already; returns whether it was written. The run is then a cache hit like any trained one."""
        key = config.key()
        old = self.load_status(key)
        if old is not None and (old.done or old.active):
            return False
        history = from_rows(history)
        folder = self.run_dir(key)
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomically(folder / CONFIG_FILE, config.to_json() + "\n")
        write_text_atomically(folder / HISTORY_FILE, to_csv(history))
        stamp, total = _now(), total_seconds(history)
        status = RunStatus(
            "done", config.epochs, len(history), None, stamp, stamp, stamp, total, owner={"seeded": True}
        )
        self._write_status(folder, status)  # last: "done" is on disk only once the history is
        self._forget_warning(key)
        return True

    # -- internals ----------------------------------------------------------------------
    def _read(self, key: str, folder: Path) -> StoredRun:
        status = RunStatus.from_dict(json.loads((folder / STATUS_FILE).read_text(encoding="utf-8")))
        if status.schema != SCHEMA_VERSION:
            raise ValueError(f"written by schema {status.schema}, this lab reads schema {SCHEMA_VERSION}")
        config = RunConfig.from_json((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        if config.key() != key:
            raise ValueError(f"config.json hashes to {config.key()}, not to its folder name")
        history_path = folder / HISTORY_FILE
        history = from_csv(history_path.read_text(encoding="utf-8")) if history_path.exists() else []
        return StoredRun(key=key, config=config, status=status, history=history)

    def _update(self, key: str, **changes: Any) -> RunStatus:
        folder = self.run_dir(key)
        old = self.load_status(key)
        if old is None:
            raise ValueError(f"run {key} was never queued in {self.root} (or its status is damaged)")
        status = replace(old, **changes)
        self._write_status(folder, status)
        return status

    def _end(self, key: str, state: str, history: list[Row] | None, error: str | None, **more: Any) -> RunStatus:
        folder = self.run_dir(key)
        changes: dict[str, Any] = {"state": state, "finished": _now(), "error": error, **more}
        if history is not None:
            history = from_rows(history)
            write_text_atomically(folder / HISTORY_FILE, to_csv(history))
            changes.update(epochs_done=len(history), seconds=total_seconds(history))
        return self._update(key, **changes)

    def _write_status(self, folder: Path, status: RunStatus) -> None:
        write_text_atomically(folder / STATUS_FILE, json.dumps(status.to_dict(), indent=2, sort_keys=True) + "\n")

    def _warn_once(self, key: str, message: str) -> None:
        # The page polls many times a second: one warning per damaged folder is enough.
        with self._warned_lock:
            if key in self._warned:
                return
            self._warned.add(key)
        log.warning(message)

    def _forget_warning(self, key: str) -> None:
        with self._warned_lock:
            self._warned.discard(key)


# -- helpers ----------------------------------------------------------------------------
def _sortable_time(stamp: str | None) -> datetime:
    try:
        parsed = datetime.fromisoformat(stamp) if stamp else None
    except ValueError:
        parsed = None
    if parsed is None:
        return datetime.min.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _process_identity() -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "token": _PROCESS_TOKEN,
        "start_ticks": _process_start_ticks(os.getpid()),
    }


def _process_start_ticks(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot (Linux only, else None).

    Together with the pid this tells a live owner from an unrelated process that was
    later given the same pid.
    """
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
        # The command name (field 2) may contain spaces and parentheses: skip past it.
        return int(data[data.rindex(")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _owner_alive(owner: dict[str, Any]) -> bool:
    """Whether the process that last wrote an active run may still be writing it.

    Errs towards "gone" when it cannot tell (another host, no pid, Windows): the brief
    cost is a live run labelled interrupted until its next epoch rewrites the status.
    """
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname():
        return False
    if owner.get("token") == _PROCESS_TOKEN:
        return True
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False  # our pid but not our token: a previous process with the same pid
    if Path("/proc/self/stat").exists():
        ticks = _process_start_ticks(pid)
        if ticks is None:
            return False
        recorded = owner.get("start_ticks")
        return recorded is None or recorded == ticks
    if os.name != "posix":
        return False  # os.kill(pid, 0) would terminate the process on Windows
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True
    except OSError:
        return False
    return True
