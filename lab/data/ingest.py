"""Your own images: a zip (uploaded in the page, or a path on the command line) becomes a dataset.

The zip holds class folders, with or without `train/` and `validation/` (without, a seeded
fraction is held out for validation), possibly inside one wrapping folder. It is unpacked
only inside the lab's own data folder, at `<data root>/uploads/<token>/dataset/`:

1. the upload's size is checked against the limit (LAB_MAX_UPLOAD_MB, 200 MB);
2. on a laptop the token is the first 16 hex digits of the zip's SHA-256, so the same zip uploaded
   again is recognised: nothing is unpacked twice, and the same folder means the same `RunConfig`
   key, so cached runs are reused. Hosted (LAB_HOSTED=1, or the caller's `private=True`) every
   upload gets a folder of its own named by 32 random hex digits: a link to it cannot be guessed
   from the zip, and nobody learns that someone else uploaded the same zip before;
3. every entry is checked before anything is written (`lab.data.archives`), then the zip is
   unpacked into a temporary folder beside the final one;
4. the images are listed and checked as for any folder (`lab.data.listing.list_folder`): one
   class, an empty class or no usable images refuse the upload;
5. the uploads keep to a budget (LAB_UPLOADS_MB, 2,048 MB of disk): the least recently used ones
   are removed to make room, never one used in the last LAB_UPLOAD_IN_USE_SECONDS (an hour);
6. only then is the temporary folder renamed into place, in one step. Whatever fails, the
   temporary folder is removed: nothing half-unpacked is ever left or found later.

An upload is used when it is ingested again, or when a link names it (`upload_folder`,
`upload_token`): that touches its `upload.json`, whose modification time is its last use.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from lab.data.archives import (
    ArchiveError,
    ZipLimits,
    dataset_root,
    describe_os_error,
    megabytes,
    publish,
    remove_stale,
    remove_tree,
    unpack_zip,
)
from lab.data.listing import Listing, list_folder, plural, tally_notes
from lab.data.registry import DatasetError, FileNote, default_data_root, get_info

UPLOADS = "uploads"
DATASET = "dataset"
_META = "upload.json"
_USE_PRECISION_SECONDS = 60
_HASH_CHARS = 16  # a laptop upload's token: the start of its zip's SHA-256
_RANDOM_BYTES = 16  # a private upload's token: 32 hex digits, 128 random bits
_TOKEN = re.compile(f"[0-9a-f]{{{_HASH_CHARS}}}|[0-9a-f]{{{2 * _RANDOM_BYTES}}}")
# A temporary folder older than this was left by a process that died mid-unpack.
_STALE_SECONDS = 3600
_TRUE = ("1", "true", "yes", "on")
_MB = 1024 * 1024
_BUDGET_MB = 2048.0  # LAB_UPLOADS_MB
_IN_USE_SECONDS = 3600.0  # LAB_UPLOAD_IN_USE_SECONDS
# Threads of one server making room at once would count the same free space twice.
_ROOM = threading.Lock()

try:  # and so would two processes sharing a data folder; Windows has no flock, and one process there
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None


class IngestError(DatasetError):
    """An upload was refused; the message says what was wrong and that nothing was kept."""


@dataclass
class IngestReport:
    """What became of an uploaded zip: where the dataset is, what it holds, what was left out."""

    filename: str
    content_hash: str  # SHA-256 of the zip's bytes
    data_dir: Path  # RunConfig.data_dir
    reused: bool  # the same zip was unpacked before: nothing was unpacked again
    class_names: tuple[str, ...]
    split_sizes: dict[str, dict[str, int]]  # {"train": {"cats": 40, ...}, "validation": {...}}
    split_by_fraction: bool  # no train/ + validation/ folders: validation_split held out
    skipped: list[FileNote]  # files not used, each with its reason (paths inside the zip's dataset folder)
    converted: list[FileNote]  # images used after conversion to 8-bit RGB, each with what was done
    dataset: str = "folder"  # RunConfig.dataset

    @property
    def token(self) -> str:
        """The short name that links use for this upload (`?upload=`): a hash on a laptop, random hosted."""
        return self.data_dir.parent.name

    def config_changes(self) -> dict[str, str]:
        """The RunConfig fields that select this dataset: `config.replace(**report.config_changes())`."""
        return {"dataset": self.dataset, "data_dir": str(self.data_dir)}

    @property
    def image_count(self) -> int:
        return sum(sum(counts.values()) for counts in self.split_sizes.values())

    def summary(self) -> str:
        """A few sentences for people: what was found, what was skipped or converted, and why."""
        sizes = ", ".join(f"{split} {sum(counts.values())}" for split, counts in self.split_sizes.items())
        how = " (split by a seeded fraction: the zip has no train/ and validation/ folders)" * self.split_by_fraction
        text = [
            f"{self.filename}: {self.image_count} images in {len(self.class_names)} classes "
            f"({', '.join(self.class_names)}): {sizes}{how}."
        ]
        if self.reused:
            text.append("The same zip was uploaded before: its folder is reused and nothing was unpacked again.")
        if self.skipped:
            text.append(f"{plural(len(self.skipped), 'file')} skipped: {tally_notes(self.skipped)}.")
        if self.converted:
            text.append(
                f"{plural(len(self.converted), 'image')} converted while decoding: {tally_notes(self.converted)}."
            )
        return " ".join(text)

    def to_dict(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "content_hash": self.content_hash,
            "data_dir": str(self.data_dir),
            "dataset": self.dataset,
            "reused": self.reused,
            "class_names": list(self.class_names),
            "split_sizes": self.split_sizes,
            "split_by_fraction": self.split_by_fraction,
            "skipped": [[note.path, note.reason] for note in self.skipped],
            "converted": [[note.path, note.reason] for note in self.converted],
        }


# -- where uploads live -------------------------------------------------------------------------
def uploads_root(root: Path | None = None) -> Path:
    """Where uploads are unpacked: `<data root>/uploads`."""
    return (root or default_data_root()) / UPLOADS


def is_upload_folder(path: str | Path, root: Path | None = None) -> bool:
    """True for a folder this module unpacked: the page may read it even when server folders are private."""
    uploads = uploads_root(root).resolve()
    resolved = Path(path).expanduser().resolve()
    # Exactly <uploads>/<token>/dataset: not the uploads folder itself, not a temporary folder.
    return (
        resolved.name == DATASET
        and resolved.parent.parent == uploads
        and _TOKEN.fullmatch(resolved.parent.name) is not None
        and resolved.is_dir()
    )


def upload_token(path: str | Path, root: Path | None = None) -> str | None:
    """The short name of an unpacked upload, for links: they then name no server path.

    The page names an upload in its link on every rerun while someone works with it: that is a use.
    """
    if not is_upload_folder(path, root):
        return None
    folder = Path(path).expanduser().resolve().parent
    mark_used(folder)
    return folder.name


def upload_folder(token: str, root: Path | None = None) -> Path | None:
    """The unpacked upload a link's `upload=` names, or None when this server has none by that name."""
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        return None
    path = uploads_root(root) / token / DATASET
    if not is_upload_folder(path, root):
        return None
    mark_used(path.parent)
    return path


def mark_used(folder: Path) -> None:
    """Note that an upload was just used: the budget removes the least recently used ones first."""
    marker = folder / _META
    target = marker if marker.exists() else folder
    try:
        # The page names its upload on every rerun: a minute's precision is plenty for "least recently used".
        if time.time() - target.stat().st_mtime > _USE_PRECISION_SECONDS:
            os.utime(target)
    except OSError:
        pass  # a read-only data folder, or an upload removed meanwhile: nothing to note


def private_uploads() -> bool:
    """Hosted (LAB_HOSTED=1), uploads are private; lab.runs.hosting also reads Streamlit's secrets."""
    return os.environ.get("LAB_HOSTED", "").lower() in _TRUE


# -- ingesting --------------------------------------------------------------------------------
def ingest_upload(
    data: bytes,
    filename: str,
    root: Path | None = None,
    *,
    validation_split: float = 0.2,
    seed: int = 42,
    private: bool | None = None,
) -> IngestReport:
    """Unpack an uploaded zip (its bytes) into the lab's data folder, or find it there already.

    `root` is the data root (default `default_data_root()`); `validation_split` and `seed`
    only shape the reported split sizes of a zip without train/ and validation/. `private`
    (default: `private_uploads()`, true when hosted) gives the upload a random token and a
    folder of its own, never one shared with an earlier upload of the same zip. Raises
    IngestError (a DatasetError) with a message for people when the upload is refused.
    """
    _check_upload_size(len(data), filename)
    digest = hashlib.sha256(data).hexdigest()
    private = private_uploads() if private is None else private
    return _ingest(io.BytesIO(data), digest, filename, root, validation_split, seed, private)


def ingest_zip(
    path: str | Path,
    root: Path | None = None,
    *,
    validation_split: float = 0.2,
    seed: int = 42,
    private: bool | None = None,
) -> IngestReport:
    """The same as `ingest_upload` for a zip file on disk (the command line's `--data photos.zip`)."""
    path = Path(path).expanduser()
    _check_upload_size(path.stat().st_size, path.name)
    digest = hashlib.sha256()
    private = private_uploads() if private is None else private
    with open(path, "rb") as file:
        while chunk := file.read(1024 * 1024):
            digest.update(chunk)
        file.seek(0)
        return _ingest(file, digest.hexdigest(), path.name, root, validation_split, seed, private)


def _check_upload_size(size: int, filename: str) -> None:
    limit = ZipLimits.from_env().max_upload_bytes
    if size > limit:
        raise IngestError(
            f"{filename} was refused: it is {megabytes(size)}, over the upload limit of {megabytes(limit)} "
            "(LAB_MAX_UPLOAD_MB). Nothing was unpacked."
        )


def _ingest(
    source: BinaryIO, digest: str, filename: str, root: Path | None, validation_split: float, seed: int, private: bool
) -> IngestReport:
    uploads = uploads_root(root)
    try:
        final = uploads / digest[:_HASH_CHARS]
        if not private and (final / DATASET).is_dir():
            mark_used(final)
            return _reused_report(final, filename, digest, validation_split, seed)
        return _unpack(source, digest, filename, uploads, validation_split, seed, private)
    except OSError as exc:
        # A full disk or a folder the lab may not write: one sentence, no traceback, no server path.
        raise IngestError(f"{filename} could not be unpacked: {describe_os_error(exc)}. Nothing was kept.") from exc


def _unpack(
    source: BinaryIO, digest: str, filename: str, uploads: Path, validation_split: float, seed: int, private: bool
) -> IngestReport:
    uploads.mkdir(parents=True, exist_ok=True)
    remove_stale(uploads, ".unpack-*", _STALE_SECONDS)
    remove_stale(uploads, ".evict-*", 0)  # an upload being removed when its process died
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=uploads))
    try:
        clutter = unpack_zip(source, staging / "files", ZipLimits.from_env(), filename)
        found = _list(dataset_root(staging / "files"), filename, validation_split, seed)
        clutter += _loose_files(found)
        found.root.rename(staging / DATASET)
        remove_tree(staging / "files")  # only empty wrapping folders are left in it
        size = _bytes_on_disk(staging / DATASET)
        meta = {
            "filename": filename,
            "content_hash": digest,
            "bytes": size,
            "clutter": [[n.path, n.reason] for n in clutter],
        }
        (staging / _META).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        final, reused = _move_in(staging, uploads, digest, size, filename, private)
    finally:
        remove_tree(staging)
    return _report(found, final, filename, digest, reused, clutter)


def _move_in(staging: Path, uploads: Path, digest: str, size: int, filename: str, private: bool) -> tuple[Path, bool]:
    """Make room within the budget, then rename the checked folder into place: (its place, reused)."""
    budget = _budget_bytes()
    if size > budget:
        raise IngestError(
            f"{filename} was refused: it unpacks to {megabytes(size)} on disk, more than the whole upload "
            f"budget of {megabytes(budget)} (LAB_UPLOADS_MB). Nothing was kept."
        )
    with _one_at_a_time(uploads):
        _make_room(uploads, size, budget, filename)
        if not private:
            final = uploads / digest[:_HASH_CHARS]
            reused = not publish(staging, final)
            if reused:  # the same zip, unpacked by another session meanwhile
                mark_used(final)
            return final, reused
        while not publish(staging, final := uploads / secrets.token_hex(_RANDOM_BYTES)):
            pass  # 128 random bits do not collide; a folder of that name would be someone else's
        return final, False


# -- the upload budget ------------------------------------------------------------------------
def _budget_bytes() -> int:
    return int(float(os.environ.get("LAB_UPLOADS_MB", _BUDGET_MB)) * _MB)


def _in_use_seconds() -> float:
    return float(os.environ.get("LAB_UPLOAD_IN_USE_SECONDS", _IN_USE_SECONDS))


@contextmanager
def _one_at_a_time(uploads: Path) -> Iterator[None]:
    """Hold the uploads folder while making room and moving in: a lock on the folder itself, no file."""
    with _ROOM:
        if fcntl is None:  # pragma: no cover
            yield
            return
        handle = os.open(uploads, os.O_RDONLY)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            os.close(handle)  # closing releases the lock


def _make_room(uploads: Path, size: int, budget: int, filename: str) -> None:
    """Remove the least recently used uploads until `size` more bytes fit; never one in use."""
    kept = sorted(_stored_uploads(uploads))  # oldest use first
    total = size + sum(nbytes for _, nbytes, _ in kept)
    in_use_since = time.time() - _in_use_seconds()
    leaving = []
    for used, nbytes, folder in kept:
        if total <= budget or used >= in_use_since:
            break  # sorted by last use: every upload after one in use is in use too
        leaving.append(folder)
        total -= nbytes
    if total > budget:  # decided before removing any: a refusal removes nothing
        raise IngestError(
            f"{filename} was refused: the uploads in use on this server already fill the upload budget of "
            f"{megabytes(budget)} (LAB_UPLOADS_MB), and one in use is never removed; try again later. "
            "Nothing was kept."
        )
    for folder in leaving:
        _remove_upload(folder)


def _stored_uploads(uploads: Path) -> list[tuple[float, int, Path]]:
    """(last use, bytes on disk, folder) of each upload, from its upload.json: no tree is walked."""
    found = []
    for folder in uploads.iterdir():
        if _TOKEN.fullmatch(folder.name) and (folder / DATASET).is_dir():
            try:
                found.append((*_usage(folder), folder))
            except FileNotFoundError:
                pass  # removed meanwhile
    return found


def _usage(folder: Path) -> tuple[float, int]:
    marker = folder / _META
    used = (marker if marker.exists() else folder).stat().st_mtime
    try:
        return used, int(json.loads(marker.read_text(encoding="utf-8"))["bytes"])
    except (OSError, ValueError, TypeError, KeyError):
        return used, _bytes_on_disk(folder)  # unpacked before sizes were recorded: measured, this once


def _remove_upload(folder: Path) -> None:
    """Rename first, in one step: a link never finds a half-removed upload, only none."""
    doomed = folder.with_name(f".evict-{folder.name}-{secrets.token_hex(4)}")
    try:
        folder.rename(doomed)
    except FileNotFoundError:
        return  # another process removed it first
    remove_tree(doomed)


def _bytes_on_disk(folder: Path) -> int:
    """The disk space a folder takes: its blocks where the system says, else its files' sizes."""
    total = 0
    for base, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            info = os.lstat(os.path.join(base, name))
            total += info.st_blocks * 512 if hasattr(info, "st_blocks") else info.st_size
    return total


def _list(folder: Path, filename: str, validation_split: float, seed: int) -> Listing:
    try:
        return list_folder(folder, get_info("folder"), validation_split, seed)
    except ArchiveError:
        raise
    except DatasetError as exc:
        # Name the zip, not the temporary folder the user never sees.
        message = str(exc).replace(f"{folder}/", "").replace(str(folder), "the zip").rstrip(".")
        raise IngestError(f"{filename} was refused: {message}. Nothing was kept.") from exc


def _loose_files(found: Listing) -> list[FileNote]:
    """Files beside the class folders (a README, a stray image): unused, and the report says so."""
    info = get_info("folder")
    splits = () if found.split_by_fraction else (*info.train_dirs, *info.validation_dirs)
    levels = [found.root, *(found.root / split for split in splits)]
    loose = [path for level in levels if level.is_dir() for path in sorted(level.iterdir()) if path.is_file()]
    return [FileNote(path.relative_to(found.root).as_posix(), "not in a class folder") for path in loose]


def _report(
    found: Listing, final: Path, filename: str, digest: str, reused: bool, clutter: list[FileNote]
) -> IngestReport:
    return IngestReport(
        filename=filename,
        content_hash=digest,
        data_dir=final / DATASET,
        reused=reused,
        class_names=found.class_names,
        split_sizes=found.sizes(),
        split_by_fraction=found.split_by_fraction,
        skipped=[*clutter, *found.left_out()],
        converted=list(found.converted),
    )


def _reused_report(final: Path, filename: str, digest: str, validation_split: float, seed: int) -> IngestReport:
    try:
        meta = json.loads((final / _META).read_text(encoding="utf-8"))
        clutter = [FileNote(path, reason) for path, reason in meta.get("clutter", [])]
    except (OSError, ValueError, TypeError):
        clutter = []  # the notes about clutter are a courtesy; the dataset itself is intact
    found = list_folder(final / DATASET, get_info("folder"), validation_split, seed)
    return _report(found, final, filename, digest, True, clutter)
