"""A rough run-time estimate, shown before a run starts so nobody waits blind."""

from __future__ import annotations

from lab.config import RunConfig

# Seconds per image per epoch for the course CNN at 64 px on a 2-core CPU, measured with
# `python -m lab compare` (see docs/performance.md): a training step costs about three
# times a validation (forward-only) pass. Compute grows with the pixel count.
TRAIN_SECONDS_PER_IMAGE_64 = 0.0018
VALIDATION_SECONDS_PER_IMAGE_64 = 0.0006
WARM_UP_SECONDS = 6.0  # importing TensorFlow, decoding the images, building the model


def estimate_seconds(config: RunConfig, train_count: int, validation_count: int) -> float:
    """Seconds one run of `config` takes on a 2-core CPU, within a factor of about two."""
    scale = (config.image_size / 64) ** 2
    per_epoch = (train_count * TRAIN_SECONDS_PER_IMAGE_64 + validation_count * VALIDATION_SECONDS_PER_IMAGE_64) * scale
    return WARM_UP_SECONDS + per_epoch * config.epochs


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"about {max(5, round(seconds / 5) * 5):.0f} s"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60):.0f} min"
    return f"about {seconds / 3600:.1f} h"
