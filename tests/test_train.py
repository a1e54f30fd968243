"""Training: a history per epoch, the same numbers for the same seed, a prompt cancel, a clear
error when the loss is lost, a fair comparison, and the user's images left exactly as they were.

Everything trains the course CNN at 48 px on a few dozen images for one or two epochs.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import shutil
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lab.config import Augmentation, ConfigError, RunConfig
from lab.errors import RunCancelled, TrainingFailed
from lab.history import COLUMNS, to_frame
from lab.training import model, pipeline, train
from lab.training.train import Comparison, compare

REPO = Path(__file__).resolve().parents[1]
AUGMENTATION = Augmentation(
    rotation_range=30, width_shift_range=0.1, zoom_range=0.2, horizontal_flip=True, brightness_range=0.1
)


def tiny_config(root: Path, **changes) -> RunConfig:
    settings = {"image_size": 48, "epochs": 2, "batch_size": 8, "learning_rate": 1e-3, "seed": 0, **changes}
    return RunConfig(dataset="folder", data_dir=str(root), **settings)


@pytest.fixture
def two_class_folder(image_folder) -> Path:
    return image_folder(classes=("cats", "dogs"), train=12, validation=4)


def numbers(history: list[dict]) -> pd.DataFrame:
    """The learned numbers of a history: everything but the wall-clock seconds."""
    return to_frame(history).drop(columns=["seconds"])


# -- a run -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "classes, units, activation, loss",
    [
        (("cats", "dogs"), 1, "sigmoid", "binary_crossentropy"),
        (("a", "b", "c"), 3, "softmax", "sparse_categorical_crossentropy"),
    ],
    ids=["binary", "three-classes"],
)
def test_a_run_returns_one_history_row_per_epoch(image_folder, monkeypatch, classes, units, activation, loss):
    root = image_folder(classes=classes, train=8, validation=3)
    built = []
    original_build = model.build_model
    monkeypatch.setattr(model, "build_model", lambda config, n: built.append(original_build(config, n)) or built[-1])
    reported = []

    rows = train.train(tiny_config(root), on_epoch=reported.append)
    history = to_frame(rows)

    assert [list(row) for row in rows] == [COLUMNS] * 2
    assert len(history) == 2 and history["epoch"].tolist() == [1, 2]
    assert [set(row) for row in reported] == [set(COLUMNS)] * 2
    assert rows == reported
    for column in ("loss", "val_loss"):
        assert all(math.isfinite(v) and v > 0 for v in history[column])
    for column in ("accuracy", "val_accuracy"):
        assert history[column].between(0, 1).all()
    assert (history["seconds"] > 0).all()
    # The head matches the number of classes: one sigmoid unit for two, a softmax otherwise.
    (net,) = built
    assert net.output_shape == (None, units)
    assert net.layers[-1].activation.__name__ == activation
    assert net.loss == loss


def test_data_loaded_for_another_size_is_refused(two_class_folder):
    data = pipeline.load(tiny_config(two_class_folder))
    with pytest.raises(ConfigError, match="image size"):
        train.train(tiny_config(two_class_folder, image_size=64), data=data)


def test_importing_the_training_module_imports_neither_keras_nor_tensorflow():
    """The command line and the training child import it before they know whether a run starts."""
    code = (
        "import sys, lab.training.train, lab.training.child\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'pandas') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# -- reproducibility -------------------------------------------------------------------------------
def test_the_same_seed_gives_the_same_history_and_another_seed_does_not(two_class_folder):
    config = tiny_config(two_class_folder, augmentation=AUGMENTATION)
    first = train.train(config)
    again = train.train(config)
    other = train.train(config.replace(seed=1))
    pd.testing.assert_frame_equal(numbers(first), numbers(again), rtol=1e-6, atol=1e-7)
    assert not np.allclose(numbers(first).to_numpy(), numbers(other).to_numpy())


def _epoch_images(config: RunConfig, data, epochs: int) -> list[list[bytes]]:
    """The training images of each epoch as the model trains on them, as raw bytes; batch_size == the whole split."""
    dataset, steps = pipeline.augmented_batches(data, config)
    assert steps == 1
    return [[image.tobytes() for image in images.numpy()] for images, _ in dataset.take(epochs)]


def test_augmented_batches_repeat_for_a_seed_and_change_across_epochs_and_seeds(image_folder):
    root = image_folder(classes=("cats", "dogs"), train=5, validation=1)
    config = tiny_config(root, batch_size=10, augmentation=AUGMENTATION)
    data = pipeline.load(config)

    first = _epoch_images(config, data, 3)
    assert _epoch_images(config, data, 3) == first  # the same seed, the same variants
    # Each epoch draws new variants: no image of one epoch reappears in another.
    assert not set(first[0]) & set(first[1]) and not set(first[1]) & set(first[2])
    assert not set(first[0]) & set(_epoch_images(config.replace(seed=1), data, 1)[0])

    # Without augmentation every epoch shows the same ten images (reshuffled): the
    # differences above come from augmentation, not from the order.
    plain = _epoch_images(config.without_augmentation(), data, 2)
    assert sorted(plain[0]) == sorted(plain[1]) and len(set(plain[0])) == 10
    assert plain[0] != plain[1]  # but the order is reshuffled each epoch


def test_the_training_step_augments_exactly_the_batches_augmented_batches_shows(two_class_folder, monkeypatch):
    """The pipeline hands an augmenting model plain images and its training step augments batch k of the run
    with the run's seed: what it trains on is what `augmented_batches` shows (the Why section's batch), for a
    fresh model and for the compiled one kept for the next run with another seed."""
    import tensorflow as tf

    from lab.training import augment

    seen: list[tuple[int, np.ndarray]] = []
    original = augment.StepAugmentation.__call__

    def watched(self, images, step):
        out = original(self, images, step)
        tf.py_function(lambda s, o: seen.append((int(s), o.numpy())), [step, out], [])
        return out

    monkeypatch.setattr(augment.StepAugmentation, "__call__", watched)
    train.MODELS.clear()  # a model kept from another test has its step traced without the watch
    for seed in (0, 1):  # the second run reuses the first's compiled model
        config = tiny_config(two_class_folder, augmentation=AUGMENTATION, epochs=2, seed=seed)
        seen.clear()
        train.train(config)
        trained = list(seen)
        data = pipeline.load(config)
        dataset, steps = pipeline.augmented_batches(data, config)
        shown = [images.numpy() for images, _ in dataset.take(2 * steps)]
        assert [step for step, _ in trained] == list(range(2 * steps))
        for (_, images), expected in zip(trained, shown, strict=True):
            np.testing.assert_array_equal(images, expected)
        plain, _ = next(iter(pipeline.training_pipeline(data, config)[0]))
        assert plain.numpy().max() > 2, "the pipeline hands an augmenting model images in 0..255"
        assert shown[0].max() <= 1.0, "and the step rescales them"


def test_an_augmenting_model_trains_on_a_gpu_machine_where_op_determinism_is_off():
    """With a GPU and without op determinism, Keras' jit_compile="auto" turns XLA on, which cannot compile the
    resample in the training step (a notebook or script building `build_model` without `lab.training.train`).
    The GPU is pretended: Keras asks `tf.config.list_physical_devices` whether there is one."""
    code = (
        "import types\n"
        "import numpy as np, tensorflow as tf\n"
        "real = tf.config.list_physical_devices\n"
        "gpu = types.SimpleNamespace(name='/physical_device:GPU:0', device_type='GPU')\n"
        "tf.config.list_physical_devices = lambda kind=None: real(kind) + ([gpu] if kind in (None, 'GPU') else [])\n"
        "from lab.config import Augmentation, RunConfig\n"
        "from lab.training.model import build_model\n"
        "config = RunConfig(image_size=48, augmentation=Augmentation(rotation_range=30, horizontal_flip=True))\n"
        "model = build_model(config, 2)\n"
        "images = np.random.default_rng(0).integers(0, 256, (8, 48, 48, 3)).astype('float32')\n"
        "labels = np.array([[0.0], [1.0]] * 4, 'float32')\n"
        "history = model.fit(images, labels, batch_size=4, epochs=1, verbose=0)\n"
        "assert np.isfinite(history.history['loss'][-1])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]


# -- one compiled model per architecture, reused ------------------------------------------------------
def test_a_reused_model_trains_exactly_as_a_fresh_one_whatever_ran_on_it_before(two_class_folder, monkeypatch):
    # The process keeps its compiled model between runs (no new trace, no memory growth per run). A
    # run on it must give the very history a freshly built model gives: even after a cancelled run,
    # a diverged one and another architecture, and with dropout (whose seed state moves as it trains).
    import tensorflow as tf

    config = tiny_config(two_class_folder, dropout=0.5, augmentation=AUGMENTATION)
    used = []
    take = train.MODELS.take
    monkeypatch.setattr(train.MODELS, "take", lambda c, n: used.append(take(c, n)) or used[-1])
    train.MODELS.clear()
    fresh = train.train(config)

    # Cancelled after the first batch of its second epoch (should_stop is asked at each epoch's
    # start and after each of its 3 batches): weights, optimizer and dropout seed half-way through.
    calls = itertools.count(1)
    with pytest.raises(RunCancelled) as cancelled:
        train.train(config.replace(seed=5, learning_rate=3e-3), should_stop=lambda: next(calls) >= 6)
    assert len(cancelled.value.history) == 1
    # Diverged: NaN weights and optimizer slots.
    original = pipeline.training_pipeline
    with monkeypatch.context() as poisoned:
        poisoned.setattr(
            pipeline,
            "training_pipeline",
            lambda d, c: ((ds := original(d, c))[0].map(lambda x, y: (x, y * tf.constant(float("nan")))), ds[1]),
        )
        with pytest.raises(TrainingFailed):
            train.train(config.replace(seed=9))
    train.train(config.replace(dropout=0.0, image_size=64, epochs=1))  # another architecture in between
    again = train.train(config)

    assert used[1] is used[2] is used[0], "one model for the architecture, reused"
    assert used[3] is not used[0]
    assert used[4] is used[0], "reused after another architecture"
    pd.testing.assert_frame_equal(numbers(again), numbers(fresh), check_exact=True)


def test_the_model_cache_keeps_its_latest_architectures_only(two_class_folder):
    cache = train.ModelCache(size=2)
    config = tiny_config(two_class_folder)
    first = cache.take(config, 2)
    cache.give_back(first)
    assert cache.take(config, 2) is first
    cache.give_back(first)
    for size in (56, 64):  # two other architectures push the first one out
        cache.give_back(cache.take(config.replace(image_size=size), 2))
    assert cache.take(config, 2) is not first
    # A model in use is out of the cache: a second taker gets a model of its own.
    taken = cache.take(config.replace(image_size=64), 2)
    assert cache.take(config.replace(image_size=64), 2) is not taken


def test_the_model_cache_lets_go_of_models_past_its_memory_budget(two_class_folder):
    # An idle model holds its weights: a large one must not sit in memory through later runs.
    cache = train.ModelCache(size=3, budget_mb=5)
    config = tiny_config(two_class_folder)
    small = cache.take(config, 2)  # 48 px: about 0.3 MB of weights
    cache.give_back(small)
    assert cache.take(config, 2) is small
    cache.give_back(small)
    large = cache.take(config.replace(image_size=150), 2)  # 14 MB of weights
    cache.give_back(large)
    assert cache.take(config.replace(image_size=150), 2) is not large
    assert cache.take(config, 2) is not small, "the oldest goes first"


def test_a_reused_model_lets_go_of_the_fresh_template_before_it_trains(two_class_folder, monkeypatch):
    # The template copied into a cached model is as big as the model: alive through the run, it adds to the peak.
    templates = []
    build = model.build_model

    def build_and_watch(*args, **kwargs):
        built = build(*args, **kwargs)
        templates.append(weakref.ref(built))
        return built

    monkeypatch.setattr(model, "build_model", build_and_watch)
    cache = train.ModelCache()
    config = tiny_config(two_class_folder)
    first = cache.take(config, 2)
    cache.give_back(first)
    assert cache.take(config, 2) is first
    assert len(templates) == 2 and templates[0]() is first
    assert templates[1]() is None, "the template a reused model was reset from is still in memory"


# -- the last decoded data, kept for the next run -----------------------------------------------------
def test_last_data_decodes_once_for_runs_on_the_same_data_and_again_when_the_data_differ(two_class_folder, monkeypatch):
    loads = []
    original = pipeline.load
    monkeypatch.setattr(pipeline, "load", lambda config: loads.append(config) or original(config))
    last = train.LastData()
    config = tiny_config(two_class_folder, augmentation=AUGMENTATION)

    baseline = last.get(config.without_augmentation())
    # The augmented run of a comparison, and any change that leaves the decoded images alone.
    assert last.get(config.replace(learning_rate=1e-2, epochs=1, dropout=0.5)) is baseline
    assert len(loads) == 1

    for changed in (config.replace(image_size=64), config.replace(train_images=12), config.replace(seed=3)):
        assert last.get(changed) is not baseline
    assert len(loads) == 4
    # The same settings on a folder changed on disk: decoded again, and the new image is in.
    data = last.get(config)
    assert len(loads) == 5
    cats = two_class_folder / "train" / "cats"
    first_cat = sorted(cats.iterdir())[0]
    shutil.copy(first_cat, cats / f"added{first_cat.suffix}")
    assert last.get(config) is not data and len(loads) == 6
    assert last.get(config).train_count == data.train_count + 1


# -- cancellation ----------------------------------------------------------------------------------
def test_should_stop_cancels_within_the_batch_and_keeps_the_finished_epochs(image_folder, monkeypatch):
    root = image_folder(classes=("cats", "dogs"), train=24, validation=2)  # 48 images: 6 batches an epoch
    batches_started = []

    class CountingReporter(train._reporter_class()):
        def on_train_batch_begin(self, batch, logs=None):
            batches_started.append(batch)

    monkeypatch.setattr(train, "_reporter_class", lambda: CountingReporter)
    stop_after, requested_at = 8, []

    def should_stop() -> bool:
        if len(batches_started) >= stop_after and not requested_at:
            requested_at.append(len(batches_started))
        return bool(requested_at)

    reported = []
    with pytest.raises(RunCancelled) as info:
        train.train(tiny_config(root, epochs=5), on_epoch=reported.append, should_stop=should_stop)

    assert requested_at == [stop_after]
    assert len(batches_started) - requested_at[0] <= 1  # no batch trained after the request
    # Cancelled in epoch 2 (batch 2 of 6): epoch 1's row is kept, epoch 2 is never reported.
    partial = info.value.history
    assert [list(row) for row in partial] == [COLUMNS] and partial[0]["epoch"] == 1
    assert len(reported) == 1
    assert partial == reported


def test_a_stop_requested_before_the_start_trains_nothing(two_class_folder):
    with pytest.raises(RunCancelled) as info:
        train.train(tiny_config(two_class_folder), should_stop=lambda: True)
    assert info.value.history == []


# -- divergence --------------------------------------------------------------------------------------
def test_a_loss_that_is_not_a_number_fails_the_run(two_class_folder, monkeypatch):
    # Deterministic divergence: the training pipeline hands out NaN labels, so the loss is
    # NaN from the first batch. (A large learning rate may or may not diverge in one epoch,
    # and NaN pixels need not reach the loss: on this CPU build they come out as zeros.)
    import tensorflow as tf

    original = pipeline.training_pipeline

    def poisoned(data, config):
        dataset, steps = original(data, config)
        return dataset.map(lambda x, y: (x, y * tf.constant(float("nan")))), steps

    monkeypatch.setattr(pipeline, "training_pipeline", poisoned)
    reported = []
    with pytest.raises(TrainingFailed) as info:
        train.train(tiny_config(two_class_folder, epochs=3), on_epoch=reported.append)
    assert "epoch 1" in str(info.value) and "nan" in str(info.value).lower()
    assert "learning rate" in str(info.value)
    assert reported == []  # no NaN row reaches the page


# -- comparison ----------------------------------------------------------------------------------------
def test_compare_refuses_a_config_without_augmentation(two_class_folder):
    config = tiny_config(two_class_folder, augmentation=Augmentation(rescale=0.5, fill_mode="wrap"))
    with pytest.raises(ConfigError, match="augmentation"):
        compare(config)


@pytest.mark.parametrize("together", [True, False], ids=["together", "one-after-the-other"])
def test_compare_trains_baseline_and_augmented_on_the_same_data(two_class_folder, monkeypatch, together):
    config = tiny_config(two_class_folder, epochs=1, augmentation=AUGMENTATION)
    calls = []
    original = train.train

    def recording(side_config, on_epoch=None, should_stop=None, data=None, outcome_dir=None):
        calls.append((side_config, data))
        return original(side_config, on_epoch, should_stop, data=data, outcome_dir=outcome_dir)

    monkeypatch.setattr(train, "train", recording)
    reported = []
    result = compare(config, on_epoch=lambda side, row: reported.append((side, row["epoch"])), together=together)

    assert isinstance(result, Comparison) and result.config == config
    sides = [config.without_augmentation(), config]
    assert (
        [c for c, _ in calls] == sides
        if not together
        else sorted(c.key() for c, _ in calls) == sorted(c.key() for c in sides)
    )
    assert calls[0][1] is calls[1][1] is not None  # decoded once, shared
    assert sorted(reported) == [("augmented", 1), ("baseline", 1)]
    if not together:
        assert reported == [("baseline", 1), ("augmented", 1)]
    for history in (result.baseline, result.augmented):
        assert [list(row) for row in history] == [COLUMNS]
    summary = result.summary()
    assert summary.index.tolist() == ["baseline", "augmented"]
    assert summary.loc["baseline", "gap"] == pytest.approx(
        result.baseline[-1]["accuracy"] - result.baseline[-1]["val_accuracy"]
    )
    assert summary.loc["augmented", "val_accuracy"] == result.augmented[-1]["val_accuracy"]


def test_both_sides_trained_together_learn_exactly_what_they_learn_one_after_the_other(two_class_folder):
    config = tiny_config(two_class_folder, augmentation=AUGMENTATION)
    together = compare(config, together=True)
    apart = compare(config, together=False)
    for side in ("baseline", "augmented"):
        pd.testing.assert_frame_equal(numbers(getattr(together, side)), numbers(getattr(apart, side)), rtol=0, atol=0)


def test_a_side_that_fails_stops_the_other_and_its_error_is_raised(two_class_folder, monkeypatch):
    import tensorflow as tf

    original = pipeline.training_pipeline

    def poisoned_when_augmented(data, config):
        dataset, steps = original(data, config)
        if not config.augmentation.enabled:
            return dataset, steps
        return dataset.map(lambda x, y: (x, y * tf.constant(float("nan")))), steps

    monkeypatch.setattr(pipeline, "training_pipeline", poisoned_when_augmented)
    reported = []
    config = tiny_config(two_class_folder, epochs=30, augmentation=AUGMENTATION)
    with pytest.raises(TrainingFailed, match="diverged"):
        compare(config, on_epoch=lambda side, row: reported.append(side))
    assert "augmented" not in reported
    assert reported.count("baseline") < 30  # the baseline was stopped, not trained to its end


# -- the user's images are read, never written ---------------------------------------------------------
def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under root: kind, size, modification time and, for files, a content hash."""
    entries = {}
    for path in sorted([root, *root.rglob("*")]):
        stat = path.stat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        entries[str(path.relative_to(root))] = (path.is_dir(), stat.st_size, stat.st_mtime_ns, stat.st_mode, digest)
    return entries


def test_training_with_augmentation_leaves_the_dataset_folder_unchanged(image_folder):
    root = image_folder(
        classes=("cats", "dogs"), train=8, validation=3, modes=("RGB", "RGBA", "L", "P"), suffixes=(".png", ".jpg")
    )
    (root / "train" / "cats" / "notes.txt").write_text("ignored, and kept")
    before = snapshot(root)
    listing_before = hashlib.sha256("\n".join(before).encode()).hexdigest()
    assert sum(1 for is_dir, *_ in before.values() if not is_dir) == 23

    history = train.train(tiny_config(root, augmentation=AUGMENTATION, train_images=12))

    assert len(history) == 2
    after = snapshot(root)
    assert hashlib.sha256("\n".join(after).encode()).hexdigest() == listing_before  # nothing added or removed
    assert after == before  # every byte, size and modification time, folders included
