"""Datasets: a registry of named datasets, folder reading, and the tf.data pipelines.

Images are read, never written: the pipeline decodes files into memory and every
augmented variant lives only while its batch is in flight.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lab import builtin
from lab.config import RunConfig

# The formats keras.utils.image_dataset_from_directory reads; tf.io.decode_image decodes them.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
# Decoded images are cached in memory while they fit in this budget; past it they are
# decoded again every epoch instead of swapping the machine to death.
DEFAULT_CACHE_MB = 1024


class DatasetError(ValueError):
    """A dataset cannot be used as asked; the message says why and what to do."""


@dataclass(frozen=True)
class DatasetInfo:
    """What the page and the command line show about a dataset."""

    name: str
    title: str
    description: str
    class_names: tuple[str, ...]
    # {"train": {"cats": 1000, "dogs": 1000}, "validation": {...}}
    split_sizes: dict[str, dict[str, int]]
    source: str = ""
    # Accepted names of the split folders, first one canonical.
    train_dirs: tuple[str, ...] = ("train",)
    validation_dirs: tuple[str, ...] = ("validation",)
    folder_name: str | None = None  # where it lives under the data folder

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def total(self, split: str) -> int:
        return sum(self.split_sizes.get(split, {}).values())


REGISTRY: dict[str, DatasetInfo] = {
    "builtin": DatasetInfo(
        name="builtin",
        title="Builtin cartoons (cats and dogs)",
        description=builtin.describe(),
        class_names=builtin.CLASS_NAMES,
        split_sizes={
            "train": {c: builtin.TRAIN_PER_CLASS for c in builtin.CLASS_NAMES},
            "validation": {c: builtin.VALIDATION_PER_CLASS for c in builtin.CLASS_NAMES},
        },
        source="drawn in code (lab/builtin.py)",
    ),
    "cats_vs_dogs": DatasetInfo(
        name="cats_vs_dogs",
        title="Cats vs Dogs (course subset)",
        description=(
            "2,000 training and 1,000 validation photos of cats and dogs from Kaggle's Dogs vs. Cats "
            "(Microsoft Research's Asirra, photos from Petfinder.com), the subset used by the course."
        ),
        class_names=("cats", "dogs"),
        split_sizes={"train": {"cats": 1000, "dogs": 1000}, "validation": {"cats": 500, "dogs": 500}},
        source="https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip",
        folder_name="cats_and_dogs_filtered",
    ),
    "horses_or_humans": DatasetInfo(
        name="horses_or_humans",
        title="Horses or Humans (course)",
        description=(
            "Computer-generated 300x300 images of horses and humans in many poses (Laurence Moroney), "
            "with a validation set drawn differently from the training set."
        ),
        class_names=("horses", "humans"),
        split_sizes={"train": {"horses": 500, "humans": 527}, "validation": {"horses": 128, "humans": 128}},
        source="https://storage.googleapis.com/learning-datasets/horse-or-human.zip",
        train_dirs=("train", "horse-or-human"),
        validation_dirs=("validation", "validation-horse-or-human"),
        folder_name="horses_or_humans",
    ),
    "folder": DatasetInfo(
        name="folder",
        title="Your own folder",
        description=(
            "Any folder of class subfolders: either train/<class>/ and validation/<class>/, or "
            "<class>/ alone, split into training and validation by a seeded fraction."
        ),
        class_names=(),
        split_sizes={},
        source="a local folder (--data PATH)",
    ),
}


def default_data_root() -> Path:
    """Where named datasets live on this machine; LAB_DATA_DIR moves it."""
    return Path(os.environ.get("LAB_DATA_DIR", Path.home() / ".cache" / "overfitting-lab" / "datasets"))


def get_info(name: str) -> DatasetInfo:
    try:
        return REGISTRY[name]
    except KeyError:
        raise DatasetError(f"unknown dataset '{name}': choose one of {', '.join(REGISTRY)}") from None


# -- listing a folder --------------------------------------------------------------
@dataclass
class Listing:
    """The files of a dataset on disk, split and labelled, and what was left out."""

    root: Path
    class_names: tuple[str, ...]
    files: dict[str, list[tuple[str, int]]]  # split -> [(path, label)]
    ignored: list[str] = field(default_factory=list)  # files that are not images, by name

    def sizes(self) -> dict[str, dict[str, int]]:
        sizes = {}
        for split, items in self.files.items():
            counts = {name: 0 for name in self.class_names}
            for _, label in items:
                counts[self.class_names[label]] += 1
            sizes[split] = counts
        return sizes


def resolve_folder(config: RunConfig) -> Path:
    """The folder a configuration reads images from."""
    info = get_info(config.dataset)
    if config.data_dir:
        path = Path(config.data_dir).expanduser()
    elif info.folder_name:
        path = default_data_root() / info.folder_name
    else:
        raise DatasetError("the 'folder' dataset needs a folder: pass --data PATH (or set data_dir)")
    if not path.is_dir():
        hint = f" Download {info.source} and unzip it there, or point --data at a copy." if info.folder_name else ""
        raise DatasetError(f"{info.title}: no folder at {path}.{hint}")
    return path


def list_folder(path: Path, info: DatasetInfo, validation_split: float, seed: int) -> Listing:
    """List a `train/<class>/ + validation/<class>/` folder, or split `<class>/` folders."""
    train_dir = _first_existing(path, info.train_dirs)
    validation_dir = _first_existing(path, info.validation_dirs)
    ignored: list[str] = []
    if train_dir and validation_dir:
        class_names = _class_folders(train_dir)
        validation_classes = _class_folders(validation_dir)
        if validation_classes != class_names:
            raise DatasetError(
                f"{path}: training classes {list(class_names)} and validation classes "
                f"{list(validation_classes)} differ; both splits need the same class folders"
            )
        files = {
            "train": _list_images(train_dir, class_names, ignored),
            "validation": _list_images(validation_dir, class_names, ignored),
        }
    else:
        class_names = _class_folders(path)
        files = _split(_list_images(path, class_names, ignored), len(class_names), validation_split, seed)
    listing = Listing(root=path, class_names=class_names, files=files, ignored=ignored)
    _check_usable(listing)
    return listing


def _first_existing(path: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        if (path / name).is_dir():
            return path / name
    return None


def _class_folders(path: Path) -> tuple[str, ...]:
    names = tuple(sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if len(names) == 0:
        raise DatasetError(f"{path} has no class folders: put each class's images in a subfolder named after it")
    if len(names) == 1:
        raise DatasetError(
            f"{path} has only one class folder ('{names[0]}'): a classifier needs at least two "
            "classes, each in its own subfolder"
        )
    return names


def _list_images(path: Path, class_names: tuple[str, ...], ignored: list[str]) -> list[tuple[str, int]]:
    items = []
    for label, name in enumerate(class_names):
        for file in sorted((path / name).rglob("*")):
            if not file.is_file() or file.name.startswith("."):
                continue
            if file.suffix.lower() in IMAGE_EXTENSIONS:
                items.append((str(file), label))
            else:
                ignored.append(str(file.relative_to(path)))
    return items


def _split(items, num_classes: int, fraction: float, seed: int) -> dict[str, list[tuple[str, int]]]:
    """Hold out `fraction` of each class for validation, chosen by `seed`."""
    rng = np.random.default_rng(seed)
    train, validation = [], []
    for label in range(num_classes):
        members = [item for item in items if item[1] == label]
        order = rng.permutation(len(members))
        held = math.ceil(len(members) * fraction) if len(members) > 1 else 0
        validation += [members[i] for i in sorted(order[:held])]
        train += [members[i] for i in sorted(order[held:])]
    return {"train": train, "validation": validation}


def _check_usable(listing: Listing) -> None:
    for split, items in listing.files.items():
        counts = listing.sizes()[split]
        empty = [name for name, count in counts.items() if count == 0]
        if not items:
            raise DatasetError(f"{listing.root}: no images found for {split} (looked for {', '.join(IMAGE_EXTENSIONS)})")
        if empty:
            raise DatasetError(f"{listing.root}: class folder(s) {', '.join(empty)} have no {split} images")


# -- describing --------------------------------------------------------------------
def describe(config: RunConfig) -> DatasetInfo:
    """The dataset's info with the class names and split sizes actually found."""
    info = get_info(config.dataset)
    if config.dataset == "builtin":
        return info
    listing = list_folder(resolve_folder(config), info, config.validation_split, config.seed)
    return DatasetInfo(
        name=info.name,
        title=info.title,
        description=info.description,
        class_names=listing.class_names,
        split_sizes=listing.sizes(),
        source=str(listing.root),
        train_dirs=info.train_dirs,
        validation_dirs=info.validation_dirs,
        folder_name=info.folder_name,
    )


# -- the tf.data pipelines ------------------------------------------------------------
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
        return Data(train, validation, builtin.CLASS_NAMES, len(train_y), len(val_y), size)

    info = get_info(config.dataset)
    listing = list_folder(resolve_folder(config), info, config.validation_split, config.seed)
    train_files = _subset_files(listing.files["train"], config.train_images, config.seed)
    budget = _cache_budget_bytes()
    per_image = size * size * 3
    cache_train = len(train_files) * per_image <= budget
    cache_validation = (len(train_files) + len(listing.files["validation"])) * per_image <= budget
    return Data(
        train=_decode_files(train_files, size, cache_train),
        validation=_decode_files(listing.files["validation"], size, cache_validation),
        class_names=listing.class_names,
        train_count=len(train_files),
        validation_count=len(listing.files["validation"]),
        image_size=size,
        ignored=listing.ignored,
    )


def _cache_budget_bytes() -> int:
    return int(float(os.environ.get("LAB_CACHE_MB", DEFAULT_CACHE_MB)) * 1024 * 1024)


def _decode_files(items: list[tuple[str, int]], size: int, cache: bool):
    import tensorflow as tf

    paths = tf.constant([p for p, _ in items])
    labels = tf.constant([label for _, label in items], dtype=tf.int32)

    def decode(path, label):
        data = tf.io.read_file(path)
        # channels=3 turns grayscale, palette and RGBA (alpha dropped) into RGB.
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        image = tf.image.resize(image, (size, size), antialias=True)
        # Keep uint8 until the model needs floats: a quarter of the memory in the cache.
        image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        image.set_shape((size, size, 3))
        return image, label

    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.cache() if cache else dataset


def _balanced_indices(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """A seeded subset of `count` indices keeping each class's share; all when count is 0."""
    if count <= 0 or count >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    if count < len(classes):
        raise DatasetError(f"train_images = {count} is too few: use at least one image per class ({len(classes)})")
    chosen = []
    for cls in classes:
        members = np.flatnonzero(labels == cls)
        take = max(1, round(count * len(members) / len(labels)))
        chosen.append(rng.choice(members, size=min(take, len(members)), replace=False))
    return np.sort(np.concatenate(chosen))[: max(count, len(classes))]


def _subset_arrays(images: np.ndarray, labels: np.ndarray, count: int, seed: int):
    index = _balanced_indices(labels, count, seed)
    return images[index], labels[index]


def _subset_files(items: list[tuple[str, int]], count: int, seed: int) -> list[tuple[str, int]]:
    labels = np.asarray([label for _, label in items])
    return [items[i] for i in _balanced_indices(labels, count, seed)]


def training_pipeline(data: Data, config: RunConfig):
    """Shuffle, batch, augment on the fly (training split only), rescale, prefetch.

    Returns (dataset, steps_per_epoch). The dataset repeats forever so that the batch
    counter, which seeds each batch's augmentation, keeps counting across epochs:
    every epoch draws new variants, and the same seed draws the same ones again.
    """
    import tensorflow as tf

    from lab.augment import make_layer

    aug = config.augmentation
    layer = make_layer(aug) if aug.enabled else None
    binary = data.num_classes == 2

    def prepare(step, batch):
        images, labels = batch
        if layer is not None:
            images = layer(images, seed=tf.stack([tf.constant(config.seed, tf.int64), step]))
        images = tf.cast(images, tf.float32) * aug.rescale
        return images, _shape_labels(labels, binary)

    dataset = data.train.shuffle(data.train_count, seed=config.seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(config.batch_size).repeat().enumerate()
    dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE), math.ceil(data.train_count / config.batch_size)


def validation_pipeline(data: Data, config: RunConfig):
    """Batch and rescale the validation split: never augmented."""
    import tensorflow as tf

    binary = data.num_classes == 2
    rescale = config.augmentation.rescale

    def prepare(images, labels):
        return tf.cast(images, tf.float32) * rescale, _shape_labels(labels, binary)

    dataset = data.validation.batch(config.batch_size)
    return dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _shape_labels(labels, binary: bool):
    import tensorflow as tf

    # A sigmoid output is [B, 1]; give binary labels the same shape so the loss never broadcasts.
    return tf.cast(labels, tf.float32)[:, None] if binary else labels


def sample_images(config: RunConfig, per_class: int = 4, split: str = "train") -> dict[str, np.ndarray]:
    """A few decoded uint8 images per class, for the page's sample strip and preview."""
    if config.dataset == "builtin":
        images, labels = builtin.generate(config.image_size)[split]
        return {name: images[labels == i][:per_class] for i, name in enumerate(builtin.CLASS_NAMES)}
    from PIL import Image

    info = get_info(config.dataset)
    listing = list_folder(resolve_folder(config), info, config.validation_split, config.seed)
    samples: dict[str, np.ndarray] = {}
    for i, name in enumerate(listing.class_names):
        paths = [p for p, label in listing.files[split] if label == i][:per_class]
        images = []
        for path in paths:
            with Image.open(path) as image:
                rgb = image.convert("RGB").resize((config.image_size, config.image_size), Image.Resampling.BILINEAR)
                images.append(np.asarray(rgb))
        samples[name] = np.stack(images)
    return samples
