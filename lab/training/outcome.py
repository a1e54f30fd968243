"""What a run leaves besides its curves: the final weights and each validation image's prediction.

The curves say *that* a model overfits; these say *why*: which validation images it got wrong,
where it looked (the weights rebuild the model for a saliency map) and what it makes of a new
photo. A run folder (`lab.runs.store.RunStore.run_dir`, or a command's run folder) gains:

- `weights.npz`      the final weights, one array per model variable, in `model.get_weights()` order;
- `predictions.npz`  per validation image: its id, true class and predicted probabilities.

Per run that is about 2.0 MB at 64 px on the course CNN, 13.3 MB at 150 px, and 6.5 MB at 300 px on the
five-convolution CNN: the weights, float32 (the predictions are 40-150 KB of it).
NumPy files, not Keras' `.weights.h5`: the training child keeps h5py out of its process
(`lab.training.child.UNUSED_PACKAGES`), and a reader here needs nothing but NumPy.
A run stored before these files existed has neither: `load_predictions` and `load_model`
give None, and the page says its images are not available.

Importing this module imports neither TensorFlow nor Keras (`load_model` does, when called).
"""

from __future__ import annotations

import contextlib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lab.config import RunConfig
from lab.files import write_atomically

if TYPE_CHECKING:
    import keras

WEIGHTS_FILE = "weights.npz"
PREDICTIONS_FILE = "predictions.npz"
OUTCOME_FILES = (WEIGHTS_FILE, PREDICTIONS_FILE)


@dataclass
class Predictions:
    """The final model's answer for each validation image, in the order of the validation split.

    `files`: each image's id, its path relative to the dataset folder (`train/...` is never
    here), or `builtin/<index>` for the builtin cartoons. `labels`: the true class (int).
    `probs`: float32 [N, n_classes], one probability per class (a binary sigmoid model gets two
    columns, 1 - p and p). `kinds`: for the builtin cartoons, how each validation image was
    moved away from the training pose ("rotated 31°, shifted 18%, mirrored"); `moved`: the same
    as one number, 0 for the training pose, 1 for the farthest pose the validation set draws.
    Both are None for photos, whose poses nobody recorded.
    """

    files: list[str]
    labels: np.ndarray
    probs: np.ndarray
    classes: list[str]
    kinds: list[str] | None = None
    moved: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.probs = np.asarray(self.probs, dtype=np.float32)
        if self.probs.ndim != 2 or self.probs.shape != (len(self.files), len(self.classes)):
            raise ValueError(f"probs must be [{len(self.files)}, {len(self.classes)}], got {self.probs.shape}")
        if self.labels.shape != (len(self.files),):
            raise ValueError(f"labels must be [{len(self.files)}], got {self.labels.shape}")

    def __len__(self) -> int:
        return len(self.files)

    @property
    def predicted(self) -> np.ndarray:
        """The predicted class of each image (int)."""
        return self.probs.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        """The probability the model gives its predicted class, per image (0.5 to 1 for two classes)."""
        return self.probs.max(axis=1)

    @property
    def correct(self) -> np.ndarray:
        return self.predicted == self.labels

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean()) if len(self) else float("nan")

    def confusion_matrix(self) -> list[list[int]]:
        return confusion_matrix(self.labels, self.predicted, len(self.classes))


def confusion_matrix(labels: Any, predicted: Any, n_classes: int) -> list[list[int]]:
    """Counts, `matrix[true][predicted]`: rows are the true classes, in class order."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix.tolist()


def probabilities(outputs: Any, n_classes: int) -> np.ndarray:
    """A model's outputs as [N, n_classes] probabilities: a sigmoid's one column p becomes (1 - p, p)."""
    outputs = np.asarray(outputs, dtype=np.float32)
    if n_classes == 2 and (outputs.ndim == 1 or outputs.shape[-1] == 1):
        p = outputs.reshape(-1)
        return np.stack([1 - p, p], axis=1)
    return outputs.reshape(-1, n_classes)


def predict(model: Any, data: Any, config: RunConfig) -> Predictions:
    """`model`'s predictions for the validation split of `data` (`lab.training.pipeline.Data`), as
    `Predictions`. One pass over the split, as a validation epoch makes. Imports TensorFlow."""
    from lab.data import builtin
    from lab.training import pipeline

    labels, outputs = [], []
    for images, batch_labels in pipeline.validation_pipeline(data, config):
        outputs.append(np.asarray(model(images, training=False)))
        labels.append(np.asarray(batch_labels).reshape(-1))
    n_classes = data.num_classes
    probs = probabilities(np.concatenate(outputs), n_classes) if outputs else np.zeros((0, n_classes), np.float32)
    files = list(data.validation_files)
    if "validation" in data.decoded:
        # Files that failed to decode were dropped from the split: keep the ids of those that decoded.
        decoded = np.asarray(data.decoded["validation"].numpy(), dtype=bool)
        files = [name for name, ok in zip(files, decoded, strict=True) if ok]
    if len(files) != len(probs):
        files = [f"validation/{index}" for index in range(len(probs))]  # never misname an image
    kinds = moved = None
    if config.dataset == "builtin":
        poses = builtin.validation_poses(config.image_size)
        kinds = [builtin.describe_pose(pose) for pose in poses]
        moved = np.asarray([builtin.pose_distance(pose) for pose in poses], dtype=np.float32)
    return Predictions(
        files=files,
        labels=np.concatenate(labels).astype(np.int64) if labels else np.zeros(0, np.int64),
        probs=probs,
        classes=list(data.class_names),
        kinds=kinds,
        moved=moved,
    )


def save_outcome(folder: Path, model: Any, predictions: Predictions) -> None:
    """Write the model's weights and the predictions into `folder`, each file atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = model.get_weights()
    _save_npz(folder / WEIGHTS_FILE, {f"w{i:03d}": w for i, w in enumerate(weights)})
    arrays = {
        "files": np.asarray(predictions.files, dtype=str),
        "labels": predictions.labels,
        "probs": predictions.probs,
        "classes": np.asarray(predictions.classes, dtype=str),
    }
    if predictions.kinds is not None:
        arrays["kinds"] = np.asarray(predictions.kinds, dtype=str)
    if predictions.moved is not None:
        arrays["moved"] = np.asarray(predictions.moved, dtype=np.float32)
    _save_npz(folder / PREDICTIONS_FILE, arrays)


def load_predictions(folder: Path) -> Predictions | None:
    """The predictions stored in `folder`; None when there are none (a run stored before they were
    kept, or one that did not finish) or the file cannot be read."""
    path = Path(folder) / PREDICTIONS_FILE
    try:
        with np.load(path, allow_pickle=False) as data:
            return Predictions(
                files=[str(f) for f in data["files"]],
                labels=data["labels"],
                probs=data["probs"],
                classes=[str(c) for c in data["classes"]],
                kinds=[str(k) for k in data["kinds"]] if "kinds" in data else None,
                moved=np.asarray(data["moved"]) if "moved" in data else None,
            )
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


def load_weights(folder: Path) -> list[np.ndarray] | None:
    """The stored weights, in `model.get_weights()` order; None when there are none."""
    try:
        with np.load(Path(folder) / WEIGHTS_FILE, allow_pickle=False) as data:
            return [data[name] for name in sorted(data.files)]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


def load_model(folder: Path, config: RunConfig) -> keras.Model | None:
    """The run's final model, rebuilt from `config` with its stored weights; None when the run kept none
    (or they do not fit the model that `config` builds). Imports Keras."""
    weights = load_weights(folder)
    predictions = load_predictions(folder)
    if weights is None or predictions is None:
        return None
    from lab.training.model import build_model

    model = build_model(config, len(predictions.classes))
    try:
        model.set_weights(weights)
    except ValueError:
        return None
    return model


def size_on_disk(folder: Path) -> int:
    """Bytes the outcome files take in `folder` (0 when there are none)."""
    total = 0
    for name in OUTCOME_FILES:
        with contextlib.suppress(OSError):
            total += (Path(folder) / name).stat().st_size
    return total


def remove_outcome(folder: Path) -> None:
    """Forget a run's outcome (its run is trained again): a retrain that fails must not show the old one."""
    for name in OUTCOME_FILES:
        with contextlib.suppress(FileNotFoundError):
            (Path(folder) / name).unlink()


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """`np.savez`, written whole or not at all: a reader sees a whole file or none."""
    write_atomically(path, lambda file: np.savez(file, **arrays))
