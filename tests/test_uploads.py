"""Uploads on a shared host: odd zip entries are refused in plain words, a disk error never shows a
traceback or a server path, a hosted upload is private (a random token, a folder of its own), and
the upload area keeps to a size budget by removing the least recently used uploads, never one in use."""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import re
import time
import zipfile
from pathlib import Path

import pytest
from lab_files import class_files, image_bytes, zip_bytes
from test_download import CATS_ENV, Server

from lab.data import archives, download, ingest
from lab.data.archives import ArchiveError, ZipLimits, unpack_zip
from lab.data.download import DownloadError, ensure_dataset
from lab.data.ingest import (
    IngestError,
    ingest_upload,
    ingest_zip,
    is_upload_folder,
    upload_folder,
    upload_token,
    uploads_root,
)
from lab.data.registry import DatasetError

_ENV = (
    "LAB_HOSTED",
    "LAB_UPLOADS_MB",
    "LAB_UPLOAD_IN_USE_SECONDS",
    "LAB_MAX_UPLOAD_MB",
    "LAB_MAX_UNPACKED_MB",
    "LAB_MAX_ZIP_RATIO",
    "LAB_MAX_ZIP_FILES",
)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The lab's data root for this test, on a laptop (not hosted), with the default limits."""
    path = tmp_path / "lab-data"
    monkeypatch.setenv("LAB_DATA_DIR", str(path))
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    return path


def nothing_left(root: Path) -> bool:
    uploads = uploads_root(root)
    return not uploads.exists() or not any(uploads.iterdir())


def pets(count: int = 3, seed: int = 0) -> bytes:
    return zip_bytes(class_files(("cats", "dogs"), count, seed=seed))


def refusal(data: bytes, name: str = "odd.zip") -> str:
    with pytest.raises(ArchiveError) as refused:
        ingest_upload(data, name)
    return str(refused.value)


# -- 1. zip entries the file system cannot hold ---------------------------------------------------------
@pytest.mark.parametrize(
    "odd",
    [
        {"cats/sub": b"a file", "cats/sub/0.png": image_bytes(0)},
        {"cats/sub/0.png": image_bytes(0), "cats/sub": b"a file"},
        {"cats/sub/": b"", "cats/sub": b"a file"},
        {"cats/sub": b"a file", "cats/sub/deeper/0.png": image_bytes(0)},
    ],
    ids=["file-first", "folder-first", "folder-entry", "deeper"],
)
def test_a_file_and_a_folder_of_the_same_name_are_refused_before_anything_is_written(root, tmp_path, odd):
    data = zip_bytes({**class_files(("cats", "dogs"), 2), **odd})
    assert zipfile.ZipFile(io.BytesIO(data)).namelist()[-len(odd) :] == list(odd), "in the order given"
    message = refusal(data)
    assert "odd.zip was refused" in message and "'cats/sub'" in message
    assert "both a file and a folder" in message and "Nothing was unpacked" in message
    assert nothing_left(root)
    target = tmp_path / "direct"
    with pytest.raises(ArchiveError):
        unpack_zip(io.BytesIO(data), target, ZipLimits(), "odd.zip")
    assert not target.exists(), "refused in the planning pass: not even the target folder was made"


@pytest.mark.parametrize(
    "entry, words",
    [
        ("cats/" + "a" * 300 + ".png", "bytes long, more than a file system allows (255 bytes)"),
        (
            "cats/" + "é" * 200 + ".png",
            "bytes long, more than a file system allows (255 bytes)",
        ),  # 200 characters, 400 bytes
        ("cats/" + "/".join(["d" * 200] * 25) + "/x.png", "bytes long, more than a file system allows (4,096 bytes)"),
    ],
    ids=["long-name", "long-multibyte-name", "long-path"],
)
def test_names_and_paths_too_long_for_the_file_system_are_refused_and_shortened_in_the_message(
    root, tmp_path, entry, words
):
    data = zip_bytes({**class_files(("cats", "dogs"), 2), entry: image_bytes(0)})
    message = refusal(data)
    assert "odd.zip was refused" in message and words in message and "Nothing was unpacked" in message
    assert entry not in message and len(message) < 400, "a huge name is shortened"
    assert entry[:20] in message, "but still recognisable"
    assert nothing_left(root)
    target = tmp_path / "direct"
    with pytest.raises(ArchiveError):
        unpack_zip(io.BytesIO(data), target, ZipLimits(), "odd.zip")
    assert not target.exists()


def test_a_path_that_fits_alone_but_not_under_the_target_folder_is_refused(tmp_path):
    deep = tmp_path / ("t" * 200) / ("u" * 200)
    entry = "/".join(["d" * 200] * 19) + "/x.png"  # 3,825 bytes: fits alone, not under `deep`
    assert len(entry) < 4096 < len(str(deep)) + 1 + len(entry)
    data = zip_bytes({entry: image_bytes(0)})
    with pytest.raises(ArchiveError, match=r"more than a file system allows \(4,096 bytes\)"):
        unpack_zip(io.BytesIO(data), deep, ZipLimits(), "odd.zip")
    assert not deep.exists()


class FailingWrites:
    """Stands in for `open` in a module: files open, and the first write fails with `error`."""

    def __init__(self, error: int) -> None:
        self.error = error

    def __call__(self, path, mode="r", *args, **kwargs):
        file = builtins.open(path, mode, *args, **kwargs)
        if "w" in mode or "x" in mode:
            error = OSError(self.error, os.strerror(self.error), str(path))

            def fail(chunk):
                raise error

            file.write = fail
        return file


@pytest.mark.parametrize(
    "error, words",
    [
        (errno.ENOSPC, "the disk is full"),
        (errno.EACCES, "permission denied"),
        (errno.EIO, "input/output error"),
    ],
)
def test_a_disk_error_while_unpacking_is_one_plain_sentence_and_leaves_nothing(root, monkeypatch, error, words):
    monkeypatch.setenv("LAB_HOSTED", "1")
    monkeypatch.setattr(archives, "open", FailingWrites(error), raising=False)
    with pytest.raises(DatasetError) as failed:
        ingest_upload(pets(), "pets.zip")
    message = str(failed.value)
    assert message.startswith("pets.zip could not be unpacked: ") and words in message.lower(), message
    assert "Nothing was kept" in message
    assert str(root) not in message and "/" not in message.replace("input/output", ""), "no server path"
    assert "Errno" not in message and "Traceback" not in message
    assert nothing_left(root), "the staging folder was removed"


def test_a_disk_error_after_unpacking_is_plain_too(root, monkeypatch):
    def refuse(staging, final):
        raise PermissionError(errno.EACCES, "Permission denied", str(final))

    monkeypatch.setattr(ingest, "publish", refuse)
    with pytest.raises(DatasetError) as failed:
        ingest_upload(pets(), "pets.zip")
    message = str(failed.value)
    assert "pets.zip could not be unpacked: " in message and "permission denied" in message
    assert str(root) not in message and nothing_left(root)


# -- 2. hosted uploads are private ---------------------------------------------------------------------
def test_hosted_the_same_zip_twice_gets_two_private_folders_with_random_tokens(root, monkeypatch):
    monkeypatch.setenv("LAB_HOSTED", "1")
    data = pets()
    first = ingest_upload(data, "pets.zip")
    second = ingest_upload(data, "pets.zip")
    assert not first.reused and not second.reused and "uploaded before" not in second.summary()
    assert first.data_dir != second.data_dir, "nobody learns that someone else uploaded the same zip"
    for report in (first, second):
        token = upload_token(report.data_dir)
        assert token == report.token and re.fullmatch(r"[0-9a-f]{32}", token)
        assert token not in report.content_hash, "the token cannot be computed from the zip"
        assert upload_folder(token) == report.data_dir and is_upload_folder(report.data_dir)
    assert upload_folder(first.content_hash[:16]) is None, "the zip's hash opens nothing"
    assert sorted(p.name for p in uploads_root(root).iterdir()) == sorted([first.token, second.token])


def test_private_can_be_asked_for_by_the_caller_and_refused_by_the_caller(root, monkeypatch, tmp_path):
    data = pets()
    private = ingest_upload(data, "pets.zip", private=True)
    assert len(private.token) == 32
    monkeypatch.setenv("LAB_HOSTED", "1")
    shared = ingest_upload(data, "pets.zip", private=False)
    assert shared.token == shared.content_hash[:16]
    (tmp_path / "pets.zip").write_bytes(data)
    assert ingest_zip(tmp_path / "pets.zip").token != private.token


def test_laptop_uploads_keep_their_content_hash_and_both_token_shapes_resolve(root, monkeypatch):
    data = pets()
    laptop = ingest_upload(data, "pets.zip")
    assert laptop.token == laptop.content_hash[:16] and upload_token(laptop.data_dir) == laptop.token
    assert ingest_upload(data, "pets.zip").reused
    monkeypatch.setenv("LAB_HOSTED", "1")
    hosted = ingest_upload(pets(seed=5), "other.zip")
    for report in (laptop, hosted):
        assert upload_folder(report.token) == report.data_dir


@pytest.mark.parametrize(
    "token",
    ["", "../../etc", "0" * 16 + "/", "0" * 15, "0" * 17, "0" * 31, "0" * 33, "A" * 32, "g" * 16, ".unpack-x"],
)
def test_only_well_formed_tokens_are_looked_up(root, token):
    report = ingest_upload(pets(), "pets.zip")
    assert upload_folder(report.token) == report.data_dir
    assert upload_folder(token) is None


def test_a_folder_put_in_the_uploads_folder_by_hand_is_not_an_upload(root):
    ingest_upload(pets(), "pets.zip")
    by_hand = uploads_root(root) / "mine" / "dataset"
    (by_hand / "cats").mkdir(parents=True)
    assert not is_upload_folder(by_hand) and upload_token(by_hand) is None and upload_folder("mine") is None


# -- 3. the upload budget ------------------------------------------------------------------------------
def meta(report) -> dict:
    return json.loads((report.data_dir.parent / "upload.json").read_text(encoding="utf-8"))


def last_used(report, seconds_ago: float) -> None:
    when = time.time() - seconds_ago
    os.utime(report.data_dir.parent / "upload.json", (when, when))


def used_at(report) -> float:
    return (report.data_dir.parent / "upload.json").stat().st_mtime


def budget_for(monkeypatch, uploads: float, size: int) -> None:
    """A budget of `uploads` times an upload of `size` bytes."""
    monkeypatch.setenv("LAB_UPLOADS_MB", str(uploads * size / 1024 / 1024))


def test_an_upload_records_its_size_on_disk(root):
    report = ingest_upload(pets(), "pets.zip")
    files = [p for p in report.data_dir.rglob("*") if p.is_file()]
    assert meta(report)["bytes"] >= sum(p.stat().st_size for p in files) > 0


def test_the_least_recently_used_uploads_go_first_when_the_budget_is_full(root, monkeypatch):
    monkeypatch.setenv("LAB_UPLOAD_IN_USE_SECONDS", "600")
    a = ingest_upload(pets(seed=1), "a.zip")
    budget_for(monkeypatch, 2.5, meta(a)["bytes"])
    b = ingest_upload(pets(seed=2), "b.zip")
    last_used(a, 7200)
    last_used(b, 3600)
    c = ingest_upload(pets(seed=3), "c.zip")
    assert not a.data_dir.exists() and b.data_dir.is_dir() and c.data_dir.is_dir()
    assert upload_folder(a.token) is None, "an old link to it says to upload the zip again"
    last_used(b, 7200)
    last_used(c, 3600)
    assert upload_folder(b.token) == b.data_dir  # a link opens b: b is now the most recently used
    assert used_at(b) > time.time() - 600
    d = ingest_upload(pets(seed=4), "d.zip")
    assert b.data_dir.is_dir() and not c.data_dir.exists() and d.data_dir.is_dir()
    names = sorted(p.name for p in uploads_root(root).iterdir())
    assert names == sorted([b.token, d.token]), "nothing half-removed is left"


def test_uploads_in_use_are_never_removed_so_a_new_one_is_refused(root, monkeypatch):
    a = ingest_upload(pets(seed=1), "a.zip")
    budget_for(monkeypatch, 1.5, meta(a)["bytes"])
    last_used(a, 1800)  # within the default hour: in use
    with pytest.raises(IngestError) as refused:
        ingest_upload(pets(seed=2), "b.zip")
    message = str(refused.value)
    assert message.startswith("b.zip was refused: ") and "in use" in message and "LAB_UPLOADS_MB" in message
    assert "Nothing was kept" in message and str(root) not in message
    assert sorted(p.name for p in uploads_root(root).iterdir()) == [a.token]
    last_used(a, 7200)
    b = ingest_upload(pets(seed=2), "b.zip")
    assert not a.data_dir.exists() and b.data_dir.is_dir()


def test_an_upload_over_the_whole_budget_is_refused_and_nothing_is_kept(root, monkeypatch):
    monkeypatch.setenv("LAB_UPLOADS_MB", "0.001")
    with pytest.raises(IngestError) as refused:
        ingest_upload(pets(), "pets.zip")
    message = str(refused.value)
    assert message.startswith("pets.zip was refused: ") and "LAB_UPLOADS_MB" in message
    assert "more than the whole upload budget" in message and "Nothing was kept" in message
    assert nothing_left(root)


def test_using_an_upload_again_marks_it_used(root, monkeypatch):
    data = pets()
    report = ingest_upload(data, "pets.zip")
    last_used(report, 7200)
    assert ingest_upload(data, "pets.zip").reused
    assert used_at(report) > time.time() - 600, "ingested again: used"
    last_used(report, 7200)
    assert upload_token(report.data_dir) == report.token
    assert used_at(report) > time.time() - 600, "named in a link: used"


def test_eviction_reads_the_recorded_sizes_instead_of_walking_the_uploads(root, monkeypatch):
    a = ingest_upload(pets(seed=1), "a.zip")
    budget_for(monkeypatch, 1.5, meta(a)["bytes"])
    last_used(a, 7200)
    measured = []
    original = ingest._bytes_on_disk
    monkeypatch.setattr(ingest, "_bytes_on_disk", lambda path: measured.append(path) or original(path))
    b = ingest_upload(pets(seed=2), "b.zip")
    assert not a.data_dir.exists() and b.data_dir.is_dir()
    assert all(a.data_dir.parent not in path.parents and path != a.data_dir.parent for path in measured)


# -- 4. a full disk ------------------------------------------------------------------------------------
def cats_shaped_zip() -> tuple[bytes, dict]:
    sizes = {"train": {"cats": 2, "dogs": 2}, "validation": {"cats": 1, "dogs": 1}}
    files = {}
    for split, classes in sizes.items():
        files.update(class_files(classes, classes["cats"], prefix=f"cats_and_dogs_filtered/{split}/"))
    return zip_bytes(files), sizes


@pytest.mark.parametrize("where", ["download", "unpack"])
def test_a_full_disk_while_downloading_says_so_and_keeps_nothing(tmp_path, monkeypatch, where):
    root = tmp_path / "lab-data"
    monkeypatch.setenv("LAB_DATA_DIR", str(root))
    data, sizes = cats_shaped_zip()
    server = Server()
    try:
        monkeypatch.setenv(CATS_ENV, server.serve("/c.zip", data))
        monkeypatch.setattr(download if where == "download" else archives, "open", FailingWrites(errno.ENOSPC), False)
        with pytest.raises(DownloadError) as failed:
            ensure_dataset("cats_vs_dogs", lambda *_: None, expected_sizes=sizes)
        assert server.requests == ["/c.zip"], "a full disk is not worth another try"
    finally:
        server.close()
    message = str(failed.value)
    assert "the disk is full" in message and "Nothing was kept" in message, message
    assert str(root) not in message and "Errno" not in message
    assert not root.exists() or not any(root.iterdir())


def test_a_full_disk_with_a_zip_saved_by_hand_says_so(tmp_path, monkeypatch):
    root = tmp_path / "lab-data"
    root.mkdir()
    monkeypatch.setenv("LAB_DATA_DIR", str(root))
    data, sizes = cats_shaped_zip()
    (root / "cats_and_dogs_filtered.zip").write_bytes(data)
    monkeypatch.setattr(archives, "open", FailingWrites(errno.ENOSPC), raising=False)
    with pytest.raises(DownloadError, match="the disk is full.*Nothing was kept"):
        ensure_dataset("cats_vs_dogs", lambda *_: None, expected_sizes=sizes)
    assert sorted(p.name for p in root.iterdir()) == ["cats_and_dogs_filtered.zip"]


def test_a_zip_with_train_alone_says_validation_is_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("LAB_HOSTED", raising=False)
    from lab_files import class_files, zip_bytes

    from lab.data.ingest import IngestError, ingest_upload

    with pytest.raises(IngestError, match="no validation/ folder"):
        ingest_upload(zip_bytes(class_files(("cats", "dogs"), 4, prefix="train/")), "train-only.zip", tmp_path)
    assert not list((tmp_path / "uploads").glob("*/dataset")), "nothing kept"
