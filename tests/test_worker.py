"""The background worker, driven by fake trainers: fast, deterministic, no TensorFlow."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lab.config import RunConfig
from lab.errors import RunCancelled
from lab.runs.store import RunStore
from lab.runs.worker import MAX_WAITING_PER_OWNER, JobStatus, QueueFull, Worker

REPO = Path(__file__).resolve().parents[1]
WAIT = 5.0  # generous upper bound for things that take milliseconds


def row(epoch: int, seed: int) -> dict:
    return {
        "epoch": epoch,
        "loss": 1.0 / epoch + seed / 1000,
        "accuracy": 0.5 + epoch / 100,
        "val_loss": 1.2 / epoch,
        "val_accuracy": 0.5 + epoch / 200,
        "seconds": 0.01,
    }


class FakeTrainer:
    """Stands in for `lab.training.train.train`.

    Each epoch "trains" in 10 ms slices, checking `should_stop` between them as the real
    trainer does between batches. `hold(cfg, at_epoch)` makes the run wait before that
    epoch until `release(cfg)`; `fail(cfg, at_epoch, exc)` raises there instead. The
    trainer logs start/end events and how many runs were ever in flight at once.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.log: list[tuple[str, int]] = []
        self.calls: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.started: dict[str, threading.Event] = {}
        self.gates: dict[str, tuple[int, threading.Event]] = {}
        self.failures: dict[str, tuple[int, Exception]] = {}

    def started_event(self, cfg: RunConfig) -> threading.Event:
        with self.lock:
            return self.started.setdefault(cfg.key(), threading.Event())

    def hold(self, cfg: RunConfig, at_epoch: int = 1) -> None:
        self.gates[cfg.key()] = (at_epoch, threading.Event())

    def release(self, cfg: RunConfig) -> None:
        self.gates[cfg.key()][1].set()

    def release_all(self) -> None:
        for _, gate in self.gates.values():
            gate.set()

    def fail(self, cfg: RunConfig, at_epoch: int, exc: Exception) -> None:
        self.failures[cfg.key()] = (at_epoch, exc)

    def __call__(self, config, on_epoch=None, should_stop=None):
        key = config.key()
        with self.lock:
            self.calls.append(key)
            self.log.append(("start", config.seed))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.started_event(config).set()
        rows = []
        try:
            for epoch in range(1, config.epochs + 1):
                if key in self.failures and self.failures[key][0] == epoch:
                    raise self.failures[key][1]
                if key in self.gates and self.gates[key][0] == epoch:
                    gate = self.gates[key][1]
                    deadline = time.monotonic() + 10
                    while not gate.wait(0.01):
                        if should_stop and should_stop():
                            raise RunCancelled(rows)
                        assert time.monotonic() < deadline, "test forgot to release a held run"
                if should_stop and should_stop():
                    raise RunCancelled(rows)
                rows.append(row(epoch, config.seed))
                if on_epoch:
                    on_epoch(dict(rows[-1]))
            return rows
        finally:
            with self.lock:
                self.in_flight -= 1
                self.log.append(("end", config.seed))


def cfg(seed: int, epochs: int = 3) -> RunConfig:
    return RunConfig(epochs=epochs, seed=seed)


def wait_for(worker: Worker, key: str, states=("done", "failed", "cancelled", "interrupted")) -> JobStatus:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        status = worker.status(key)
        if status.state in states:
            return status
        time.sleep(0.005)
    raise AssertionError(f"{key} still {worker.status(key).state} after {WAIT} s")


@pytest.fixture
def trainer():
    fake = FakeTrainer()
    yield fake
    fake.release_all()


@pytest.fixture
def make_worker(tmp_path, trainer):
    workers = []

    def make(train_fn=None, root=None) -> Worker:
        worker = Worker(RunStore(root or tmp_path / "runs"), train_fn=train_fn or trainer)
        workers.append(worker)
        return worker

    yield make
    trainer.release_all()
    for worker in workers:
        assert worker.shutdown(timeout=WAIT), "worker thread did not stop"


def test_jobs_run_one_at_a_time_in_submission_order(make_worker, trainer):
    worker = make_worker()
    a, b, c = cfg(1), cfg(2), cfg(3)
    trainer.hold(a, at_epoch=2)
    keys = [worker.submit(x) for x in (a, b, c)]
    assert keys == [a.key(), b.key(), c.key()]
    assert trainer.started_event(a).wait(WAIT)

    time.sleep(0.2)  # ample time for a second job to start if the worker allowed it
    assert trainer.calls == [a.key()]
    assert worker.queue_snapshot() == keys
    assert [worker.status(k).position for k in keys] == [0, 1, 2]
    assert [worker.status(k).state for k in keys] == ["running", "queued", "queued"]

    trainer.release(a)
    for key in keys:
        assert wait_for(worker, key).state == "done"
    assert trainer.log == [("start", 1), ("end", 1), ("start", 2), ("end", 2), ("start", 3), ("end", 3)]
    assert trainer.max_in_flight == 1
    assert worker.queue_snapshot() == []
    assert worker.status(a.key()).position is None


def test_history_is_live_while_running_and_on_disk(make_worker, trainer, tmp_path):
    worker = make_worker()
    a = cfg(1, epochs=5)
    trainer.hold(a, at_epoch=3)
    key = worker.submit(a)
    deadline = time.monotonic() + WAIT
    while worker.status(key).epochs_done < 2 and time.monotonic() < deadline:
        time.sleep(0.005)

    status = worker.status(key)
    assert (status.state, status.position, status.epochs_done, status.epochs_total) == ("running", 0, 2, 5)
    assert status.history == [row(1, 1), row(2, 1)]
    on_disk = RunStore(tmp_path / "runs").load(key)
    assert on_disk.status.state == "running" and len(on_disk.history) == 2

    status.history[0]["loss"] = 99.0  # a caller's copy: must not change the job
    status.history.append(row(9, 1))
    assert worker.status(key).history == [row(1, 1), row(2, 1)]

    trainer.release(a)
    done = wait_for(worker, key)
    assert done.state == "done" and done.epochs_done == 5 and not done.cached
    assert RunStore(tmp_path / "runs").cache_hit(key) is not None


def test_identical_submits_share_one_job(make_worker, trainer):
    worker = make_worker()
    a = cfg(1)
    trainer.hold(a, at_epoch=1)
    first = worker.submit(a, owner="alice")
    assert trainer.started_event(a).wait(WAIT)
    # Another session builds the same settings independently, while it runs...
    second = worker.submit(RunConfig.from_dict(a.to_dict()), owner="bob")
    b = cfg(2)
    trainer.hold(b, at_epoch=1)
    worker.submit(b, owner="carol")
    # ...and again for a job still waiting in the queue.
    worker.submit(cfg(2), owner="dave")

    assert first == second == a.key()
    assert worker.queue_snapshot() == [a.key(), b.key()]
    assert worker.status(a.key()).owners == ("alice", "bob")
    assert worker.status(b.key()).owners == ("carol", "dave")

    trainer.release(a)
    trainer.release(b)
    assert wait_for(worker, a.key()).state == "done"
    assert wait_for(worker, b.key()).state == "done"
    assert trainer.calls == [a.key(), b.key()]

    worker.submit(a, owner="erin")  # asked again once done: served, not retrained
    assert trainer.calls == [a.key(), b.key()]
    assert worker.status(a.key()).state == "done"


def test_a_done_run_is_a_cache_hit_after_a_restart(make_worker, trainer, tmp_path):
    worker = make_worker()
    a, broken = cfg(1), cfg(2)
    trainer.fail(broken, at_epoch=2, exc=RuntimeError("GPU fell off"))
    worker.submit(a)
    worker.submit(broken)
    trained = wait_for(worker, a.key())
    assert wait_for(worker, broken.key()).state == "failed"
    assert worker.shutdown(timeout=WAIT)

    retrainer = FakeTrainer()
    restarted = make_worker(train_fn=retrainer)  # a new process: new worker, same store root
    assert restarted.submit(a) == a.key()
    status = restarted.status(a.key())  # at once: no waiting, no job
    assert status.state == "done" and status.cached
    assert status.position is None and restarted.queue_snapshot() == []
    assert status.history == trained.history == [row(e, 1) for e in (1, 2, 3)]

    # A failed run is not a result: asking again trains it again.
    restarted.submit(broken)
    assert wait_for(restarted, broken.key()).state == "done"
    assert retrainer.calls == [broken.key()]


def test_status_of_a_run_known_only_from_the_store(make_worker, trainer, tmp_path):
    store = RunStore(tmp_path / "runs")
    failed = cfg(7)
    store.record_queued(failed)
    store.record_start(failed.key())
    store.record_epoch(failed.key(), [row(1, 7)])
    store.record_failure(failed.key(), "ValueError: bad image", [row(1, 7)])

    worker = make_worker()
    status = worker.status(failed.key())
    assert (status.state, status.error, status.epochs_done, status.epochs_total) == (
        "failed",
        "ValueError: bad image",
        1,
        3,
    )
    assert worker.status("0123456789abcdef").state == "unknown"
    assert worker.status("../../etc").state == "unknown"
    assert trainer.calls == []


def test_cancelling_the_running_job_frees_the_worker(make_worker, trainer, tmp_path):
    worker = make_worker()
    a, b = cfg(1, epochs=4), cfg(2)
    trainer.hold(a, at_epoch=2)  # never released: only the cancel can end it
    worker.submit(a)
    worker.submit(b)
    assert trainer.started_event(a).wait(WAIT)
    deadline = time.monotonic() + WAIT
    while worker.status(a.key()).epochs_done < 1 and time.monotonic() < deadline:
        time.sleep(0.005)

    started = time.monotonic()
    assert worker.cancel(a.key())
    assert worker.status(a.key()).cancel_requested
    status = wait_for(worker, a.key())
    assert time.monotonic() - started < 2.0
    assert status.state == "cancelled"
    assert [r["epoch"] for r in status.history] == [1]  # the finished epoch is kept

    assert wait_for(worker, b.key()).state == "done"  # the worker moved on
    on_disk = RunStore(tmp_path / "runs").load(a.key())
    assert on_disk.status.state == "cancelled" and len(on_disk.history) == 1

    # A cancelled run is not a result: submitting it again trains it again.
    trainer.gates.pop(a.key())
    worker.submit(a)
    assert wait_for(worker, a.key()).state == "done"
    assert trainer.calls == [a.key(), b.key(), a.key()]


def test_cancelling_a_queued_job_removes_it(make_worker, trainer, tmp_path):
    worker = make_worker()
    a, b, c = cfg(1), cfg(2), cfg(3)
    trainer.hold(a, at_epoch=1)
    for x in (a, b, c):
        worker.submit(x)
    assert trainer.started_event(a).wait(WAIT)

    assert worker.cancel(b.key())
    status = worker.status(b.key())
    assert status.state == "cancelled" and status.position is None
    assert worker.queue_snapshot() == [a.key(), c.key()]
    assert worker.status(c.key()).position == 1
    assert RunStore(tmp_path / "runs").load(b.key()).status.state == "cancelled"

    trainer.release(a)
    assert wait_for(worker, c.key()).state == "done"
    assert b.key() not in trainer.calls
    assert worker.status(b.key()).state == "cancelled"
    assert not worker.cancel(b.key())  # nothing left to cancel
    assert not worker.cancel("0123456789abcdef")


def test_a_shared_job_keeps_running_until_its_last_owner_cancels(make_worker, trainer):
    worker = make_worker()
    a = cfg(1)
    trainer.hold(a, at_epoch=1)
    worker.submit(a, owner="alice")
    worker.submit(a, owner="bob")
    assert trainer.started_event(a).wait(WAIT)

    assert worker.cancel(a.key(), owner="alice")
    time.sleep(0.1)
    status = worker.status(a.key())
    assert status.state == "running" and not status.cancel_requested
    assert status.owners == ("bob",)

    assert worker.cancel(a.key(), owner="bob")
    assert wait_for(worker, a.key()).state == "cancelled"


def test_a_failing_run_is_recorded_and_the_worker_goes_on(make_worker, trainer, tmp_path):
    worker = make_worker()
    a, b = cfg(1), cfg(2)
    trainer.fail(a, at_epoch=2, exc=ValueError("loss is NaN at epoch 2"))
    worker.submit(a)
    worker.submit(b)

    status = wait_for(worker, a.key())
    assert status.state == "failed"
    assert status.error == "ValueError: loss is NaN at epoch 2"
    assert [r["epoch"] for r in status.history] == [1]
    on_disk = RunStore(tmp_path / "runs").load(a.key())
    assert on_disk.status.state == "failed" and on_disk.status.error == status.error
    assert len(on_disk.history) == 1

    assert wait_for(worker, b.key()).state == "done"
    assert worker.alive


def test_a_malformed_epoch_row_fails_the_run_not_the_worker(make_worker):
    def bad_train(config, on_epoch=None, should_stop=None):
        on_epoch({"epoch": 1, "loss": 0.5})  # no accuracy, no validation numbers

    worker = make_worker(train_fn=bad_train)
    key = worker.submit(cfg(1))
    status = wait_for(worker, key)
    assert status.state == "failed" and "ValueError" in status.error and "val_loss" in status.error
    assert worker.alive


def test_shutdown_interrupts_running_and_waiting_jobs(make_worker, trainer, tmp_path):
    worker = make_worker()
    a, b = cfg(1), cfg(2)
    trainer.hold(a, at_epoch=2)
    worker.submit(a)
    worker.submit(b)
    assert trainer.started_event(a).wait(WAIT)

    assert worker.shutdown(timeout=WAIT)
    assert not worker.alive
    assert worker.status(a.key()).state == "interrupted"
    assert worker.status(b.key()).state == "interrupted"
    store = RunStore(tmp_path / "runs")
    assert store.load(a.key()).status.state == "interrupted"
    assert store.load(b.key()).status.state == "interrupted"
    assert trainer.calls == [a.key()]
    with pytest.raises(RuntimeError):
        worker.submit(cfg(3))


def test_a_run_left_running_by_a_dead_process_is_interrupted_then_retrained(make_worker, trainer, tmp_path):
    root = tmp_path / "runs"
    a = cfg(1)
    code = (
        "from lab.config import RunConfig\n"
        "from lab.runs.store import RunStore\n"
        f"store = RunStore({str(root)!r})\n"
        "config = RunConfig(epochs=3, seed=1)\n"
        "store.record_queued(config)\n"
        "store.record_start(config.key())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, check=True, timeout=60)
    assert RunStore(root).load(a.key()).status.state == "running"

    worker = make_worker()  # opening the worker notices the dead owner
    assert worker.status(a.key()).state == "interrupted"
    worker.submit(a)
    assert wait_for(worker, a.key()).state == "done"
    assert trainer.calls == [a.key()]


def test_the_default_trainer_is_imported_lazily(tmp_path):
    """The page imports the worker on every rerun: that must not pull in TensorFlow (nor pandas: rows are enough)."""
    code = (
        "import sys\n"
        "import lab.runs.worker, lab.runs.store, lab.errors\n"
        "from lab.runs.store import RunStore\n"
        "from lab.runs.worker import Worker\n"
        f"worker = Worker(RunStore({str(tmp_path)!r}))\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'streamlit', 'pandas', 'lab.training.train') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "worker.shutdown(5)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_status_polling_from_many_threads_is_consistent(make_worker, trainer):
    worker = make_worker()
    configs = [cfg(seed) for seed in range(1, 6)]
    errors: list[BaseException] = []
    stop = threading.Event()

    def poll():
        try:
            while not stop.is_set():
                for c in configs:
                    s = worker.status(c.key())
                    assert s.state in ("unknown", "queued", "running", "done")
                    assert len(s.history) == s.epochs_done
                    assert (s.position is not None) == s.active
        except BaseException as exc:  # reported below, in the test's own thread
            errors.append(exc)

    pollers = [threading.Thread(target=poll) for _ in range(4)]
    for p in pollers:
        p.start()
    for c in configs:
        worker.submit(c)
    for c in configs:
        assert wait_for(worker, c.key()).state == "done"
    stop.set()
    for p in pollers:
        p.join(WAIT)
    assert errors == []
    assert trainer.max_in_flight == 1


def test_two_workers_in_one_process_never_train_at_once(make_worker, trainer, tmp_path):
    """A reloaded page module may create a second worker: still one model at a time."""
    first, second = make_worker(root=tmp_path / "one"), make_worker(root=tmp_path / "two")
    a, b = cfg(1), cfg(2)
    trainer.hold(a, at_epoch=2)
    first.submit(a)
    assert trainer.started_event(a).wait(WAIT)
    second.submit(b)
    time.sleep(0.2)
    assert trainer.calls == [a.key()]
    assert second.status(b.key()).state == "queued"

    trainer.release(a)
    assert wait_for(first, a.key()).state == "done"
    assert wait_for(second, b.key()).state == "done"
    assert trainer.max_in_flight == 1


def test_owners_take_turns_so_one_visitor_cannot_queue_ahead_of_everyone(make_worker, trainer):
    worker = make_worker()
    hog = [cfg(seed) for seed in (1, 2, 3, 4)]  # two comparisons from one visitor
    other = [cfg(seed) for seed in (11, 12)]  # one comparison from another, asked later
    trainer.hold(hog[0], at_epoch=1)
    for config in hog:
        worker.submit(config, owner="hog")
    assert trainer.started_event(hog[0]).wait(WAIT)
    for config in other:
        worker.submit(config, owner="other")

    # The hog's first comparison finishes its turn, then the other visitor's comparison
    # runs before the hog's second one.
    expected = [c.key() for c in (hog[0], hog[1], other[0], other[1], hog[2], hog[3])]
    assert worker.queue_snapshot() == expected
    assert worker.status(other[0].key()).position == 2
    trainer.release(hog[0])
    for key in expected:
        assert wait_for(worker, key).state == "done"
    assert trainer.calls == expected


def test_one_owner_cannot_queue_more_than_the_limit(make_worker, trainer):
    worker = make_worker()
    running = cfg(100)
    trainer.hold(running, at_epoch=1)
    worker.submit(running, owner="a")
    assert trainer.started_event(running).wait(WAIT)
    for seed in range(MAX_WAITING_PER_OWNER):
        worker.submit(cfg(seed), owner="a")
    with pytest.raises(QueueFull, match="already waiting"):
        worker.submit(cfg(999), owner="a")
    worker.submit(cfg(999), owner="b")  # another visitor still gets in
    assert worker.status(cfg(999).key()).state == "queued"
