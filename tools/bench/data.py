"""The folder the variants read: the shared Cats vs Dogs, or the builtin cartoons written as PNG files, and a
class-balanced subset of links that both the course's reader and the lab's read alike."""

from __future__ import annotations

from pathlib import Path

from tools.paths import shared_datasets_dir


def default_data() -> str:
    real = shared_datasets_dir() / "cats_and_dogs_filtered"
    return str(real) if (real / "train").is_dir() else "builtin"


def write_builtin_folder(root: Path, size: int) -> Path:
    """The builtin cartoons as PNG files in train/<class>/ and validation/<class>/, for the course's reader."""
    from PIL import Image

    from lab.data import builtin

    for split, (images, labels) in builtin.generate(size).items():
        for index, (image, label) in enumerate(zip(images, labels, strict=True)):
            folder = root / split / builtin.CLASS_NAMES[int(label)]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{index:04d}.png")
    return root


def subset_folder(source: Path, root: Path, train_images: int, seed: int) -> Path:
    """A folder of links to the lab's own class-balanced subset of `train_images` training images.

    Both pipelines then read exactly the same files: the course's `flow_from_directory` reads the folder,
    the lab reads it with `train_images=0`.
    """
    from lab.data.listing import list_folder
    from lab.data.registry import get_info
    from lab.training.pipeline import _subset_files

    listing = list_folder(source, get_info("folder"), 0.2, seed)
    chosen = {"train": _subset_files(listing.files["train"], train_images, seed)}
    chosen["validation"] = listing.files["validation"]
    for split, items in chosen.items():
        for path, label in items:
            link = root / split / listing.class_names[label] / Path(path).name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(Path(path).resolve())
    return root


def prepare_data(data: str, train_images: int, seed: int, sizes: list[int], work: Path) -> tuple[Path, Path, str]:
    """The folder the variants read, the whole dataset's folder, and a description."""
    if data == "builtin":
        source = write_builtin_folder(work / "builtin", max(sizes))
        what = f"builtin cartoons written as {max(sizes)} px PNGs"
    else:
        source = Path(data).expanduser()
        if not (source / "train").is_dir():
            raise SystemExit(f"--data {data}: expected train/<class>/ and validation/<class>/ folders")
        what = str(source)
    if train_images:
        subset = subset_folder(source, work / f"subset-{train_images}", train_images, seed)
        return subset, source, f"{what}, a class-balanced subset of {train_images} training images"
    return source, source, what
