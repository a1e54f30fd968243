"""Hosted mode: limits that keep one job from taking a shared host down.

On Streamlit Community Cloud every visitor shares at most 2 CPU cores and 2.7 GB of
memory. Hosted mode (LAB_HOSTED=1, or `hosted = true` in Streamlit's secrets) caps the
image size, the epochs, the training subset and the seeds per side, and keeps the server's
folders private. The page lowers a configuration to the caps (`apply_limits`) and the worker
refuses anything still over them (`over_caps`), so a crafted link cannot get around them. The
server's queue is bounded too (`max_queued`).
Each cap can be moved by an environment variable.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lab.config import RunConfig

_TRUE = ("1", "true", "yes", "on")
# How many runs may wait in a hosted server's queue, all visitors together: a class of about
# twenty, each with a comparison waiting, and no more.
HOSTED_MAX_QUEUED = 24


@dataclass(frozen=True)
class HostLimits:
    max_image_size: int = 96
    max_epochs: int = 30
    max_train_images: int = 1000
    # Each seed trains both sides once more: three already triple a comparison's time.
    max_seeds: int = 3


def hosted_mode(secrets: Mapping[str, Any] | None = None) -> bool:
    """True when the lab runs for many visitors on a shared host."""
    if os.environ.get("LAB_HOSTED", "").lower() in _TRUE:
        return True
    return bool(secrets) and str(secrets.get("hosted", "")).lower() in _TRUE


def host_limits(secrets: Mapping[str, Any] | None = None) -> HostLimits | None:
    """The caps in force, or None when the lab runs for one user (a laptop, a classroom screen)."""
    if not hosted_mode(secrets):
        return None
    default = HostLimits()
    return HostLimits(
        max_image_size=int(os.environ.get("LAB_MAX_IMAGE_SIZE", default.max_image_size)),
        max_epochs=int(os.environ.get("LAB_MAX_EPOCHS", default.max_epochs)),
        max_train_images=int(os.environ.get("LAB_MAX_TRAIN_IMAGES", default.max_train_images)),
        max_seeds=int(os.environ.get("LAB_MAX_SEEDS", default.max_seeds)),
    )


def max_queued(secrets: Mapping[str, Any] | None = None) -> int | None:
    """How many runs may wait in the server's queue: `$LAB_MAX_QUEUED`, else 24 when hosted, else no bound.

    `LAB_MAX_QUEUED=0` (or empty) means no bound, even when hosted.
    """
    configured = os.environ.get("LAB_MAX_QUEUED")
    if configured is not None:
        bound = int(configured) if configured.strip() else 0
        return bound if bound > 0 else None
    return HOSTED_MAX_QUEUED if hosted_mode(secrets) else None


def server_folders_allowed(secrets: Mapping[str, Any] | None = None) -> bool:
    """May the page read folders on the server? Off when hosted, unless LAB_ALLOW_SERVER_FOLDERS=1."""
    explicit = os.environ.get("LAB_ALLOW_SERVER_FOLDERS")
    if explicit is not None:
        return explicit.lower() in _TRUE
    return not hosted_mode(secrets)


def apply_limits(
    config: RunConfig, limits: HostLimits | None, train_count: int | None = None
) -> tuple[RunConfig, list[str]]:
    """The configuration within the caps, and a sentence for each value that was lowered.

    `train_count` is the size of the dataset's training split: "all images" is capped
    only when that is more than the cap.
    """
    if limits is None:
        return config, []
    changes: dict[str, Any] = {}
    notes = []
    if config.image_size > limits.max_image_size:
        changes["image_size"] = limits.max_image_size
        notes.append(f"image size lowered from {config.image_size} to {limits.max_image_size} px")
    if config.epochs > limits.max_epochs:
        changes["epochs"] = limits.max_epochs
        notes.append(f"epochs lowered from {config.epochs} to {limits.max_epochs}")
    if _too_many_images(config, limits, train_count):
        asked = config.train_images or train_count or 0
        changes["train_images"] = limits.max_train_images
        notes.append(f"training images lowered from {asked or 'all'} to {limits.max_train_images}")
    return dataclasses.replace(config, **changes), notes


def over_caps(config: RunConfig, limits: HostLimits | None, train_count: int | None = None) -> list[str]:
    """A sentence for each value of `config` over the caps; empty when it is within them.

    The same rules as `apply_limits`, so whatever `apply_limits` returns for a `train_count`
    is within the caps for that `train_count`. "All images" (train_images 0) is over the cap
    unless `train_count`, the size of the dataset's training split, says it is small enough.
    """
    if limits is None:
        return []
    over = []
    if config.image_size > limits.max_image_size:
        over.append(f"image size {config.image_size} px is over this server's cap of {limits.max_image_size} px")
    if config.epochs > limits.max_epochs:
        over.append(f"{config.epochs} epochs is over this server's cap of {limits.max_epochs}")
    if _too_many_images(config, limits, train_count):
        asked = config.train_images or train_count
        what = f"{asked} training images" if asked else "all training images (of a dataset of unknown size)"
        over.append(f"{what} is over this server's cap of {limits.max_train_images}")
    return over


def _too_many_images(config: RunConfig, limits: HostLimits, train_count: int | None) -> bool:
    asked = config.train_images or train_count or 0
    return asked > limits.max_train_images or (config.train_images == 0 and train_count is None)
