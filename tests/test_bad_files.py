"""Bad image files on a shared host: an EPS never starts Ghostscript, a damaged image that fools a
quick check is refused by a full one, and one that still reaches training is skipped and counted
instead of ending the run; odd folder shapes and unreadable files say what is wrong; a huge image
is previewed without decoding it whole."""

from __future__ import annotations

import io
import logging
import os
import stat
import struct
import subprocess
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from lab_files import image_bytes, write_files
from PIL import Image, UnidentifiedImageError

from lab.config import RunConfig
from lab.data import images as images_module
from lab.data import listing
from lab.data.images import check_image, load_rgb
from lab.data.listing import list_folder, sample_images
from lab.data.registry import DatasetError, get_info
from lab.training import pipeline

FOLDER = get_info("folder")
NOT_READ = "not an image type the lab reads"
# An EPS whose PostScript never ends: Ghostscript, once started on it, spins forever.
LOOPING_EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 40 40\n{ 1 pop } loop\n"


def two_classes(count: int = 3, prefix: str = "") -> dict[str, bytes]:
    return {
        f"{prefix}{name}/{name}_{i}.png": image_bytes(label, seed=10 * label + i)
        for label, name in enumerate(("cats", "dogs"))
        for i in range(count)
    }


def noisy_image(fmt: str, size: int = 48, seed: int = 0) -> bytes:
    """Random pixels: their compressed data is long enough to damage in the middle."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


def png_with_bad_idat() -> bytes:
    """A PNG whose chunk checksums are right but whose compressed pixels are garbage."""
    data = bytearray(noisy_image("PNG"))
    pos = 8
    while data[pos + 4 : pos + 8] != b"IDAT":
        pos += 12 + struct.unpack(">I", data[pos : pos + 4])[0]
    length = struct.unpack(">I", data[pos : pos + 4])[0]
    start = pos + 8 + length // 3
    data[start : start + 20] = bytes(b ^ 0x5A for b in data[start : start + 20])
    crc = zlib.crc32(bytes(data[pos + 4 : pos + 8 + length]))
    data[pos + 8 + length : pos + 12 + length] = struct.pack(">I", crc)
    return bytes(data)


def jpeg_with_garbage_in_its_scan() -> bytes:
    """A JPEG whose coded data holds a stray marker (APP4, claiming 16 kB) but still ends with FF D9.

    Pillow's libjpeg decodes it (grey where the garbage is); TensorFlow's refuses it:
    "jpeg::Uncompress failed".
    """
    data = bytearray(noisy_image("JPEG"))
    scan = data.index(b"\xff\xda")
    start = scan + 2 + struct.unpack(">H", data[scan + 2 : scan + 4])[0]
    middle = (start + len(data) - 2) // 2
    data[middle : middle + 8] = b"\x13\x37\xff\xe4\x40\x00\x21\x42"
    assert data.endswith(b"\xff\xd9")
    return bytes(data)


def png_file(tmp_path: Path, data: bytes, name: str = "x.png") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- 1. only the lab's image types are decoded: an EPS never runs Ghostscript ----------------------
@pytest.fixture
def no_programs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything starts a program or asks Pillow's EPS plugin to render."""
    from PIL import EpsImagePlugin

    def refuse(*args, **kwargs):
        raise AssertionError(f"a program was started on a user's file: {args[:1]}")

    for name in ("Popen", "run", "call", "check_call", "check_output"):
        monkeypatch.setattr(subprocess, name, refuse)
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", refuse)
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "load", refuse)


@pytest.mark.parametrize("name", ["cats/loop.eps", "cats/loop.jpg"])
def test_an_eps_is_refused_as_a_type_the_lab_does_not_read_and_no_program_runs(tmp_path, no_programs, name):
    folder = write_files(tmp_path / "f", {**two_classes(3), name: LOOPING_EPS})
    found = list_folder(folder, FOLDER, 0.3, 0)
    assert [(note.path, note.reason) for note in found.skipped] == [(name, f"{NOT_READ} (EPS)")]
    assert f"1 file skipped (1 {NOT_READ})" in found.summary()
    with pytest.raises(UnidentifiedImageError):
        load_rgb(folder / name)


def test_formats_beyond_the_labs_are_refused_and_its_own_are_read(tmp_path, no_programs):
    others = {"cats/a.ppm": image_bytes(0, fmt="PPM"), "dogs/b.tga": image_bytes(1, fmt="TGA")}
    ours = {"cats/c.webp": image_bytes(0, fmt="WEBP"), "dogs/d.tif": image_bytes(1, fmt="TIFF")}
    folder = write_files(tmp_path / "f", {**two_classes(2), **others, **ours, "dogs/notes.txt": b"hello"})
    found = list_folder(folder, FOLDER, 0.3, 0)
    assert sorted((n.path, n.reason) for n in found.skipped) == [
        ("cats/a.ppm", f"{NOT_READ} (PPM)"),
        ("dogs/b.tga", f"{NOT_READ} (TGA)"),
    ]
    assert found.ignored == ["dogs/notes.txt"], "a text file is still just not an image"
    used = {Path(path).name for items in found.files.values() for path, _ in items}
    assert {"c.webp", "d.tif"} <= used
    assert load_rgb(folder / "cats" / "c.webp").shape == (24, 24, 3)


# -- 2. damaged images that pass a quick check -----------------------------------------------------
def test_the_damaged_fixtures_fool_pillows_quick_checks_and_stop_tensorflow(tmp_path):
    """The two files reproduce the issue: what the old checks let through, TensorFlow refuses."""
    import tensorflow as tf

    png = png_file(tmp_path, png_with_bad_idat())
    jpeg = png_file(tmp_path, jpeg_with_garbage_in_its_scan(), "x.jpg")
    with Image.open(png) as image:
        image.verify()  # every chunk checksum is right
    with Image.open(jpeg) as image:
        image.load()  # Pillow's libjpeg decodes it whole
    for path, words in ((png, "Invalid PNG data"), (jpeg, "jpeg::Uncompress failed")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=words):
            tf.io.decode_image(tf.io.read_file(str(path)), channels=3)


@pytest.mark.parametrize("make, name", [(png_with_bad_idat, "bad.png"), (jpeg_with_garbage_in_its_scan, "bad.jpg")])
def test_a_damaged_image_that_passes_a_quick_check_is_refused_by_the_full_one(tmp_path, make, name):
    verdict = check_image(png_file(tmp_path, make(), name))
    assert not verdict.usable and verdict.reason.startswith("damaged or truncated")


def test_healthy_jpegs_of_every_kind_still_pass_and_go_to_tensorflow(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    kinds = {
        "plain": {},
        "progressive": {"progressive": True},
        "optimized": {"optimize": True},
        "restarts": {"restart_marker_blocks": 2},
        "exif": {"exif": Image.Exif()},
        "comment": {"comment": b"\xff\xd9 a comment holding FF D9"},
    }
    for name, options in kinds.items():
        path = tmp_path / f"{name}.jpg"
        Image.fromarray(rgb).save(path, "JPEG", **options)
        verdict = check_image(path)
        assert verdict.usable and not verdict.with_pillow, (name, verdict)
    grey = tmp_path / "grey.jpg"
    Image.fromarray(rgb).convert("L").save(grey)
    assert check_image(grey) == images_module.ImageCheck(usable=True, reason="grayscale → RGB")
    trailing = tmp_path / "trailing.jpg"
    trailing.write_bytes((tmp_path / "plain.jpg").read_bytes() + b"data after the end")
    assert check_image(trailing).with_pillow, "data after the end marker: Pillow decodes it"


def tiny_config(root: Path, **changes) -> RunConfig:
    settings = {"image_size": 48, "epochs": 2, "batch_size": 4, "seed": 0, **changes}
    return RunConfig(dataset="folder", data_dir=str(root), **settings)


def folder_with_damage_in_both_splits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Damaged files in train/ and validation/ that reach the pipeline, as if the check had missed them."""
    from lab.data.images import ImageCheck

    folder = write_files(
        tmp_path / "f",
        {
            **two_classes(4, "train/"),
            **two_classes(2, "validation/"),
            "train/cats/bad.jpg": jpeg_with_garbage_in_its_scan(),
            "validation/dogs/bad.png": png_with_bad_idat(),
        },
    )
    monkeypatch.setattr(listing, "check_image", lambda path: ImageCheck(usable=True))
    return folder


def test_an_image_that_fails_to_decode_in_either_split_is_skipped_and_counted(tmp_path, monkeypatch):
    data = pipeline.load(tiny_config(folder_with_damage_in_both_splits(tmp_path, monkeypatch)))
    assert (data.train_count, data.validation_count) == (9, 5)
    assert len(list(data.validation.as_numpy_iterator())) == 4
    assert len(list(data.train.as_numpy_iterator())) == 8
    assert pipeline.skipped_in_decoding(data) == {"train": 1, "validation": 1}


@pytest.mark.parametrize("cache_mb", ["1024", "0"], ids=["cached", "decoded-every-epoch"])
def test_a_run_with_damaged_images_in_both_splits_trains_to_the_end_and_says_how_many(
    tmp_path, monkeypatch, caplog, cache_mb
):
    from lab.training.train import train

    monkeypatch.setenv("LAB_CACHE_MB", cache_mb)
    config = tiny_config(folder_with_damage_in_both_splits(tmp_path, monkeypatch))
    with caplog.at_level(logging.WARNING, logger="lab.training"), warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        rows = train(config)
    assert not [w for w in warned if "ran out of data" in str(w.message)], "the validation split's length is known"
    assert [row["epoch"] for row in rows] == [1, 2]
    assert all(np.isfinite(row["val_loss"]) for row in rows)
    said = [r.getMessage() for r in caplog.records if r.name.startswith("lab.training")]
    assert said == ["2 images could not be decoded and were skipped (1 training, 1 validation)"]


def test_nothing_is_counted_as_skipped_when_every_image_decodes(tmp_path):
    folder = write_files(tmp_path / "f", {**two_classes(3, "train/"), **two_classes(2, "validation/")})
    data = pipeline.load(tiny_config(folder))
    list(data.train.as_numpy_iterator()), list(data.validation.as_numpy_iterator())
    assert pipeline.skipped_in_decoding(data) == {"train": 0, "validation": 0}


# -- 3. folder shapes ----------------------------------------------------------------------------------
def test_one_wrapping_folder_around_the_class_folders_is_stepped_into(tmp_path):
    parent = write_files(tmp_path / "photos_parent", two_classes(3, "photos/"))
    found = list_folder(parent, FOLDER, 0.3, 0)
    assert found.class_names == ("cats", "dogs") and found.root == parent / "photos"
    assert listing.list_dataset(RunConfig(dataset="folder", data_dir=str(parent))).class_names == ("cats", "dogs")
    wrapped_splits = write_files(
        tmp_path / "outer", {**two_classes(3, "photos/train/"), **two_classes(2, "photos/validation/")}
    )
    found = list_folder(wrapped_splits, FOLDER, 0.3, 0)
    assert not found.split_by_fraction and found.sizes()["validation"] == {"cats": 2, "dogs": 2}


@pytest.mark.parametrize("prefix", ["", "photos/"])
def test_train_without_validation_says_what_is_missing(tmp_path, prefix):
    folder = write_files(tmp_path / "f", two_classes(3, f"{prefix}train/"))
    with pytest.raises(DatasetError) as refused:
        list_folder(folder, FOLDER, 0.3, 0)
    assert (
        "has train/ but no validation/ folder: add validation/<class>/ folders, or put the class folders "
        "at the top to have a fraction held out"
    ) in str(refused.value)
    assert "only one class" not in str(refused.value)


def test_class_folders_named_train_and_validation_beside_others_are_classes(tmp_path):
    files = {f"{name}/{name}_{i}.png": image_bytes(i % 3, seed=i) for name in ("train", "bus") for i in range(3)}
    found = list_folder(write_files(tmp_path / "f", files), FOLDER, 0.3, 0)
    assert found.class_names == ("bus", "train") and found.split_by_fraction


@pytest.fixture
def unreadable(monkeypatch: pytest.MonkeyPatch):
    """`unreadable(path)`: the lab may not read `path` (chmod 000; as root, which reads anything, a
    PermissionError from opening or listing it instead)."""
    import builtins

    paths: set[str] = set()
    changed: list[Path] = []
    real_open, real_scandir, real_listdir = builtins.open, os.scandir, os.listdir

    def guarded_open(file, *args, **kwargs):
        if str(file) in paths:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    def guarded_scandir(path="."):
        if str(path) in paths:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    def guarded_listdir(path="."):
        if str(path) in paths:
            raise PermissionError(13, "Permission denied", str(path))
        return real_listdir(path)

    if os.geteuid() == 0:
        monkeypatch.setattr(builtins, "open", guarded_open)
        monkeypatch.setattr(os, "scandir", guarded_scandir)
        monkeypatch.setattr(os, "listdir", guarded_listdir)

    def make(path: Path) -> Path:
        paths.add(str(path))
        path.chmod(0)
        changed.append(path)
        return path

    yield make
    for path in changed:
        path.chmod(stat.S_IRWXU)


def test_an_unreadable_image_is_skipped_as_permission_denied_and_named_within_the_dataset(tmp_path, unreadable):
    folder = write_files(tmp_path / "f", two_classes(3))
    unreadable(folder / "cats" / "cats_1.png")
    found = list_folder(folder, FOLDER, 0.3, 0)
    assert [(n.path, n.reason) for n in found.skipped] == [("cats/cats_1.png", "permission denied")]
    assert "1 file skipped (1 permission denied)" in found.summary()


def test_an_unreadable_class_folder_is_named_and_counted(tmp_path, unreadable):
    folder = write_files(tmp_path / "f", {**two_classes(3), "dogs/private/p.png": image_bytes(1)})
    unreadable(folder / "dogs" / "private")
    found = list_folder(folder, FOLDER, 0.3, 0)
    assert [(n.path, n.reason) for n in found.skipped] == [("dogs/private/", "permission denied")]
    unreadable(folder / "cats")
    with pytest.raises(DatasetError) as refused:
        list_folder(folder, FOLDER, 0.3, 0)
    assert "class folder(s) cats have no usable" in str(refused.value)
    assert "permission denied" in str(refused.value) and "Traceback" not in str(refused.value)


def test_an_unreadable_dataset_folder_says_permission_denied(tmp_path, unreadable):
    folder = write_files(tmp_path / "f", {**two_classes(3, "train/"), **two_classes(2, "validation/")})
    unreadable(folder / "train")
    with pytest.raises(DatasetError, match=r"permission denied: the lab may not read the folder train/"):
        list_folder(folder, FOLDER, 0.3, 0)
    unreadable(folder)
    with pytest.raises(DatasetError, match=r"permission denied: the lab may not read the folder "):
        list_folder(folder, FOLDER, 0.3, 0)


# -- 4. previews of huge images stay small -----------------------------------------------------------
@pytest.mark.parametrize("fmt, suffix", [("PNG", "png"), ("JPEG", "jpg")])
def test_a_preview_of_a_huge_image_never_resizes_more_than_four_times_its_size(tmp_path, monkeypatch, fmt, suffix):
    from PIL import JpegImagePlugin

    folder = write_files(tmp_path / "f", {**two_classes(2, "train/"), **two_classes(1, "validation/")})
    Image.new("RGB", (4000, 3000), (200, 40, 30)).save(folder / "train" / "cats" / f"a_huge.{suffix}", fmt)
    resized, decoded = [], []
    real_resize, real_load = Image.Image.resize, JpegImagePlugin.JpegImageFile.load

    def record_resize(self, *args, **kwargs):
        resized.append(self.size)
        return real_resize(self, *args, **kwargs)

    def record_load(self):
        decoded.append(self.size)
        return real_load(self)

    monkeypatch.setattr(Image.Image, "resize", record_resize)
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", record_load)
    config = RunConfig(dataset="folder", data_dir=str(folder), image_size=48)
    listing.list_dataset(config)  # the check decodes every image once; the preview is what is measured
    resized.clear(), decoded.clear()
    samples = sample_images(config, per_class=3)
    assert samples["cats"].shape == (3, 48, 48, 3)
    assert (4000, 3000) not in resized and max(max(size) for size in resized) <= 4 * 48
    if fmt == "JPEG":
        assert decoded and all(max(size) <= 4000 // 8 for size in decoded), "decoded at an eighth of its size"
    huge = samples["cats"][0]  # "a_huge" sorts first
    assert np.abs(huge.astype(int) - (200, 40, 30)).max() <= 3, "the colour survives the reduction"


def test_a_huge_non_jpeg_is_not_decoded_for_a_preview(tmp_path, monkeypatch):
    from PIL import Image

    from lab.data import images

    path = tmp_path / "huge.png"
    Image.new("RGB", (2000, 1000), (200, 10, 10)).save(path)
    monkeypatch.setenv("LAB_PREVIEW_MAX_PIXELS", str(1000 * 1000))
    decoded = []
    real_load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self.size) or real_load(self))
    tile = images.load_preview(path, 48)
    assert not [size for size in decoded if size == (2000, 1000)], "the huge image was decoded whole"
    assert tile.size == (images.PREVIEW_FACTOR * 48,) * 2
    monkeypatch.setenv("LAB_PREVIEW_MAX_PIXELS", str(4000 * 4000))
    assert images.load_preview(path, 48).getpixel((0, 0))[0] > 150, "under the bound it is read as before"
