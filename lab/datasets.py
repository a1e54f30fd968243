"""Datasets: a registry of named datasets, folder reading, and the tf.data pipelines.

Images are read, never written: the pipeline decodes files into memory and every
augmented variant lives only while its batch is in flight.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lab import builtin
from lab.config import RunConfig
from lab.images import IMAGE_EXTENSIONS, check_image, load_rgb

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
@dataclass(frozen=True)
class FileNote:
    """One file (relative to the dataset folder) and what the lab did with it, and why."""

    path: str
    reason: str


@dataclass
class Listing:
    """The files of a dataset on disk, split and labelled, and what was left out or converted."""

    root: Path
    class_names: tuple[str, ...]
    files: dict[str, list[tuple[str, int]]]  # split -> [(path, label)]
    ignored: list[str] = field(default_factory=list)  # files that are not images, relative to root
    skipped: list[FileNote] = field(default_factory=list)  # damaged, too small, too large: never decoded
    converted: list[FileNote] = field(default_factory=list)  # used, turned into 8-bit RGB on the way
    with_pillow: frozenset[str] = frozenset()  # paths TensorFlow cannot decode right: Pillow decodes them
    split_by_fraction: bool = False  # no train/ + validation/ folders: split by validation_split

    def sizes(self) -> dict[str, dict[str, int]]:
        sizes = {}
        for split, items in self.files.items():
            counts = {name: 0 for name in self.class_names}
            for _, label in items:
                counts[self.class_names[label]] += 1
            sizes[split] = counts
        return sizes

    def left_out(self) -> list[FileNote]:
        """Every file not used, with the reason: non-images first, then refused images."""
        return [FileNote(path, "not an image") for path in self.ignored] + list(self.skipped)

    def summary(self) -> str:
        """One line for people: what was used, what was skipped and converted, and why."""
        used = sum(len(items) for items in self.files.values())
        parts = [f"{used} images in {len(self.class_names)} classes ({', '.join(self.class_names)})"]
        left_out = self.left_out()
        if left_out:
            parts.append(
                f"{plural(len(left_out), 'file')} skipped ({tally_notes(left_out)}); nothing was changed on disk"
            )
        if self.converted:
            parts.append(f"{len(self.converted)} converted while decoding ({tally_notes(self.converted)})")
        return "; ".join(parts)


def plural(count: int, word: str) -> str:
    """ "1 file", "2 files"."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def tally_notes(notes: list[FileNote]) -> str:
    """ "3 not an image, 1 damaged or truncated": notes counted by reason."""
    # Group by the reason's first words: "damaged or truncated (...)" details differ per file.
    counts = Counter(note.reason.split(" (")[0] for note in notes)
    return ", ".join(f"{count} {reason}" for reason, count in counts.most_common())


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
        hint = ""
        if info.folder_name and not config.data_dir:
            from lab.download import manual_steps

            hint = f" {manual_steps(info.name, path.parent)}"
        raise DatasetError(f"{info.title}: no folder at {path}.{hint}")
    return path


def list_dataset(config: RunConfig) -> Listing:
    """The configured folder's listing: what is used, skipped and converted (not for the builtin dataset)."""
    info = get_info(config.dataset)
    if config.dataset == "builtin":
        raise DatasetError("the builtin dataset is drawn in code: it has no files to list")
    return list_folder(resolve_folder(config), info, config.validation_split, config.seed)


def list_folder(path: Path, info: DatasetInfo, validation_split: float, seed: int) -> Listing:
    """List a `train/<class>/ + validation/<class>/` folder, or split `<class>/` folders."""
    train_dir = _first_existing(path, info.train_dirs)
    validation_dir = _first_existing(path, info.validation_dirs)
    found = _Found()
    if train_dir and validation_dir:
        class_names = _class_folders(train_dir)
        validation_classes = _class_folders(validation_dir)
        if validation_classes != class_names:
            raise DatasetError(
                f"{path}: training classes {list(class_names)} and validation classes "
                f"{list(validation_classes)} differ; both splits need the same class folders"
            )
        files = {
            "train": _list_images(train_dir, class_names, found, path),
            "validation": _list_images(validation_dir, class_names, found, path),
        }
    else:
        class_names = _class_folders(path)
        files = _split(_list_images(path, class_names, found, path), len(class_names), validation_split, seed)
    result = Listing(
        root=path,
        class_names=class_names,
        files=files,
        ignored=found.ignored,
        skipped=found.skipped,
        converted=found.converted,
        with_pillow=frozenset(found.with_pillow),
        split_by_fraction=not (train_dir and validation_dir),
    )
    _check_usable(result)
    return result


@dataclass
class _Found:
    """What listing met besides usable images; filled in while listing."""

    ignored: list[str] = field(default_factory=list)
    skipped: list[FileNote] = field(default_factory=list)
    converted: list[FileNote] = field(default_factory=list)
    with_pillow: set[str] = field(default_factory=set)


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


def _list_images(path: Path, class_names: tuple[str, ...], found: _Found, root: Path) -> list[tuple[str, int]]:
    """The usable images of each class folder; every other file is recorded in `found` with its reason
    (named relative to the dataset's `root`)."""
    items = []
    for label, name in enumerate(class_names):
        for file in sorted((path / name).rglob("*")):
            if not file.is_file() or file.name.startswith("."):
                continue
            relative = str(file.relative_to(root))
            verdict = check_image(file)
            if not verdict.is_image:
                found.ignored.append(relative)
            elif not verdict.usable:
                found.skipped.append(FileNote(relative, verdict.reason))
            else:
                items.append((str(file), label))
                if verdict.reason:
                    found.converted.append(FileNote(relative, verdict.reason))
                if verdict.with_pillow:
                    found.with_pillow.add(str(file))
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
        left_out = listing.left_out()
        skipped = f"; {plural(len(left_out), 'file')} skipped ({tally_notes(left_out)})" if left_out else ""
        if not items:
            raise DatasetError(
                f"{listing.root}: no images found for {split} (looked for {', '.join(IMAGE_EXTENSIONS)} "
                f"and any other format Pillow reads){skipped}"
            )
        if empty:
            raise DatasetError(
                f"{listing.root}: class folder(s) {', '.join(empty)} have no usable {split} images{skipped}"
            )


# -- describing --------------------------------------------------------------------
def describe(config: RunConfig) -> DatasetInfo:
    """The dataset's info with the class names and split sizes actually found."""
    info = get_info(config.dataset)
    if config.dataset == "builtin":
        return info
    found = list_dataset(config)
    return DatasetInfo(
        name=info.name,
        title=info.title,
        description=info.description,
        class_names=found.class_names,
        split_sizes=found.sizes(),
        source=str(found.root),
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

    found = list_dataset(config)
    train_files = _subset_files(found.files["train"], config.train_images, config.seed)
    budget = _cache_budget_bytes()
    per_image = size * size * 3
    cache_train = len(train_files) * per_image <= budget
    cache_validation = (len(train_files) + len(found.files["validation"])) * per_image <= budget
    return Data(
        train=_decode_files(train_files, size, cache_train, found.with_pillow, tolerant=True),
        validation=_decode_files(found.files["validation"], size, cache_validation, found.with_pillow),
        class_names=found.class_names,
        train_count=len(train_files),
        validation_count=len(found.files["validation"]),
        image_size=size,
        ignored=found.ignored,
    )


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
    tolerant: bool = False,
):
    import tensorflow as tf

    paths = tf.constant([p for p, _ in items])
    labels = tf.constant([label for _, label in items], dtype=tf.int32)
    pillow = tf.constant([p in with_pillow for p, _ in items], dtype=tf.bool)

    def decode_with_tensorflow(path):
        # channels=3 turns grayscale, palette and RGBA (alpha dropped) into RGB, 16 bits into 8.
        return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)

    def decode_with_pillow(path):
        image = tf.numpy_function(lambda p: load_rgb(p.decode()), [path], tf.uint8, stateful=False)
        return tf.ensure_shape(image, (None, None, 3))

    def decode(path, label, by_pillow):
        if with_pillow:
            image = tf.cond(by_pillow, lambda: decode_with_pillow(path), lambda: decode_with_tensorflow(path))
        else:
            image = decode_with_tensorflow(path)
        image = tf.image.resize(image, (size, size), antialias=True)
        # Keep uint8 until the model needs floats: a quarter of the memory in the cache.
        image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        image.set_shape((size, size, 3))
        return image, label

    dataset = tf.data.Dataset.from_tensor_slices((paths, labels, pillow))
    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if tolerant:
        # Listing already refused every file that fails to decode; should one change on disk
        # after that, it is dropped (with a logged warning) rather than ending the run. Only
        # for the repeated training split: it makes the length unknown, which Keras warns
        # about on a validation split.
        dataset = dataset.ignore_errors(log_warning=True)
    return dataset.cache() if cache else dataset


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

    found = list_dataset(config)
    samples: dict[str, np.ndarray] = {}
    size = (config.image_size, config.image_size)
    for i, name in enumerate(found.class_names):
        paths = [p for p, label in found.files[split] if label == i][:per_class]
        images = [np.asarray(Image.fromarray(load_rgb(path)).resize(size, Image.Resampling.BILINEAR)) for path in paths]
        samples[name] = np.stack(images)
    return samples
