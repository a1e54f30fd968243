"""Train one configuration, or compare it without and with augmentation.

`train` knows nothing of threads or queues: the caller passes `on_epoch` to hear about
each finished epoch and `should_stop` to cancel between batches. A history is a list of
epoch rows (`lab.history`); nothing here needs pandas, so the app's training child trains
without it (`lab.training.child.keep_unused_packages_out`).

Importing this module imports neither TensorFlow nor Keras: they load when a run starts.
"""

from __future__ import annotations

import functools
import gc
import logging
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lab.config import ConfigError, RunConfig
from lab.errors import RunCancelled, TrainingFailed
from lab.history import Row, summarize

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

EpochCallback = Callable[[Row], None]
StopCheck = Callable[[], bool]


@dataclass
class Comparison:
    """Both runs of a comparison (epoch rows) and their summary, one row per side."""

    baseline: list[Row]
    augmented: list[Row]
    config: RunConfig
    # Each side's final predictions ("baseline", "augmented"), when `compare` was given an `outcome_dir`.
    predictions: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        import pandas as pd

        rows = {"baseline": summarize(self.baseline), "augmented": summarize(self.augmented)}
        return pd.DataFrame.from_dict(rows, orient="index")


def train(
    config: RunConfig,
    on_epoch: EpochCallback | None = None,
    should_stop: StopCheck | None = None,
    data: Any = None,
    outcome_dir: str | Path | None = None,
) -> list[Row]:
    """Train the course CNN on `config` and return its history: one row per epoch (`lab.history.COLUMNS`).

    `on_epoch` hears each row as its epoch ends. `data` (from `lab.training.pipeline.load`) lets
    a comparison decode its images once for both runs. Raises `RunCancelled` (with the rows
    of the finished epochs) when `should_stop()` turns true, `TrainingFailed` when the loss
    is no longer a number. With `outcome_dir`, a finished run leaves its final weights and
    validation predictions there (`lab.training.outcome`).
    """
    from lab.training import pipeline

    data = data if data is not None else pipeline.load(config)
    if data.image_size != config.image_size:
        raise ConfigError("data was loaded for another image size")
    # Seeding is process-wide: runs training at once in threads (`compare`) each seed and build in turn.
    with _SETUP_LOCK:
        _make_deterministic(config.seed)
        train_ds, steps = pipeline.training_pipeline(data, config)
        validation_ds = pipeline.validation_pipeline(data, config)
        model = MODELS.take(config, data.num_classes)
    reporter = _reporter_class()(on_epoch, should_stop)
    try:
        model.fit(
            train_ds,
            steps_per_epoch=steps,
            epochs=config.epochs,
            validation_data=validation_ds,
            callbacks=[reporter, *_cures(config)],
            shuffle=False,  # the pipeline shuffles, seeded
            verbose=0,
        )
    except _Stop:
        raise RunCancelled(list(reporter.rows)) from None
    else:
        pipeline.log_skipped(data)  # every file has been read once by now
        if outcome_dir is not None:
            _keep_outcome(model, data, config, Path(outcome_dir))
    finally:
        # A fit that raised may leave its validation iterator on the model: it holds the pipeline.
        model._eval_epoch_iterator = None
        MODELS.give_back(model)
        del model, train_ds, validation_ds
        gc.collect()  # the pipelines' iterators, now rather than later
    return list(reporter.rows)


def compare(
    config: RunConfig,
    on_epoch: Callable[[str, dict[str, Any]], None] | None = None,
    should_stop: StopCheck | None = None,
    outcome_dir: str | Path | None = None,
    together: bool = True,
) -> Comparison:
    """Train without augmentation and with it: same data, model and seed.

    `together` trains both sides at once, each in a thread of this process, so both curves grow
    side by side; otherwise the baseline first. Either way each side's history is the one it
    would have alone, bit for bit (`tests/test_train.py`). Why threads: both curves grow at once, in
    one process (one runtime's memory), and no slower than one after the other: at the lessons' sizes
    one run keeps about 1.6 of 2 cores busy, two at once 1.8 (docs/performance.md, "Fast lessons
    (issue 15)"). Should one side fail or be cancelled, the other is stopped too.

    With `outcome_dir`, each side keeps its outcome in `outcome_dir/<side>/` and the comparison's
    `predictions` holds them.
    """
    from lab.training import pipeline

    if not config.augmentation.enabled:
        raise ConfigError("no augmentation is switched on: a comparison needs at least one knob")
    data = pipeline.load(config)
    sides = {"baseline": config.without_augmentation(), "augmented": config}
    runs: dict[str, list[Row]] = {}
    failures: list[BaseException] = []  # in the order they happened: the first is the cause
    halt = threading.Event()

    def stop() -> bool:
        return halt.is_set() or (should_stop is not None and should_stop())

    def run(side: str) -> None:
        report = (lambda row: on_epoch(side, row)) if on_epoch else None
        try:
            side_dir = Path(outcome_dir) / side if outcome_dir is not None else None
            runs[side] = train(sides[side], report, stop, data=data, outcome_dir=side_dir)
        except BaseException as exc:  # raised to the caller below
            failures.append(exc)
            halt.set()

    if not together:
        for side in sides:
            if not failures:
                run(side)
    else:
        threads = [threading.Thread(target=run, args=(side,), name=f"lab-{side}") for side in sides]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(timeout=0.2)  # a timed join lets Ctrl-C through to this thread
        except KeyboardInterrupt:
            halt.set()
            for thread in threads:
                thread.join()
            raise
    if failures:
        raise failures[0]
    comparison = Comparison(runs["baseline"], runs["augmented"], config)
    if outcome_dir is not None:
        from lab.training.outcome import load_predictions

        comparison.predictions = {side: load_predictions(Path(outcome_dir) / side) for side in runs}
    return comparison


def _keep_outcome(model: Any, data: Any, config: RunConfig, folder: Path) -> None:
    """Save the final weights and validation predictions in `folder` (`lab.training.outcome`)."""
    from lab.training.outcome import predict, save_outcome

    try:
        save_outcome(folder, model, predict(model, data, config))
    except OSError as exc:
        # The curves are the run's result, its images an extra: a full disk costs the images only.
        log.warning("the run finished, but its weights and predictions could not be saved: %s", exc)


def _cures(config: RunConfig) -> list[Any]:
    """The callbacks of the cures that act during training: early stopping, when switched on."""
    if not config.early_stopping:
        return []
    import keras

    # After the reporter in the list: the stopping epoch is reported before fit ends. The weights
    # of the best epoch come back at the end, so the outcome (`outcome_dir`) is the best model's.
    return [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.early_stopping, restore_best_weights=True, start_from_epoch=0
        )
    ]


class ModelCache:
    """Compiled course CNNs kept between runs, one per architecture (`lab.training.model.architecture`, which
    includes the augmentation: the model augments in its training step).

    Why: TensorFlow keeps about 10 MB of every traced training step for the life of the
    process, `keras.backend.clear_session` or not, so a process that builds a model per run
    grows by that much per run. A reused model's `fit` finds its traced train and test
    functions and traces nothing. Each run still starts exactly where a fresh model would:
    a model is built from the seed as before, and its initial values (weights, Dropout's
    seed state, the optimizer's variables and learning rate) are assigned to the cached one.
    """

    def __init__(self, size: int = 4, budget_mb: float = 128) -> None:
        # A few architectures, not one: both sides of a comparison (an augmenting model traces
        # another step), and a page switching image sizes keeps its traces too. But
        # an idle model holds its weights and optimizer slots (28 MB at 150 px, 470 MB at 512 px):
        # past `budget_mb` the oldest are dropped, so they never add to a later run's peak.
        self.size = size
        self.budget_mb = budget_mb
        self._models: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, config: RunConfig, num_classes: int) -> Any:
        """A compiled model in the state of `build_model(config, num_classes)` just after seeding."""
        from lab.training import model as model_module

        fresh = model_module.build_model(config, num_classes)
        key = model_module.architecture(config, num_classes)
        with self._lock:  # a model trains one run at a time: it is out of the cache while it trains
            cached = self._models.pop(key, None)
        if cached is None:
            fresh._lab_architecture = key
            return fresh
        _assign_initial_state(cached, fresh)
        # The template's weights and optimizer slots (28 MB at 150 px) sit in Keras' reference
        # cycles, which Python collects only now and then: free them before the run trains,
        # or they add to its peak.
        del fresh
        gc.collect()
        return cached

    def give_back(self, model: Any) -> None:
        """Keep `model` for the next run of its architecture, dropping the least recently used past `size`."""
        key = getattr(model, "_lab_architecture", None)
        if key is None:
            return
        with self._lock:
            self._models[key] = model
            self._models.move_to_end(key)
            while self._models and (len(self._models) > self.size or _megabytes(self._models) > self.budget_mb):
                self._models.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._models.clear()


def _megabytes(models: OrderedDict[tuple, Any]) -> float:
    """What the models' variables (weights, optimizer slots) hold."""
    variables = [v for model in models.values() for v in [*model.variables, *model.optimizer.variables]]
    return sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize for v in variables) / 2**20


def _assign_initial_state(cached: Any, fresh: Any) -> None:
    """Make `cached` start its run exactly as the just-built `fresh` model would."""
    # Every variable of the network: weights, and Dropout's seed-generator state (its draws
    # follow from it, so a reused model drops the same units as a fresh one).
    for target, source in zip(cached.variables, fresh.variables, strict=True):
        target.assign(source)
    # The optimizer's slots (RMSprop's moving averages), iteration count and learning rate:
    # build the fresh optimizer's slots, as fit would, and copy them all.
    if cached.optimizer.built:
        fresh.optimizer.build(fresh.trainable_variables)
    for target, source in zip(cached.optimizer.variables, fresh.optimizer.variables, strict=True):
        target.assign(source)
    # The augmentation's seed: the run's, so its batches draw what a fresh model's would.
    if cached.augmentation is not None:
        cached.augmentation.seed.assign(fresh.augmentation.seed)
    cached.reset_metrics()


# The process's models: the app's training child and the command line train through it.
MODELS = ModelCache()


class LastData:
    """The decoded data of the last run, kept for the next run that reads the same data.

    The app sends a comparison as two jobs, without then with augmentation, on the same
    data: the second finds the images decoded and cached, instead of decoding them again
    beside the first run's freed cache. At most one dataset is kept.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._data: Any = None

    def get(self, config: RunConfig) -> Any:
        """`lab.training.pipeline.load(config)`, or the last one's result when it read the same data."""
        from lab.training import pipeline

        key = pipeline.decoded_key(config)
        if key != self._key:
            # Let go of the old images before decoding new ones: never two datasets at once.
            self.clear()
            self._data = pipeline.load(config)
            self._key = key
        return self._data

    def clear(self) -> None:
        self._key = self._data = None
        gc.collect()


class _Stop(Exception):
    """Raised inside fit to stop within a batch, skipping the epoch's validation pass."""


class _Reporter:
    """The Keras callback of a run: reports each epoch's row, checks for a stop, catches divergence.

    Keras is no base here, so importing this module does not import it: `_reporter_class`
    makes the callback class, with `keras.callbacks.Callback` behind this one, when a run starts.
    """

    def __init__(self, on_epoch: EpochCallback | None, should_stop: StopCheck | None):
        super().__init__()
        self.on_epoch = on_epoch
        self.should_stop = should_stop
        self.rows: list[Row] = []
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
            raise TrainingFailed(
                f"training diverged at epoch {epoch + 1}: the loss is {row['loss']}. Lower the learning rate."
            )
        self.rows.append(row)
        if self.on_epoch:
            self.on_epoch(row)

    def _check_stop(self):
        if self.should_stop is not None and self.should_stop():
            raise _Stop()


@functools.cache
def _reporter_class() -> type:
    """`_Reporter` as a Keras callback (Keras is imported here, once)."""
    import keras

    return type("_Reporter", (_Reporter, keras.callbacks.Callback), {})


def training_device() -> str:
    """What trains here, for a run's record: "GPU: <name>" when TensorFlow sees a GPU, else "CPU (N threads)"."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU: {details.get('device_name') or gpus[0].name}" + (f" (+{len(gpus) - 1})" if len(gpus) > 1 else "")
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    return f"CPU ({threads} threads)"


_DETERMINISTIC = False
_SETUP_LOCK = threading.Lock()


def _make_deterministic(seed: int) -> None:
    """Same seed, same numbers: seed every generator and ask TensorFlow for deterministic ops."""
    global _DETERMINISTIC
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if not _DETERMINISTIC:
        tf.config.experimental.enable_op_determinism()
        _DETERMINISTIC = True
