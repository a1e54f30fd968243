"""The course's datasets: downloaded on first use, verified, and put in place in one step.

`ensure_dataset("cats_vs_dogs")` returns `<data root>/cats_and_dogs_filtered`, downloading
the course's zip first when the folder is not there (the data root is LAB_DATA_DIR,
default `~/.cache/overfitting-lab/datasets`). Each archive is tried at its canonical URL,
then at a mirror; LAB_URLS_<ARCHIVE> (for example LAB_URLS_CATS_AND_DOGS_FILTERED) replaces
an archive's list of URLs, separated by spaces or commas.

Everything happens in a temporary folder inside the data root: the zip is checked entry by
entry and unpacked (`lab.data.archives`), and the class folders and the number of images in each
are compared with the registry. A truncated or damaged download is removed and tried once
more; a download with the wrong files is removed and reported; a full disk stops at once, with a
message that says so. Only a dataset that passed every check is renamed into place, so a failed
or interrupted download leaves nothing behind.

Two ways to download. With a `progress` callback (the page) the lab reads the response in
chunks with urllib and reports (bytes done, bytes in all) after each chunk: the page shows a
progress bar and never imports TensorFlow. Without one (the command line, which imports
TensorFlow to train anyway) the download goes through `keras.utils.get_file`, which prints
Keras's own progress bar; the lab asks it only to fetch (`extract=False`) and unpacks with
its own checks, since `get_file`'s extraction writes entries unchecked and, since Keras 3.6,
returns a folder named after the archive rather than the path the course's code expects.

Offline, the error names the URLs and says how to put the files in place by hand, including
saving the zip itself as `<data root>/<archive>.zip`, which is then unpacked and checked
instead of downloading (and never deleted, even when it is damaged).
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lab.data.archives import (
    ArchiveError,
    ZipLimits,
    dataset_root,
    disk_full,
    publish,
    remove_stale,
    remove_tree,
    unpack_zip,
)
from lab.data.images import IMAGE_EXTENSIONS
from lab.data.registry import DatasetError, DatasetInfo, default_data_root, get_info

Progress = Callable[[int, int], None]  # (bytes done, bytes in all; 0 while unknown)

_CHUNK = 256 * 1024
_TIMEOUT_SECONDS = 60
# A temporary download folder older than this was left by a process that died.
_STALE_SECONDS = 6 * 3600
# The course's archives are trusted more than uploads: they are big but expand little.
_LIMITS = ZipLimits(max_upload_bytes=1024 * 1024 * 1024, max_unpacked_bytes=2048 * 1024 * 1024, max_ratio=20)


@dataclass(frozen=True)
class Archive:
    """One zip of a downloadable dataset."""

    key: str  # its file name without ".zip"
    urls: tuple[str, ...]  # canonical first, then mirrors
    approx_bytes: int  # its size, for the progress bar until the server says
    into: str = ""  # where its class folders go: a split ("train"), or "" when it holds train/ and validation/


DOWNLOADS: dict[str, tuple[Archive, ...]] = {
    "cats_vs_dogs": (
        Archive(
            "cats_and_dogs_filtered",
            (
                "https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip",
                "https://download.mlcc.google.com/mledu-datasets/cats_and_dogs_filtered.zip",
            ),
            68_606_236,
        ),
    ),
    "horses_or_humans": (
        Archive(
            "horse-or-human",
            (
                "https://storage.googleapis.com/learning-datasets/horse-or-human.zip",
                "https://storage.googleapis.com/download.tensorflow.org/data/horse-or-human.zip",
            ),
            149_574_867,
            into="train",
        ),
        Archive(
            "validation-horse-or-human",
            (
                "https://storage.googleapis.com/learning-datasets/validation-horse-or-human.zip",
                "https://storage.googleapis.com/download.tensorflow.org/data/validation-horse-or-human.zip",
            ),
            11_480_187,
            into="validation",
        ),
    ),
}


class DownloadError(DatasetError):
    """A dataset could not be downloaded; the message says why and how to put it in place by hand."""

    def __init__(self, message: str, offline: bool = False) -> None:
        super().__init__(message)
        self.offline = offline  # no URL could be reached at all


class _Unreachable(Exception):
    """The URL could not be fetched at all: no route, refused, not found."""


class _Incomplete(Exception):
    """The transfer stopped short: worth one more try."""


class _WrongFiles(Exception):
    """The archive unpacked but holds other folders or other numbers of images."""


# -- what the page and the command line call ---------------------------------------------------
def is_downloadable(name: str) -> bool:
    return name in DOWNLOADS


def dataset_folder(name: str, root: Path | None = None) -> Path:
    """Where a downloadable dataset lives (whether or not it is there yet)."""
    info = get_info(name)
    if not info.folder_name:
        raise DatasetError(f"{info.title} is not downloaded: it has no folder of its own")
    return (root or default_data_root()) / info.folder_name


def download_bytes(name: str) -> int:
    """About how many bytes a first download of the dataset fetches (for a button's label)."""
    return sum(archive.approx_bytes for archive in DOWNLOADS.get(name, ()))


def archive_urls(archive: Archive) -> tuple[str, ...]:
    """The URLs to try, in order: LAB_URLS_<KEY> when set, else the canonical URL and its mirror."""
    override = os.environ.get(env_name(archive), "").strip()
    return tuple(url for url in re.split(r"[\s,]+", override) if url) if override else archive.urls


def env_name(archive: Archive) -> str:
    return "LAB_URLS_" + re.sub(r"[^A-Z0-9]", "_", archive.key.upper())


def ensure_dataset(
    name: str,
    progress: Progress | None = None,
    *,
    root: Path | None = None,
    expected_sizes: dict[str, dict[str, int]] | None = None,
) -> Path:
    """The dataset's folder, downloaded, checked and put in place first if it is not there.

    `progress(done, total)` is called as bytes arrive (total is 0 while unknown); without it
    the download goes through `keras.utils.get_file`. `expected_sizes` replaces the
    registry's images per split and class (tests serve small archives). Raises DownloadError
    (a DatasetError) when the dataset cannot be put in place; nothing is left behind then.
    """
    info = get_info(name)
    if name not in DOWNLOADS:
        raise DatasetError(f"{info.title} is not downloaded: only {', '.join(DOWNLOADS)} are")
    root = Path(root) if root else default_data_root()
    target = dataset_folder(name, root)
    if target.is_dir():
        return target
    try:
        _download(info, root, target, expected_sizes or info.split_sizes, progress)
    except OSError as exc:
        _stop_if_disk_full(info, exc)
        raise
    return target


def _download(info: DatasetInfo, root: Path, target: Path, expected: dict, progress: Progress | None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    remove_stale(root, ".download-*", _STALE_SECONDS)
    staging = Path(tempfile.mkdtemp(prefix=f".download-{info.name}-", dir=root))
    meter = _Meter(progress, DOWNLOADS[info.name])
    try:
        for index, archive in enumerate(DOWNLOADS[info.name]):
            meter.index = index
            _put_archive(info, archive, staging, root, expected, meter)
        meter.finish()
        publish(staging / "dataset", target)
    finally:
        remove_tree(staging)


def _stop_if_disk_full(info: DatasetInfo, exc: BaseException) -> None:
    """A full disk is not worth another URL or another try: say so at once (and name no server path)."""
    if disk_full(exc):
        raise DownloadError(
            f"{info.title} could not be downloaded: the disk is full: there is no space left for the lab's data "
            "folder. Nothing was kept; free some space (or set LAB_DATA_DIR to a disk with room) and try again."
        ) from exc


def manual_steps(name: str, root: Path | None = None) -> str:
    """How to put a downloadable dataset in place by hand, naming its canonical URLs."""
    archives = DOWNLOADS.get(name, ())
    if not archives:
        return ""
    root = root or default_data_root()
    folder = dataset_folder(name, root)
    urls = " and ".join(archive.urls[0] for archive in archives)
    saved = " and ".join(str(root / f"{archive.key}.zip") for archive in archives)
    them = "them" if len(archives) > 1 else "it"
    if archives[0].into:
        layout = " and ".join(
            f"the {archive.key}.zip's class folders into {folder / archive.into}/" for archive in archives
        )
    else:
        layout = f"it so that {folder / 'train'}/ and {folder / 'validation'}/ exist"
    return (
        f"The lab downloads it on first use (the page's download button, or any `python -m lab` run of it). "
        f"By hand: on a computer with internet, download {urls}, then either save {them} as {saved} "
        f"(the lab unpacks and checks it there) or unzip {layout}; or point --data (or the page's folder box) "
        "at an unzipped copy. The builtin dataset needs no download."
    )


# -- one archive --------------------------------------------------------------------------------
def _put_archive(info: DatasetInfo, archive: Archive, staging: Path, root: Path, expected: dict, meter: _Meter) -> None:
    """Fetch, unpack and check one archive into staging/dataset, trying each URL, and damaged ones twice."""
    wanted = {archive.into: expected[archive.into]} if archive.into else expected
    destination = staging / "dataset" / archive.into if archive.into else staging / "dataset"
    saved = root / f"{archive.key}.zip"
    if saved.is_file():
        try:
            return _install(saved, destination, wanted, archive, staging)
        except (ArchiveError, _WrongFiles) as exc:
            _stop_if_disk_full(info, exc)
            raise DownloadError(
                f"{info.title}: {saved} was used instead of downloading, but {exc}. It was left as it is: "
                f"replace it with a good copy of {archive.urls[0]}, or delete it to download again."
            ) from exc
    failures: list[str] = []
    reachable = False
    for _attempt in range(2):
        worth_retrying = False
        for url in archive_urls(archive):
            download = staging / f"{archive.key}.zip"
            try:
                _fetch(url, download, meter)
                reachable = True
                return _install(download, destination, wanted, archive, staging)
            except _Unreachable as exc:
                failures.append(f"{url}: {exc}")
            except _Incomplete as exc:
                _stop_if_disk_full(info, exc)
                reachable = worth_retrying = True
                failures.append(f"{url}: the download stopped short ({exc}) and was removed")
            except ArchiveError as exc:
                _stop_if_disk_full(info, exc)
                worth_retrying = worth_retrying or exc.damaged
                failures.append(f"{url}: {exc} The download was removed")
            except _WrongFiles as exc:
                failures.append(f"{url}: the archive does not hold the expected files ({exc}); it was removed")
            finally:
                download.unlink(missing_ok=True)
        if not worth_retrying:
            break
    raise _failure(info, failures, offline=not reachable, root=root)


def _install(zip_path: Path, destination: Path, wanted: dict, archive: Archive, staging: Path) -> None:
    unpacked = staging / f"unpacked-{archive.key}"
    remove_tree(unpacked)
    try:
        unpack_zip(zip_path, unpacked, _LIMITS, f"{archive.key}.zip")
        top = dataset_root(unpacked)
        _check_counts(top, wanted, archive.into)
        destination.parent.mkdir(parents=True, exist_ok=True)
        top.rename(destination)
    finally:
        remove_tree(unpacked)


def _check_counts(top: Path, wanted: dict[str, dict[str, int]], into: str) -> None:
    """The class folders and their numbers of images must be exactly the registry's."""
    problems = []
    for split, classes in wanted.items():
        split_dir = top if into else top / split
        label = f"{split}/"
        found = _count_images(split_dir)
        if set(found) != set(classes):
            problems.append(
                f"expected class folders {label}{{{', '.join(sorted(classes))}}}, found "
                f"{{{', '.join(sorted(found)) or 'none'}}}"
            )
            continue
        problems += [
            f"{label}{name} has {found[name]} images instead of {count}"
            for name, count in classes.items()
            if found[name] != count
        ]
    if problems:
        raise _WrongFiles("; ".join(problems))


def _count_images(folder: Path) -> dict[str, int]:
    if not folder.is_dir():
        return {}
    counts = {}
    for child in sorted(folder.iterdir()):
        if child.is_dir() and not child.name.startswith("."):
            counts[child.name] = sum(
                1
                for file in child.rglob("*")
                if file.is_file() and not file.name.startswith(".") and file.suffix.lower() in IMAGE_EXTENSIONS
            )
    return counts


def _failure(info: DatasetInfo, failures: list[str], offline: bool, root: Path) -> DownloadError:
    tried = "; ".join(failures)
    if offline:
        message = (
            f"{info.title} could not be downloaded: no route to its URLs ({tried}). Are you offline? "
            f"Nothing was written. {manual_steps(info.name, root)}"
        )
    else:
        message = f"{info.title} could not be downloaded ({tried}). Nothing was kept. {manual_steps(info.name, root)}"
    return DownloadError(message, offline=offline)


# -- fetching one URL ---------------------------------------------------------------------------
class _Meter:
    """Turns bytes of the current archive into (done, total) over all of a dataset's archives."""

    def __init__(self, progress: Progress | None, archives: tuple[Archive, ...]) -> None:
        self.progress = progress
        self.sizes = [archive.approx_bytes for archive in archives]
        self.index = 0

    def report(self, done_here: int, length: int) -> None:
        if length:
            self.sizes[self.index] = length
        if self.progress is not None:
            self.progress(sum(self.sizes[: self.index]) + done_here, sum(self.sizes))

    def finish(self) -> None:
        if self.progress is not None:
            self.progress(sum(self.sizes), sum(self.sizes))


def _fetch(url: str, destination: Path, meter: _Meter) -> None:
    if meter.progress is None:
        _fetch_with_keras(url, destination)
    else:
        _fetch_with_urllib(url, destination, meter)


def _fetch_with_urllib(url: str, destination: Path, meter: _Meter) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "overfitting-lab"})
    try:
        response = urllib.request.urlopen(request, timeout=_TIMEOUT_SECONDS)
    except urllib.error.URLError as exc:
        raise _Unreachable(_reason(exc)) from exc
    except (OSError, ValueError) as exc:  # a timeout while connecting, a malformed URL
        raise _Unreachable(str(exc) or type(exc).__name__) from exc
    with response, open(destination, "wb") as out:
        length = int(response.headers.get("Content-Length") or 0)
        done = 0
        meter.report(0, length)
        try:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                done += len(chunk)
                meter.report(done, length)
        except (OSError, ValueError) as exc:  # reset, timed out, incomplete chunked read
            raise _Incomplete(f"{done:,} bytes received: {exc}") from exc
    # http.client returns what it got when the connection closes early; compare with what was promised.
    if length and done != length:
        raise _Incomplete(f"{done:,} of {length:,} bytes received")


def _fetch_with_keras(url: str, destination: Path) -> None:
    import keras

    # get_file opens the URL without a timeout; a dead connection must not hang the command line.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_TIMEOUT_SECONDS)
    try:
        keras.utils.get_file(
            fname=destination.name, origin=url, cache_dir=str(destination.parent), cache_subdir="", force_download=True
        )
    except Exception as exc:
        # get_file turns URLError and HTTPError into a bare Exception raised while handling them.
        cause = exc.__context__ if isinstance(exc.__context__, urllib.error.URLError) else exc
        # ContentTooShortError is a URLError too, but the server was there: the transfer broke off.
        if isinstance(cause, urllib.error.URLError) and not isinstance(cause, urllib.error.ContentTooShortError):
            raise _Unreachable(_reason(cause)) from exc
        raise _Incomplete(str(exc) or type(exc).__name__) from exc
    finally:
        socket.setdefaulttimeout(previous)


def _reason(exc: urllib.error.URLError) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    return str(exc.reason)
