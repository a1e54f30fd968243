"""The registry of named datasets, where they live, and the error every data problem raises.

Kept free of TensorFlow and of file reading: the page, the command line and the other data
modules import it cheaply.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lab.data import builtin


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
        description=builtin.DESCRIPTION,
        class_names=builtin.CLASS_NAMES,
        split_sizes={
            "train": {c: builtin.TRAIN_PER_CLASS for c in builtin.CLASS_NAMES},
            "validation": {c: builtin.VALIDATION_PER_CLASS for c in builtin.CLASS_NAMES},
        },
        source="drawn in code (lab/data/builtin.py)",
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


@dataclass(frozen=True)
class FileNote:
    """One file (relative to the dataset folder) and what the lab did with it, and why."""

    path: str
    reason: str
