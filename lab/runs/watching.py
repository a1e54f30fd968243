"""What the worker thread checks every `SWEEP_SECONDS`: runs nobody watches, and runs another
worker over the same store trains (another server), which this one only follows.

A page polling a run says it watches it (`Worker.status(key, watcher=...)`). With
`unwatched_seconds` set, a queued or running run that no page has polled for that long,
here or through a worker following it (`lab.runs.claims.touch_watched`), is cancelled.

A followed run is read from the store until its holder lets go of its claim: then the
store's result (done, failed, cancelled, interrupted) is served, or, when the holder died
before the run ended, the claim is taken over and the run trained here.

`Watching` is a part of `lab.runs.worker.Worker`, kept in its own module; it uses the
worker's lock, jobs, store and claim identity.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

from lab.config import RunConfig
from lab.runs import claims
from lab.runs.jobs import Finished, Job
from lab.runs.store import RunStore

log = logging.getLogger(__name__)

# How often the worker thread checks who still watches its runs and how followed runs go.
SWEEP_SECONDS = 1.0
# A page polls a run every 1.5 s: one silent for this long has gone (closed, or refreshed into
# a new session), so a Cancel from another page no longer waits for it.
STILL_WATCHING_SECONDS = 10.0
UNWATCHED_NOTE = "cancelled: nobody was watching the run"

# The clocks, module-level so tests can move them: when pages polled, and when a following
# worker last said its page watches (a file's mtime, so wall-clock time).
clock = time.monotonic
wall_clock = time.time


class Watching:
    """The watchers and the followed runs of a `Worker`.

    Uses the worker's fields annotated below, and its methods `_cancel`, `_end`, `_enqueue`
    and `_finished_meanwhile`.
    """

    store: RunStore
    unwatched_seconds: float | None
    _cond: threading.Condition
    _jobs: dict[str, Job]
    _finished: OrderedDict[str, Finished]
    _identity: claims.Holder
    _stopping: bool
    _swept: float

    def _follow(self, config: RunConfig, owner: str | None) -> str:
        """Follow a run another worker trains: its state comes from the store (see `_sweep`)."""
        job = Job(key=config.key(), config=config, owners=[owner], follower=True)
        stored = self.store.load_status(job.key)
        if stored is not None and stored.active:
            job.state = stored.state
        job.asked = clock()
        self._watch(job, owner)
        self._jobs[job.key] = job
        self._finished.pop(job.key, None)
        self._cond.notify_all()  # the thread now wakes up to follow it
        return job.key

    def _watch(self, job: Job, watcher: str | None) -> None:
        if watcher is not None:
            job.watchers[watcher] = clock()

    def _watched(self, job: Job, window: float | None, asked_too: bool = False) -> bool:
        """Whether a page watches `job`: polled within `window` seconds, or at all when None.

        With `asked_too` (the sweep) the moment it was asked for counts as a poll; not for a
        Cancel, so that a Cancel with no other page left watching cancels at once.
        """
        times = [*job.watchers.values(), *([job.asked] if asked_too else [])]
        if window is None:
            return bool(times)
        return any(clock() - t <= window for t in times)

    def _still_watching_window(self) -> float | None:
        if self.unwatched_seconds is None:
            return None
        return min(self.unwatched_seconds, STILL_WATCHING_SECONDS)

    def _watched_remotely(self, key: str, seconds: float) -> bool:
        """Whether a page of another worker following this run watched it lately."""
        try:
            folder = self.store.run_dir(key)
        except ValueError:  # not a run key (a link can carry anything)
            return False
        return claims.watched_within(folder, seconds, wall_clock())

    # -- the sweep: unwatched runs, followed runs (the worker thread) ---------------------
    def _sweep(self) -> None:
        """Every `SWEEP_SECONDS`: cancel runs nobody watches, and bring followed runs up to date."""
        with self._cond:
            if clock() - self._swept < SWEEP_SECONDS:
                return
            self._swept = clock()
            jobs = list(self._jobs.values())
        for job in jobs:
            try:
                if job.follower:
                    self._follow_step(job)
                elif self.unwatched_seconds is not None:
                    self._cancel_if_unwatched(job)
            except Exception:  # a damaged file must not stop the worker
                log.exception("worker: could not check run %s", job.key)

    def _cancel_if_unwatched(self, job: Job) -> None:
        seconds = self.unwatched_seconds
        with self._cond:
            if self._jobs.get(job.key) is not job or self._watched(job, seconds, asked_too=True):
                return
        if self._watched_remotely(job.key, seconds):  # a file read: outside the lock
            return
        with self._cond:
            if self._jobs.get(job.key) is job and not self._watched(job, seconds, asked_too=True):
                log.info("run %s: nobody watched it for %s s, cancelled", job.key, seconds)
                self._cancel(job, UNWATCHED_NOTE)

    def _follow_step(self, job: Job) -> None:
        """Bring a followed run up to date from the store; serve it, or train it, once its holder is gone."""
        folder = self.store.run_dir(job.key)
        held = claims.holder(folder)
        stored = self.store.load_status(job.key)
        if held != self._identity and claims.alive(held, folder):
            changed = stored is not None and stored.epochs_done != len(job.rows)
            run = self.store.load(job.key) if changed else None
            with self._cond:
                if self._jobs.get(job.key) is not job:
                    return
                if stored is not None and stored.active:
                    job.state = stored.state
                if run is not None:
                    job.rows = list(run.history)
                watched = self._watched(job, self.unwatched_seconds, asked_too=True)
                if not watched:
                    del self._jobs[job.key]  # nobody here watches it any more: stop following
            if watched:
                claims.touch_watched(folder, wall_clock())
            return
        if stored is not None and not stored.active:
            self._serve_followed(job)
        else:
            self._take_over(job)

    def _serve_followed(self, job: Job) -> None:
        """Its holder has finished with it: the store's result (done, failed, cancelled...) is the answer."""
        run = self.store.load(job.key)
        with self._cond:
            if self._jobs.get(job.key) is not job:
                return
            if run is None:
                del self._jobs[job.key]  # unreadable: `status` reports what the store says
                return
            job.rows, job.error = list(run.history), run.status.error
            self._end(job, run.status.state, cached=True)

    def _take_over(self, job: Job) -> None:
        """Its holder died before the run ended: claim it and train it here."""
        folder = self.store.run_dir(job.key)
        with self._cond:
            if self._jobs.get(job.key) is not job or self._stopping:
                return
            if claims.acquire(folder, self._identity) is not None:
                return  # another worker took it over first: keep following
            del self._jobs[job.key]
            try:
                if self._finished_meanwhile(job.key):
                    claims.release(folder, self._identity)
                    return
                self.store.record_queued(job.config)
            except Exception:
                claims.release(folder, self._identity)
                log.exception("worker: could not take over run %s", job.key)
                return
            log.info("run %s: the worker training it has gone, trained here", job.key)
            job.follower, job.state, job.rows = False, "queued", []
            self._enqueue(job, None)
