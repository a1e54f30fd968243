"""The course's small CNN, sized by the configuration, which augments its training batches itself."""

from __future__ import annotations

import functools
from typing import Any

from lab.config import ARCHITECTURES, RunConfig


def architecture(config: RunConfig, num_classes: int) -> tuple:
    """Everything `build_model` bakes into the model's traced training step: two runs that agree on it can
    train the same compiled model (`lab.training.train` reuses one, reset to a fresh model's state, instead of tracing
    again). The seed and the learning rate are not part of it: they live in variables (the initial weights,
    Dropout's seed state, the optimizer's learning rate, the augmentation's seed) that the reset assigns."""
    augmentation = config.augmentation if augment_in_training_step(config) else None
    return (config.image_size, num_classes, float(config.dropout), config.architecture, float(config.l2), augmentation)


def build_model(config: RunConfig, num_classes: int):
    """Conv 32-64-128-128 (3x3, each followed by 2x2 max-pooling), Flatten, Dense 512, output.

    That is the "course" architecture; "course5" is the Horses or Humans notebook's 16-32-64-64-64
    (`lab.config.ARCHITECTURES`). `l2` > 0 puts an L2 penalty on every kernel.

    Two classes get one sigmoid unit and binary cross-entropy, as in the course; more
    classes get a softmax. RMSprop with the configured learning rate (the course's 1e-4
    by default). `dropout` > 0 adds the course's Dropout after Flatten.

    With augmentation on, the model's training step augments each batch (`augment_in_training_step`):
    the training pipeline then hands it unaugmented images in 0..255.

    Keep `architecture` in step: whatever here depends on `config` other than the seed and
    the learning rate belongs in it.
    """
    import keras
    from keras import layers

    binary = num_classes == 2
    # Only when switched on: an unregularised model stays exactly the model it always was.
    decay = {"kernel_regularizer": keras.regularizers.L2(config.l2)} if config.l2 else {}
    stack = [keras.Input(shape=(config.image_size, config.image_size, 3))]
    for filters in ARCHITECTURES[config.architecture]:
        stack += [layers.Conv2D(filters, 3, activation="relu", **decay), layers.MaxPooling2D(2)]
    stack.append(layers.Flatten())
    if config.dropout:
        stack.append(layers.Dropout(config.dropout, seed=config.seed))
    stack.append(layers.Dense(512, activation="relu", **decay))
    if binary:
        stack.append(layers.Dense(1, activation="sigmoid", **decay))
    else:
        stack.append(layers.Dense(num_classes, activation="softmax", **decay))
    model = _course_cnn_class()(stack, name="course_cnn")
    if augment_in_training_step(config):
        from lab.training.augment import StepAugmentation

        model.augmentation = StepAugmentation(config.augmentation, config.seed)
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=config.learning_rate),
        loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
        # XLA cannot compile the augmentation's resample (`ImageProjectiveTransformV3`), and Keras' "auto"
        # turns XLA on where a GPU is and op determinism is off (`lab.training.train` always turns it on).
        jit_compile=False if model.augmentation is not None else "auto",
    )
    return model


def augment_in_training_step(config: RunConfig) -> bool:
    """Whether `build_model(config)`'s training step augments (and rescales) each batch itself.

    Why in the step and not in a tf.data map: on two cores the map ran beside the training step and
    slowed it by more than its own work; in the step the resample takes both cores for its turn
    (at 64 px, epochs 1.06-1.09× the unaugmented floor instead of 1.11-1.16×: docs/performance.md,
    "Fast lessons (issue 15)").
    """
    return config.augmentation.enabled


@functools.cache
def _course_cnn_class() -> Any:
    """`keras.Sequential` whose training step augments each batch first, when it has an augmentation."""
    import keras

    class CourseCNN(keras.Sequential):
        # A StepAugmentation or None. Not a layer nor a Keras variable: the model's weights, what a
        # run stores and loads, are the same with augmentation or without.
        augmentation: Any = None

        def train_step(self, data):
            if self.augmentation is None:
                return super().train_step(data)
            images, labels = data
            # The optimizer counts the batches it has applied: batch k of the run, across epochs.
            return super().train_step((self.augmentation(images, self.optimizer.iterations), labels))

    return CourseCNN
