"""Why a model overfits, shown on its own images: where the two models of a comparison disagree,
where each one looks (Grad-CAM), what the augmented model saw while it trained, and what either
model says of any image.

Everything here works on a run's stored outcome (`lab.training.outcome`: its final predictions and
weights) or on a configuration, never on the page. TensorFlow and Keras load only inside the
functions that need a model; `disagreements` and `confusion_counts` are plain numpy.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from PIL import Image, UnidentifiedImageError

from lab.config import RunConfig
from lab.data.images import LAB_FORMATS, max_pixels, to_rgb


class PredictionsLike(Protocol):
    """What `lab.training.outcome.Predictions` holds for one run's validation images, in one order."""

    files: Any  # one name per image (a path for a folder, an index name for the builtin images)
    labels: Any  # int [N], the true class
    probs: Any  # float [N, n_classes]
    classes: Any  # the class names, in label order


class BadPhoto(ValueError):
    """An uploaded file that is not an image the lab reads; the message says why, in one line."""


@dataclass(frozen=True)
class Disagreement:
    """One validation image that one model got right and the other wrong, with both models' answers."""

    index: int  # position among the validation images
    file: str
    true_class: str
    baseline_class: str
    baseline_confidence: float  # the baseline's probability for the class it predicted
    augmented_class: str
    augmented_confidence: float
    move: str = ""  # how the image was moved from the training pose, where the dataset knows it (builtin)


@dataclass(frozen=True)
class Disagreements:
    """Each way round: `fixed` the baseline got wrong and the augmented model right, `broken` the reverse."""

    fixed: list[Disagreement]
    broken: list[Disagreement]
    total: int  # validation images compared


def predicted(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The predicted class of each row of `probs` [N, n_classes] and the probability given to it."""
    probs = np.asarray(probs, dtype=np.float64)
    chosen = probs.argmax(axis=1)
    return chosen, probs[np.arange(len(probs)), chosen]


def disagreements(baseline: PredictionsLike, augmented: PredictionsLike) -> Disagreements:
    """The validation images one model got wrong and the other right, each way, most confident mistake first.

    Both runs must have predicted the same validation images in the same order (a comparison's
    two runs share their data); anything else raises ValueError. Each entry names how its image
    was moved from the training pose where the predictions know it (`kinds`, the builtin cartoons).
    """
    labels = np.asarray(baseline.labels)
    if list(baseline.files) != list(augmented.files) or not np.array_equal(labels, np.asarray(augmented.labels)):
        raise ValueError("the two runs were validated on different images: they are not one comparison")
    if tuple(baseline.classes) != tuple(augmented.classes):
        raise ValueError("the two runs have different classes: they are not one comparison")
    classes = list(baseline.classes)
    moves = getattr(baseline, "kinds", None)
    base_pick, base_conf = predicted(baseline.probs)
    aug_pick, aug_conf = predicted(augmented.probs)
    base_right, aug_right = base_pick == labels, aug_pick == labels

    def entries(mask: np.ndarray, mistaken_confidence: np.ndarray) -> list[Disagreement]:
        # The most confident mistake first: those are the images the wrong model was surest of.
        order = sorted(np.flatnonzero(mask), key=lambda i: -mistaken_confidence[i])
        return [
            Disagreement(
                index=int(i),
                file=str(baseline.files[i]),
                true_class=classes[labels[i]],
                baseline_class=classes[base_pick[i]],
                baseline_confidence=float(base_conf[i]),
                augmented_class=classes[aug_pick[i]],
                augmented_confidence=float(aug_conf[i]),
                move=str(moves[i]) if moves is not None else "",
            )
            for i in order
        ]

    return Disagreements(
        fixed=entries(~base_right & aug_right, base_conf),
        broken=entries(base_right & ~aug_right, aug_conf),
        total=len(labels),
    )


# -- images in, model answers out -----------------------------------------------------------------
def read_photo(data: bytes) -> np.ndarray:
    """An uploaded photo's bytes as a uint8 [H, W, 3] array, decoded in memory only (never written to disk).

    Only the lab's formats are opened, and an image with more pixels than the lab accepts
    (a possible decompression bomb) is refused before it is decoded.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=LAB_FORMATS) as image:
                if image.width * image.height > max_pixels():
                    raise BadPhoto(f"the image is too large ({image.width} × {image.height} pixels)")
                image.draft("RGB", (1024, 1024))  # a large JPEG decodes reduced: plenty for a model of <= 512 px
                image.load()
                return np.asarray(to_rgb(image))
    except UnidentifiedImageError:
        raise BadPhoto("not an image the lab reads (JPEG, PNG, GIF, BMP, WebP or TIFF)") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        if isinstance(exc, BadPhoto):
            raise
        raise BadPhoto("the image is damaged or truncated") from None


def fit_to_model(image: np.ndarray, size: int) -> np.ndarray:
    """`image` (uint8 [H, W, 3]) resized to the model's `size` × `size`, as the pipeline resizes (antialiased)."""
    if image.shape[:2] == (size, size):
        return np.asarray(image, dtype=np.uint8)
    resized = Image.fromarray(np.asarray(image, dtype=np.uint8)).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(resized)


def class_probabilities(model: Any, images: np.ndarray, rescale: float) -> np.ndarray:
    """A model's probabilities [N, n_classes] for uint8 images [N, S, S, 3]; a sigmoid's one unit becomes two."""
    inputs = np.asarray(images, dtype=np.float32) * rescale
    out = np.asarray(model(inputs, training=False), dtype=np.float64)
    return np.concatenate([1 - out, out], axis=1) if out.shape[1] == 1 else out


def predict_photo(models: dict[str, Any], image: np.ndarray, config: RunConfig) -> dict[str, np.ndarray]:
    """Each model's class probabilities for one image of any size (resized to the configuration's)."""
    fitted = fit_to_model(image, config.image_size)[None]
    return {name: class_probabilities(model, fitted, config.augmentation.rescale)[0] for name, model in models.items()}


def grad_cam(model: Any, image: np.ndarray, rescale: float, class_index: int | None = None) -> np.ndarray:
    """Where `model` looks for its answer on `image` (uint8 [S, S, 3]): a Grad-CAM map [S, S] in 0..1.

    Grad-CAM (Selvaraju et al., 2017): the last convolution's feature maps, each weighted by how
    much the class score rises with it on average (the score's gradient, averaged over the map),
    summed, kept where positive, and scaled to the image. `class_index` defaults to the model's
    own answer. For a sigmoid output the class-0 score is the output's negative, so its map shows
    what argues for class 0.
    """
    import tensorflow as tf
    from keras import layers

    last_conv = max(i for i, layer in enumerate(model.layers) if isinstance(layer, layers.Conv2D))
    x = tf.constant(np.asarray(image, dtype=np.float32)[None] * rescale)
    with tf.GradientTape() as tape:
        # Layer by layer rather than a second model: the course CNN is a plain stack, and this
        # works on a Sequential model whatever Keras version built it.
        for index, layer in enumerate(model.layers):
            x = layer(x, training=False)
            if index == last_conv:
                features = x
                tape.watch(features)
        output = x[0]
        if output.shape[0] == 1:
            chosen = int(output[0] >= 0.5) if class_index is None else class_index
            score = output[0] if chosen == 1 else -output[0]
        else:
            chosen = int(tf.argmax(output)) if class_index is None else class_index
            score = output[chosen]
    grads = tape.gradient(score, features)[0]  # [h, w, filters]
    weights = tf.reduce_mean(grads, axis=(0, 1))
    cam = tf.nn.relu(tf.reduce_sum(features[0] * weights, axis=-1)).numpy()
    peak = cam.max()
    cam = cam / peak if peak > 0 else cam
    size = image.shape[:2]
    return np.asarray(Image.fromarray(cam.astype(np.float32), "F").resize(size[::-1], Image.Resampling.BILINEAR))


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The heat map over the image, blue (not looked at) to red (looked at most), as uint8 RGB."""
    h = np.clip(np.asarray(heatmap, dtype=np.float64), 0, 1)[..., None]
    # A small "jet": blue -> cyan -> yellow -> red, enough to read where the model looks.
    colour = np.concatenate(
        [
            np.clip(1.5 - np.abs(4 * h - 3), 0, 1),
            np.clip(1.5 - np.abs(4 * h - 2), 0, 1),
            np.clip(1.5 - np.abs(4 * h - 1), 0, 1),
        ],
        axis=-1,
    )
    mixed = (1 - alpha) * np.asarray(image, dtype=np.float64) + alpha * 255 * colour
    return np.clip(np.round(mixed), 0, 255).astype(np.uint8)


# -- what the model saw, what it was tested on ----------------------------------------------------
@dataclass(frozen=True)
class Strip:
    """Images (uint8 [N, S, S, 3]) with the class name of each."""

    images: np.ndarray
    classes: list[str]


def augmented_batch(config: RunConfig, n: int = 8) -> Strip:
    """The first `n` images of the run's first augmented training batches, exactly as the model saw them.

    The same seed draws the same shuffle and the same augmentation, so these are the images the
    run `config` trained on first (before rescaling). Without augmentation they are plain training images.
    """
    from lab.training import pipeline

    data = pipeline.load(config)
    dataset, _ = pipeline.augmented_batches(data, config)
    images, labels = [], []
    for batch_images, batch_labels in dataset.take(-(-n // config.batch_size)):
        images.append(batch_images.numpy())
        labels.append(np.asarray(batch_labels.numpy()).reshape(len(batch_images), -1)[:, 0])
    pixels = np.concatenate(images)[:n] / config.augmentation.rescale
    found = np.concatenate(labels)[:n].astype(int)
    return Strip(np.clip(np.round(pixels), 0, 255).astype(np.uint8), [data.class_names[i] for i in found])


def validation_image(config: RunConfig, file: str) -> np.ndarray | None:
    """One validation image by its id in `Predictions.files`, at the run's image size; None when it is gone.

    Read without TensorFlow (the builtin cartoons are drawn, a folder's file is opened with Pillow),
    so the page shows a run's images without loading it; the resize is the pipeline's (bilinear,
    antialiased), to within rounding.
    """
    from lab.data import builtin
    from lab.data.images import load_rgb
    from lab.data.listing import resolve_folder
    from lab.data.registry import DatasetError

    if file.startswith("builtin/"):
        images, _ = builtin.generate(config.image_size)["validation"]
        index = int(file.removeprefix("builtin/"))
        return images[index] if 0 <= index < len(images) else None
    try:
        root = resolve_folder(config).resolve()
        path = (root / file).resolve()
        if not path.is_relative_to(root):
            return None  # an id never leads out of its dataset folder
        return fit_to_model(load_rgb(path), config.image_size)
    except (DatasetError, OSError, ValueError, SyntaxError, EOFError):
        return None  # the folder or the file is gone (an upload cleared, a file deleted)
