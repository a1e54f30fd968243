"""Your own images: a zip (uploaded in the page, or a path on the command line) becomes a dataset.

The zip holds class folders, with or without `train/` and `validation/` (without, a seeded
fraction is held out for validation), possibly inside one wrapping folder. It is unpacked
only inside the lab's own data folder, at `<data root>/uploads/<content hash>/dataset/`:

1. the upload's size is checked against the limit (LAB_MAX_UPLOAD_MB, 200 MB);
2. its SHA-256 names the folder, so the same zip uploaded again is recognised: nothing is
   unpacked twice, and the same folder means the same `RunConfig` key, so cached runs are reused;
3. every entry is checked before anything is written (`lab.data.archives`), then the zip is
   unpacked into a temporary folder beside the final one;
4. the images are listed and checked as for any folder (`lab.data.listing.list_folder`): one
   class, an empty class or no usable images refuse the upload;
5. only then is the temporary folder renamed into place, in one step. Whatever fails, the
   temporary folder is removed: nothing half-unpacked is ever left or found later.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from lab.data.archives import (
    ArchiveError,
    ZipLimits,
    dataset_root,
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
_HASH_CHARS = 16
# A temporary folder older than this was left by a process that died mid-unpack.
_STALE_SECONDS = 3600


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
    # Exactly <uploads>/<hash>/dataset: not the uploads folder itself, not a temporary folder.
    return (
        resolved.name == DATASET
        and resolved.parent.parent == uploads
        and not resolved.parent.name.startswith(".")
        and resolved.is_dir()
    )


# -- ingesting --------------------------------------------------------------------------------
def upload_token(path: str | Path, root: Path | None = None) -> str | None:
    """The short name of an unpacked upload (its zip's hash), for links: they then name no server path."""
    return Path(path).expanduser().resolve().parent.name if is_upload_folder(path, root) else None


def upload_folder(token: str, root: Path | None = None) -> Path | None:
    """The unpacked upload a link's `upload=` names, or None when this server has none by that name."""
    if not re.fullmatch(f"[0-9a-f]{{{_HASH_CHARS}}}", token):
        return None
    path = uploads_root(root) / token / DATASET
    return path if is_upload_folder(path, root) else None


def ingest_upload(
    data: bytes, filename: str, root: Path | None = None, *, validation_split: float = 0.2, seed: int = 42
) -> IngestReport:
    """Unpack an uploaded zip (its bytes) into the lab's data folder, or find it there already.

    `root` is the data root (default `default_data_root()`); `validation_split` and `seed`
    only shape the reported split sizes of a zip without train/ and validation/. Raises
    IngestError (a DatasetError) with a message for people when the upload is refused.
    """
    import io

    _check_upload_size(len(data), filename)
    digest = hashlib.sha256(data).hexdigest()
    return _ingest(io.BytesIO(data), digest, filename, root, validation_split, seed)


def ingest_zip(
    path: str | Path, root: Path | None = None, *, validation_split: float = 0.2, seed: int = 42
) -> IngestReport:
    """The same as `ingest_upload` for a zip file on disk (the command line's `--data photos.zip`)."""
    path = Path(path).expanduser()
    _check_upload_size(path.stat().st_size, path.name)
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1024 * 1024):
            digest.update(chunk)
        file.seek(0)
        return _ingest(file, digest.hexdigest(), path.name, root, validation_split, seed)


def _check_upload_size(size: int, filename: str) -> None:
    limit = ZipLimits.from_env().max_upload_bytes
    if size > limit:
        raise IngestError(
            f"{filename} was refused: it is {megabytes(size)}, over the upload limit of {megabytes(limit)} "
            "(LAB_MAX_UPLOAD_MB). Nothing was unpacked."
        )


def _ingest(
    source: BinaryIO, digest: str, filename: str, root: Path | None, validation_split: float, seed: int
) -> IngestReport:
    uploads = uploads_root(root)
    final = uploads / digest[:_HASH_CHARS]
    if (final / DATASET).is_dir():
        return _reused_report(final, filename, digest, validation_split, seed)
    uploads.mkdir(parents=True, exist_ok=True)
    remove_stale(uploads, ".unpack-*", _STALE_SECONDS)
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=uploads))
    try:
        clutter = unpack_zip(source, staging / "files", ZipLimits.from_env(), filename)
        found = _list(dataset_root(staging / "files"), filename, validation_split, seed)
        clutter += _loose_files(found)
        found.root.rename(staging / DATASET)
        remove_tree(staging / "files")  # only empty wrapping folders are left in it
        meta = {"filename": filename, "content_hash": digest, "clutter": [[n.path, n.reason] for n in clutter]}
        (staging / _META).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        reused = not publish(staging, final)
    finally:
        remove_tree(staging)
    return _report(found, final, filename, digest, reused, clutter)


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
