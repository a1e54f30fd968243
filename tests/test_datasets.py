"""Datasets: the builtin cartoons are the same everywhere and teach the lesson; folders of
any common image format load, split and subset as documented; a bad folder says what is wrong."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT, shared_datasets_dir

from lab.config import RunConfig
from lab.data import builtin, listing
from lab.data.listing import dataset_info, list_folder, sample_images
from lab.data.registry import REGISTRY, DatasetError, get_info
from lab.training.pipeline import load

FOLDER = get_info("folder")


def folder_config(root: Path, **changes) -> RunConfig:
    return RunConfig(dataset="folder", data_dir=str(root), image_size=48, **changes)


def decoded(dataset) -> tuple[np.ndarray, np.ndarray]:
    pairs = list(dataset.as_numpy_iterator())
    return np.stack([x for x, _ in pairs]), np.array([y for _, y in pairs])


def dominant_channel(images: np.ndarray) -> np.ndarray:
    """conftest's class patterns put class i's colour in channel i (mod 3)."""
    return images.reshape(len(images), -1, 3).mean(axis=1).argmax(axis=1)


# -- the builtin dataset -----------------------------------------------------------------------
def _digest(splits) -> str:
    h = hashlib.sha256()
    for split in ("train", "validation"):
        for array in splits[split]:
            h.update(str(array.dtype).encode() + str(array.shape).encode() + array.tobytes())
    return h.hexdigest()


def test_builtin_is_byte_identical_when_drawn_again():
    first = {k: (x.copy(), y.copy()) for k, (x, y) in builtin.generate(48).items()}
    builtin.generate.cache_clear()
    second = builtin.generate(48)
    assert first is not second
    for split in ("train", "validation"):
        np.testing.assert_array_equal(first[split][0], second[split][0])
        np.testing.assert_array_equal(first[split][1], second[split][1])


def test_builtin_is_byte_identical_in_another_process():
    code = (
        "import hashlib, sys; from lab.data import builtin; s = builtin.generate(48); h = hashlib.sha256()\n"
        "for split in ('train', 'validation'):\n"
        "    for a in s[split]: h.update(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())\n"
        "sys.stdout.write(h.hexdigest())"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert result.stdout == _digest(builtin.generate(48))


def test_builtin_shapes_types_and_balance():
    splits = builtin.generate(48)
    assert set(splits) == {"train", "validation"}
    for split, per_class in (("train", builtin.TRAIN_PER_CLASS), ("validation", builtin.VALIDATION_PER_CLASS)):
        images, labels = splits[split]
        assert images.shape == (per_class * 2, 48, 48, 3) and images.dtype == np.uint8
        assert labels.shape == (per_class * 2,) and labels.dtype == np.int32
        assert np.bincount(labels).tolist() == [per_class, per_class]
        assert images.std() > 20  # drawn, not blank
    assert builtin.generate(64)["train"][0].shape[1:] == (64, 64, 3)


def test_builtin_training_images_share_one_pose_and_validation_images_vary():
    # Backgrounds, clutter and fur colours are random in every image, so averaging many
    # images of a class flattens all of them to a uniform grey. What survives averaging
    # is what sits at the same pixel in every image: the dark eyes and nose, the ears.
    # With one pose (training) the mean image keeps that face, with strong spatial
    # contrast; with varied poses (validation) the features land in different places
    # and the mean image smears out. The spatial standard deviation of the class-mean
    # image measures that; at 48 px it is roughly 4-7x larger for training, so a factor
    # of 2 leaves a wide margin.
    splits = builtin.generate(48)
    for label, name in enumerate(builtin.CLASS_NAMES):
        sharpness = {}
        for split in ("train", "validation"):
            images, labels = splits[split]
            mean_image = images[labels == label].astype(np.float64).mean(axis=(0, 3))
            sharpness[split] = mean_image.std()
        assert sharpness["train"] > 2 * sharpness["validation"], (name, sharpness)


def test_builtin_loads_and_describes_like_the_registry_says():
    data = load(RunConfig(image_size=48))
    info = dataset_info(RunConfig())
    assert data.class_names == info.class_names == builtin.CLASS_NAMES
    assert data.train_count == info.total("train") and data.validation_count == info.total("validation")
    images, labels = decoded(data.train)
    assert images.shape == (data.train_count, 48, 48, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, builtin.generate(48)["train"][0])


# -- folders: layouts ----------------------------------------------------------------------------
def test_train_and_validation_folders_load_with_sorted_class_names(image_folder):
    root = image_folder(classes=("dogs", "cats", "birds"), train=(5, 4, 3), validation=(2, 3, 4))
    data = load(folder_config(root))
    assert data.class_names == ("birds", "cats", "dogs")
    assert (data.train_count, data.validation_count) == (12, 9)
    for dataset, counts in ((data.train, [3, 4, 5]), (data.validation, [4, 3, 2])):
        images, labels = decoded(dataset)
        assert images.shape[1:] == (48, 48, 3) and images.dtype == np.uint8
        assert np.bincount(labels).tolist() == counts
        # Each label is the folder its image came from: birds (written as class 2) are blue, ...
        expected_channel = {0: 2, 1: 1, 2: 0}
        assert dominant_channel(images).tolist() == [expected_channel[int(y)] for y in labels]


def test_dataset_info_reports_the_counts_found(image_folder):
    root = image_folder(classes=("cats", "dogs"), train=(5, 4), validation=(2, 3))
    info = dataset_info(folder_config(root))
    assert info.class_names == ("cats", "dogs")
    assert info.split_sizes == {"train": {"cats": 5, "dogs": 4}, "validation": {"cats": 2, "dogs": 3}}
    assert info.num_classes == 2 and info.total("train") == 9
    assert info.source == str(root)


def test_single_folder_is_split_by_a_seeded_stratified_fraction(image_folder):
    root = image_folder(classes=("a", "b", "c"), train=(12, 10, 7), validation=None)
    all_files = {str(p) for p in root.rglob("*.png")}
    listing = list_folder(root, FOLDER, 0.25, seed=3)
    train, validation = listing.files["train"], listing.files["validation"]
    train_paths, validation_paths = {p for p, _ in train}, {p for p, _ in validation}
    assert not train_paths & validation_paths
    assert train_paths | validation_paths == all_files
    assert len(train) + len(validation) == len(all_files)  # every file exactly once
    # Stratified: each class holds out its own share (rounded up).
    assert listing.sizes()["validation"] == {"a": 3, "b": 3, "c": 2}
    assert listing.sizes()["train"] == {"a": 9, "b": 7, "c": 5}
    for path, label in train + validation:
        assert Path(path).parent.name == listing.class_names[label]
    # Deterministic for a seed, different for another.
    assert list_folder(root, FOLDER, 0.25, seed=3).files == listing.files
    assert list_folder(root, FOLDER, 0.25, seed=4).files["validation"] != validation


def test_single_folder_split_follows_the_configured_fraction(image_folder):
    root = image_folder(classes=("a", "b"), train=20, validation=None)
    info = dataset_info(folder_config(root, validation_split=0.5))
    assert info.split_sizes == {"train": {"a": 10, "b": 10}, "validation": {"a": 10, "b": 10}}
    data = load(folder_config(root, validation_split=0.1))
    assert (data.train_count, data.validation_count) == (36, 4)


# -- folders: image formats ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "mode, suffix",
    [("RGB", ".jpg"), ("RGB", ".JPEG"), ("RGBA", ".png"), ("L", ".png"), ("P", ".png"), ("RGB", ".bmp"), ("P", ".gif")],
)
def test_every_image_mode_decodes_to_rgb_of_the_configured_size(image_folder, mode, suffix):
    root = image_folder(
        classes=("cats", "dogs"), train=3, validation=2, modes=(mode,), suffixes=(suffix,), size=(30, 20)
    )
    data = load(folder_config(root))
    assert (data.train_count, data.validation_count) == (6, 4)
    images, labels = decoded(data.train)
    assert images.shape == (6, 48, 48, 3) and images.dtype == np.uint8
    if mode == "L":
        # Grayscale is repeated into the three channels.
        np.testing.assert_array_equal(images[..., 0], images[..., 1])
        np.testing.assert_array_equal(images[..., 0], images[..., 2])
    else:
        # The colour survives: alpha is dropped, the palette looked up.
        assert dominant_channel(images).tolist() == labels.tolist()


def test_non_images_and_hidden_files_are_skipped_and_non_images_listed(image_folder):
    root = image_folder(classes=("cats", "dogs"), train=3, validation=2)
    (root / "train" / "cats" / "notes.txt").write_text("not an image")
    (root / "validation" / "dogs" / "labels.csv").write_text("a,b")
    (root / "train" / "dogs" / ".DS_Store").write_bytes(b"\0\1")
    (root / "README.md").write_text("top-level files are not classes")
    data = load(folder_config(root))
    assert (data.train_count, data.validation_count) == (6, 4)
    assert sorted(Path(p).name for p in data.ignored) == ["labels.csv", "notes.txt"]
    assert any(p.endswith("notes.txt") and "cats" in p for p in data.ignored)


# -- folders: errors -----------------------------------------------------------------------------
def test_one_class_folder_says_only_one_class(image_folder):
    root = image_folder(classes=("cats",), train=4, validation=None)
    with pytest.raises(DatasetError, match="only one class"):
        load(folder_config(root))
    root = image_folder(classes=("cats",), train=4, validation=2)
    with pytest.raises(DatasetError, match="only one class"):
        dataset_info(folder_config(root))


def test_folder_without_class_folders_says_so(tmp_path):
    (tmp_path / "loose.png").write_bytes(b"")
    with pytest.raises(DatasetError, match="no class folders"):
        load(folder_config(tmp_path))


def test_empty_class_folder_is_named(image_folder):
    root = image_folder(classes=("cats", "dogs"), train=(3, 0), validation=None)
    with pytest.raises(DatasetError, match="dogs"):
        load(folder_config(root))
    root = image_folder(classes=("cats", "dogs"), train=3, validation=(2, 0))
    with pytest.raises(DatasetError) as info:
        load(folder_config(root))
    assert "dogs" in str(info.value) and "validation" in str(info.value)


def test_folder_of_only_non_images_says_no_images(image_folder, tmp_path):
    root = tmp_path / "texts"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        (root / name / "x.txt").write_text("x")
    with pytest.raises(DatasetError, match="no images"):
        load(folder_config(root))


def test_mismatched_train_and_validation_classes_are_listed(image_folder):
    root = image_folder(classes=("cats", "dogs"), train=3, validation=2)
    (root / "validation" / "dogs").rename(root / "validation" / "wolves")
    with pytest.raises(DatasetError) as info:
        load(folder_config(root))
    message = str(info.value)
    assert "differ" in message and "dogs" in message and "wolves" in message


def test_missing_folder_and_missing_data_dir_are_reported(tmp_path):
    with pytest.raises(DatasetError, match="no folder at"):
        load(folder_config(tmp_path / "nowhere"))
    with pytest.raises(DatasetError, match="needs a folder"):
        load(RunConfig(dataset="folder", image_size=48))


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(DatasetError) as info:
        dataset_info(RunConfig(dataset="mnist"))
    assert "mnist" in str(info.value) and all(name in str(info.value) for name in REGISTRY)


def test_named_dataset_without_its_folder_names_the_folder_and_the_download(lab_data_dir):
    with pytest.raises(DatasetError) as info:
        load(RunConfig(dataset="cats_vs_dogs", image_size=48))
    message = str(info.value)
    assert str(lab_data_dir / "cats_and_dogs_filtered") in message
    assert REGISTRY["cats_vs_dogs"].source in message and message.count("https://") == 1


def test_named_dataset_is_found_under_lab_data_dir(lab_data_dir):
    from conftest import write_image_folder

    write_image_folder(lab_data_dir / "cats_and_dogs_filtered", classes=("cats", "dogs"), train=3, validation=2)
    info = dataset_info(RunConfig(dataset="cats_vs_dogs"))
    assert info.split_sizes == {"train": {"cats": 3, "dogs": 3}, "validation": {"cats": 2, "dogs": 2}}


# -- subsets -------------------------------------------------------------------------------------
@pytest.mark.parametrize("count", [4, 6, 10])
def test_train_images_is_a_class_balanced_seeded_subset(image_folder, count):
    root = image_folder(classes=("cats", "dogs"), train=10, validation=2)
    data = load(folder_config(root, train_images=count, seed=1))
    images, labels = decoded(data.train)
    assert data.train_count == count == len(labels)
    assert np.bincount(labels).tolist() == [count // 2, count // 2]
    assert data.validation_count == 4  # validation is never subset
    again, _ = decoded(load(folder_config(root, train_images=count, seed=1)).train)
    np.testing.assert_array_equal(images, again)
    if count < 10:
        other, _ = decoded(load(folder_config(root, train_images=count, seed=2)).train)
        assert not np.array_equal(images, other)


def test_train_images_keeps_each_classes_share(image_folder):
    root = image_folder(classes=("cats", "dogs"), train=(12, 6), validation=2)
    data = load(folder_config(root, train_images=9))
    assert np.bincount(decoded(data.train)[1]).tolist() == [6, 3]


def test_train_images_subsets_the_builtin_dataset():
    data = load(RunConfig(image_size=48, train_images=20, seed=5))
    labels = decoded(data.train)[1]
    assert data.train_count == 20 and np.bincount(labels).tolist() == [10, 10]
    assert data.validation_count == 2 * builtin.VALIDATION_PER_CLASS


def test_train_images_below_the_number_of_classes_is_refused(image_folder):
    root = image_folder(classes=("a", "b", "c"), train=4, validation=1)
    with pytest.raises(DatasetError, match="too few"):
        load(folder_config(root, train_images=2))


@pytest.mark.parametrize("classes, count", [(2, 5), (2, 9), (3, 10)])
def test_train_images_gives_exactly_the_number_asked_for(image_folder, classes, count):
    root = image_folder(classes=("a", "b", "c")[:classes], train=12, validation=1)
    data = load(folder_config(root, train_images=count))
    assert data.train_count == count
    assert np.ptp(np.bincount(decoded(data.train)[1], minlength=classes)) <= 1


# -- sample images -------------------------------------------------------------------------------
def test_sample_images_of_the_builtin_dataset():
    samples = sample_images(RunConfig(image_size=48), per_class=3)
    assert list(samples) == list(builtin.CLASS_NAMES)
    images, labels = builtin.generate(48)["train"]
    for label, name in enumerate(builtin.CLASS_NAMES):
        assert samples[name].shape == (3, 48, 48, 3) and samples[name].dtype == np.uint8
        np.testing.assert_array_equal(samples[name], images[labels == label][:3])
    validation = sample_images(RunConfig(image_size=48), per_class=2, split="validation")
    assert not np.array_equal(validation["cats"], samples["cats"][:2])


def test_sample_images_of_a_folder(image_folder):
    root = image_folder(
        classes=("cats", "dogs", "fish"), train=(5, 2, 3), validation=2, modes=("RGBA", "P", "L", "RGB")
    )
    samples = sample_images(folder_config(root), per_class=3)
    assert list(samples) == ["cats", "dogs", "fish"]
    assert [len(samples[name]) for name in samples] == [3, 2, 3]
    for images in samples.values():
        assert images.shape[1:] == (48, 48, 3) and images.dtype == np.uint8


# -- the real course dataset -------------------------------------------------------------------
@pytest.mark.realdata
def test_real_cats_and_dogs_folder_matches_the_registry(monkeypatch):
    folder = shared_datasets_dir() / "cats_and_dogs_filtered"
    if not (folder / "train").is_dir():
        pytest.skip(f"the real Cats vs Dogs folder is absent: {folder} (set LAB_SHARED_DATASETS to its parent)")
    expected = REGISTRY["cats_vs_dogs"].split_sizes
    assert expected == {"train": {"cats": 1000, "dogs": 1000}, "validation": {"cats": 500, "dogs": 500}}
    info = dataset_info(RunConfig(dataset="cats_vs_dogs", data_dir=str(folder)))
    assert info.class_names == ("cats", "dogs")
    assert info.split_sizes == expected
    # The default location works too, when LAB_DATA_DIR points at the folder's parent.
    monkeypatch.setenv("LAB_DATA_DIR", str(folder.parent))
    assert dataset_info(RunConfig(dataset="cats_vs_dogs")).split_sizes == expected
    assert listing.resolve_folder(RunConfig(dataset="cats_vs_dogs")) == folder
