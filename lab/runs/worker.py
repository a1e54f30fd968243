"""The single background worker that trains runs one at a time.

TensorFlow must never train two models at once in one process (memory, and the course's
timings would mean nothing), while the page is used by several sessions at once. So every
training request goes through one `Worker`: one daemon thread, a FIFO queue, one job at
a time. Requests are keyed by `RunConfig.key()`:

- a key already "done" in the `RunStore` is answered from disk, without a job (this also
  holds after a restart, for a new worker over the same store);
- a key already queued or running is shared: every caller polls the same job;
- anything else is queued and, in turn, trained, its history written per epoch.

A history is epoch rows (`lab.history`) from the trainer to the store and to the caller.

The page calls `status()` many times a second from several sessions: it only takes the
lock long enough to copy a few fields, and never while a file is written or read.

TensorFlow is imported lazily, inside the worker thread, and only when no `train_fn` was
injected, so the page and the tests can import this module cheaply.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lab.config import RunConfig
from lab.errors import RunCancelled
from lab.history import Row, from_rows
from lab.runs.store import RunStore, StoredRun

log = logging.getLogger(__name__)

TrainFn = Callable[..., list[Row]]

# A fair queue: owners (page sessions) take turns of this many jobs, the two runs of one
# comparison, so one visitor cannot queue ten jobs ahead of everyone else.
TURN = 2
# How many jobs one owner may have waiting at once.
MAX_WAITING_PER_OWNER = 4


class QueueFull(RuntimeError):
    """An owner asked for more jobs than may wait for them at once."""


# Reported for a key that neither this worker nor the store knows.
UNKNOWN = "unknown"

# Finished jobs whose final status is kept in memory, so polling a finished run does not
# read its files again and again.
_FINISHED_CACHE_SIZE = 256

# Held while any worker in this process trains. One worker already trains one job at a
# time; this also holds when a second `Worker` is created in the same process (a
# reloaded page module, a test), so two models never train at once.
_TRAINING_LOCK = threading.Lock()


@dataclass(frozen=True, eq=False)
class JobStatus:
    """What a caller polling a run needs to show it.

    `state` is one of `lab.runs.store.STATES` or "unknown". `position` is 0 for the running
    job, 1, 2, ... for jobs waiting in the queue, and None for anything else. `history`
    is a fresh list of the epoch rows finished so far (safe to modify). `cached` is True
    when the result was read from the store rather than trained by this worker.
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

    @property
    def active(self) -> bool:
        """Queued or running: the caller should keep polling."""
        return self.state in ("queued", "running")

    @property
    def done(self) -> bool:
        return self.state == "done"


@dataclass(eq=False)
class _Job:
    key: str
    config: RunConfig
    owners: list[str | None]
    state: str = "queued"
    rows: list[Row] = field(default_factory=list)  # checked rows, appended by the worker thread only
    error: str | None = None
    # Set to ask the running trainer to stop; `stop_reason` says what to record then.
    stop: threading.Event = field(default_factory=threading.Event)
    stop_reason: str | None = None
    submitted: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, eq=False)
class _Finished:
    """The final state of a job, kept so that polling it stays cheap."""

    state: str
    history: tuple[Row, ...]
    error: str | None
    epochs_done: int
    epochs_total: int
    owners: tuple[str | None, ...]
    cached: bool


class Worker:
    """One background thread that trains submitted configurations one at a time.

    `train_fn(config, on_epoch=..., should_stop=...)` defaults to `lab.training.train.train`
    (imported inside the thread). Opening a worker marks runs left active by a dead
    process as "interrupted" in the store.
    """

    def __init__(self, store: RunStore, train_fn: TrainFn | None = None) -> None:
        self.store = store
        self._served: dict[str | None, int] = {}  # owner -> when it last had a job start
        self._turns = 0
        self._turn_owner: str | None = None  # whose turn is running, and how many jobs it has left
        self._turn_left = 0
        self._train_fn = train_fn
        self._cond = threading.Condition()
        self._queue: list[_Job] = []
        self._jobs: dict[str, _Job] = {}  # queued and running jobs, by key
        self._running: _Job | None = None
        self._finished: OrderedDict[str, _Finished] = OrderedDict()
        self._stopping = False
        store.mark_interrupted()
        self._thread = threading.Thread(target=self._loop, name="overfitting-lab-worker", daemon=True)
        self._thread.start()

    # -- the page's side ----------------------------------------------------------------
    def submit(self, config: RunConfig, owner: str | None = None) -> str:
        """Ask for `config` to be trained; returns its key, to poll with `status()`.

        No job is created when the store already has the run "done" (a cache hit), and a
        key already queued or running is shared rather than trained twice. `owner` (a
        session id, say) is recorded on the job: it lets `cancel` leave a shared job
        running for its other owners, and is what a fair queue would order by.
        """
        key = config.key()
        with self._cond:
            if self._stopping:
                raise RuntimeError("the worker has been shut down")
            job = self._jobs.get(key)
            if job is not None:
                if owner not in job.owners:
                    job.owners.append(owner)
                return key
            finished = self._finished.get(key)
            if finished is not None and finished.state == "done":
                return key
            # The store is read under the lock: otherwise a job finishing in between
            # could be queued again and trained twice.
            hit = self.store.cache_hit(key)
            if hit is not None:
                self._remember(key, _finished_from_store(hit))
                return key
            waiting = sum(1 for queued in self._queue if owner is not None and queued.owners[:1] == [owner])
            if waiting >= MAX_WAITING_PER_OWNER:
                raise QueueFull(f"{waiting} of your runs are already waiting: let them finish or cancel them first")
            self.store.record_queued(config)
            job = _Job(key=key, config=config, owners=[owner])
            self._jobs[key] = job
            self._finished.pop(key, None)
            self._queue.append(job)
            self._cond.notify_all()
        return key

    def status(self, key: str) -> JobStatus:
        """The state of `key`: live from memory while queued or running, else from the store.

        Never raises for an unknown or damaged key: that is reported as state "unknown".
        """
        known = self._status_from_memory(key)
        if known is not None:
            return known
        stored = self.store.load(key)  # outside the lock: disk reads must not block others
        with self._cond:
            if key in self._jobs or key in self._finished:
                stored = None  # submitted or finished meanwhile: memory is newer than disk
            elif stored is not None and stored.done:
                self._remember(key, _finished_from_store(stored))
        if stored is None:
            known = self._status_from_memory(key)
            return known if known is not None else JobStatus(key=key, state=UNKNOWN)
        return _status_from_finished(key, _finished_from_store(stored))

    def _status_from_memory(self, key: str) -> JobStatus | None:
        """The status of a job this worker knows (queued, running or recently finished)."""
        with self._cond:
            job = self._jobs.get(key)
            if job is None:
                finished = self._finished.get(key)
                if finished is None:
                    return None
                self._finished.move_to_end(key)
            else:
                if job.state == "running":
                    position: int | None = 0
                elif job.state == "queued":
                    position = self._ordered().index(job) + 1
                else:  # its final state is set, the bookkeeping not yet done
                    position = None
                rows = list(job.rows)
                live = (job.state, position, job.error, tuple(job.owners), job.stop.is_set())
        if job is None:
            return _status_from_finished(key, finished)
        state, position, error, owners, cancel_requested = live
        return JobStatus(
            key=key,
            state=state,
            position=position,
            history=[dict(row) for row in rows],  # copied outside the lock
            error=error,
            epochs_done=len(rows),
            epochs_total=job.config.epochs,
            owners=owners,
            cancel_requested=cancel_requested,
        )

    def cancel(self, key: str, owner: str | None = None) -> bool:
        """Cancel the queued or running job `key`; returns whether there was one.

        With `owner`, only that owner's interest is withdrawn: a job shared with other
        owners keeps going, and is cancelled once its last owner cancels. A queued job is
        dropped at once; a running one is asked to stop (the trainer checks between
        batches) and the worker moves on to the next job. The state becomes "cancelled"
        (a run that completes before it notices the request ends "done", its result whole).
        """
        with self._cond:
            job = self._jobs.get(key)
            if job is None:
                return False
            if owner is not None:
                if owner in job.owners:
                    job.owners.remove(owner)
                if job.owners:
                    return True
            if job is self._running:
                job.stop_reason = "cancelled"
                job.stop.set()
                return True
            # A quick write, under the lock so no caller sees "cancelled" before the disk does.
            self._store_safely(self.store.record_cancel, key)
            self._queue.remove(job)
            del self._jobs[key]
            job.state = "cancelled"
            self._remember(key, _finished_from_job(job))
        return True

    def queue_snapshot(self) -> list[str]:
        """Keys in the order they will train: the running job first, then the waiting ones."""
        with self._cond:
            running = [self._running.key] if self._running is not None else []
            return running + [job.key for job in self._ordered()]

    @property
    def alive(self) -> bool:
        """Whether the worker thread is running (False after `shutdown`)."""
        return self._thread.is_alive()

    def shutdown(self, timeout: float | None = 10.0) -> bool:
        """Stop the worker: waiting jobs and the running one end as "interrupted".

        Returns whether the thread ended within `timeout` seconds.
        """
        with self._cond:
            self._stopping = True
            waiting, self._queue = self._queue, []
            for job in waiting:
                self._store_safely(self.store.record_interrupted, job.key)
                del self._jobs[job.key]
                job.state = "interrupted"
                self._remember(job.key, _finished_from_job(job))
            if self._running is not None:
                self._running.stop_reason = self._running.stop_reason or "interrupted"
                self._running.stop.set()
            self._cond.notify_all()
        self._thread.join(timeout)
        # A trainer that keeps a child process (SubprocessTrainer) ends it with the worker.
        close = getattr(self._train_fn, "close", None)
        if callable(close):
            close()
        return not self._thread.is_alive()

    # -- the thread's side --------------------------------------------------------------
    def _next_job(self) -> _Job:
        """Which waiting job trains next: the head of the fair order (lock held)."""
        job = self._ordered()[0]
        owner = job.owners[0] if job.owners else None
        if owner == self._turn_owner and self._turn_left > 0:
            self._turn_left -= 1
        else:
            self._turn_owner, self._turn_left = owner, TURN - 1
        self._turns += 1
        self._served[owner] = self._turns
        return job

    def _ordered(self) -> list[_Job]:
        """The waiting jobs in the order they will train (call with the lock held).

        Owners take turns of `TURN` jobs (one comparison), the owner served longest ago
        first, and a turn that has started is finished first. Each owner's jobs keep the
        order they were asked in; with one owner this is plain FIFO.
        """
        by_owner: dict[str | None, list[_Job]] = {}
        for job in self._queue:
            by_owner.setdefault(job.owners[0] if job.owners else None, []).append(job)
        order: list[_Job] = []
        current = by_owner.get(self._turn_owner, [])
        order += current[: self._turn_left]
        del current[: self._turn_left]
        owners = sorted(by_owner, key=lambda owner: self._served.get(owner, 0))  # stable: ties keep asking order
        while any(by_owner.values()):
            for owner in owners:
                order += by_owner[owner][:TURN]
                del by_owner[owner][:TURN]
        return order

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
            # Wait for any other worker of this process to finish training first.
            while not _TRAINING_LOCK.acquire(timeout=0.1):
                with self._cond:
                    if self._stopping:
                        return
            try:
                with self._cond:
                    if self._stopping or not self._queue:
                        continue  # cancelled while we waited for the lock
                    job = self._next_job()
                    self._queue.remove(job)
                    job.state = "running"
                    self._running = job
                try:
                    self._run(job)
                except Exception:  # never let a bookkeeping error kill the worker
                    log.exception("worker: unexpected error around run %s", job.key)
                    with self._cond:
                        if job.state == "running":
                            job.state = "failed"
                            job.error = job.error or "internal error in the worker; see the log"
                finally:
                    with self._cond:
                        self._running = None
                        self._jobs.pop(job.key, None)
                        self._remember(job.key, _finished_from_job(job))
                        self._cond.notify_all()
            finally:
                _TRAINING_LOCK.release()

    def _run(self, job: _Job) -> None:
        """Train one job and record how it ended; the job's state is final afterwards."""

        def on_epoch(row: Row) -> None:
            # Only this thread appends rows, so reading them unlocked is race-free. A
            # malformed row, or a store that cannot be written, raises here, inside train,
            # and fails the run. Disk first, then memory: what a caller sees is on disk.
            (row,) = from_rows([row])
            self.store.record_epoch(job.key, [*job.rows, row])
            with self._cond:
                job.rows.append(row)

        def should_stop() -> bool:
            return job.stop.is_set()

        try:
            self.store.record_start(job.key)
            train = self._train_fn if self._train_fn is not None else _default_train()
            result = train(job.config, on_epoch=on_epoch, should_stop=should_stop)
            history = self._final_history(job, result)
        except RunCancelled as exc:
            history = self._rows(job)
            if not history:  # the trainer's own rows, when it reported none
                with contextlib.suppress(ValueError):
                    history = from_rows(exc.history or [])
            reason = job.stop_reason or "cancelled"
            # The store first, then memory: once a caller sees the final state, the
            # files say the same.
            record = self.store.record_cancel if reason == "cancelled" else self.store.record_interrupted
            self._store_safely(record, job.key, history)
            with self._cond:
                job.state = reason
            return
        except BaseException as exc:  # anything else, even SystemExit, fails the run only
            log.exception("run %s failed", job.key)
            error = f"{type(exc).__name__}: {exc}"
            self._store_safely(self.store.record_failure, job.key, error, self._rows(job))
            with self._cond:
                job.state = "failed"
                job.error = error
            return
        try:
            self.store.record_finish(job.key, history)
        except Exception as exc:
            # The result cannot be stored, so it cannot be served later: say so.
            log.exception("run %s finished but could not be stored", job.key)
            with self._cond:
                job.state = "failed"
                job.error = f"the run finished but could not be saved: {type(exc).__name__}: {exc}"
            return
        with self._cond:
            job.rows = history
            job.state = "done"

    def _final_history(self, job: _Job, result: Any) -> list[Row]:
        """The trainer's returned rows when it gives some, else the rows it reported."""
        if isinstance(result, (list, tuple)) and result:
            return from_rows(result)
        return self._rows(job)

    def _rows(self, job: _Job) -> list[Row]:
        with self._cond:
            return list(job.rows)

    def _store_safely(self, record: Callable[..., Any], *args: Any) -> None:
        """Write to the store from a path that must not raise (the run is over anyway)."""
        try:
            record(*args)
        except Exception:
            log.exception("worker: could not update the run store (%s)", getattr(record, "__name__", record))

    def _remember(self, key: str, finished: _Finished) -> None:
        """Keep a finished job's final state (caller holds the lock)."""
        self._finished[key] = finished
        self._finished.move_to_end(key)
        while len(self._finished) > _FINISHED_CACHE_SIZE:
            self._finished.popitem(last=False)


def _default_train() -> TrainFn:
    from lab.training.train import train  # TensorFlow is imported here, in the worker thread only

    return train


def _finished_from_job(job: _Job) -> _Finished:
    return _Finished(
        state=job.state,
        history=tuple(job.rows),
        error=job.error,
        epochs_done=len(job.rows),
        epochs_total=job.config.epochs,
        owners=tuple(job.owners),
        cached=False,
    )


def _status_from_finished(key: str, finished: _Finished) -> JobStatus:
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


def _finished_from_store(run: StoredRun) -> _Finished:
    return _Finished(
        state=run.status.state,
        history=tuple(run.history),
        error=run.status.error,
        epochs_done=run.status.epochs_done,
        epochs_total=run.status.epochs_total,
        owners=(),
        cached=True,
    )
