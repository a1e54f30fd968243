# ruff: noqa: F811  (tests take the `trainer` fixture imported from test_worker by name)
"""The worker on a shared host: it enforces the caps itself, cancels runs nobody watches, and two
workers over one run store train a key once. Fake trainers (tests/test_worker.py): no TensorFlow."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from test_worker import WAIT, cfg, trainer, wait_for  # noqa: F401 (trainer: a fixture, shared with test_worker)

from lab.config import RunConfig
from lab.history import comparison_configs
from lab.presets import list_presets, load_preset
from lab.runs import claims, hosting, watching
from lab.runs.hosting import HostLimits
from lab.runs.store import RunStore
from lab.runs.worker import OverCap, QueueFull, Worker

REPO = Path(__file__).resolve().parents[1]


class Clock:
    """The worker's clocks (`lab.runs.watching`), moved by the test: no test waits for time to pass."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(watching, "clock", fake)
    monkeypatch.setattr(watching, "wall_clock", fake)
    return fake


@pytest.fixture
def quick_sweeps(monkeypatch):
    """Check watchers and followed runs every 20 ms rather than every second."""
    monkeypatch.setattr(watching, "SWEEP_SECONDS", 0.02)


@pytest.fixture
def make_worker(tmp_path, trainer, monkeypatch):
    monkeypatch.delenv("LAB_MAX_QUEUED", raising=False)
    monkeypatch.delenv("LAB_HOSTED", raising=False)
    workers = []

    def make(train_fn=None, root=None, **kwargs) -> Worker:
        worker = Worker(RunStore(root or tmp_path / "runs"), train_fn=train_fn or trainer, **kwargs)
        workers.append(worker)
        return worker

    yield make
    trainer.release_all()
    for worker in workers:
        assert worker.shutdown(timeout=WAIT), "worker thread did not stop"


def wait_until(condition, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


# -- 1. caps enforced by the worker itself -------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "train_count", "named"),
    [
        ({"image_size": 150}, 2000, "image size 150 px is over this server's cap of 96 px"),
        ({"epochs": 100}, 300, "100 epochs is over this server's cap of 30"),
        ({"train_images": 2000}, 2000, "2000 training images is over this server's cap of 1000"),
        ({"train_images": 0}, 2000, "2000 training images is over this server's cap of 1000"),
        ({"train_images": 0}, None, "all training images (of a dataset of unknown size)"),
    ],
)
def test_a_run_over_a_cap_is_refused_by_the_worker(make_worker, trainer, changes, train_count, named):
    worker = make_worker(limits=HostLimits())
    config = RunConfig(epochs=3, image_size=64, train_images=100).replace(**changes)
    with pytest.raises(OverCap, match=re.escape(named)):
        worker.submit(config, owner="crafted link", train_count=train_count)
    assert worker.status(config.key()).state == "unknown" and worker.queue_snapshot() == []
    assert trainer.calls == []


def test_all_images_of_a_small_dataset_is_within_the_cap(make_worker):
    worker = make_worker(limits=HostLimits())
    config = RunConfig(epochs=3, image_size=64, train_images=0)
    assert wait_for(worker, worker.submit(config, owner="page", train_count=300)).state == "done"


@pytest.mark.parametrize("preset", list_presets())
@pytest.mark.parametrize("train_count", [None, 300, 2000, 25000])
def test_whatever_the_page_lowers_to_the_caps_the_worker_accepts(preset, train_count):
    limits = HostLimits()
    config = load_preset(preset).config.replace(image_size=512, epochs=200)
    capped, _ = hosting.apply_limits(config, limits, train_count)
    assert hosting.over_caps(capped, limits, train_count) == []
    assert hosting.over_caps(config, limits, train_count) != []


def test_a_link_with_more_seeds_than_the_cap_cannot_queue_them_all_at_once(make_worker, trainer):
    # A `?runs=` link listing the ten runs of a five-seed comparison, on a server capped at two seeds per side.
    worker = make_worker(limits=HostLimits(max_seeds=2))
    small = RunConfig(epochs=3, image_size=64, train_images=100, augmentation={"horizontal_flip": True})
    configs = comparison_configs(small, 5)
    trainer.hold(configs[0], at_epoch=1)
    for config in configs[:4]:
        worker.submit(config, owner="tab")
    assert trainer.started_event(configs[0]).wait(WAIT)
    with pytest.raises(OverCap, match="4 of your runs are already queued or training.*2 seeds per side"):
        worker.submit(configs[4], owner="tab")
    worker.submit(configs[4], owner="another visitor")  # the cap is per visitor
    worker.submit(configs[0], owner="tab")  # asking again for one already queued adds nothing: allowed

    assert worker.cancel(configs[3].key(), "tab") == "cancelled"
    worker.submit(configs[5], owner="tab")  # room again once one has gone
    assert worker.status(configs[5].key()).state == "queued"


def test_the_servers_queue_is_bounded_whatever_the_sessions(make_worker, trainer):
    # Four tabs are four sessions: each may have a few runs waiting, the server only so many in all.
    worker = make_worker(max_queued=6)
    first = cfg(100)
    trainer.hold(first, at_epoch=1)
    worker.submit(first, owner="tab 0")
    assert trainer.started_event(first).wait(WAIT)
    for tab in range(3):
        for seed in (2 * tab, 2 * tab + 1):
            worker.submit(cfg(seed), owner=f"tab {tab}")
    with pytest.raises(QueueFull, match="The server is busy: 6 runs are waiting"):
        worker.submit(cfg(50), owner="tab 3")
    assert worker.status(cfg(50).key()).state == "unknown"
    worker.submit(cfg(0), owner="tab 3")  # one already waiting is shared, not added
    worker.cancel(cfg(5).key())
    worker.submit(cfg(50), owner="tab 3")
    assert len(worker.queue_snapshot()) == 7  # the running one and six waiting


def test_the_queue_bound_comes_from_the_environment(make_worker, trainer, monkeypatch):
    monkeypatch.setenv("LAB_MAX_QUEUED", "1")
    worker = make_worker()
    assert worker.max_queued == 1
    first = cfg(1)
    trainer.hold(first, at_epoch=1)
    worker.submit(first)
    assert trainer.started_event(first).wait(WAIT)
    worker.submit(cfg(2))
    with pytest.raises(QueueFull, match="busy"):
        worker.submit(cfg(3))
    assert make_worker(root=worker.store.root.parent / "other", max_queued=0).max_queued is None


# -- 2. runs nobody watches; Cancel from any page that watches -----------------------------------
def test_a_run_nobody_watches_is_cancelled_and_a_watched_one_goes_on(make_worker, trainer, clock, tmp_path):
    worker = make_worker(unwatched_seconds=60)
    running, left, watched = cfg(1, epochs=4), cfg(2), cfg(3)
    trainer.hold(running, at_epoch=2)
    worker.submit(running, owner="closed tab")
    worker.submit(left, owner="closed tab")
    worker.submit(watched, owner="open tab")
    wait_until(lambda: worker.status(running.key()).epochs_done == 1, "the first epoch")

    clock.now += 50
    worker.status(watched.key(), watcher="open tab")
    clock.now += 15  # the closed tab last asked 65 s ago, the open one 15 s ago

    assert wait_for(worker, running.key()).state == "cancelled"
    assert wait_for(worker, left.key()).state == "cancelled"
    assert worker.status(watched.key()).state in ("queued", "running")
    status = worker.status(running.key())
    assert status.error == "cancelled: nobody was watching the run"
    assert [r["epoch"] for r in status.history] == [1]
    on_disk = RunStore(tmp_path / "runs").load(left.key()).status
    assert (on_disk.state, on_disk.error) == ("cancelled", "cancelled: nobody was watching the run")
    assert wait_for(worker, watched.key()).state == "done"
    assert trainer.calls == [running.key(), watched.key()]


def test_without_a_limit_on_unwatched_runs_nothing_is_cancelled_for_it(make_worker, trainer, clock):
    worker = make_worker()
    a, b = cfg(1), cfg(2)
    trainer.hold(a, at_epoch=1)
    worker.submit(a, owner="closed tab")
    worker.submit(b, owner="closed tab")
    assert trainer.started_event(a).wait(WAIT)
    clock.now += 10_000
    trainer.release(a)
    assert wait_for(worker, a.key()).state == "done"
    assert wait_for(worker, b.key()).state == "done"


def test_cancel_after_a_refresh_cancels_the_run(make_worker, trainer, clock):
    worker = make_worker(unwatched_seconds=60)
    a = cfg(1)
    trainer.hold(a, at_epoch=1)
    worker.submit(a, owner="old session")
    assert trainer.started_event(a).wait(WAIT)
    worker.status(a.key(), watcher="old session")
    clock.now += 20  # the page was refreshed: a new session watches the same run from its link
    worker.status(a.key(), watcher="new session")

    assert worker.cancel(a.key(), "new session") == "cancelled"
    assert wait_for(worker, a.key()).state == "cancelled"


def test_cancel_from_one_of_two_watching_browsers_leaves_the_run_to_the_other(make_worker, trainer, clock):
    worker = make_worker(unwatched_seconds=60)
    a = cfg(1)
    trainer.hold(a, at_epoch=1)
    worker.submit(a, owner="teacher")
    assert trainer.started_event(a).wait(WAIT)
    clock.now += 5
    worker.status(a.key(), watcher="teacher")
    worker.status(a.key(), watcher="student")

    assert worker.cancel(a.key(), "student") == "unwatched"
    status = worker.status(a.key())
    assert status.state == "running" and not status.cancel_requested and status.owners == ("teacher",)
    assert worker.cancel(a.key(), "teacher") == "cancelled"
    assert wait_for(worker, a.key()).state == "cancelled"
    assert worker.cancel(a.key(), "teacher") == "unknown"
    assert worker.cancel("../../etc", "teacher") == "unknown"  # a link can carry anything


def test_cancel_outcomes_are_strings_and_only_unknown_is_false(make_worker, trainer):
    worker = make_worker()
    a = cfg(1)
    trainer.hold(a, at_epoch=1)
    worker.submit(a, owner="alice")
    worker.submit(a, owner="bob")
    outcomes = [worker.cancel(a.key(), owner="alice"), worker.cancel(a.key()), worker.cancel("0123456789abcdef")]
    assert outcomes == ["unwatched", "cancelled", "unknown"]
    assert [bool(o) for o in outcomes] == [True, True, False]
    assert all(isinstance(o, str) for o in outcomes)


# -- 3. two servers over one run store --------------------------------------------------------------
def test_two_workers_over_one_store_train_a_key_once(make_worker, trainer, tmp_path, quick_sweeps):
    first, second = make_worker(), make_worker()
    a = cfg(1, epochs=4)
    trainer.hold(a, at_epoch=3)
    first.submit(a, owner="replica 1")
    wait_until(lambda: first.status(a.key()).epochs_done == 2, "two epochs")

    second.submit(a, owner="replica 2")
    wait_until(lambda: second.status(a.key()).epochs_done == 2, "the second worker to read the epochs")
    status = second.status(a.key(), watcher="replica 2")
    assert (status.state, status.position, status.elsewhere) == ("running", 0, True)
    assert second.queue_snapshot() == []

    trainer.release(a)
    done = wait_for(second, a.key())
    assert done.state == "done" and done.cached and done.history == wait_for(first, a.key()).history
    assert trainer.calls == [a.key()]
    assert not (tmp_path / "runs" / a.key() / claims.CLAIM_FILE).exists()


def test_two_workers_asked_at_the_same_moment_train_a_key_once(make_worker, trainer, quick_sweeps):
    workers = [make_worker() for _ in range(4)]
    configs = [cfg(seed) for seed in range(1, 6)]
    start = threading.Barrier(len(workers))

    def ask(worker):
        start.wait()
        for config in configs:
            worker.submit(config)

    threads = [threading.Thread(target=ask, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    for worker in workers:
        for config in configs:
            assert wait_for(worker, config.key()).state == "done"
    assert sorted(trainer.calls) == sorted(c.key() for c in configs)


def test_a_followed_run_cancelled_by_its_server_is_cancelled_here(make_worker, trainer, quick_sweeps):
    first, second = make_worker(), make_worker()
    a = cfg(1)
    trainer.hold(a, at_epoch=1)
    first.submit(a)
    assert trainer.started_event(a).wait(WAIT)
    second.submit(a)
    assert first.cancel(a.key()) == "cancelled"
    assert wait_for(second, a.key()).state == "cancelled"
    trainer.gates.pop(a.key())
    second.submit(a)  # asked again: trained, here or there, once more
    assert wait_for(second, a.key()).state == "done"
    assert trainer.calls == [a.key(), a.key()]


def test_a_run_watched_only_through_another_server_is_not_cancelled(make_worker, trainer, clock, tmp_path):
    holder, follower = make_worker(unwatched_seconds=60), make_worker(unwatched_seconds=60)
    shared, alone = cfg(1), cfg(2)
    trainer.hold(shared, at_epoch=1)
    holder.submit(shared, owner="closed tab")
    holder.submit(alone, owner="closed tab")
    assert trainer.started_event(shared).wait(WAIT)
    follower.submit(shared, owner="student")
    clock.now += 50
    follower.status(shared.key(), watcher="student")
    watched = tmp_path / "runs" / shared.key() / claims.WATCHED_FILE
    wait_until(lambda: watched.exists() and watched.stat().st_mtime == clock.now, "the follower to say so")
    clock.now += 15  # the holder's own page asked 65 s ago, the follower's 15 s ago

    assert wait_for(holder, alone.key()).state == "cancelled"  # the holder has checked its runs
    assert holder.status(shared.key()).state == "running"
    trainer.release(shared)
    assert wait_for(follower, shared.key()).state == "done"


def test_a_followed_run_nobody_here_watches_is_no_longer_followed_but_goes_on(make_worker, trainer, clock):
    holder, follower = make_worker(), make_worker(unwatched_seconds=60)
    a, b = cfg(1), cfg(2)
    for config in (a, b):
        trainer.hold(config, at_epoch=1)
        holder.submit(config, owner="teacher")
    assert trainer.started_event(a).wait(WAIT)
    follower.submit(a, owner="closed tab")
    follower.submit(b, owner="student")
    assert follower.cancel(b.key(), "student") == "unwatched"  # only this server stops following it
    assert not follower.status(b.key()).elsewhere

    clock.now += 61
    wait_until(lambda: not follower.status(a.key()).elsewhere, "the follower to let go")
    assert follower.status(a.key()).state == "running"  # from the store: its server still trains it
    assert (holder.status(a.key()).state, holder.status(b.key()).state) == ("running", "queued")
    trainer.release_all()
    assert wait_for(holder, b.key()).state == "done"
    assert wait_for(follower, a.key()).state == "done"
    assert trainer.calls == [a.key(), b.key()]


SUBPROCESS_WORKER = """
import sys, time
from pathlib import Path
from lab.config import RunConfig
from lab.runs.store import RunStore
from lab.runs.worker import Worker

root, go, count = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])

def train(config, on_epoch=None, should_stop=None):
    with count.open("a") as handle:
        handle.write(config.key() + "\\n")
    rows = []
    for epoch in range(1, config.epochs + 1):
        while epoch == 2 and not go.exists():
            time.sleep(0.01)
        rows.append({"epoch": epoch, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.5, "seconds": 0.01})
        on_epoch(dict(rows[-1]))
    return rows

worker = Worker(RunStore(root), train_fn=train)
key = worker.submit(RunConfig(epochs=3, seed=1), owner="the other server")
while worker.status(key).active:
    time.sleep(0.01)
worker.shutdown(5)
"""


def start_other_server(tmp_path: Path) -> tuple[subprocess.Popen, Path, Path]:
    go, count = tmp_path / "go", tmp_path / "count"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-c", SUBPROCESS_WORKER, str(tmp_path / "runs"), str(go), str(count)]
    process = subprocess.Popen(args, env=env, cwd=REPO)
    claim = tmp_path / "runs" / cfg(1).key() / claims.CLAIM_FILE
    deadline = time.monotonic() + 60
    while not (count.exists() and claim.exists()):
        assert process.poll() is None and time.monotonic() < deadline, "the other server did not start its run"
        time.sleep(0.01)
    return process, go, count


def test_a_run_another_process_trains_is_followed_not_trained(make_worker, trainer, tmp_path, quick_sweeps):
    process, go, count = start_other_server(tmp_path)
    try:
        worker = make_worker()
        key = worker.submit(cfg(1), owner="this server")
        assert worker.status(key).elsewhere and worker.queue_snapshot() == []
        go.touch()
        done = wait_for(worker, key)
        assert done.state == "done" and done.cached and done.epochs_done == 3
        assert process.wait(60) == 0
    finally:
        process.kill()
    assert trainer.calls == []
    assert count.read_text().split() == [key]


def test_a_run_whose_server_died_is_taken_over(make_worker, trainer, tmp_path, quick_sweeps):
    process, _, _ = start_other_server(tmp_path)
    worker = make_worker()
    key = worker.submit(cfg(1), owner="this server")
    assert worker.status(key).elsewhere
    process.kill()
    process.wait(60)
    done = wait_for(worker, key)
    assert done.state == "done" and not done.cached and not worker.status(key).elsewhere
    assert trainer.calls == [key]


def test_a_claim_left_by_a_dead_process_is_taken_over(make_worker, trainer, tmp_path):
    root = tmp_path / "runs"
    code = textwrap.dedent(f"""
        from lab.config import RunConfig
        from lab.runs import claims
        from lab.runs.store import RunStore
        store = RunStore({str(root)!r})
        config = RunConfig(epochs=3, seed=1)
        store.record_queued(config)
        store.record_start(config.key())
        assert claims.acquire(store.run_dir(config.key()), claims.new_identity()) is None
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, check=True, timeout=60)
    claim = root / cfg(1).key() / claims.CLAIM_FILE
    assert json.loads(claim.read_text())["pid"] != os.getpid()

    worker = make_worker()
    key = worker.submit(cfg(1))
    assert wait_for(worker, key).state == "done"
    assert trainer.calls == [key]
    assert not claim.exists()


def test_a_claim_names_the_worker_not_only_the_process(tmp_path):
    folder = tmp_path / "run"
    one, two = claims.new_identity(), claims.new_identity()
    assert claims.acquire(folder, one) is None
    assert claims.acquire(folder, two) == one  # the same process, another worker: held
    claims.retire(one)  # that worker was shut down: its claim may be taken over
    assert claims.acquire(folder, two) is None
    claims.release(folder, one)  # not its claim any more: nothing happens
    assert claims.holder(folder) == two
    claims.release(folder, two)
    assert claims.holder(folder) is None
    claims.retire(two)
