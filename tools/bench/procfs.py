"""What the benchmark reads from /proc and the OS: a process's memory, CPU time, children, and the machine."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any


def rss_mb() -> float:
    """This process's resident memory now."""
    return proc_status_mb(os.getpid(), "VmRSS")


def proc_status_mb(pid: int, field: str) -> float:
    """A field of /proc/PID/status (VmRSS, VmHWM, RssAnon, ...) in MB; NaN when it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def cpu_seconds() -> float:
    return time.process_time()  # user + system, every thread of this process


def machine() -> dict[str, Any]:
    """The CPUs, memory and Python of this machine, and its load average now."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = _proc_meminfo_mb("MemTotal")
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "memory_mb": memory,
        "python": platform.python_version(),
        "loadavg_start": os.getloadavg(),
    }


def _proc_meminfo_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def loaded_tensorflow(pid: int) -> bool:
    """Whether TensorFlow's shared libraries are mapped into process `pid` (i.e. it imported tensorflow)."""
    try:
        return "tensorflow" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def children_of(pid: int) -> list[int]:
    """The ids of the processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found
