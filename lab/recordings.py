"""Recorded runs: a comparison the command line trained, saved with its machine and date.

A class can then see a full-length result (the course's 100 epochs at 150 px take hours
on a laptop CPU) at once, beside a short live run. Recordings are JSON files in
experiments/recorded/, versioned with the presets; each side's history is stored column by
column (`{"epoch": [...], "loss": [...], ...}`) and read back as epoch rows (`lab.history`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lab import history as hist
from lab.config import RunConfig
from lab.presets import EXPERIMENTS_DIR

RECORDINGS_DIR = EXPERIMENTS_DIR / "recorded"


@dataclass(frozen=True)
class Recording:
    name: str
    preset: str
    config: RunConfig
    runs: dict[str, list[dict[str, Any]]]  # "baseline"/"augmented" (or "run") -> epoch rows
    machine: str
    recorded_at: str
    seconds: float
    device: str = ""  # what trained it, "CPU (2 threads)" or "GPU: ..."; recordings before issue 15 have none

    def title(self) -> str:
        minutes = self.seconds / 60
        where = f"{self.machine}, {self.device}" if self.device else self.machine
        return f"{self.name}: {self.preset}, recorded {self.recorded_at[:10]} on {where} ({minutes:.0f} min)"


def machine_name() -> str:
    """A short, human description of the machine a run was trained on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        import tensorflow as tf

        gpus = len(tf.config.list_physical_devices("GPU"))
        accelerator = f", {gpus} GPU" if gpus else ", CPU only"
    except ImportError:
        accelerator = ""
    return f"{os.cpu_count()} cores, {cpu}{accelerator}"


def device_name() -> str:
    """What trained a run in this process: "GPU: <name>" or "CPU (N threads)" (as `lab.training.train.training_device`).

    Only asked of a TensorFlow already loaded (the command line trained here): this module never loads it.
    """
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return ""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return f"GPU: {tf.config.experimental.get_device_details(gpus[0]).get('device_name') or gpus[0].name}"
    return f"CPU ({tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()} threads)"


def recording_path(name: str, folder: Path | None = None) -> Path:
    """Where the recording NAME lives: experiments/recorded/NAME.json (or in `folder`)."""
    return (folder or RECORDINGS_DIR) / f"{name}.json"


def save_recording(
    name: str,
    preset: str,
    config: RunConfig,
    runs: dict[str, Any],
    seconds: float,
    folder: Path | None = None,
    replace: bool = True,
    device: str | None = None,
) -> Path:
    """Save `runs` (side -> history: rows, or a DataFrame) as experiments/recorded/NAME.json (or in `folder`).

    With `replace=False` an existing NAME.json is left as it is and FileExistsError raised. A
    failed write (a full disk) leaves the earlier file and no temporary one.
    """
    path = recording_path(name, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    if config.dataset != "folder":
        # A named dataset is the same files wherever it lives: the recording keeps no path of this machine.
        config = config.replace(data_dir=None)
    payload: dict[str, Any] = {
        "name": name,
        "preset": preset,
        "config": config.to_dict(),
        "machine": machine_name(),
        "device": device or device_name(),
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "runs": {side: _columns(history) for side, history in runs.items()},
    }
    # A temporary file of its own (two people may record at once), moved into place whole:
    # never a half-written recording.
    handle, temporary_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".json.tmp", dir=path.parent)
    os.close(handle)
    temporary = Path(temporary_name)
    try:
        temporary.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
        _move_into_place(temporary, path, replace)
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()
    return path


def _move_into_place(temporary: Path, path: Path, replace: bool) -> None:
    if replace:
        temporary.replace(path)
        return
    try:
        os.link(temporary, path)  # fails with FileExistsError, atomically, when the name is taken
    except FileExistsError:
        raise
    except OSError:
        # A file system without hard links: check, then move (a narrow race, not a silent one).
        if path.exists():
            raise FileExistsError(errno.EEXIST, "a recording of that name exists", str(path)) from None
        temporary.replace(path)


def list_recordings(folder: Path | None = None) -> list[str]:
    folder = folder or RECORDINGS_DIR
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def load_recording(name: str, folder: Path | None = None) -> Recording:
    path = recording_path(name, folder)
    data = json.loads(path.read_text(encoding="utf-8"))
    runs = {side: _rows(columns) for side, columns in data["runs"].items()}
    return Recording(
        name=data["name"],
        preset=data.get("preset", ""),
        config=RunConfig.from_dict(data["config"]),
        runs=runs,
        machine=data.get("machine", "unknown machine"),
        recorded_at=data.get("recorded_at", ""),
        seconds=float(data.get("seconds", 0.0)),
        device=str(data.get("device") or ""),
    )


def _columns(history: Any) -> dict[str, list[Any]]:
    """A history as the file keeps it: one list per column."""
    rows = hist.from_rows(hist.rows_of(history))
    return {column: [row[column] for row in rows] for column in hist.COLUMNS}


def _rows(columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The epoch rows of a history kept column by column; ValueError when the columns differ in length."""
    return hist.from_rows(dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True))
