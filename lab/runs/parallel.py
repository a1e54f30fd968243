"""Several runs at once: the trainer a server's worker uses, and how many runs it trains together.

One run of the course's small CNN does not keep many cores busy: on a 16-core machine a single
run leaves most of them idle, and on 2 cores one run at a time makes the second side of every
comparison wait for the first. So the server trains up to N runs at once, each in its own
child process (`lab.runs.trainer.SubprocessTrainer`) pinned to its share of the cores, with
TensorFlow's thread pools sized to that share. N is `$LAB_PARALLEL_RUNS`, else `default_runs()`.
The worker (`lab.runs.worker`) reads the trainer's `slots` and keeps that many runs training.

With `$LAB_RAY_ADDRESS` set (a Ray cluster's address, or `local`), `make_trainer` hands runs to
Ray instead (`lab.runs.ray_trainer`); nothing of Ray is imported otherwise.

Why child processes rather than Ray on one machine: nothing to install, a dead run takes down
only its child, and the measurement in docs/performance.md ("A class at once") shows the
split is sound: two one-thread runs together train more runs per minute than one two-thread run.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.config import RunConfig
from lab.history import Row
from lab.runs import trainer as trainer_module
from lab.runs.parallel_share import available_cores, available_memory_mb, default_runs, thread_env
from lab.runs.run_job import keeps_outcome
from lab.runs.trainer import SubprocessTrainer


def parallel_runs() -> int:
    """`$LAB_PARALLEL_RUNS` when set (1 = one run at a time, as before), else `default_runs` for this machine."""
    configured = os.environ.get("LAB_PARALLEL_RUNS", "").strip()
    if configured:
        try:
            return max(1, int(configured))
        except ValueError:
            raise ValueError(f"LAB_PARALLEL_RUNS={configured!r}: give a whole number of runs, e.g. 2") from None
    return default_runs(len(available_cores()), available_memory_mb())


class ChildPool:
    """A `train(config, on_epoch, should_stop)` callable over `runs` training children, `slots` = runs.

    Each child is pinned to its own share of the cores and sizes TensorFlow's threads to it. A
    call takes an idle child, preferring the one that last read the same images (the second side
    of a comparison then finds them decoded). With one run the child is left unpinned, as before.
    """

    def __init__(self, runs: int, cores: list[int] | None = None, **trainer_options: Any) -> None:
        cores = cores or available_cores()
        self.slots = max(1, runs)
        share = max(1, len(cores) // self.slots)
        self._trainers: list[SubprocessTrainer] = []
        make = trainer_module.SubprocessTrainer  # looked up now: the page's tests swap it
        for index in range(self.slots):
            if self.slots == 1:
                self._trainers.append(make(**trainer_options))
                continue
            mine = cores[index * share : (index + 1) * share] or [cores[index % len(cores)]]
            self._trainers.append(make(env=thread_env(len(mine)), cpus=set(mine), **trainer_options))
        self._idle = list(self._trainers)
        self._last: dict[int, tuple] = {}  # trainer index -> the data its last job read
        self._cond = threading.Condition()
        self._local = threading.local()  # the device of the child that trained this thread's last run

    def __call__(
        self,
        config: RunConfig,
        on_epoch: Callable[[Row], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        outcome_dir: str | Path | None = None,
    ) -> list[Row]:
        trainer = self._take(_data_key(config))
        try:
            # The child writes the run's weights and predictions into `outcome_dir` (the Why section reads them).
            kept = {"outcome_dir": outcome_dir} if outcome_dir is not None and keeps_outcome(trainer) else {}
            rows = trainer(config, on_epoch, should_stop, **kept)
            self._local.device = getattr(trainer, "device", "")
            return rows
        finally:
            with self._cond:
                self._idle.append(trainer)
                self._cond.notify()

    @property
    def device(self) -> str:
        """What trained the last run this thread asked for (the worker reads it right after the run)."""
        return getattr(self._local, "device", "")

    @property
    def warm(self) -> bool:
        """Whether every child has TensorFlow loaded: a run starting now skips the import, whichever child it gets."""
        return all(getattr(trainer, "warm", False) for trainer in self._trainers)

    def close(self) -> None:
        for trainer in self._trainers:
            trainer.close()

    def _take(self, data: tuple) -> SubprocessTrainer:
        with self._cond:
            while not self._idle:
                self._cond.wait()
            same = [t for t in self._idle if self._last.get(id(t)) == data]
            trainer = same[0] if same else self._idle[0]
            self._idle.remove(trainer)
            self._last[id(trainer)] = data
            return trainer


def make_trainer() -> Callable[..., list[Row]]:
    """The server's trainer: Ray when `$LAB_RAY_ADDRESS` is set, else `parallel_runs()` child processes."""
    address = os.environ.get("LAB_RAY_ADDRESS", "").strip()
    if address:
        from lab.runs.ray_trainer import RayTrainer  # Ray is imported only here, only when asked for

        return RayTrainer(address)
    return ChildPool(parallel_runs(), start_now=True)  # TensorFlow loads before the first click


def _data_key(config: RunConfig) -> tuple:
    """What decides the decoded images a run reads (not its augmentation, seed or learning rate)."""
    return (config.dataset, config.data_dir, config.image_size, config.train_images, config.validation_split)
