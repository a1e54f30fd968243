"""The Ray backend (`lab.runs.ray_trainer`) against a real local Ray, started here with two CPUs.

Tiny runs (48 px, 40 images). Skipped when Ray is not installed (`pip install -r requirements-ray.txt`).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed: `pip install -r requirements-ray.txt` runs these tests")

from lab.config import RunConfig  # noqa: E402
from lab.errors import RunCancelled  # noqa: E402
from lab.history import from_csv  # noqa: E402
from lab.runs.store import RunStore  # noqa: E402
from lab.runs.worker import Worker  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY = RunConfig(image_size=48, train_images=40, epochs=2, batch_size=20, augmentation={"rotation_range": 20.0})
WAIT = 240.0  # an upper bound for a tiny run on a loaded 2-core machine, never a measurement


@pytest.fixture(scope="module")
def ray_trainer():
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=100 * 1024 * 1024,
        runtime_env={"env_vars": {"PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}},
    )
    from lab.runs.ray_trainer import RayTrainer

    trainer = RayTrainer("local", cpus_per_run=1, slots=2)
    yield trainer
    ray.shutdown()


@pytest.fixture
def worker(ray_trainer, tmp_path):
    worker = Worker(RunStore(tmp_path / "runs"), train_fn=ray_trainer)
    yield worker
    for key in worker.queue_snapshot():
        worker.cancel(key)
    assert worker.shutdown(timeout=WAIT)


def wait_until(check, what: str):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {WAIT} s: {what}")


def test_a_run_trains_on_ray_and_lands_in_the_store_of_the_web_host(worker):
    assert worker.slots == 2, "the worker keeps as many runs training as the cluster holds"
    key = worker.submit(TINY, owner="student")
    status = wait_until(lambda: (s := worker.status(key)).state not in ("queued", "running") and s, "run ends")
    assert status.state == "done", status.error
    assert [row["epoch"] for row in status.history] == [1, 2]
    stored = worker.store.load(key)
    assert stored.done and [row["epoch"] for row in stored.history] == [1, 2]
    again = worker.submit(TINY, owner="another student")
    assert again == key and worker.queue_snapshot() == [], "asked again: answered, no second task"


def test_epochs_stream_back_while_the_task_trains_and_cancel_reaches_the_task(worker):
    long = TINY.replace(epochs=200, seed=1)
    key = worker.submit(long, owner="student")
    wait_until(lambda: worker.status(key).epochs_done >= 1, "a first epoch streamed back")
    assert worker.status(key).state == "running"
    on_disk = from_csv((worker.store.run_dir(key) / "history.csv").read_text(encoding="utf-8"))
    assert len(on_disk) >= 1, "each epoch is written to the store here as it arrives"
    assert worker.cancel(key, "student") == "cancelled"
    status = wait_until(lambda: (s := worker.status(key)).state != "running" and s, "the run stops")
    assert status.state == "cancelled" and 1 <= status.epochs_done < 200
    wait_until(lambda: ray.available_resources().get("CPU", 0) == 2, "the task gives its CPU back")


def test_the_trainer_stops_a_task_it_is_asked_to_stop(ray_trainer):
    rows: list[dict] = []
    with pytest.raises(RunCancelled) as stopped:
        ray_trainer(TINY.replace(epochs=200, seed=2), on_epoch=rows.append, should_stop=lambda: len(rows) >= 1)
    assert 1 <= len(stopped.value.history) < 200


def test_two_runs_train_at_once_and_a_killed_task_fails_its_own_run_only(worker, ray_trainer):
    victim, survivor = TINY.replace(epochs=200, seed=3), TINY.replace(epochs=200, seed=4)
    keys = [worker.submit(victim, owner="a"), worker.submit(survivor, owner="b")]
    wait_until(
        lambda: all(worker.status(k).state == "running" and worker.status(k).epochs_done >= 1 for k in keys),
        "both runs train at once",
    )
    os.kill(wait_until(lambda: ray_trainer.pids.get(keys[0]), "the victim's process"), signal.SIGKILL)
    failed = wait_until(lambda: (s := worker.status(keys[0])).state != "running" and s, "the killed run ends")
    assert failed.state == "failed" and "stopped unexpectedly" in failed.error
    assert worker.store.load_status(keys[0]).state == "failed"
    done_before = worker.status(keys[1]).epochs_done
    wait_until(lambda: worker.status(keys[1]).epochs_done > done_before, "the other run goes on training")
    assert worker.status(keys[1]).state == "running"
    worker.cancel(keys[1])
    assert wait_until(lambda: (s := worker.status(keys[1])).state != "running" and s, "stops").state == "cancelled"
