"""Shared fixtures: tiny image folders written with Pillow, and the real datasets' location.

The folders follow the two layouts the lab reads: `train/<class>/ + validation/<class>/`,
or `<class>/` alone. Every class gets its own pattern and dominant colour (class 0 red
horizontal stripes, class 1 green vertical stripes, class 2 blue checks, ...), so a
decoded image can be traced back to its class; a little seeded noise makes every image
different.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tools.paths import shared_datasets_dir  # noqa: F401 (the real datasets' location, for the tests)

# Quiet TensorFlow's start-up chatter in test output; set before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]


def class_pattern(label: int, size: tuple[int, int] = (40, 40), seed: int = 0) -> np.ndarray:
    """An RGB uint8 image [H, W, 3] whose pattern and dominant channel identify `label`."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    kind = label % 3
    if kind == 0:
        stripes = (yy // 4) % 2
    elif kind == 1:
        stripes = (xx // 4) % 2
    else:
        stripes = ((xx // 5) + (yy // 5)) % 2
    image = np.full((height, width, 3), 30.0)
    image[..., label % 3] = 150.0 + 90.0 * stripes
    noise = np.random.default_rng(seed).integers(-10, 11, size=image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def save_image(path: Path, label: int, mode: str = "RGB", size: tuple[int, int] = (40, 40), seed: int = 0) -> Path:
    """Write one class-pattern image in `mode` (RGB, RGBA, L or P); the suffix picks the format."""
    rgb = Image.fromarray(class_pattern(label, size, seed), "RGB")
    if mode == "RGB":
        image = rgb
    elif mode == "RGBA":
        image = rgb.convert("RGBA")
        alpha = np.full((size[1], size[0]), 255, dtype=np.uint8)
        alpha[: size[1] // 2] = 0  # the top half fully transparent, colour kept underneath
        image.putalpha(Image.fromarray(alpha, "L"))
    elif mode == "L":
        image = rgb.convert("L")
    elif mode == "P":
        image = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    else:
        raise ValueError(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def write_image_folder(
    root: Path,
    classes: Sequence[str] = ("cats", "dogs"),
    train: int | Sequence[int] = 6,
    validation: int | Sequence[int] | None = 4,
    modes: Sequence[str] = ("RGB",),
    suffixes: Sequence[str] = (".png",),
    size: tuple[int, int] = (40, 40),
) -> Path:
    """Write a dataset folder and return its root.

    With `validation` set: `root/train/<class>/*` and `root/validation/<class>/*`; with
    `validation=None`: `root/<class>/*` only. Counts are per class (one number for all
    classes or one per class). Files cycle through `modes` and `suffixes`.
    """

    def per_class(count):
        return [count] * len(classes) if isinstance(count, int) else list(count)

    splits = {"train": per_class(train)} if validation is not None else {"": per_class(train)}
    if validation is not None:
        splits["validation"] = per_class(validation)
    seed = 0
    for split, counts in splits.items():
        for label, (name, count) in enumerate(zip(classes, counts, strict=True)):
            folder = root / split / name if split else root / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                mode = modes[i % len(modes)]
                suffix = suffixes[i % len(suffixes)]
                if suffix.lower() in (".jpg", ".jpeg") and mode in ("RGBA", "P"):
                    mode = "RGB"  # JPEG stores neither alpha nor a palette
                save_image(folder / f"{name}_{i:03d}{suffix}", label, mode, size, seed=seed)
                seed += 1
    return root


@pytest.fixture
def image_folder(tmp_path: Path) -> Callable[..., Path]:
    """`image_folder(**kwargs)` writes a dataset under tmp_path (see `write_image_folder`)."""
    counter = iter(range(1_000_000))

    def make(name: str | None = None, **kwargs) -> Path:
        return write_image_folder(tmp_path / (name or f"data{next(counter)}"), **kwargs)

    return make


@pytest.fixture
def lab_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty LAB_DATA_DIR, so that named datasets never read the user's own folder."""
    path = tmp_path / "lab-data"
    path.mkdir()
    monkeypatch.setenv("LAB_DATA_DIR", str(path))
    return path


@pytest.fixture(autouse=True)
def one_run_at_a_time_and_no_atlas(monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's tests train the default preset one run at a time: a server's defaults (several runs at
    once, the lesson atlas answering the default preset) are tested by tests/test_worker_parallel.py."""
    monkeypatch.setenv("LAB_PARALLEL_RUNS", "1")
    monkeypatch.setenv("LAB_ATLAS", "0")
