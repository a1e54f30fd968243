"""Your own images: every bad input of issue 4 gets a clear message, what can be used is used,
and nothing is lost: the user's folder is never written, a refused upload leaves nothing behind."""

from __future__ import annotations

import os
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from lab_files import (
    bomb_png,
    class_files,
    image_bytes,
    png16_rgb,
    rgb_array,
    tree,
    truncated,
    write_files,
    zip_bytes,
    zip_with_entry,
)

from lab.cli import resolve_config
from lab.config import RunConfig
from lab.data.archives import ArchiveError
from lab.data.ingest import IngestError, ingest_upload, ingest_zip, is_upload_folder, uploads_root
from lab.data.listing import dataset_info, list_dataset, list_folder, sample_images
from lab.data.registry import DatasetError, get_info
from lab.runs.hosting import server_folders_allowed
from lab.training.pipeline import Data, load, training_pipeline

FOLDER = get_info("folder")


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The lab's data root for this test; LAB_DATA_DIR points at it so nothing reaches ~/.cache."""
    path = tmp_path / "lab-data"
    monkeypatch.setenv("LAB_DATA_DIR", str(path))
    for name in ("LAB_MAX_UPLOAD_MB", "LAB_MAX_UNPACKED_MB", "LAB_MAX_ZIP_RATIO", "LAB_MAX_IMAGE_PIXELS"):
        monkeypatch.delenv(name, raising=False)
    return path


def nothing_left(root: Path) -> bool:
    """No upload folder and no temporary folder under the data root."""
    uploads = uploads_root(root)
    return not uploads.exists() or not any(uploads.iterdir())


def two_classes(count: int = 5, prefix: str = "") -> dict[str, bytes]:
    return class_files(("cats", "dogs"), count, prefix)


def decoded(config: RunConfig) -> tuple[np.ndarray, np.ndarray, Data]:
    data = load(config)
    pairs = list(data.train.as_numpy_iterator()) + list(data.validation.as_numpy_iterator())
    return np.stack([x for x, _ in pairs]), np.array([y for _, y in pairs]), data


def dominant(images: np.ndarray) -> list[int]:
    return images.reshape(len(images), -1, 3).mean(axis=1).argmax(axis=1).tolist()


# -- good uploads ------------------------------------------------------------------------------------
def test_a_zip_of_class_folders_becomes_a_dataset_inside_the_data_root(root):
    report = ingest_upload(zip_bytes(two_classes(5)), "pets.zip")
    assert report.data_dir == uploads_root(root) / report.content_hash[:16] / "dataset"
    assert report.data_dir.is_dir() and is_upload_folder(report.data_dir)
    assert report.class_names == ("cats", "dogs") and report.split_by_fraction
    assert report.split_sizes == {"train": {"cats": 4, "dogs": 4}, "validation": {"cats": 1, "dogs": 1}}
    assert not report.reused and not report.skipped and not report.converted
    assert report.config_changes() == {"dataset": "folder", "data_dir": str(report.data_dir)}
    assert "pets.zip: 10 images in 2 classes" in report.summary()
    config = RunConfig(image_size=48).replace(**report.config_changes())
    assert dataset_info(config).split_sizes == report.split_sizes
    assert sorted(p.name for p in uploads_root(root).iterdir()) == [report.content_hash[:16]]


def test_train_and_validation_folders_inside_one_wrapping_folder_are_kept_as_they_are(root):
    files = {**two_classes(3, "My Photos/train/"), **two_classes(2, "My Photos/validation/")}
    report = ingest_upload(zip_bytes(files), "photos.zip")
    assert not report.split_by_fraction
    assert report.split_sizes == {"train": {"cats": 3, "dogs": 3}, "validation": {"cats": 2, "dogs": 2}}
    assert (report.data_dir / "train" / "cats").is_dir()


def test_the_same_upload_twice_is_recognised_and_reuses_its_folder_and_cached_runs(root):
    data = zip_bytes(two_classes(4))
    first = ingest_upload(data, "pets.zip")
    marker = first.data_dir / "cats" / "cats_00.png"
    before = marker.stat().st_mtime_ns
    time.sleep(0.01)
    second = ingest_upload(data, "pets again.zip")
    assert second.reused and second.data_dir == first.data_dir and second.content_hash == first.content_hash
    assert marker.stat().st_mtime_ns == before, "nothing was unpacked again"
    assert "uploaded before" in second.summary() and second.filename == "pets again.zip"
    key = RunConfig().replace(**first.config_changes()).key()
    assert RunConfig().replace(**second.config_changes()).key() == key, "the same run key: cached runs are reused"
    other = ingest_upload(zip_bytes(two_classes(3)), "other.zip")
    assert other.data_dir != first.data_dir and not other.reused


def test_more_than_two_classes_work_with_integer_labels_for_softmax(root):
    report = ingest_upload(zip_bytes(class_files(("ant", "bee", "cow"), 4)), "three.zip")
    assert report.class_names == ("ant", "bee", "cow")
    config = RunConfig(image_size=48, batch_size=4).replace(**report.config_changes())
    images, labels, data = decoded(config)
    assert data.num_classes == 3 and dominant(images) == labels.tolist()
    batch_images, batch_labels = next(iter(training_pipeline(data, config)[0]))
    assert batch_labels.shape == (4,), "sparse integer labels for a softmax, not a sigmoid's [B, 1]"


def test_names_with_spaces_and_non_ascii_characters_work(root):
    files = {
        "Mes chats/chat ñ été 1.png": image_bytes(0, seed=1),
        "Mes chats/chat 2 ü.png": image_bytes(0, seed=2),
        "Mes chats/猫 3.png": image_bytes(0, seed=3),
        "chiens & co/chien ø 1.png": image_bytes(1, seed=4),
        "chiens & co/chien 2 ß.png": image_bytes(1, seed=5),
        "chiens & co/犬 3.png": image_bytes(1, seed=6),
    }
    report = ingest_upload(zip_bytes(files), "données à moi.zip")
    assert report.class_names == ("Mes chats", "chiens & co")
    images, labels, _ = decoded(RunConfig(image_size=48).replace(**report.config_changes()))
    assert len(labels) == 6 and dominant(images) == labels.tolist()


def test_macos_clutter_is_left_out_and_listed(root):
    files = {
        **two_classes(3),
        "__MACOSX/cats/._cats_00.png": b"\0\5junk",
        "cats/.DS_Store": b"\0",
        "dogs/._x.png": b"x",
    }
    report = ingest_upload(zip_bytes(files), "mac.zip")
    assert sorted(note.path for note in report.skipped) == [
        "__MACOSX/cats/._cats_00.png",
        "cats/.DS_Store",
        "dogs/._x.png",
    ]
    assert all("clutter" in note.reason for note in report.skipped)
    assert not (report.data_dir.parent / "files").exists() and not list(report.data_dir.rglob("._*"))


# -- bad files among good ones: skipped or converted, and counted -------------------------------------
def test_a_non_image_file_is_skipped_and_counted(root):
    files = {**two_classes(3), "cats/notes.txt": b"my cats", "dogs/labels.csv": b"a,b\n"}
    report = ingest_upload(zip_bytes(files), "pets.zip")
    assert {(n.path, n.reason) for n in report.skipped} == {
        ("cats/notes.txt", "not an image"),
        ("dogs/labels.csv", "not an image"),
    }
    assert report.image_count == 6 and "2 files skipped: 2 not an image" in report.summary()
    assert (report.data_dir / "cats" / "notes.txt").read_bytes() == b"my cats", "kept, only not used"


@pytest.mark.parametrize(
    "files, loose",
    [
        ({**two_classes(3), "README.txt": b"my pets", "stray.png": image_bytes(0)}, ["README.txt", "stray.png"]),
        ({**two_classes(3, "train/"), **two_classes(2, "validation/"), "train/labels.csv": b"a"}, ["train/labels.csv"]),
    ],
)
def test_files_beside_the_class_folders_are_reported_as_skipped_also_when_reused(root, files, loose):
    for attempt in range(2):  # the second upload of the same zip reuses its folder and keeps the notes
        report = ingest_upload(zip_bytes(files), "pets.zip")
        assert report.reused == bool(attempt)
        assert sorted(n.path for n in report.skipped if n.reason == "not in a class folder") == loose
        assert f"{len(loose)} file{'s' if len(loose) > 1 else ''} skipped: " in report.summary()


@pytest.mark.parametrize(
    "name, data, words",
    [
        ("cats/cut.jpg", truncated(image_bytes(0, fmt="JPEG")), "damaged or truncated"),
        ("cats/no_end.jpg", image_bytes(0, fmt="JPEG")[:-2], "damaged or truncated"),
        ("cats/cut.png", truncated(image_bytes(0)), "damaged or truncated"),
        ("cats/flipped.png", bytes(b ^ 0xFF if i == 60 else b for i, b in enumerate(image_bytes(0))), "damaged"),
        ("cats/noise.jpg", os.urandom(2000), "damaged: not readable as an image"),
        ("cats/cut.gif", truncated(image_bytes(0, "P", "GIF")), "damaged or truncated"),
    ],
)
def test_a_corrupt_or_truncated_image_is_skipped_counted_and_never_decoded(root, name, data, words):
    report = ingest_upload(zip_bytes({**two_classes(3), name: data}), "pets.zip")
    assert [note.path for note in report.skipped] == [name]
    assert words in report.skipped[0].reason
    # Decoding every image that is used succeeds: the damaged one never reaches TensorFlow.
    images, labels, data_ = decoded(RunConfig(image_size=48).replace(**report.config_changes()))
    assert len(labels) == 6 and dominant(images) == labels.tolist()


@pytest.mark.parametrize(
    "mode, fmt, note, colour",
    [
        ("RGBA", "PNG", "RGBA → RGB", True),
        ("L", "PNG", "grayscale → RGB", False),
        ("P", "PNG", "palette → RGB", True),
        ("I;16", "PNG", "16-bit → 8-bit RGB", False),
        ("RGB16", "PNG", "16-bit → 8-bit RGB", True),
        ("CMYK", "JPEG", "CMYK → RGB", True),
        ("P", "BMP", "palette → RGB", True),
        ("1", "BMP", "grayscale → RGB", False),
        ("RGB", "TIFF", "TIFF read with Pillow", True),
    ],
)
def test_unusual_colour_modes_and_formats_are_converted_to_rgb(root, mode, fmt, note, colour):
    ext = {"PNG": "png", "JPEG": "jpg", "BMP": "bmp", "TIFF": "tif"}[fmt]
    odd = {
        f"{c}/odd_{i}.{ext}": image_bytes(label, mode, fmt, seed=9 + i)
        for label, c in enumerate(("cats", "dogs"))
        for i in range(2)
    }
    report = ingest_upload(zip_bytes({**two_classes(2), **odd}), f"{mode}.zip")
    assert not report.skipped
    assert sorted(n.path for n in report.converted) == sorted(odd) and all(note in n.reason for n in report.converted)
    images, labels, _ = decoded(RunConfig(image_size=48).replace(**report.config_changes()))
    assert len(labels) == 8
    names = [
        p
        for split in ("train", "validation")
        for p, _ in list_dataset(RunConfig().replace(**report.config_changes())).files[split]
    ]
    for image, label, path in zip(images, labels, names, strict=True):
        if colour or "odd_" not in path:
            assert dominant(image[None])[0] == label, path
        else:  # grey: the three channels are equal, and a class's grey level differs from the other's
            assert np.abs(image[..., 0].astype(int) - image[..., 2]).max() <= 1, path


def test_sixteen_bit_images_are_scaled_not_clipped(root, tmp_path):
    grey = np.full((20, 20), 120 * 257, dtype=np.uint16)
    from PIL import Image

    folder = tmp_path / "mine"
    for c in ("a", "b"):
        (folder / c).mkdir(parents=True)
        Image.fromarray(grey).save(folder / c / "grey16.png")
        (folder / c / "rgb16.png").write_bytes(png16_rgb(np.full((20, 20, 3), 120 * 257, np.uint16)))
        Image.fromarray(grey).save(folder / c / "grey16.tif")
    images, _, _ = decoded(RunConfig(dataset="folder", data_dir=str(folder), image_size=48, validation_split=0.5))
    assert np.abs(images.astype(int) - 120).max() <= 1, "16-bit 120*257 decodes to 120, not to 255"
    samples = sample_images(RunConfig(dataset="folder", data_dir=str(folder), image_size=48), per_class=3)
    assert all(np.abs(s.astype(int) - 120).max() <= 1 for s in samples.values())


def test_too_small_and_bomb_images_are_refused_and_counted(root, monkeypatch):
    files = {
        **two_classes(3),
        "cats/tiny.png": image_bytes(0, size=(4, 30)),
        "dogs/bomb.png": bomb_png(30_000),
        "dogs/big.png": image_bytes(1, size=(300, 200)),
    }
    monkeypatch.setenv("LAB_MAX_IMAGE_PIXELS", "50000")  # 300 x 200 = 60,000 pixels is over it
    report = ingest_upload(zip_bytes(files), "pets.zip")
    reasons = {n.path: n.reason for n in report.skipped}
    assert set(reasons) == {"cats/tiny.png", "dogs/bomb.png", "dogs/big.png"}
    assert "too small" in reasons["cats/tiny.png"] and "4x30" in reasons["cats/tiny.png"]
    assert "decompression bomb" in reasons["dogs/bomb.png"] and "decompression bomb" in reasons["dogs/big.png"]
    assert report.image_count == 6


# -- uploads refused as a whole, leaving nothing behind -------------------------------------------------
@pytest.mark.parametrize(
    "files, words",
    [
        (class_files(("cats",), 5), "only one class folder ('cats')"),
        (class_files(("cats",), 5, "wrapper/"), "only one class folder ('cats')"),
        ({**class_files(("cats",), 3), "dogs/readme.txt": b"none yet"}, "dogs have no usable"),
        ({"cats/a.txt": b"x", "dogs/b.txt": b"y"}, "no images found"),
        ({"cats/cut.jpg": truncated(image_bytes(0, fmt="JPEG")), **class_files(("dogs",), 2)}, "cats have no usable"),
        ({"a.png": image_bytes(0), "b.png": image_bytes(1)}, "no class folders"),
    ],
    ids=["one-class", "one-class-wrapped", "empty-class", "no-images", "only-damaged", "no-folders"],
)
def test_one_class_an_empty_class_or_no_images_refuse_the_upload(root, files, words):
    with pytest.raises(IngestError) as refused:
        ingest_upload(zip_bytes(files), "mine.zip")
    message = str(refused.value)
    assert message.startswith("mine.zip was refused: ") and words in message and "Nothing was kept." in message
    assert ".unpack-" not in message, "the temporary folder is never named"
    assert nothing_left(root)


def symlink_entry(name: str = "cats/link.png", target: bytes = b"/etc/passwd") -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix, so the mode bits below are read
    info.external_attr = 0o120777 << 16
    return info, target


@pytest.mark.parametrize(
    "entry, words",
    [
        ((zipfile.ZipInfo("../escaped.png"), b"x"), "climbs out with '..'"),
        ((zipfile.ZipInfo("cats/../../escaped.png"), b"x"), "climbs out with '..'"),
        ((zipfile.ZipInfo("..\\escaped.png"), b"x"), "climbs out with '..'"),
        ((zipfile.ZipInfo("/tmp/escaped.png"), b"x"), "absolute path"),
        ((zipfile.ZipInfo("C:/escaped.png"), b"x"), "absolute path"),
        (symlink_entry(), "symbolic link"),
    ],
    ids=["dotdot", "nested-dotdot", "backslash-dotdot", "absolute", "drive", "symlink"],
)
def test_entries_escaping_the_target_are_refused_before_anything_is_written(root, tmp_path, entry, words):
    info, data = entry
    upload = zip_with_entry(two_classes(3), info, data)
    assert info.filename in zipfile.ZipFile(__import__("io").BytesIO(upload)).namelist()
    outside = tree(tmp_path)
    with pytest.raises(ArchiveError) as refused:
        ingest_upload(upload, "evil.zip")
    assert words in str(refused.value) and "Nothing was unpacked" in str(refused.value)
    assert nothing_left(root)
    after = {k: v for k, v in tree(tmp_path).items() if not k.startswith("lab-data")}
    assert after == outside and not Path("/tmp/escaped.png").exists()


def test_a_zip_bomb_is_refused_by_its_ratio_and_by_its_total_size(root, monkeypatch):
    bomb = zip_bytes({**two_classes(2), "cats/zeros.bmp": b"\0" * (40 * 1024 * 1024)})
    assert len(bomb) < 200_000
    with pytest.raises(ArchiveError, match=r"would expand [\d,]+ times.*like a zip bomb"):
        ingest_upload(bomb, "bomb.zip")
    assert nothing_left(root)
    monkeypatch.setenv("LAB_MAX_UNPACKED_MB", "0.001")
    with pytest.raises(ArchiveError, match=r"would unpack to .* more than the limit of .* \(LAB_MAX_UNPACKED_MB\)"):
        ingest_upload(zip_bytes(two_classes(3)), "big.zip")
    assert nothing_left(root)


def test_an_upload_over_the_size_limit_is_refused_before_it_is_read(root, monkeypatch, tmp_path):
    data = zip_bytes(two_classes(3))
    monkeypatch.setenv("LAB_MAX_UPLOAD_MB", str(len(data) / 2 / 1024 / 1024))
    with pytest.raises(IngestError, match=r"big\.zip was refused: it is .* over the upload limit .*LAB_MAX_UPLOAD_MB"):
        ingest_upload(data, "big.zip")
    (tmp_path / "big.zip").write_bytes(data)
    with pytest.raises(IngestError, match="over the upload limit"):
        ingest_zip(tmp_path / "big.zip")
    assert nothing_left(root)


@pytest.mark.parametrize(
    "data, words",
    [
        (b"just some text", "not a zip archive"),
        (truncated(zip_bytes(class_files(("cats", "dogs"), 3))), "not a zip archive"),
    ],
    ids=["text", "truncated-zip"],
)
def test_a_file_that_is_not_a_zip_or_a_damaged_zip_is_refused(root, data, words):
    with pytest.raises(ArchiveError, match=words):
        ingest_upload(data, "photos.zip")
    assert nothing_left(root)


def test_a_zip_whose_data_is_damaged_is_refused_and_nothing_is_left(root):
    data = bytearray(zip_bytes(two_classes(3), compression=zipfile.ZIP_STORED))
    data[len(data) // 3] ^= 0xFF  # inside a stored file: its CRC no longer matches
    with pytest.raises(ArchiveError, match="is damaged"):
        ingest_upload(bytes(data), "photos.zip")
    assert nothing_left(root)


def test_a_temporary_folder_left_by_a_killed_process_is_swept(root):
    stale = uploads_root(root) / ".unpack-dead"
    stale.mkdir(parents=True)
    (stale / "half.png").write_bytes(b"x")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    report = ingest_upload(zip_bytes(two_classes(3)), "pets.zip")
    assert not stale.exists() and report.data_dir.is_dir()


# -- the user's own folder: read in place, never written ------------------------------------------------
def test_a_users_folder_with_every_kind_of_bad_file_is_listed_and_loaded_without_a_single_write(root, tmp_path):
    folder = write_files(
        tmp_path / "my photos",
        {
            **two_classes(3),
            "cats/cmyk.jpg": image_bytes(0, "CMYK", "JPEG"),
            "dogs/sixteen.png": png16_rgb(rgb_array(1).astype(np.uint16) * 257),
            "dogs/palette.bmp": image_bytes(1, "P", "BMP"),
            "cats/cut.jpg": truncated(image_bytes(0, fmt="JPEG")),
            "cats/tiny.png": image_bytes(0, size=(5, 5)),
            "dogs/notes.txt": b"hello",
        },
    )
    before = tree(folder)
    config = RunConfig(dataset="folder", data_dir=str(folder), image_size=48)
    found = list_dataset(config)
    assert sorted(found.ignored) == ["dogs/notes.txt"]
    assert sorted(n.path for n in found.skipped) == ["cats/cut.jpg", "cats/tiny.png"]
    assert sorted(n.path for n in found.converted) == ["cats/cmyk.jpg", "dogs/palette.bmp", "dogs/sixteen.png"]
    summary = found.summary()
    assert "9 images in 2 classes" in summary and "3 files skipped" in summary and "3 converted" in summary
    images, labels, _ = decoded(config)
    assert len(labels) == 9 and dominant(images) == labels.tolist()
    sample_images(config, per_class=5)
    assert tree(folder) == before, "the user's folder is read, never written"
    assert not root.exists() or not any(root.rglob("*")), "and nothing was written to the data root either"


def test_listing_a_folder_twice_checks_each_file_once(root, tmp_path, monkeypatch):
    from lab.data import images

    folder = write_files(tmp_path / "f", two_classes(3))
    calls = []
    original = images._inspect
    monkeypatch.setattr(images, "_inspect", lambda path: calls.append(path) or original(path))
    list_folder(folder, FOLDER, 0.2, 42)
    list_folder(folder, FOLDER, 0.2, 42)
    assert len(calls) == 6
    (folder / "cats" / "cats_00.png").write_bytes(image_bytes(0, size=(30, 30)))
    list_folder(folder, FOLDER, 0.2, 42)
    assert len(calls) == 7, "a changed file is checked again"


def test_a_folder_whose_images_are_all_damaged_says_so(root, tmp_path):
    folder = write_files(tmp_path / "f", {"cats/a.jpg": b"not really", "dogs/b.png": b"nor this"})
    with pytest.raises(DatasetError, match=r"no images found for train.*2 files skipped \(2 damaged: not readable"):
        list_folder(folder, FOLDER, 0.2, 42)


# -- the command line: --data takes a zip ----------------------------------------------------------------
def test_cli_data_takes_a_zip_and_unpacks_it_once(root, tmp_path, capsys):
    upload = tmp_path / "my pets.zip"
    upload.write_bytes(zip_bytes({**two_classes(4), "cats/notes.txt": b"x"}))
    name, config = resolve_config("quick", str(upload), [])
    assert config.dataset == "folder" and Path(config.data_dir).parent.parent == uploads_root(root)
    err = capsys.readouterr().err
    assert "my pets.zip: 8 images in 2 classes" in err and "1 file skipped: 1 not an image" in err
    again = resolve_config("quick", str(upload), [])[1]
    assert again == config and "uploaded before" in capsys.readouterr().err


def test_cli_data_folder_says_what_was_skipped(root, tmp_path, capsys):
    folder = write_files(tmp_path / "f", {**two_classes(3), "cats/cut.png": truncated(image_bytes(0))})
    resolve_config("quick", str(folder), [])
    assert "1 file skipped (1 damaged or truncated)" in capsys.readouterr().err


def test_cli_data_refuses_a_bad_zip_with_exit_status_2(root, tmp_path, capsys):
    from lab.cli import main

    upload = tmp_path / "one.zip"
    upload.write_bytes(zip_bytes(class_files(("cats",), 3)))
    assert main(["run", "quick", "--data", str(upload)]) == 2
    assert "one.zip was refused: the zip has only one class folder ('cats')" in capsys.readouterr().err
    assert nothing_left(root)


# -- hosted mode -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "env, allowed",
    [
        ({}, True),
        ({"LAB_HOSTED": "1"}, False),
        ({"LAB_HOSTED": "1", "LAB_ALLOW_SERVER_FOLDERS": "1"}, True),
        ({"LAB_ALLOW_SERVER_FOLDERS": "0"}, False),
    ],
)
def test_reading_server_folders_is_off_when_hosted_unless_allowed(monkeypatch, env, allowed):
    for name in ("LAB_HOSTED", "LAB_ALLOW_SERVER_FOLDERS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert server_folders_allowed() is allowed


def test_only_unpacked_uploads_count_as_upload_folders(root, tmp_path):
    report = ingest_upload(zip_bytes(two_classes(3)), "pets.zip")
    assert is_upload_folder(report.data_dir) and is_upload_folder(str(report.data_dir))
    assert not is_upload_folder(tmp_path) and not is_upload_folder(uploads_root(root))
    assert not is_upload_folder(uploads_root(root) / ".." / ".." / "lab-data")
    assert not is_upload_folder(uploads_root(root) / "missing")
    assert not is_upload_folder(report.data_dir / "cats") and not is_upload_folder(report.data_dir.parent)
    assert is_upload_folder(uploads_root(root) / report.content_hash[:16] / ".." / report.content_hash[:16] / "dataset")


def test_an_image_damaged_after_listing_is_dropped_from_training_instead_of_ending_it(root, tmp_path, monkeypatch):
    from lab.data import listing
    from lab.data.images import ImageCheck

    folder = write_files(tmp_path / "f", {**two_classes(3, "train/"), **two_classes(1, "validation/")})
    # As if the file were damaged between the check and the decoding.
    (folder / "train" / "cats" / "cats_00.png").write_bytes(truncated(image_bytes(0)))
    monkeypatch.setattr(listing, "check_image", lambda path: ImageCheck(usable=True))
    data = load(RunConfig(dataset="folder", data_dir=str(folder), image_size=48))
    assert data.train_count == 6 and len(list(data.train.as_numpy_iterator())) == 5


def test_a_password_protected_entry_or_too_many_entries_refuse_the_zip(root, monkeypatch):
    data = bytearray(zip_bytes(two_classes(3)))
    central = data.rindex(b"PK\x01\x02")  # the last entry's central directory record
    data[central + 8] |= 0x1  # its "encrypted" flag
    with pytest.raises(ArchiveError, match="is password-protected. Nothing was unpacked"):
        ingest_upload(bytes(data), "locked.zip")
    monkeypatch.setenv("LAB_MAX_ZIP_FILES", "4")
    with pytest.raises(ArchiveError, match="6 entries, more than the limit of 4"):
        ingest_upload(zip_bytes(two_classes(3)), "many.zip")
    assert nothing_left(root)
