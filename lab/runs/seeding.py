"""Seeding a server's run store with recordings, so that those runs are answered at once.

`python -m lab atlas PRESET` records the runs a class most often asks for as recordings in
experiments/atlas/PRESET/ (the format of `lab.recordings`: each side's history column by
column). A worker opened with `atlas=` writes each into its store by config key
(`RunStore.seed`): a fresh server then answers those configurations from the store, with no
training job. `$LAB_ATLAS=0` turns it off (the classroom benchmark compares both).

Reads the files itself: `lab.runs` sits below `lab.recordings` and does not import it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from lab.config import ConfigError, RunConfig
from lab.runs.store import RunStore

log = logging.getLogger(__name__)

ATLAS_DIR = Path(__file__).resolve().parents[2] / "experiments" / "atlas"


def atlas_folder() -> Path | None:
    """The atlas a server seeds its store with: experiments/atlas/, or None when `$LAB_ATLAS` is 0/off."""
    if os.environ.get("LAB_ATLAS", "").strip().lower() in ("0", "off", "no", "false"):
        return None
    return ATLAS_DIR


def seed_from_recordings(store: RunStore, folder: str | Path) -> int:
    """Seed `store` with every recording in `folder` and its subfolders; returns how many runs were written.

    A recording of a comparison seeds both sides. A run the store has done (or is training)
    is left alone; an unreadable file is skipped with a warning.
    """
    written = 0
    for path in sorted(Path(folder).rglob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            config = RunConfig.from_dict(data["config"])
            for side, columns in data["runs"].items():
                rows = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
                written += store.seed(config.without_augmentation() if side == "baseline" else config, rows)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, ConfigError) as exc:
            log.warning("skipping recording %s: %s", path.name, exc)
    if written:
        log.info("seeded the run store with %d recorded run(s) from %s", written, folder)
    return written
