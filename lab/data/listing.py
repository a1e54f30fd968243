"""Listing a dataset folder: which files are used, which are skipped or converted, and why.

Images are read, never written. Every file is checked (`lab.data.images`) when the folder is
listed, so that nothing the pipeline cannot decode reaches it.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lab.config import RunConfig
from lab.data import builtin
from lab.data.archives import dataset_root
from lab.data.images import LAB_FORMATS, check_image, load_preview
from lab.data.registry import DatasetError, DatasetInfo, FileNote, default_data_root, get_info


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
            from lab.data.download import manual_steps  # the download module lists folders too

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
    """List a `train/<class>/ + validation/<class>/` folder, or split `<class>/` folders; either may
    sit inside one wrapping folder."""
    path = _step_into_wrapper(path, info)
    train_dir = _first_existing(path, info.train_dirs)
    validation_dir = _first_existing(path, info.validation_dirs)
    found = _Found()
    if train_dir and validation_dir:
        class_names = _class_folders(train_dir, path)
        validation_classes = _class_folders(validation_dir, path)
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
        _refuse_half_split(path, train_dir or validation_dir, info)
        class_names = _class_folders(path, path)
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


def _step_into_wrapper(path: Path, info: DatasetInfo) -> Path:
    """The folder inside lone wrapping folders (`photos_parent/photos/cats/...` -> `photos`), as for zips."""
    try:
        inner = dataset_root(path)
    except PermissionError as exc:
        unreadable = _within(Path(exc.filename), path) if exc.filename else f"{path.name}/"
        raise DatasetError(f"{path}: permission denied: the lab may not read the folder {unreadable}") from None
    # dataset_root steps into a lone train/ too: stay above it, so that the missing validation/ is named.
    while inner != path and inner.name in (*info.train_dirs, *info.validation_dirs):
        inner = inner.parent
    return inner


def _refuse_half_split(path: Path, half: Path | None, info: DatasetInfo) -> None:
    """A train/ without validation/ (or the reverse), with no class folders beside it, names what is missing."""
    if half is None or any(name != half.name for name in _folder_names(path, path)):
        return  # no split folder, or a class that happens to be called "train" among others
    lacks = info.validation_dirs[0] if half.name in info.train_dirs else info.train_dirs[0]
    raise DatasetError(
        f"{path} has {half.name}/ but no {lacks}/ folder: add {lacks}/<class>/ folders, or put the class folders "
        "at the top to have a fraction held out"
    )


@dataclass
class _Found:
    """What listing met besides usable images; filled in while listing."""

    ignored: list[str] = field(default_factory=list)
    skipped: list[FileNote] = field(default_factory=list)
    converted: list[FileNote] = field(default_factory=list)
    with_pillow: set[str] = field(default_factory=set)


def _first_existing(path: Path, names: tuple[str, ...]) -> Path | None:
    folders = _folder_names(path, path)
    return next((path / name for name in names if name in folders), None)


def _folder_names(path: Path, root: Path) -> list[str]:
    """The visible subfolders of `path`; an unreadable `path` is a `DatasetError` naming it within `root`."""
    try:
        with os.scandir(path) as entries:
            return sorted(e.name for e in entries if not e.name.startswith(".") and _is_folder(e))
    except PermissionError:
        raise DatasetError(
            f"{root}: permission denied: the lab may not read the folder {_within(path, root)}"
        ) from None


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _within(path: Path, root: Path) -> str:
    """`path` named relative to the dataset's root, as a folder: "cats/", or "f/" for the root itself."""
    relative = path.relative_to(root).as_posix()
    return f"{root.name if relative == '.' else relative}/"


def _class_folders(path: Path, root: Path) -> tuple[str, ...]:
    names = tuple(_folder_names(path, root))
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
        for file in _files_under(path / name, root, found):
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


def _files_under(folder: Path, root: Path, found: _Found) -> list[Path]:
    """The visible files under `folder`, sorted; a folder the lab may not read is recorded in `found`."""
    files = []

    def note_unreadable(error: OSError) -> None:
        found.skipped.append(FileNote(_within(Path(error.filename), root), "permission denied"))

    for parent, _, names in os.walk(folder, onerror=note_unreadable):
        files += [Path(parent) / name for name in names if not name.startswith(".")]
    # Sorted as paths, as rglob's results were: a folder's files by their full relative names.
    return sorted(file for file in files if file.is_file())


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
                f"{listing.root}: no images found for {split} (looked for {', '.join(LAB_FORMATS)} images){skipped}"
            )
        if empty:
            raise DatasetError(
                f"{listing.root}: class folder(s) {', '.join(empty)} have no usable {split} images{skipped}"
            )


# -- describing --------------------------------------------------------------------
def dataset_info(config: RunConfig) -> DatasetInfo:
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


def sample_images(config: RunConfig, per_class: int = 4, split: str = "train") -> dict[str, np.ndarray]:
    """A few decoded uint8 images per class, for the page's sample strip and preview."""
    if config.dataset == "builtin":
        images, labels = builtin.generate(config.image_size)[split]
        return {name: images[labels == i][:per_class] for i, name in enumerate(builtin.CLASS_NAMES)}
    from PIL import Image

    found = list_dataset(config)
    samples: dict[str, np.ndarray] = {}
    side = config.image_size
    for i, name in enumerate(found.class_names):
        paths = [p for p, label in found.files[split] if label == i][:per_class]
        # Reduced while decoding: a 9000-px photo never reaches the resize whole.
        previews = [load_preview(path, side) for path in paths]
        samples[name] = np.stack([np.asarray(p.resize((side, side), Image.Resampling.BILINEAR)) for p in previews])
    return samples
