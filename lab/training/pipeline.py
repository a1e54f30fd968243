"""The tf.data pipelines: decode once into a cache, then shuffle, batch and rescale.

Augmentation happens in the model's training step (`lab.training.model`), batch by batch: every
augmented variant lives only while its batch is in flight, the images on disk are never changed,
and memory does not grow with the number of variants.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lab.config import RunConfig
from lab.data import builtin
from lab.data.images import load_rgb
from lab.data.listing import list_dataset, resolve_folder
from lab.data.registry import DatasetError

log = logging.getLogger(__name__)

# Decoded images are cached in memory while they fit in this budget; past it they are
# decoded again every epoch instead of swapping the machine to death.
DEFAULT_CACHE_MB = 1024


@dataclass
class Data:
    """Decoded, cached base datasets of (uint8 image, label); shared by both runs of a comparison."""

    train: Any  # tf.data.Dataset
    validation: Any
    class_names: tuple[str, ...]
    train_count: int
    validation_count: int
    image_size: int
    ignored: list[str] = field(default_factory=list)
    # Per split, a flag per file that turns 1 once the file has decoded (`skipped_in_decoding`).
    decoded: dict[str, Any] = field(default_factory=dict)
    skip_logged: bool = False
    # Each validation image's id, in order: its path relative to the dataset folder, or
    # "builtin/<index>" (`lab.training.outcome.Predictions.files`).
    validation_files: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def load(config: RunConfig) -> Data:
    """Decode the configured dataset into cached tf.data datasets of uint8 images."""
    import tensorflow as tf

    size = config.image_size
    if config.dataset == "builtin":
        splits = builtin.generate(size)
        train_x, train_y = _subset_arrays(*splits["train"], config.train_images, config.seed)
        val_x, val_y = splits["validation"]
        train = tf.data.Dataset.from_tensor_slices((train_x, train_y))
        validation = tf.data.Dataset.from_tensor_slices((val_x, val_y))
        files = [f"builtin/{index}" for index in range(len(val_y))]
        return Data(train, validation, builtin.CLASS_NAMES, len(train_y), len(val_y), size, validation_files=files)

    found = list_dataset(config)
    train_files = _subset_files(found.files["train"], config.train_images, config.seed)
    budget = _cache_budget_bytes()
    per_image = size * size * 3
    cache_train = len(train_files) * per_image <= budget
    cache_validation = (len(train_files) + len(found.files["validation"])) * per_image <= budget
    train, train_decoded = _decode_files(train_files, size, cache_train, found.with_pillow)
    validation, validation_decoded = _decode_files(found.files["validation"], size, cache_validation, found.with_pillow)
    return Data(
        train=train,
        validation=validation,
        class_names=found.class_names,
        train_count=len(train_files),
        validation_count=len(found.files["validation"]),
        image_size=size,
        ignored=found.ignored,
        decoded={"train": train_decoded, "validation": validation_decoded},
        validation_files=[Path(path).relative_to(found.root).as_posix() for path, _ in found.files["validation"]],
    )


def skipped_in_decoding(data: Data) -> dict[str, int]:
    """How many files of each split failed to decode and were dropped, {"train": n, "validation": m}.

    Counted from the files that did decode, so it is exact once each split has been read
    through once (after a run's first epoch); before that it counts the files not read yet.
    """
    counts = {"train": data.train_count, "validation": data.validation_count}
    return {
        split: count - int(data.decoded[split].numpy().sum()) if split in data.decoded else 0
        for split, count in counts.items()
    }


def decoded_key(config: RunConfig) -> tuple:
    """Everything `load(config)` depends on: configurations with equal keys decode to equal `Data`.

    A folder's key includes the name, size and modification time of every file under it, so
    a folder changed on disk is decoded again. Raises `DatasetError` as `load` would for a
    folder that is not there.
    """
    settings = (config.dataset, config.image_size, config.train_images, config.seed, _cache_budget_bytes())
    if config.dataset == "builtin":
        return settings
    root = resolve_folder(config)
    files = tuple(sorted((str(p.relative_to(root)), *_size_and_time(p)) for p in root.rglob("*")))
    return (*settings, str(root.resolve()), config.validation_split, files)


def _size_and_time(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _cache_budget_bytes() -> int:
    return int(float(os.environ.get("LAB_CACHE_MB", DEFAULT_CACHE_MB)) * 1024 * 1024)


def _decode_files(
    items: list[tuple[str, int]],
    size: int,
    cache: bool,
    with_pillow: frozenset[str] = frozenset(),
):
    """The decoded dataset of `items`, and its flags: one per file, set to 1 once it has decoded."""
    import tensorflow as tf

    paths = tf.constant([p for p, _ in items])
    labels = tf.constant([label for _, label in items], dtype=tf.int32)
    pillow = tf.constant([p in with_pillow for p, _ in items], dtype=tf.bool)
    decoded = tf.Variable(tf.zeros([len(items)], tf.int32), trainable=False)

    def decode_with_tensorflow(path):
        # channels=3 turns grayscale, palette and RGBA (alpha dropped) into RGB, 16 bits into 8.
        return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)

    def decode_with_pillow(path):
        image = tf.numpy_function(lambda p: load_rgb(p.decode()), [path], tf.uint8, stateful=False)
        return tf.ensure_shape(image, (None, None, 3))

    def decode(index, path, label, by_pillow):
        if with_pillow:
            image = tf.cond(by_pillow, lambda: decode_with_pillow(path), lambda: decode_with_tensorflow(path))
        else:
            image = decode_with_tensorflow(path)
        image = tf.image.resize(image, (size, size), antialias=True)
        # Keep uint8 until the model needs floats: a quarter of the memory in the cache.
        image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        image.set_shape((size, size, 3))
        return index, image, label

    def mark_decoded(index, image, label):
        with tf.control_dependencies([decoded.scatter_nd_update([[index]], [1])]):
            return tf.identity(image), label

    indices = tf.range(len(items), dtype=tf.int64)
    dataset = tf.data.Dataset.from_tensor_slices((indices, paths, labels, pillow))
    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    # Listing refused every file it found damaged, but a file can change on disk after that, or
    # hold damage no check short of TensorFlow's own decoder sees: it is dropped (with a logged
    # warning) rather than ending the run, in either split, and `skipped_in_decoding` counts it.
    dataset = dataset.ignore_errors(log_warning=True).map(mark_decoded)
    return (dataset.cache() if cache else dataset), decoded


def _balanced_indices(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """A seeded subset of `count` indices keeping each class's share; all when count is 0."""
    if count <= 0 or count >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    if count < len(classes):
        raise DatasetError(f"train_images = {count} is too few: use at least one image per class ({len(classes)})")
    sizes = np.array([np.count_nonzero(labels == cls) for cls in classes])
    takes = _apportion(count, sizes)
    chosen = [
        rng.choice(np.flatnonzero(labels == cls), size=take, replace=False)
        for cls, take in zip(classes, takes, strict=True)
    ]
    return np.sort(np.concatenate(chosen))


def _apportion(count: int, sizes: np.ndarray) -> np.ndarray:
    """Split `count` over classes in proportion to their sizes, exactly (largest remainder), at least one each."""
    quotas = count * sizes / sizes.sum()
    takes = np.maximum(np.floor(quotas).astype(int), 1)
    remainders = quotas - np.floor(quotas)
    for index in np.argsort(-remainders, kind="stable"):
        if takes.sum() >= count:
            break
        if takes[index] < sizes[index]:
            takes[index] += 1
    return takes


def _subset_arrays(images: np.ndarray, labels: np.ndarray, count: int, seed: int):
    index = _balanced_indices(labels, count, seed)
    return images[index], labels[index]


def _subset_files(items: list[tuple[str, int]], count: int, seed: int) -> list[tuple[str, int]]:
    labels = np.asarray([label for _, label in items])
    return [items[i] for i in _balanced_indices(labels, count, seed)]


def training_pipeline(data: Data, config: RunConfig):
    """Shuffle, batch, prefetch; rescale, or leave the augmenting and rescaling to the model.

    Returns (dataset, steps_per_epoch). With augmentation on, the batches are the unaugmented
    images in 0..255 (float32): the model's training step augments each one, seeded by the
    batch's number in the run, and rescales it (`lab.training.model.augment_in_training_step`;
    `augmented_batches` shows what it trains on). The dataset repeats forever so that every
    epoch is a new shuffle and the batch count runs on across epochs: every epoch draws new
    variants, and the same seed draws the same ones again.
    """
    import tensorflow as tf

    from lab.training.model import augment_in_training_step

    binary = data.num_classes == 2
    # Rescaling is the model's when it augments: the augmentation works on 0..255.
    rescale = 1.0 if augment_in_training_step(config) else config.augmentation.rescale

    def prepare(images, labels):
        return tf.cast(images, tf.float32) * rescale, _shape_labels(labels, binary)

    dataset = data.train.shuffle(data.train_count, seed=config.seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(config.batch_size).repeat()
    dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return _without_autotune(dataset.prefetch(tf.data.AUTOTUNE)), math.ceil(data.train_count / config.batch_size)


def augmented_batches(data: Data, config: RunConfig):
    """The training batches exactly as the model of `config` trains on them: augmented (when on) and rescaled.

    The training pipeline with the model's own step augmentation applied to batch k with the run's
    seed, as `fit` applies it; for showing and testing, not for training. Returns (dataset, steps_per_epoch).
    """
    from lab.training.augment import StepAugmentation
    from lab.training.model import augment_in_training_step

    dataset, steps = training_pipeline(data, config)
    if not augment_in_training_step(config):
        return dataset, steps
    augmentation = StepAugmentation(config.augmentation, config.seed)

    def augment(step, batch):
        images, labels = batch
        return augmentation(images, step), labels

    return dataset.enumerate().map(augment), steps


def validation_pipeline(data: Data, config: RunConfig):
    """Batch and rescale the validation split: never augmented."""
    import tensorflow as tf

    binary = data.num_classes == 2
    rescale = config.augmentation.rescale

    def prepare(images, labels):
        return tf.cast(images, tf.float32) * rescale, _shape_labels(labels, binary)

    dataset = _with_known_length(data.validation).batch(config.batch_size)
    dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    return _without_autotune(dataset)


def _without_autotune(dataset):
    """`dataset` with tf.data's autotuning off (its AUTOTUNE values then take tf.data's fixed defaults).

    Why: deleting an iterator waits for the autotuner's thread, which wakes at a period that doubles as
    the iterator lives. Keras deletes the training iterator when `fit` returns, so a 20-epoch run in a
    training child (one pinned core) sat idle for up to 20 s after its last epoch before it could say
    it was done, and `python -m lab compare quick` took 30 s or 48 s by luck. With it off the run ends
    at once, and the epochs are no slower (docs/performance.md, "Fast lessons (issue 15)").
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def _with_known_length(dataset):
    """`dataset` with its length stated, counted by reading it once.

    Dropping files that fail to decode leaves a dataset's length unknown, and Keras then
    learns it at the end of the first validation pass with a warning that the input "ran out
    of data". The read fills the split's cache (it would fill during the first epoch anyway),
    so only a split too large to cache is decoded once more.
    """
    import tensorflow as tf

    if dataset.cardinality() >= 0:
        return dataset  # the builtin images: nothing is dropped

    def add_one(count, _element):
        return count + 1

    count = int(dataset.reduce(tf.constant(0, tf.int64), add_one))
    return dataset.apply(tf.data.experimental.assert_cardinality(count))


def log_skipped(data: Data) -> None:
    """Say once per dataset how many images failed to decode and were dropped (after a first epoch)."""
    skipped = skipped_in_decoding(data)
    total = sum(skipped.values())
    if total == 0 or data.skip_logged:
        return
    data.skip_logged = True
    where = ", ".join(
        f"{count} {name}"
        for name, count in (("training", skipped["train"]), ("validation", skipped["validation"]))
        if count
    )
    verb = "was" if total == 1 else "were"
    log.warning("%d image%s could not be decoded and %s skipped (%s)", total, "" if total == 1 else "s", verb, where)


def _shape_labels(labels, binary: bool):
    import tensorflow as tf

    # A sigmoid output is [B, 1]; give binary labels the same shape so the loss never broadcasts.
    return tf.cast(labels, tf.float32)[:, None] if binary else labels
