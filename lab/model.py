"""The course's small CNN, sized by the configuration."""

from __future__ import annotations

from lab.config import RunConfig


def build_model(config: RunConfig, num_classes: int):
    """Conv 32-64-128-128 (3x3, each followed by 2x2 max-pooling), Flatten, Dense 512, output.

    Two classes get one sigmoid unit and binary cross-entropy, as in the course; more
    classes get a softmax. RMSprop with the configured learning rate (the course's 1e-4
    by default). `dropout` > 0 adds the course's Dropout after Flatten.
    """
    import keras
    from keras import layers

    binary = num_classes == 2
    stack = [keras.Input(shape=(config.image_size, config.image_size, 3))]
    for filters in (32, 64, 128, 128):
        stack += [layers.Conv2D(filters, 3, activation="relu"), layers.MaxPooling2D(2)]
    stack.append(layers.Flatten())
    if config.dropout:
        stack.append(layers.Dropout(config.dropout, seed=config.seed))
    stack.append(layers.Dense(512, activation="relu"))
    stack.append(layers.Dense(1, activation="sigmoid") if binary else layers.Dense(num_classes, activation="softmax"))
    model = keras.Sequential(stack, name="course_cnn")
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=config.learning_rate),
        loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
