"""A run-time estimate, shown before a run starts so nobody waits blind.

Calibrated from this server's own finished runs when it has any (`calibrate`): the run store keeps
every epoch's seconds, so the estimate learns the machine's speed, and its load, per image size.
Without them it falls back to a stated guess for a 2-core CPU.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from lab.config import RunConfig

# The guess: seconds per image per epoch for the course CNN at 64 px on a 2-core CPU, measured with
# `python -m lab compare` (see docs/performance.md): a training step costs about three times a
# validation (forward-only) pass. Compute grows with the pixel count.
TRAIN_SECONDS_PER_IMAGE_64 = 0.0018
VALIDATION_SECONDS_PER_IMAGE_64 = 0.0006
WARM_UP_SECONDS = 6.0  # importing TensorFlow, decoding the images, building the model
GUESS = "a guess for a 2-core CPU"


@dataclass(frozen=True)
class Measured:
    """One finished run as the estimate reads it: its settings, its image counts and what it took."""

    config: RunConfig
    train_count: int
    validation_count: int
    epoch_seconds: list[float]  # each epoch's seconds, as the run's history rows hold them
    overhead_seconds: float | None = None  # wall time beyond its epochs (start-up), when known


@dataclass(frozen=True)
class Calibration:
    """This server's speed: per image size, the median ratio of measured to guessed epoch seconds."""

    factors: dict[int, float] = field(default_factory=dict)
    runs: dict[int, int] = field(default_factory=dict)  # how many runs each factor comes from
    overhead_seconds: float | None = None

    def factor(self, image_size: int) -> tuple[float, int | None]:
        """The ratio for `image_size` and the size it was measured at (the nearest measured), or (1, None)."""
        if not self.factors:
            return 1.0, None
        nearest = min(self.factors, key=lambda size: (abs(size - image_size), size))
        return self.factors[nearest], nearest


def guessed_epoch_seconds(config: RunConfig, train_count: int, validation_count: int) -> float:
    scale = (config.image_size / 64) ** 2
    return (train_count * TRAIN_SECONDS_PER_IMAGE_64 + validation_count * VALIDATION_SECONDS_PER_IMAGE_64) * scale


def calibrate(runs: Iterable[Measured]) -> Calibration:
    """The calibration the finished runs give; runs without timed epochs are left out."""
    ratios: dict[int, list[float]] = {}
    overheads = []
    for run in runs:
        seconds = [s for s in run.epoch_seconds if s and s > 0]
        guess = guessed_epoch_seconds(run.config, run.train_count, run.validation_count)
        if not seconds or guess <= 0:
            continue
        ratios.setdefault(run.config.image_size, []).append(statistics.fmean(seconds) / guess)
        if run.overhead_seconds is not None and run.overhead_seconds >= 0:
            overheads.append(run.overhead_seconds)
    return Calibration(
        factors={size: statistics.median(values) for size, values in ratios.items()},
        runs={size: len(values) for size, values in ratios.items()},
        overhead_seconds=statistics.median(overheads) if overheads else None,
    )


def estimate_seconds(
    config: RunConfig, train_count: int, validation_count: int, calibration: Calibration | None = None
) -> float:
    """Seconds one run of `config` takes: measured on this server when `calibration` has runs, else the guess."""
    factor, _ = (calibration or Calibration()).factor(config.image_size)
    warm_up = WARM_UP_SECONDS
    if calibration is not None and calibration.overhead_seconds is not None:
        warm_up = calibration.overhead_seconds
    return warm_up + guessed_epoch_seconds(config, train_count, validation_count) * factor * config.epochs


def basis(config: RunConfig, calibration: Calibration | None) -> str:
    """Where the estimate comes from, in words."""
    factor, size = (calibration or Calibration()).factor(config.image_size)
    if size is None:
        return f"{GUESS}; no run has finished on this server yet"
    count = calibration.runs[size]
    runs = f"{count} run{'s' if count != 1 else ''}"
    if size == config.image_size:
        return f"measured on this server: {runs} at {size} px"
    return f"measured on this server: {runs} at {size} px, scaled to {config.image_size} px"


def overhead(started: str | None, finished: str | None, epoch_seconds: Iterable[float]) -> float | None:
    """A run's wall time beyond its epochs, from the store's ISO time stamps; None when either is missing."""
    if not started or not finished:
        return None
    try:
        wall = (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()
    except ValueError:
        return None
    return max(0.0, wall - sum(s for s in epoch_seconds if s))


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"about {max(5, round(seconds / 5) * 5):.0f} s"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60):.0f} min"
    return f"about {seconds / 3600:.1f} h"
