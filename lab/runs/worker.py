"""The single background worker that trains the server's runs, one or a few at a time.

TensorFlow must never train two models at once in one process (memory, and the course's
timings would mean nothing), while the page is used by several sessions at once. So every
training request goes through one `Worker`: a fair queue (`lab.runs.fair_queue`) and one
daemon thread per training slot. A trainer that trains outside this process, in several
children or on Ray (`lab.runs.parallel`), says how many runs it takes at once (its `slots`),
and the worker keeps that many running; otherwise one job at a time. Requests are keyed by
`RunConfig.key()`:

- a key already "done" in the `RunStore` is answered from disk, without a job (this also
  holds after a restart, for a new worker over the same store);
- a key already queued or running is shared: every caller polls the same job;
- a key another worker over the same store trains (another server, `lab.runs.claims`) is
  followed through the store and never trained twice;
- anything else is queued and, in turn, trained, its history written per epoch.

On a shared host the worker enforces the caps itself (`limits`, `max_queued`), so a crafted
link cannot get around the page, and cancels runs that no page has polled for a while
(`unwatched_seconds`). It checks that in its own thread (`lab.runs.watching`), between jobs
and, while training, each time the trainer asks whether to stop.

A history is epoch rows (`lab.history`) from the trainer to the store and to the caller.

The page calls `status()` many times a second from several sessions: it only takes the
lock long enough to copy a few fields, and never while a file is written or read.

TensorFlow is imported lazily, inside the worker thread, and only when no `train_fn` was
injected, so the page and the tests can import this module cheaply.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from pathlib import Path

from lab.config import RunConfig
from lab.runs import claims, hosting, seeding, watching
from lab.runs.fair_queue import TURN, FairQueue
from lab.runs.hosting import HostLimits
from lab.runs.jobs import (
    UNKNOWN,
    CancelOutcome,
    Finished,
    Job,
    JobStatus,
    OverCap,
    QueueFull,
    finished_from_job,
    finished_from_store,
    status_from_finished,
)
from lab.runs.run_job import TrainFn, run_job, store_safely
from lab.runs.store import RunStore
from lab.runs.watching import STILL_WATCHING_SECONDS, UNWATCHED_NOTE, Watching

__all__ = [
    "MAX_WAITING_PER_OWNER",
    "STILL_WATCHING_SECONDS",
    "TURN",
    "UNKNOWN",
    "UNWATCHED_NOTE",
    "CancelOutcome",
    "JobStatus",
    "OverCap",
    "QueueFull",
    "Worker",
]

log = logging.getLogger(__name__)

# How many jobs one owner may have waiting at once.
MAX_WAITING_PER_OWNER = 4
# Finished jobs whose final status is kept in memory, so polling a finished run does not
# read its files again and again.
_FINISHED_CACHE_SIZE = 256

# Held while any worker in this process trains. One worker already trains one job at a
# time; this also holds when a second `Worker` is created in the same process (a
# reloaded page module, a test), so two models never train at once.
_TRAINING_LOCK = threading.Lock()


class Worker(Watching):
    """One background thread that trains submitted configurations one at a time.

    `train_fn(config, on_epoch=..., should_stop=...)` defaults to `lab.training.train.train`
    (imported inside the thread). Opening a worker marks runs left active by a dead
    process as "interrupted" in the store.

    `limits` (hosted mode): `submit` refuses, with `OverCap`, a run over the caps and more
    than `2 * limits.max_seeds` queued or running runs of one owner. `max_queued`: how many
    runs may wait in all; None reads `lab.runs.hosting.max_queued()` (`$LAB_MAX_QUEUED`, 24
    when hosted, else no bound), 0 means no bound. `unwatched_seconds`: a queued or running
    run that no page has polled (`status(key, watcher=...)`) for that long is cancelled;
    None (the command line, tests) never cancels a run for that.

    `train_fn.slots` (`lab.runs.parallel`), when the trainer has it, is how many runs train
    at once; an in-process trainer always trains one. `atlas`: a folder of recordings
    (`python -m lab atlas`) the store is seeded with first, so those runs are answered at once.
    """

    def __init__(
        self,
        store: RunStore,
        train_fn: TrainFn | None = None,
        *,
        limits: HostLimits | None = None,
        max_queued: int | None = None,
        unwatched_seconds: float | None = None,
        atlas: Path | None = None,
    ) -> None:
        self.store = store
        self.limits = limits
        bound = hosting.max_queued() if max_queued is None else max_queued
        self.max_queued: int | None = bound if bound else None
        self.unwatched_seconds = unwatched_seconds
        self._train_fn = train_fn
        self._identity = claims.new_identity()  # what this worker writes into the claims it holds
        self._cond = threading.Condition()
        self._queue = FairQueue()
        self._jobs: dict[str, Job] = {}  # queued, running and followed jobs, by key
        self._running: list[Job] = []
        self.slots = max(1, int(getattr(train_fn, "slots", 1) or 1)) if train_fn is not None else 1
        self._finished: OrderedDict[str, Finished] = OrderedDict()
        self._stopping = False
        self._swept = -math.inf
        store.mark_interrupted()
        if atlas is not None:
            seeding.seed_from_recordings(store, atlas)
        self._threads_left = self.slots
        self._threads = [
            threading.Thread(target=self._loop, name=f"overfitting-lab-worker-{slot}", daemon=True)
            for slot in range(self.slots)
        ]
        for thread in self._threads:
            thread.start()

    # -- the page's side ----------------------------------------------------------------
    def submit(self, config: RunConfig, owner: str | None = None, *, train_count: int | None = None) -> str:
        """Ask for `config` to be trained; returns its key, to poll with `status()`.

        No job is created when the store already has the run "done" (a cache hit), and a
        key already queued or running is shared rather than trained twice, also with
        another worker over the same store. `owner` (a session id) watches the run from
        now on and takes turns in the fair queue. `train_count` is the size of the
        dataset's training split, as for `hosting.apply_limits`: with `limits`, "all
        images" (train_images 0) is over the cap unless it says the dataset is small.

        Raises `OverCap` for a run over the caps or an owner with too many runs at once,
        `QueueFull` when the owner has `MAX_WAITING_PER_OWNER` runs waiting or the server
        `max_queued`, and RuntimeError after `shutdown`. A run that is shared, followed or
        already done is never refused.
        """
        key = config.key()
        over = hosting.over_caps(config, self.limits, train_count)
        with self._cond:
            if self._stopping:
                raise RuntimeError("the worker has been shut down")
            job = self._jobs.get(key)
            if job is not None:
                if owner not in job.owners:
                    job.owners.append(owner)
                self._watch(job, owner)
                return key
            if self._served_from_store(key):
                return key
            folder = self.store.run_dir(key)
            held = claims.holder(folder)
            if held != self._identity and claims.alive(held, folder):
                return self._follow(config, owner)
            if over:
                raise OverCap(f"This server trains smaller runs: {'; '.join(over)}.")
            self._check_room(owner)
            if claims.acquire(folder, self._identity) is not None:
                return self._follow(config, owner)  # another worker claimed it just now
            try:
                if self._finished_meanwhile(key):
                    claims.release(folder, self._identity)
                    return key
                self.store.record_queued(config)
            except BaseException:
                claims.release(folder, self._identity)
                raise
            self._enqueue(Job(key=key, config=config, owners=[owner]), owner)
        return key

    def status(self, key: str, watcher: str | None = None) -> JobStatus:
        """The state of `key`: live from memory while queued or running, else from the store.

        `watcher`, the polling page's session id, records that this page still watches
        the run (see `unwatched_seconds`). Never raises for an unknown or damaged key:
        that is reported as state "unknown".
        """
        known = self._status_from_memory(key, watcher)
        if known is not None:
            return known
        stored = self.store.load(key)  # outside the lock: disk reads must not block others
        with self._cond:
            if key in self._jobs or key in self._finished:
                stored = None  # submitted or finished meanwhile: memory is newer than disk
            elif stored is not None and stored.done:
                self._remember(key, finished_from_store(stored))
        if stored is None:
            known = self._status_from_memory(key, watcher)
            return known if known is not None else JobStatus(key=key, state=UNKNOWN)
        return status_from_finished(key, finished_from_store(stored))

    def cancel(self, key: str, watcher: str | None = None, *, owner: str | None = None) -> CancelOutcome:
        """Cancel the queued or running job `key`, or stop `watcher` watching it.

        Without `watcher` (the command line, tests) the job is cancelled outright. With it
        (`owner` is the older name), that page stops watching, and the job is cancelled
        only when no other page still watches it: with `unwatched_seconds`, none that
        polled in the last `STILL_WATCHING_SECONDS` (a refreshed page's old session does
        not count), else none that submitted or polled it at all. A queued job is dropped
        at once; a running one is asked to stop (the trainer checks between batches) and
        the worker moves on. A run another server trains is only no longer followed here.

        Returns "cancelled", "unwatched" (the run goes on for the others watching it) or
        "unknown" (no queued or running job `key`); see `CancelOutcome`.
        """
        watcher = watcher if watcher is not None else owner
        window = self._still_watching_window()
        remote = watcher is not None and window is not None and self._watched_remotely(key, window)
        with self._cond:
            job = self._jobs.get(key)
            if job is None:
                return CancelOutcome.UNKNOWN
            if watcher is not None:
                job.watchers.pop(watcher, None)
                if watcher in job.owners:
                    job.owners.remove(watcher)
                if remote or self._watched(job, window):
                    return CancelOutcome.UNWATCHED
            if job.follower:
                # Its server cancels it once no page there, nor here, watches it.
                del self._jobs[key]
                return CancelOutcome.UNWATCHED
            self._cancel(job)
        return CancelOutcome.CANCELLED

    def queue_snapshot(self) -> list[str]:
        """Keys in the order they will train: the running job first, then the waiting ones."""
        with self._cond:
            return [job.key for job in self._running] + [job.key for job in self._queue.ordered()]

    @property
    def alive(self) -> bool:
        """Whether the worker's threads are running (False after `shutdown`)."""
        return any(thread.is_alive() for thread in self._threads)

    def shutdown(self, timeout: float | None = 10.0) -> bool:
        """Stop the worker: waiting jobs and the running one end as "interrupted".

        Returns whether the thread ended within `timeout` seconds.
        """
        with self._cond:
            self._stopping = True
            for job in self._queue.clear():
                store_safely(self.store.record_interrupted, job.key)
                self._end(job, "interrupted")
            for job in [job for job in self._jobs.values() if job.follower]:
                del self._jobs[job.key]
            for running in self._running:
                running.stop_reason = running.stop_reason or "interrupted"
                running.stop.set()
            self._cond.notify_all()
        deadline = None if timeout is None else watching.clock() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - watching.clock()))
        # A trainer that keeps a child process (SubprocessTrainer) ends it with the worker.
        close = getattr(self._train_fn, "close", None)
        if callable(close):
            close()
        return not self.alive

    # -- bookkeeping (the helpers below `_live` expect the lock held) ----------------------
    def _status_from_memory(self, key: str, watcher: str | None) -> JobStatus | None:
        """The status of a job this worker knows (queued, running, followed or recently finished)."""
        with self._cond:
            job = self._jobs.get(key)
            if job is None:
                finished = self._finished.get(key)
                if finished is None:
                    return None
                self._finished.move_to_end(key)
                live = None
            else:
                self._watch(job, watcher)
                live = self._live(job)
        if live is None:
            return status_from_finished(key, finished)  # outside the lock: a finished job never changes
        state, position, rows, error, owners, cancel_requested, elsewhere = live
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
            elsewhere=elsewhere,
        )

    def _live(self, job: Job) -> tuple:
        """The fields of a queued, running or followed job that change (lock held)."""
        if job.follower:
            position: int | None = 0 if job.state == "running" else 1
        elif job.state == "running":
            position = 0
        elif job.state == "queued":
            position = self._queue.position(job)
        else:  # its final state is set, the bookkeeping not yet done
            position = None
        return (job.state, position, list(job.rows), job.error, tuple(job.owners), job.stop.is_set(), job.follower)

    def _served_from_store(self, key: str) -> bool:
        """Whether `key` is done, in memory or on disk: then it is served, never trained."""
        finished = self._finished.get(key)
        if finished is not None and finished.state == "done":
            return True
        # The store is read under the lock: otherwise a job finishing in between could be
        # queued again and trained twice.
        hit = self.store.cache_hit(key)
        if hit is not None:
            self._remember(key, finished_from_store(hit))
        return hit is not None

    def _finished_meanwhile(self, key: str) -> bool:
        """After claiming `key`: whether another worker finished it just before (then it is served)."""
        stored = self.store.load_status(key)  # no status yet is the usual case, and no warning
        return stored is not None and stored.done and self._served_from_store(key)

    def _check_room(self, owner: str | None) -> None:
        """Refuse a new job when the server's queue, or the owner's share of it, is full."""
        if self.max_queued is not None and len(self._queue) >= self.max_queued:
            raise QueueFull(
                f"The server is busy: {len(self._queue)} runs are waiting for their turn; try again in a few minutes."
            )
        if owner is None:
            return
        waiting = self._queue.waiting_of(owner)
        if waiting >= MAX_WAITING_PER_OWNER:
            raise QueueFull(f"{waiting} of your runs are already waiting: let them finish or cancel them first")
        if self.limits is not None:
            mine = sum(1 for job in self._jobs.values() if not job.follower and job.first_owner == owner)
            if mine >= 2 * self.limits.max_seeds:
                raise OverCap(
                    f"{mine} of your runs are already queued or training, the most this server allows at once "
                    f"({self.limits.max_seeds} seeds per side): let them finish or cancel them first."
                )

    def _enqueue(self, job: Job, owner: str | None) -> None:
        job.asked = watching.clock()
        self._watch(job, owner)
        self._jobs[job.key] = job
        self._finished.pop(job.key, None)
        self._queue.append(job)
        self._cond.notify_all()

    def _cancel(self, job: Job, note: str | None = None) -> None:
        """Cancel a queued job, or ask the running one to stop; `note` says why when no one clicked Cancel."""
        if job in self._running:
            job.stop_reason, job.stop_note = "cancelled", note
            job.stop.set()
            return
        # A quick write, under the lock so no caller sees "cancelled" before the disk does.
        store_safely(self.store.record_cancel, job.key, None, note)
        self._queue.remove(job)
        job.error = note
        self._end(job, "cancelled")

    def _end(self, job: Job, state: str, cached: bool = False) -> None:
        """The job is over: forget it, free its claim, keep its final state for polling."""
        job.state = state
        self._jobs.pop(job.key, None)
        if not job.follower:
            claims.release(self.store.run_dir(job.key), self._identity)
        self._remember(job.key, finished_from_job(job, cached))

    def _remember(self, key: str, finished: Finished) -> None:
        """Keep a finished job's final state."""
        self._finished[key] = finished
        self._finished.move_to_end(key)
        while len(self._finished) > _FINISHED_CACHE_SIZE:
            self._finished.popitem(last=False)

    # -- the thread's side --------------------------------------------------------------
    def _loop(self) -> None:
        try:
            while self._serve_next():
                pass
        finally:
            with self._cond:
                self._threads_left -= 1
                last = self._threads_left == 0
            if last:
                claims.retire(self._identity)  # claims it still holds may be taken over now

    def _serve_next(self) -> bool:
        """Wait for a job and train it; False once the worker stops."""
        self._sweep()
        with self._cond:
            if self._stopping:
                return False
            if not self._queue:
                following = any(job.follower for job in self._jobs.values())
                self._cond.wait(watching.SWEEP_SECONDS if following else None)
                return True
        # Training in this process, or in one child: wait for any other worker of this process
        # to finish training first. A trainer with several slots trains elsewhere, in its own share.
        lock = _TRAINING_LOCK if self.slots == 1 else None
        while lock is not None and not lock.acquire(timeout=0.1):
            self._sweep()
            with self._cond:
                if self._stopping:
                    return False
        try:
            with self._cond:
                if self._stopping or not self._queue:
                    return True  # cancelled while we waited for the lock
                job = self._queue.take()
                job.state = "running"
                self._running.append(job)
            try:
                run_job(job, self.store, self._train_fn, self._cond, on_check=self._sweep)
            except Exception:  # never let a bookkeeping error kill the worker
                log.exception("worker: unexpected error around run %s", job.key)
                with self._cond:
                    if job.state == "running":
                        job.state = "failed"
                        job.error = job.error or "internal error in the worker; see the log"
            finally:
                with self._cond:
                    self._running.remove(job)
                    self._end(job, job.state)
                    self._cond.notify_all()
        finally:
            if lock is not None:
                lock.release()
        return True
