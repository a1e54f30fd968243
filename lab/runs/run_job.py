"""Training one job of the worker (`lab.runs.worker`) and recording how it ended.

Runs in the worker's thread. Every outcome is written to the store first and set on the job
second, so that once a caller polling the job sees its final state, the files say the same.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import threading
from collections.abc import Callable
from typing import Any

from lab.errors import RunCancelled
from lab.history import Row, from_rows
from lab.runs.jobs import Job
from lab.runs.store import RunStore

log = logging.getLogger(__name__)

TrainFn = Callable[..., list[Row]]


def run_job(
    job: Job, store: RunStore, train_fn: TrainFn | None, lock: threading.Condition, on_check: Callable[[], None]
) -> None:
    """Train `job` and record how it ended; the job's state is final afterwards.

    `train_fn` defaults to `lab.training.train.train`. `lock` guards the job's fields;
    `on_check` is called each time the trainer asks whether to stop (between batches).
    """

    def on_epoch(row: Row) -> None:
        # Only this thread appends rows, so reading them unlocked is race-free. A
        # malformed row, or a store that cannot be written, raises here, inside train,
        # and fails the run. Disk first, then memory: what a caller sees is on disk.
        (row,) = from_rows([row])
        store.record_epoch(job.key, [*job.rows, row])
        with lock:
            job.rows.append(row)

    def should_stop() -> bool:
        on_check()
        return job.stop.is_set()

    try:
        store.record_start(job.key)
        train = train_fn if train_fn is not None else default_train()
        outcome = {"outcome_dir": store.run_dir(job.key)} if keeps_outcome(train) else {}
        result = train(job.config, on_epoch=on_epoch, should_stop=should_stop, **outcome)
        history = _final_history(job, result, lock)
        device = _device(train, in_process=train_fn is None)
    except RunCancelled as exc:
        _record_stop(job, store, lock, exc)
        return
    except BaseException as exc:  # anything else, even SystemExit, fails the run only
        log.exception("run %s failed", job.key)
        _record_failure(job, store, lock, f"{type(exc).__name__}: {exc}")
        return
    try:
        store.record_finish(job.key, history, device)
    except Exception as exc:
        # The result cannot be stored, so it cannot be served later: say so.
        log.exception("run %s finished but could not be stored", job.key)
        with lock:
            job.state = "failed"
            job.error = f"the run finished but could not be saved: {type(exc).__name__}: {exc}"
        return
    with lock:
        job.rows = history
        job.state = "done"


def store_safely(record: Callable[..., Any], *args: Any) -> None:
    """Write to the store from a path that must not raise (the run is over anyway)."""
    try:
        record(*args)
    except Exception:
        log.exception("worker: could not update the run store (%s)", getattr(record, "__name__", record))


def keeps_outcome(train: TrainFn) -> bool:
    """Whether `train` takes `outcome_dir` (the lab's trainers do): its run then leaves its weights and
    validation predictions in the run's folder (`lab.training.outcome`). A trainer that does not
    (a test's stand-in) trains as before, and its runs show their curves only."""
    try:
        parameters = inspect.signature(train).parameters
    except (TypeError, ValueError):
        return False
    return "outcome_dir" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def _device(train: TrainFn, *, in_process: bool) -> str:
    """What trained the run: the trainer says (its child reported it), or this process when it trained here."""
    if in_process:
        from lab.training.train import training_device

        return training_device()
    return str(getattr(train, "device", "") or "")


def default_train() -> TrainFn:
    from lab.training.train import train  # TensorFlow is imported here, in the worker thread only

    return train


def _record_stop(job: Job, store: RunStore, lock: threading.Condition, exc: RunCancelled) -> None:
    """The trainer stopped as asked: "cancelled" (with why, when no one clicked) or "interrupted"."""
    history = _rows(job, lock)
    if not history:  # the trainer's own rows, when it reported none
        with contextlib.suppress(ValueError):
            history = from_rows(exc.history or [])
    reason = job.stop_reason or "cancelled"
    if reason == "cancelled":
        store_safely(store.record_cancel, job.key, history, job.stop_note)
    else:
        store_safely(store.record_interrupted, job.key, history)
    with lock:
        job.state = reason
        job.error = job.stop_note if reason == "cancelled" else None


def _record_failure(job: Job, store: RunStore, lock: threading.Condition, error: str) -> None:
    store_safely(store.record_failure, job.key, error, _rows(job, lock))
    with lock:
        job.state = "failed"
        job.error = error


def _final_history(job: Job, result: Any, lock: threading.Condition) -> list[Row]:
    """The trainer's returned rows when it gives some, else the rows it reported."""
    if isinstance(result, (list, tuple)) and result:
        return from_rows(result)
    return _rows(job, lock)


def _rows(job: Job, lock: threading.Condition) -> list[Row]:
    with lock:
        return list(job.rows)
