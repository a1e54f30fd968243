"""Where the repository and the real datasets are, for the tools and the tests."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shared_datasets_dir() -> Path:
    """../shared/datasets beside the repository; LAB_SHARED_DATASETS when that is absent."""
    beside = REPO.parent / "shared" / "datasets"
    env = os.environ.get("LAB_SHARED_DATASETS")
    return Path(env) if env and not beside.is_dir() else beside
