"""How the cores are shared when several runs train at once (`lab.runs.parallel`, `lab.runs.ray_trainer`)."""

from __future__ import annotations

import os

# How many cores one run gets on a large machine: the course CNN at 64-150 px gains little
# from more threads than that, while another run on those cores gains a whole run.
CORES_PER_RUN = 2
# A child training Cats vs Dogs at 150 px holds about 1 GB; never plan more runs than memory holds.
MB_PER_RUN = 1200


def available_cores() -> list[int]:
    """The cores this process may run on (its affinity on Linux, else all of them)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def default_runs(cores: int, memory_mb: float | None = None) -> int:
    """How many runs to train at once on `cores` cores: every core its own run up to 3 cores (on 2
    cores, both sides of a comparison grow live), then one run per `CORES_PER_RUN` cores, at most
    what `memory_mb` holds."""
    runs = cores if cores <= 3 else cores // CORES_PER_RUN
    if memory_mb is not None:
        runs = min(runs, int(memory_mb // MB_PER_RUN))
    return max(1, runs)


def thread_env(threads: int) -> dict[str, str]:
    """Environment that sizes TensorFlow's (and OpenMP's) thread pools to `threads` cores."""
    value = str(max(1, threads))
    return {"TF_NUM_INTRAOP_THREADS": value, "TF_NUM_INTEROP_THREADS": value, "OMP_NUM_THREADS": value}


def available_memory_mb() -> float | None:
    """Memory free for training, in MB: the machine's available memory, or a container's limit when lower
    (a hosted app's 2.7 GB is a cgroup limit; /proc/meminfo shows the whole host)."""
    found = []
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            found += [int(line.split()[1]) / 1024 for line in info if line.startswith("MemAvailable:")]
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as limit:
            found.append(int(limit.read().strip()) / 1024 / 1024)  # "max" (no limit) is not a number
    except (OSError, ValueError):
        pass
    return min(found) if found else None
