"""The course's small CNN, sized by the configuration."""

from __future__ import annotations

from lab.config import ARCHITECTURES, RunConfig


def architecture(config: RunConfig, num_classes: int) -> tuple:
    """Everything `build_model` bakes into the model's traced training step: two runs that agree on it can
    train the same compiled model (`lab.training.train` reuses one, reset to a fresh model's state, instead of tracing
    again). The seed and the learning rate are not part of it: they live in variables (the initial weights,
    Dropout's seed state, the optimizer's learning rate) that the reset assigns."""
    return (config.image_size, num_classes, float(config.dropout), config.architecture, float(config.l2))


def build_model(config: RunConfig, num_classes: int):
    """Conv 32-64-128-128 (3x3, each followed by 2x2 max-pooling), Flatten, Dense 512, output.

    That is the "course" architecture; "course5" is the Horses or Humans notebook's 16-32-64-64-64
    (`lab.config.ARCHITECTURES`). `l2` > 0 puts an L2 penalty on every kernel.

    Two classes get one sigmoid unit and binary cross-entropy, as in the course; more
    classes get a softmax. RMSprop with the configured learning rate (the course's 1e-4
    by default). `dropout` > 0 adds the course's Dropout after Flatten.

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
    model = keras.Sequential(stack, name="course_cnn")
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=config.learning_rate),
        loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
