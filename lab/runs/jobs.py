"""What the worker keeps about a run, and what it tells a caller polling one (`JobStatus`).

Kept apart from `lab.runs.worker` so that the worker module holds the worker alone.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import StrEnum

from lab.config import RunConfig
from lab.history import Row
from lab.runs.store import StoredRun

# Reported for a key that neither this worker nor the store knows.
UNKNOWN = "unknown"


class QueueFull(RuntimeError):
    """No room for another run right now: the owner has enough waiting, or the server's queue is full."""


class OverCap(ValueError):
    """A run over a hosted server's caps (`lab.runs.hosting.HostLimits`); the message names the cap."""


class CancelOutcome(StrEnum):
    """What `Worker.cancel` did. A plain string ("cancelled", "unwatched", "unknown") that is
    false only for "unknown", so `if worker.cancel(key):` still reads "was there a job"."""

    CANCELLED = "cancelled"  # the run was cancelled (queued: dropped; running: asked to stop)
    UNWATCHED = "unwatched"  # this page stopped watching; the run goes on for the others watching it
    UNKNOWN = "unknown"  # no queued or running job with this key

    def __bool__(self) -> bool:
        return self is not CancelOutcome.UNKNOWN


@dataclass(frozen=True, eq=False)
class JobStatus:
    """What a caller polling a run needs to show it.

    `state` is one of `lab.runs.store.STATES` or "unknown". `position` is 0 for the running
    job, 1, 2, ... for jobs waiting in the queue, and None for anything else. `history`
    is a fresh list of the epoch rows finished so far (safe to modify). `cached` is True
    when the result was read from the store rather than trained by this worker. `elsewhere`
    is True while another worker over the same store trains the run (another server): its
    `position` is then 0 when it trains there and 1 while it waits there (its place in that
    queue is not known here). `error` is the failure, or why a run was cancelled when no one
    clicked Cancel (e.g. "cancelled: nobody was watching the run").
    """

    key: str
    state: str
    position: int | None = None
    history: list[Row] = field(default_factory=list)
    error: str | None = None
    epochs_done: int = 0
    epochs_total: int = 0
    owners: tuple[str | None, ...] = ()
    cancel_requested: bool = False
    cached: bool = False
    elsewhere: bool = False

    @property
    def active(self) -> bool:
        """Queued or running: the caller should keep polling."""
        return self.state in ("queued", "running")

    @property
    def done(self) -> bool:
        return self.state == "done"


@dataclass(eq=False)
class Job:
    """A queued or running run of this worker, or one it follows while another worker trains it."""

    key: str
    config: RunConfig
    owners: list[str | None]
    state: str = "queued"
    rows: list[Row] = field(default_factory=list)  # checked rows, appended by the worker thread only
    error: str | None = None
    # Set to ask the running trainer to stop; `stop_reason` says what to record then, and
    # `stop_note` why, when it was not a click on Cancel.
    stop: threading.Event = field(default_factory=threading.Event)
    stop_reason: str | None = None
    stop_note: str | None = None
    # Page (session) id -> when it last polled the job, and when the job was asked for (the
    # worker's clock): a job no page polls still has that long before it counts as unwatched.
    watchers: dict[str, float] = field(default_factory=dict)
    asked: float = 0.0
    # True while another worker over the same store trains it and this one only follows it.
    follower: bool = False

    @property
    def first_owner(self) -> str | None:
        """Who asked for it first: the owner whose turn it takes in the fair queue."""
        return self.owners[0] if self.owners else None


@dataclass(frozen=True, eq=False)
class Finished:
    """The final state of a job, kept so that polling it stays cheap."""

    state: str
    history: tuple[Row, ...]
    error: str | None
    epochs_done: int
    epochs_total: int
    owners: tuple[str | None, ...]
    cached: bool


def finished_from_job(job: Job, cached: bool = False) -> Finished:
    return Finished(
        state=job.state,
        history=tuple(job.rows),
        error=job.error,
        epochs_done=len(job.rows),
        epochs_total=job.config.epochs,
        owners=tuple(job.owners),
        cached=cached,
    )


def finished_from_store(run: StoredRun) -> Finished:
    return Finished(
        state=run.status.state,
        history=tuple(run.history),
        error=run.status.error,
        epochs_done=run.status.epochs_done,
        epochs_total=run.status.epochs_total,
        owners=(),
        cached=True,
    )


def status_from_finished(key: str, finished: Finished) -> JobStatus:
    return JobStatus(
        key=key,
        state=finished.state,
        history=[dict(row) for row in finished.history],
        error=finished.error,
        epochs_done=finished.epochs_done,
        epochs_total=finished.epochs_total,
        owners=finished.owners,
        cached=finished.cached,
    )
