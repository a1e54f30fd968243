"""Training on Ray: each run a Ray task with its share of a cluster's CPUs (or of a GPU).

`lab.runs.parallel.make_trainer` builds a `RayTrainer` when `$LAB_RAY_ADDRESS` is set: a Ray
cluster's address (`ray://head:10001`, or `auto` on a node of the cluster), or `local` for a
Ray started by this process on this machine. Only then is this module, and Ray, imported.

How a run travels:

- the worker calls the trainer as it calls `SubprocessTrainer`; the trainer starts the task
  `_train_task` with its `num_cpus`/`num_gpus` and no retries (a retried run would repeat epochs);
- the task trains in a thread and yields each epoch row as it ends (a streaming generator):
  the rows come back to this process and the worker writes them to the run store here, so the
  cluster shares no storage with the web host;
- Cancel is `ray.cancel` on the task (training stops between batches), then, should the task
  not end within `STOP_GRACE_SECONDS`, a forced cancel that ends the task's process;
- a task whose process dies (killed, out of memory, a lost node) fails its own run only.

The task reads its dataset on the node that runs it: a named dataset is downloaded there on
first use (`LAB_DATA_DIR`); a folder of the web host (an upload) must be on the nodes too.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ray

from lab.config import RunConfig
from lab.errors import RunCancelled, TrainingFailed
from lab.history import Row
from lab.runs.parallel_share import CORES_PER_RUN, available_cores, thread_env

STOP_GRACE_SECONDS = 10.0
_ROOT = Path(__file__).resolve().parents[2]
# The object store holds only epoch rows here: a small one leaves the memory to training.
_LOCAL_OBJECT_STORE_BYTES = 200 * 1024 * 1024


class RayTrainer:
    """A `train(config, on_epoch, should_stop)` callable that trains each run as a Ray task.

    `slots` (how many runs the worker keeps training) is what the cluster holds: its CPUs over
    `cpus_per_run` (`$LAB_RAY_CPUS_PER_RUN`; 1 on up to 3 CPUs, else 2), and with GPUs per run
    (`$LAB_RAY_GPUS_PER_RUN`, e.g. 0.25 for four runs on each GPU) its GPUs over that;
    `$LAB_PARALLEL_RUNS` overrides it. `pids` maps the key of each run in training to the
    process that trains it.
    """

    def __init__(
        self,
        address: str = "local",
        *,
        cpus_per_run: float | None = None,
        gpus_per_run: float | None = None,
        slots: int | None = None,
    ) -> None:
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            _connect(address)
        resources = ray.cluster_resources()
        cpus, gpus = float(resources.get("CPU", 1)), float(resources.get("GPU", 0))
        self.cpus_per_run = cpus_per_run or _number("LAB_RAY_CPUS_PER_RUN", 1 if cpus <= 3 else CORES_PER_RUN)
        self.gpus_per_run = gpus_per_run if gpus_per_run is not None else _number("LAB_RAY_GPUS_PER_RUN", 0)
        fit = int(cpus // self.cpus_per_run)
        if self.gpus_per_run:
            fit = min(fit, int(gpus // self.gpus_per_run))
        self.slots = slots or int(_number("LAB_PARALLEL_RUNS", 0)) or max(1, fit)
        self.pids: dict[str, int] = {}
        self._task = ray.remote(_train_task).options(
            num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run, max_retries=0, num_returns="streaming"
        )

    def __call__(
        self,
        config: RunConfig,
        on_epoch: Callable[[Row], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Row]:
        key = config.key()
        generator = self._task.remote(config.to_dict(), max(1, int(self.cpus_per_run)))
        rows: list[Row] = []
        stop_at: float | None = None
        try:
            while True:
                if stop_at is None and should_stop is not None and should_stop():
                    ray.cancel(generator)  # the task stops training between batches
                    stop_at = time.monotonic()
                if stop_at is not None and time.monotonic() - stop_at > STOP_GRACE_SECONDS:
                    ray.cancel(generator, force=True)  # it did not stop in time: end its process
                    raise RunCancelled(rows)
                ready, _ = ray.wait([generator], timeout=0.2)
                if not ready:
                    continue
                try:
                    message = ray.get(next(generator))
                except StopIteration:
                    if stop_at is not None:
                        raise RunCancelled(rows) from None
                    return rows
                except ray.exceptions.RayError as exc:
                    if stop_at is not None:  # the cancel ended it
                        raise RunCancelled(rows) from None
                    raise TrainingFailed(_death_notice(exc)) from None
                if "pid" in message:
                    self.pids[key] = message["pid"]
                elif "epoch" in message:
                    rows.append(message["epoch"])
                    if on_epoch is not None:
                        on_epoch(message["epoch"])
                elif "cancelled" in message:
                    raise RunCancelled(rows)
                elif "error" in message:
                    raise TrainingFailed(message["error"])
        finally:
            self.pids.pop(key, None)

    def close(self) -> None:
        """Disconnect from Ray, or stop it when this trainer started it (`local`)."""
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()


def _connect(address: str) -> None:
    if address == "local":
        # A Ray of this machine: its workers run this checkout, with this process's environment.
        cores = int(_number("LAB_RAY_CPUS", len(available_cores())))
        env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))}
        ray.init(
            num_cpus=cores,
            include_dashboard=False,
            log_to_driver=False,
            object_store_memory=_LOCAL_OBJECT_STORE_BYTES,
            runtime_env={"env_vars": env},
        )
    else:
        # A cluster: its nodes have the requirements installed; the lab's code travels with the job.
        ray.init(address=address, log_to_driver=False, runtime_env={"py_modules": [str(_ROOT / "lab")]})


def _train_task(config: dict[str, Any], threads: int) -> Iterator[dict[str, Any]]:
    """The Ray task: train `config`, yielding {"pid"}, then each {"epoch": row}, then an ending if not done."""
    os.environ.update(thread_env(threads))  # read when TensorFlow starts in this worker process
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    yield {"pid": os.getpid()}
    run = RunConfig.from_dict(config)
    rows: queue.Queue = queue.Queue()
    stop = threading.Event()
    ended: dict[str, BaseException] = {}

    def work() -> None:
        try:
            from lab.data.download import ensure_dataset, is_downloadable
            from lab.training.train import train

            if not run.data_dir and is_downloadable(run.dataset):
                ensure_dataset(run.dataset)
            train(run, rows.put, stop.is_set)
        except BaseException as exc:  # reported as this run's ending, never a crash of the task
            ended["error"] = exc
        finally:
            rows.put(None)

    thread = threading.Thread(target=work, name="lab-train", daemon=True)
    thread.start()
    try:
        while True:
            try:
                row = rows.get(timeout=0.5)  # a timeout, so that a cancel's KeyboardInterrupt lands promptly
            except queue.Empty:
                continue
            if row is None:
                break
            yield {"epoch": row}
    except (KeyboardInterrupt, GeneratorExit):  # ray.cancel: stop training between batches, then end
        stop.set()
        thread.join()
        raise
    error = ended.get("error")
    if isinstance(error, RunCancelled):
        yield {"cancelled": True}
    elif error is not None:
        yield {"error": f"{type(error).__name__}: {error}"}


def _number(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    try:
        return float(value) if value else default
    except ValueError:
        raise ValueError(f"{name}={value!r}: give a number") from None


def _death_notice(exc: Exception) -> str:
    return (
        f"the training task on Ray stopped unexpectedly ({type(exc).__name__}); "
        "its process was killed or its node was lost, most likely out of memory"
    )
