"""Train one configuration, or compare it without and with augmentation.

`train` knows nothing of threads or queues: the caller passes `on_epoch` to hear about
each finished epoch and `should_stop` to cancel between batches.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from lab import history as hist
from lab.config import ConfigError, RunConfig
from lab.errors import RunCancelled

EpochCallback = Callable[[dict[str, Any]], None]
StopCheck = Callable[[], bool]


class TrainingError(RuntimeError):
    """A run could not finish (it diverged, or its data could not be read)."""


@dataclass
class Comparison:
    """Both runs of a comparison and their summary, one row per side."""

    baseline: pd.DataFrame
    augmented: pd.DataFrame
    config: RunConfig

    def summary(self) -> pd.DataFrame:
        rows = {"baseline": hist.summarize(self.baseline), "augmented": hist.summarize(self.augmented)}
        return pd.DataFrame.from_dict(rows, orient="index")


def train(
    config: RunConfig,
    on_epoch: EpochCallback | None = None,
    should_stop: StopCheck | None = None,
    data: Any = None,
) -> pd.DataFrame:
    """Train the course CNN on `config` and return its history, one row per epoch.

    `data` (from `lab.datasets.load`) lets a comparison decode its images once for both
    runs. Raises `RunCancelled` (with the partial history) when `should_stop()` turns
    true, `TrainingError` when the loss is no longer a number.
    """
    import keras

    from lab import datasets
    from lab.model import build_model

    _make_deterministic(config.seed)
    data = data if data is not None else datasets.load(config)
    if data.image_size != config.image_size:
        raise ConfigError("data was loaded for another image size")
    train_ds, steps = datasets.training_pipeline(data, config)
    validation_ds = datasets.validation_pipeline(data, config)
    model = build_model(config, data.num_classes)
    reporter = _Reporter(on_epoch, should_stop)
    try:
        model.fit(
            train_ds,
            steps_per_epoch=steps,
            epochs=config.epochs,
            validation_data=validation_ds,
            callbacks=[reporter],
            shuffle=False,  # the pipeline shuffles, seeded
            verbose=0,
        )
    except _Stop:
        raise RunCancelled(hist.from_rows(reporter.rows)) from None
    finally:
        # Free the graph and the model now: a long-lived app trains many runs.
        del model
        keras.backend.clear_session(free_memory=True)
    return hist.from_rows(reporter.rows)


def compare(
    config: RunConfig,
    on_epoch: Callable[[str, dict[str, Any]], None] | None = None,
    should_stop: StopCheck | None = None,
) -> Comparison:
    """Train without augmentation, then with it: same data, model and seed."""
    from lab import datasets

    if not config.augmentation.enabled:
        raise ConfigError("no augmentation is switched on: a comparison needs at least one knob")
    data = datasets.load(config)
    runs = {}
    for side, side_config in (("baseline", config.without_augmentation()), ("augmented", config)):
        report = (lambda row, side=side: on_epoch(side, row)) if on_epoch else None
        runs[side] = train(side_config, report, should_stop, data=data)
    return Comparison(runs["baseline"], runs["augmented"], config)


class _Stop(Exception):
    """Raised inside fit to stop within a batch, skipping the epoch's validation pass."""


def _reporter_base():
    import keras

    return keras.callbacks.Callback


class _Reporter(_reporter_base()):
    def __init__(self, on_epoch: EpochCallback | None, should_stop: StopCheck | None):
        super().__init__()
        self.on_epoch = on_epoch
        self.should_stop = should_stop
        self.rows: list[dict[str, Any]] = []
        self.started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._check_stop()
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._check_stop()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        row = {
            "epoch": epoch + 1,
            "loss": float(logs.get("loss", math.nan)),
            "accuracy": float(logs.get("accuracy", math.nan)),
            "val_loss": float(logs.get("val_loss", math.nan)),
            "val_accuracy": float(logs.get("val_accuracy", math.nan)),
            "seconds": time.perf_counter() - self.started,
        }
        if not math.isfinite(row["loss"]):
            raise TrainingError(
                f"training diverged at epoch {epoch + 1}: the loss is {row['loss']}. Lower the learning rate."
            )
        self.rows.append(row)
        if self.on_epoch:
            self.on_epoch(row)

    def _check_stop(self):
        if self.should_stop is not None and self.should_stop():
            raise _Stop()


_DETERMINISTIC = False


def _make_deterministic(seed: int) -> None:
    """Same seed, same numbers: seed every generator and ask TensorFlow for deterministic ops."""
    global _DETERMINISTIC
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if not _DETERMINISTIC:
        tf.config.experimental.enable_op_determinism()
        _DETERMINISTIC = True
