"""Unpacking a zip archive safely: every entry is checked before anything is written.

Refused, before a single byte is written: entries that would land outside the target
folder (`../`, absolute paths, drive letters), links and other special files, encrypted
entries, more entries than `ZipLimits.max_files`, and archives that would expand past
`ZipLimits.max_unpacked_bytes` or more than `ZipLimits.max_ratio` times their own size
(zip bombs), a file and a folder of the same name, and names or paths longer than a file
system allows. While unpacking, the bytes written are counted against the sizes the
archive declares, and a CRC mismatch, a truncated stream or a short archive is reported
as damage. macOS and Windows clutter (`__MACOSX/`, `._*`, `.DS_Store`, `Thumbs.db`) is
left out. A disk error while writing (a full disk, no permission) becomes an ArchiveError
with one plain sentence that names no server path.

The caller unpacks into a fresh temporary folder and removes it when anything fails, so
a refused or damaged archive leaves nothing behind.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from lab.data.registry import DatasetError, FileNote

_MB = 1024 * 1024
_CHUNK = 1024 * 1024
# Below this many unpacked bytes the ratio is not checked: a few flat test images or
# icons compress a hundredfold and are no threat.
_RATIO_FLOOR = 16 * _MB
_CLUTTER_FOLDERS = ("__MACOSX",)
# Split folders: a lone one is never stepped into as a wrapper (the listing then says which split is missing).
SPLIT_FOLDERS = ("train", "validation")
_CLUTTER_FILES = (".DS_Store", "Thumbs.db", "desktop.ini")
# What Linux, macOS and Windows file systems allow: a name of 255 bytes, a path of 4,096 with its end.
_NAME_MAX = 255
_PATH_MAX = 4096
# The unpacked folder is later moved to a name up to this much longer (`uploads/<32-hex token>/dataset`).
_PATH_ROOM = 64
# Entry names this long are cut in messages: a 5,000-byte name would drown the sentence.
_SHOWN_CHARS = 60


class ArchiveError(DatasetError):
    """The archive is refused or damaged; the message says which and that nothing was kept."""

    def __init__(self, message: str, damaged: bool = False) -> None:
        super().__init__(message)
        # Damaged (truncated, bad CRC) as opposed to refused: a download may be retried.
        self.damaged = damaged


@dataclass(frozen=True)
class ZipLimits:
    """How big an upload may be and how far it may expand. Each moves with an environment variable."""

    max_upload_bytes: int = 200 * _MB  # LAB_MAX_UPLOAD_MB
    max_unpacked_bytes: int = 2048 * _MB  # LAB_MAX_UNPACKED_MB
    max_ratio: float = 100.0  # LAB_MAX_ZIP_RATIO: unpacked size over archive size
    max_files: int = 100_000  # LAB_MAX_ZIP_FILES

    @classmethod
    def from_env(cls) -> ZipLimits:
        default = cls()
        return cls(
            max_upload_bytes=_env_mb("LAB_MAX_UPLOAD_MB", default.max_upload_bytes),
            max_unpacked_bytes=_env_mb("LAB_MAX_UNPACKED_MB", default.max_unpacked_bytes),
            max_ratio=float(os.environ.get("LAB_MAX_ZIP_RATIO", default.max_ratio)),
            max_files=int(os.environ.get("LAB_MAX_ZIP_FILES", default.max_files)),
        )


def _env_mb(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value is None else int(float(value) * _MB)


def megabytes(count: int) -> str:
    return f"{count / _MB:,.1f} MB"


def unpack_zip(
    source: str | Path | BinaryIO, target: Path, limits: ZipLimits, name: str = "the archive"
) -> list[FileNote]:
    """Check every entry of the zip `source`, then unpack it into the new folder `target`.

    Returns the entries left out on purpose (clutter). Raises ArchiveError, having written
    nothing when the archive is refused; a damaged one may have written part of `target`,
    which the caller removes.
    """
    try:
        with zipfile.ZipFile(source) as archive:
            plan, left_out = _plan(archive, _archive_size(source), limits, name, target)
            target.mkdir(parents=True, exist_ok=False)
            _write(archive, plan, target, limits, name)
    except zipfile.BadZipFile as exc:
        raise ArchiveError(
            f"{name} is not a zip archive, or it is damaged or incomplete ({exc})", damaged=True
        ) from exc
    except OSError as exc:
        raise ArchiveError(f"{name} could not be unpacked: {describe_os_error(exc)}. Nothing was kept.") from exc
    return left_out


def describe_os_error(exc: OSError) -> str:
    """What went wrong on the disk, in words for people, without the path the error carries."""
    if disk_full(exc):
        return "the disk is full: there is no space left for the lab's data folder"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "permission denied: the lab may not write in its data folder"
    if exc.errno == errno.ENAMETOOLONG:
        return "a name or path is longer than the file system allows"
    return f"the disk reported an error ({(exc.strerror or type(exc).__name__).lower()})"


def disk_full(exc: BaseException | None) -> bool:
    """True when `exc`, or an error that led to it, is a full disk (or a used-up disk quota)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def shown(entry: str) -> str:
    """An entry's name for a message: whole when short, its start and end when huge."""
    if len(entry) <= _SHOWN_CHARS:
        return entry
    return f"{entry[: _SHOWN_CHARS - 20]}…{entry[-15:]} ({len(entry):,} characters)"


def _archive_size(source: str | Path | BinaryIO) -> int:
    if isinstance(source, str | Path):
        return Path(source).stat().st_size
    position = source.tell()
    size = source.seek(0, os.SEEK_END)
    source.seek(position)
    return size


def _plan(
    archive: zipfile.ZipFile, archive_size: int, limits: ZipLimits, name: str, target: Path
) -> tuple[list[tuple[zipfile.ZipInfo, PurePosixPath]], list[FileNote]]:
    """The entries to write with their safe relative paths, and the clutter left out."""
    entries = archive.infolist()
    if len(entries) > limits.max_files:
        raise ArchiveError(f"{name} was refused: {len(entries):,} entries, more than the limit of {limits.max_files:,}")
    plan, left_out, files, folders = [], [], {}, set()
    room = _PATH_MAX - _PATH_ROOM - len(os.fsencode(os.path.abspath(target))) - 1
    for info in entries:
        path = _safe_path(info, name)
        if _is_clutter(path):
            left_out.append(FileNote(info.filename, "system clutter (macOS or Windows), not unpacked"))
            continue
        _refuse_special(info, name)
        _refuse_long(info, path, room, name)
        key = str(path)
        if key in files and not info.is_dir():
            raise ArchiveError(f"{name} was refused: the entry '{shown(info.filename)}' appears twice")
        folders.update(str(parent) for parent in path.parents if parent.parts)
        if info.is_dir():
            folders.add(key)
        else:
            files[key] = info
        plan.append((info, path))
    _refuse_file_and_folder(files, folders, name)
    _refuse_bomb(plan, archive_size, limits, name)
    return plan, left_out


def _refuse_long(info: zipfile.ZipInfo, path: PurePosixPath, room: int, name: str) -> None:
    """A name or a path the file system cannot hold fails mid-unpack: refuse it before writing."""
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > _NAME_MAX:
            raise ArchiveError(
                f"{name} was refused: the entry '{shown(info.filename)}' has a name {size:,} bytes long, more than "
                f"a file system allows ({_NAME_MAX} bytes). Nothing was unpacked."
            )
    size = len(os.fsencode(str(path)))
    if size > room:
        raise ArchiveError(
            f"{name} was refused: the entry '{shown(info.filename)}' has a path {size:,} bytes long, more than "
            f"a file system allows ({_PATH_MAX:,} bytes) once unpacked in the lab's data folder. Nothing was unpacked."
        )


def _refuse_file_and_folder(files: dict[str, zipfile.ZipInfo], folders: set[str], name: str) -> None:
    """`cats/sub` as a file and `cats/sub/0.png` cannot both be written, whichever comes first."""
    for key, info in files.items():
        if key in folders:
            raise ArchiveError(
                f"{name} was refused: the entry '{shown(info.filename)}' is both a file and a folder in the zip. "
                "Nothing was unpacked."
            )


def _safe_path(info: zipfile.ZipInfo, name: str) -> PurePosixPath:
    # Some Windows tools write backslashes; treat them as separators so `..\\` is caught too.
    raw = info.filename.replace("\\", "/")
    if raw.startswith("/") or re.match(r"^[A-Za-z]:", raw):
        raise ArchiveError(
            f"{name} was refused: the entry '{shown(info.filename)}' has an absolute path and would be written outside "
            "the dataset folder. Nothing was unpacked."
        )
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(
            f"{name} was refused: the entry '{shown(info.filename)}' climbs out with '..' and would be written outside "
            "the dataset folder. Nothing was unpacked."
        )
    if not parts:
        raise ArchiveError(f"{name} was refused: an entry has an empty name. Nothing was unpacked.")
    return PurePosixPath(*parts)


def _is_clutter(path: PurePosixPath) -> bool:
    return (
        any(part in _CLUTTER_FOLDERS for part in path.parts)
        or path.name in _CLUTTER_FILES
        or path.name.startswith("._")
    )


def _refuse_special(info: zipfile.ZipInfo, name: str) -> None:
    mode = info.external_attr >> 16
    if mode and stat.S_ISLNK(mode):
        raise ArchiveError(
            f"{name} was refused: the entry '{shown(info.filename)}' is a symbolic link, which could point anywhere on "
            "this computer. Nothing was unpacked."
        )
    if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)) and stat.S_IFMT(mode):
        raise ArchiveError(
            f"{name} was refused: the entry '{shown(info.filename)}' is not a plain file. Nothing was unpacked."
        )
    if info.flag_bits & 0x1:
        raise ArchiveError(
            f"{name} was refused: the entry '{shown(info.filename)}' is password-protected. Nothing was unpacked."
        )


def _refuse_bomb(plan: list[tuple[zipfile.ZipInfo, PurePosixPath]], archive_size: int, limits: ZipLimits, name: str):
    total = sum(info.file_size for info, _ in plan)
    if total > limits.max_unpacked_bytes:
        raise ArchiveError(
            f"{name} was refused: it would unpack to {megabytes(total)}, more than the limit of "
            f"{megabytes(limits.max_unpacked_bytes)} (LAB_MAX_UNPACKED_MB). Nothing was unpacked."
        )
    ratio = total / max(archive_size, 1)
    if total > _RATIO_FLOOR and ratio > limits.max_ratio:
        raise ArchiveError(
            f"{name} was refused: it would expand {ratio:,.0f} times, from {megabytes(archive_size)} to "
            f"{megabytes(total)}, like a zip bomb (the limit is {limits.max_ratio:g} times, LAB_MAX_ZIP_RATIO). "
            "Nothing was unpacked."
        )


def _write(archive: zipfile.ZipFile, plan, target: Path, limits: ZipLimits, name: str) -> None:
    budget = limits.max_unpacked_bytes
    root = target.resolve()
    for info, path in plan:
        destination = target.joinpath(*path.parts)
        # _safe_path already refused '..' and absolute names; this guards against anything missed.
        if not destination.resolve().is_relative_to(root):
            raise ArchiveError(f"{name} was refused: '{shown(info.filename)}' would be written outside the target")
        if info.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        budget -= _copy_entry(archive, info, destination, budget, name)


def _copy_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, destination: Path, budget: int, name: str) -> int:
    """Copy one entry, counting bytes: a header that lies about the size cannot overfill the disk."""
    written = 0
    try:
        with archive.open(info) as source, open(destination, "xb") as out:
            while chunk := source.read(_CHUNK):
                written += len(chunk)
                if written > info.file_size or written > budget:
                    raise ArchiveError(
                        f"{name} was refused: '{shown(info.filename)}' expands beyond the size the archive declares. "
                        "Nothing was kept."
                    )
                out.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise ArchiveError(
            f"{name} is damaged: '{shown(info.filename)}' does not unpack ({exc}). Nothing was kept.", damaged=True
        ) from exc
    except NotImplementedError as exc:
        raise ArchiveError(f"{name}: '{shown(info.filename)}' uses a compression this lab cannot read ({exc})") from exc
    return written


def remove_tree(path: Path) -> None:
    """Remove a temporary folder and everything in it; missing is fine."""
    shutil.rmtree(path, ignore_errors=True)


def publish(staging: Path, final: Path) -> bool:
    """Move a checked folder into place in one step; False when an identical one got there first.

    Why a rename: a reader never finds a half-unpacked dataset, and a failure leaves nothing behind.
    """
    try:
        os.rename(staging, final)
        return True
    except OSError:
        if final.is_dir():  # another process put the same content in place first
            return False
        raise


def remove_stale(folder: Path, pattern: str, max_age_seconds: float) -> None:
    """Remove temporary folders matching `pattern` that a process which died left behind."""
    cutoff = time.time() - max_age_seconds
    for leftover in folder.glob(pattern):
        try:
            if leftover.stat().st_mtime < cutoff:
                remove_tree(leftover)
        except FileNotFoundError:
            pass


def dataset_root(folder: Path) -> Path:
    """Step into a lone wrapping folder (`my_photos/cats/...` -> `my_photos`), as zipping a folder makes."""
    while True:
        children = [child for child in folder.iterdir() if not child.name.startswith(".")]
        folders = [child for child in children if child.is_dir()]
        lone_wrapper = len(children) == 1 and len(folders) == 1
        # A lone folder of images is a single class, not a wrapper: stay, so the error says "one class".
        # A lone split folder (train/ alone) is not a wrapper either: stay, so the error says what is missing.
        if not (lone_wrapper and any(grandchild.is_dir() for grandchild in folders[0].iterdir())):
            return folder
        if folders[0].name.lower() in SPLIT_FOLDERS:
            return folder
        folder = folders[0]
