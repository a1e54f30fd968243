"""Train in a child process, so the app process never holds TensorFlow.

The page's worker calls `SubprocessTrainer` exactly as it would call `lab.training.train.train`.
Behind it, one long-lived child process (`python -m lab.training.child`) imports
TensorFlow once and trains the jobs it is sent, one at a time. Why a process, not a
thread of the app:

- a run that dies hard (out of memory, a crash inside TensorFlow) takes down only the
  child: the app reports the error and starts a fresh child for the next job;
- training holds no lock the page needs: the page stays responsive while a model trains;
- the app process stays small and never imports TensorFlow; the child can be recycled.

The protocol is JSON lines: the parent writes `{"train": config}` or `{"stop": true}` to
the child's stdin; the child writes `{"epoch": row}`, then `{"done": true}`,
`{"cancelled": true}` or `{"error": text}` to its stdout. The epoch rows it reports are the
history the trainer returns, as they came.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.config import RunConfig
from lab.errors import RunCancelled, TrainingFailed
from lab.training.child import PREFIX

__all__ = ["SubprocessTrainer", "TrainingFailed"]

STOP_GRACE_SECONDS = 5.0  # after a stop request, how long the child may take before it is killed
# A safety net: the child reuses its models and data, so a run leaves nothing behind that
# the next does not reuse (docs/performance.md, "Results: memory"). Should a job still leave
# the child this much bigger than any earlier job left it, the child is replaced.
RECYCLE_GROWTH_MB = 100


class SubprocessTrainer:
    """A `train(config, on_epoch, should_stop)` callable that trains in a child process.

    Returns the epoch rows; raises `RunCancelled` (with the rows so far) on a stop, and
    `TrainingFailed` when the run raised an error in the child or the child died.
    """

    def __init__(
        self,
        jobs_per_process: int = 20,
        recycle_growth_mb: float | None = RECYCLE_GROWTH_MB,
        *,
        start_now: bool = False,
        env: dict[str, str] | None = None,
        cpus: set[int] | None = None,
    ) -> None:
        # `env` is added to the child's environment and `cpus` pins it (Linux): one of several
        # children training at once gets its share of the threads (`lab.runs.parallel`).
        self.env, self.cpus = env or {}, cpus
        # Recycle the child now and then: TensorFlow does not give every byte back.
        self.jobs_per_process = jobs_per_process
        self.recycle_growth_mb = recycle_growth_mb  # None: never on growth (the benchmark measures growth)
        self._child: subprocess.Popen | None = None
        self._messages: queue.Queue = queue.Queue()
        self._jobs_done = 0
        self._reset_growth()
        self._lock = threading.Lock()
        # `start_now`: the child imports TensorFlow before the first job, and again after each
        # recycling, so that a visitor's first click does not wait seconds for the import.
        self.start_now = start_now
        self._ready = threading.Event()
        # What the child trains on ("CPU (2 threads)", "GPU: ..."), as it said once TensorFlow loaded; "" before.
        self.device = ""
        if start_now:
            self.start()

    @property
    def warm(self) -> bool:
        """Whether a child is running with TensorFlow loaded: a job sent now starts training at once."""
        return self._ready.is_set() and self._child is not None and self._child.poll() is None

    def start(self) -> None:
        """Start the child now, if none is running: it loads TensorFlow while no job waits for it."""
        with self._lock:
            self._ensure_child()

    def __call__(
        self,
        config: RunConfig,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        outcome_dir: str | Path | None = None,
    ) -> list[dict[str, Any]]:
        with self._lock:  # one job at a time through one child
            return self._train(config, on_epoch, should_stop, outcome_dir)

    def close(self) -> None:
        self._ready.clear()
        if self._child is not None and self._child.poll() is None:
            self._child.kill()
            self._child.wait()
        self._child = None

    # -- the parent's side -------------------------------------------------------------
    def _train(self, config, on_epoch, should_stop, outcome_dir=None) -> list[dict[str, Any]]:
        child = self._ensure_child()
        # The child writes the run's weights and predictions itself (`lab.training.outcome`).
        outcome = {"outcome_dir": str(outcome_dir)} if outcome_dir is not None else {}
        self._send(child, {"train": config.to_dict(), **outcome})
        rows: list[dict[str, Any]] = []
        stop_sent_at: float | None = None
        while True:
            if stop_sent_at is None and should_stop is not None and should_stop():
                self._send(child, {"stop": True})
                stop_sent_at = time.monotonic()
            if stop_sent_at is not None and time.monotonic() - stop_sent_at > STOP_GRACE_SECONDS:
                self.close()  # a child that does not stop in time is stopped
                raise RunCancelled(rows)
            try:
                message = self._messages.get(timeout=0.2)
            except queue.Empty:
                if child.poll() is not None:
                    self._child = None
                    raise TrainingFailed(_death_notice(child.returncode)) from None
                continue
            if "epoch" in message:
                rows.append(message["epoch"])
                if on_epoch is not None:
                    on_epoch(message["epoch"])
            elif "done" in message:
                self._finish_job(config)
                return rows
            elif "cancelled" in message:
                self._finish_job(config)
                raise RunCancelled(rows)
            elif "error" in message:
                self._finish_job(config)
                raise TrainingFailed(message["error"])
            elif "exit" in message:
                self._child = None
                raise TrainingFailed(_death_notice(message["exit"]))

    def _finish_job(self, config: RunConfig) -> None:
        self._jobs_done += 1
        if self._jobs_done >= self.jobs_per_process or self._grown(config):
            self.close()  # the next job starts a fresh child, with its counts reset (`_ensure_child`)
            if self.start_now:
                self._ensure_child()

    def _grown(self, config: RunConfig) -> bool:
        """Whether the child, after a job like ones it ran before, holds more than any earlier job left it.

        A first job of its kind (larger images, more of them, the augmented pipeline) may
        rightly need more memory: it raises the mark instead. Only a repeated kind of job
        that ends higher is growth; replacing the child then would also drop the decoded
        images that the second job of a comparison reuses, so a bigger first job must not.
        """
        rss = _rss_mb(self._child.pid) if self._child is not None else None
        if rss is None or self.recycle_growth_mb is None:
            return False
        workload = _workload(config)
        if workload not in self._workloads:
            self._workloads.add(workload)
            self._rss_mark = max(self._rss_mark, rss)
            return False
        return rss - self._rss_mark > self.recycle_growth_mb

    def _reset_growth(self) -> None:
        self._workloads: set[tuple] = set()
        self._rss_mark = 0.0

    def _ensure_child(self) -> subprocess.Popen:
        if self._child is not None and self._child.poll() is None:
            return self._child
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env.update(self.env)
        cpus = self.cpus if self.cpus and hasattr(os, "sched_setaffinity") else None
        self._messages = queue.Queue()
        ready = self._ready = threading.Event()  # a new event per child: an old reader thread cannot set it

        def on_ready(message: dict[str, Any]) -> None:
            self.device = str(message.get("device") or "")
            ready.set()

        self._on_ready = on_ready
        self._jobs_done = 0
        self._reset_growth()
        self._child = subprocess.Popen(
            [sys.executable, "-u", "-m", "lab.training.child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=root,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        reader = threading.Thread(
            target=_read_messages, args=(self._child, self._messages, self._on_ready), daemon=True
        )
        reader.start()
        return self._child

    @staticmethod
    def _send(child: subprocess.Popen, message: dict[str, Any]) -> None:
        try:
            child.stdin.write(json.dumps(message) + "\n")
            child.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the child is gone; the loop notices and reports it


def _read_messages(child: subprocess.Popen, messages: queue.Queue, on_ready: Callable[[dict], None]) -> None:
    for line in child.stdout:
        if line.startswith(PREFIX):
            message = json.loads(line[len(PREFIX) :])
            if "ready" in message:
                on_ready(message)  # TensorFlow is loaded; nothing for a job's loop to read
            else:
                messages.put(message)
    messages.put({"exit": child.wait()})


def _workload(config: RunConfig) -> tuple:
    """What sets a job's memory: its data, image size and pipeline, not its seed or learning rate."""
    return (
        config.dataset,
        config.data_dir,
        config.image_size,
        config.train_images,
        config.validation_split,
        config.batch_size,
        config.dropout,
        config.architecture,
        config.augmentation.enabled,
    )


def _rss_mb(pid: int) -> float | None:
    """Resident memory of a process in MB, where /proc tells (Linux); None elsewhere."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _death_notice(code: int | None) -> str:
    hint = (
        " (killed: most likely out of memory; try smaller images or fewer training images)" if code in (-9, 137) else ""
    )
    return f"the training process stopped unexpectedly with exit code {code}{hint}"
