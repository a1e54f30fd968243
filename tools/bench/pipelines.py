"""The input pipelines and the model, one variant's: the course's `ImageDataGenerator`, the lab's own pipeline
(or a copy of it with one knob changed, for an extra), and the compute floor."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tools.bench.variants import RESCALE, SEED_AUGMENTATION, Variant


def config_for(spec: dict[str, Any], augment: bool):
    """The lab's RunConfig for the spec's folder, size, batch and seed; the seed's augmentation or none."""
    from lab.config import Augmentation, RunConfig

    aug = Augmentation(rescale=RESCALE, **SEED_AUGMENTATION) if augment else Augmentation(rescale=RESCALE)
    return RunConfig(
        dataset="folder",
        data_dir=spec["data"],
        image_size=spec["size"],
        batch_size=spec["batch_size"],
        seed=spec["seed"],
        augmentation=aug,
    )


def course_pipeline(variant: Variant, spec: dict[str, Any]):
    """The course's `ImageDataGenerator(...).flow_from_directory(...)`: (iterator, steps, images)."""
    import tensorflow as tf

    kwargs = SEED_AUGMENTATION if variant.augment else {}
    generator = tf.keras.preprocessing.image.ImageDataGenerator(rescale=RESCALE, **kwargs)
    iterator = generator.flow_from_directory(
        str(Path(spec["data"]) / "train"),
        target_size=(spec["size"], spec["size"]),
        batch_size=spec["batch_size"],
        class_mode="binary",
        seed=spec["seed"],
    )
    if variant.course_workers:
        iterator.workers = variant.course_workers
    return iterator, len(iterator), iterator.samples


def lab_pipeline(variant: Variant, config):
    """lab.training.pipeline.training_pipeline itself, or a copy of it with one knob changed (extras only).

    The lab's model augments in its training step (`lab.training.model`); the extras that augment in their
    own tf.data map (`Variant.augments_in_data`) get a model that does not."""
    import tensorflow as tf

    from lab.training.augment import StepAugmentation
    from lab.training.pipeline import load, training_pipeline

    if variant.index_shuffle:
        return _index_pipeline(variant, config)
    data = load(config)
    steps = math.ceil(data.train_count / config.batch_size)
    if not (variant.augments_in_data or variant.uint8_to_model):
        dataset, steps = training_pipeline(data, config)
        return dataset, steps, data.train_count
    aug = config.augmentation
    # The model's own step augmentation, applied here in the map instead (as the lab did before issue 15).
    augmentation = StepAugmentation(aug, config.seed) if aug.enabled else None

    def prepare(step, batch):
        images, labels = batch
        if augmentation is not None:
            images = augmentation(images, step)
        elif not variant.uint8_to_model:
            images = tf.cast(images, tf.float32) * aug.rescale
        return images, tf.cast(labels, tf.float32)[:, None]

    dataset = data.train.shuffle(data.train_count, seed=config.seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(config.batch_size).repeat().enumerate()
    calls = variant.parallel_calls or tf.data.AUTOTUNE
    dataset = dataset.map(prepare, num_parallel_calls=calls, deterministic=True).prefetch(tf.data.AUTOTUNE)
    if variant.tfdata_threads:
        options = tf.data.Options()
        options.threading.private_threadpool_size = variant.tfdata_threads
        dataset = dataset.with_options(options)
    return dataset, steps, data.train_count


def _index_pipeline(variant: Variant, config):
    """The lab's pipeline with its images decoded once into one uint8 array instead of a tf.data cache.

    `shuffle(train_count)` over cached images keeps a second full copy of the training images in its buffer;
    shuffling indices and gathering each batch from the array keeps one copy (and the same augmentation).
    """
    import numpy as np
    import tensorflow as tf

    from lab.data.listing import list_folder, resolve_folder
    from lab.data.registry import get_info
    from lab.training.augment import StepAugmentation
    from lab.training.pipeline import _decode_files, _subset_files

    info = get_info(config.dataset)
    listing = list_folder(resolve_folder(config), info, config.validation_split, config.seed)
    files = _subset_files(listing.files["train"], config.train_images, config.seed)
    images = np.empty((len(files), config.image_size, config.image_size, 3), np.uint8)
    labels = np.empty(len(files), np.float32)
    offset = 0
    decoded, _ = _decode_files(files, config.image_size, cache=False)
    for x, y in decoded.batch(64):
        images[offset : offset + len(y)] = x.numpy()
        labels[offset : offset + len(y)] = y.numpy()
        offset += len(y)
    table, targets = tf.constant(images), tf.constant(labels)
    del images
    aug = config.augmentation
    augmentation = StepAugmentation(aug, config.seed) if aug.enabled else None

    def prepare(step, index):
        batch = tf.gather(table, index)
        batch = augmentation(batch, step) if augmentation is not None else tf.cast(batch, tf.float32) * aug.rescale
        return batch, tf.gather(targets, index)[:, None]

    count = len(files)
    dataset = tf.data.Dataset.range(count).shuffle(count, seed=config.seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(config.batch_size).repeat().enumerate()
    dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE), math.ceil(count / config.batch_size), count


def floor_pipeline(config):
    """The compute floor: the decoded images as float32 tensors in memory, batched and cached, no augmentation."""
    import numpy as np
    import tensorflow as tf

    from lab.training.pipeline import load

    data = load(config)
    images, labels = [], []
    for x, y in data.train.batch(256):
        images.append(x.numpy())
        labels.append(y.numpy())
    x = np.concatenate(images).astype(np.float32) * np.float32(config.augmentation.rescale)
    y = np.concatenate(labels).astype(np.float32)[:, None]
    count = len(y)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(config.batch_size).cache().repeat()
    del x, images
    return dataset.prefetch(tf.data.AUTOTUNE), math.ceil(count / config.batch_size), count


def model_for(variant: Variant, config):
    """`lab.training.model.build_model`'s model, recompiled where the variant changes XLA or takes uint8."""
    import keras

    from lab.training.model import build_model

    # A pipeline that augments itself hands the model augmented, rescaled images: the model must not augment.
    model = build_model(config.without_augmentation() if variant.augments_in_data else config, 2)
    if variant.uint8_to_model:
        inputs = keras.Input((config.image_size, config.image_size, 3), dtype="uint8")
        outputs = model(keras.layers.Rescaling(config.augmentation.rescale)(inputs))
        model = keras.Model(inputs, outputs)
    if variant.uint8_to_model or variant.jit_compile is not None:
        jit = "auto" if variant.jit_compile is None else variant.jit_compile
        model.compile(
            optimizer=keras.optimizers.RMSprop(learning_rate=config.learning_rate),
            loss="binary_crossentropy",
            metrics=["accuracy"],
            jit_compile=jit,
        )
    return model
