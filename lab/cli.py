"""The command line: `python -m lab run|compare PRESET`, plus listings of presets and datasets."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lab import history as hist
from lab.config import MAX_SEEDS, ConfigError, RunConfig
from lab.errors import RunCancelled, TrainingFailed
from lab.presets import broken_presets, list_presets, load_preset

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_CANCELLED = 130


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr, not a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m lab",
        description="Overfitting Lab: train the course CNN without and with image augmentation, headless.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for name, help_text in (
        ("run", "train one configuration and report its history"),
        ("compare", "train without augmentation, then with it (same data, model and seed), and compare"),
    ):
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "preset",
            metavar="PRESET",
            help=f"a preset name from experiments/ ({', '.join(list_presets())}) or a path to a .toml file",
        )
        sub.add_argument(
            "--data",
            metavar="PATH",
            help="dataset folder: train/<class>/ and validation/<class>/, or <class>/ folders to split. "
            "A preset on the builtin dataset then reads this folder instead.",
        )
        sub.add_argument(
            "--set",
            dest="overrides",
            metavar="FIELD=VALUE",
            action="append",
            default=[],
            help="override a configuration field, repeatable: --set epochs=5 --set rotation_range=30 "
            "(augmentation knobs by bare name or as augmentation.NAME)",
        )
        sub.add_argument(
            "--out",
            metavar="DIR",
            help="run folder for histories and the exact configuration (default: runs/<time>-<preset>-<hash>)",
        )
        sub.add_argument(
            "--json",
            action="store_true",
            help="print the summary as one JSON object on the last line of standard output",
        )
        sub.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")
        sub.add_argument(
            "--record",
            metavar="NAME",
            help="also save the result as experiments/recorded/NAME.json (configuration, machine, date, duration, "
            "histories), for the page to replay; an existing NAME is refused before training unless --force",
        )
        sub.add_argument("--force", action="store_true", help="with --record: replace an existing recording NAME")
    commands.choices["compare"].add_argument(
        "--seeds",
        metavar="N",
        type=int,
        default=1,
        help=f"train each side with N seeds (seed, seed+1, ...; 1 to {MAX_SEEDS}) and report the mean ± standard "
        "deviation, so that the luck of one seed is not read as a result",
    )
    commands.add_parser("presets", help="list the presets in experiments/")
    commands.add_parser("datasets", help="list the registered datasets")
    return parser


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`FIELD=VALUE` pairs; VALUE is read as JSON when it can be (numbers, true/false), else text."""
    overrides: dict[str, Any] = {}
    for item in items:
        field, sep, raw = item.partition("=")
        if not sep or not field.strip():
            raise ConfigError(f"--set expects FIELD=VALUE, got '{item}'")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        overrides[field.strip()] = value
    return overrides


def resolve_config(preset_name: str, data: str | None, overrides: list[str]) -> tuple[str, RunConfig]:
    """The preset with --data and --set applied, its dataset checked (and downloaded on first use).

    `--data` is a folder, read in place, or a .zip, unpacked with every check into the lab's
    data folder (once per content: the same zip again reuses it). What was skipped or
    converted is said on stderr.
    """
    preset = load_preset(preset_name)
    config = preset.config
    unpacked = False
    if data:
        dataset = "folder" if config.dataset == "builtin" else config.dataset
        path, unpacked = _data_folder(data, config)
        config = config.replace(dataset=dataset, data_dir=str(path))
    if overrides:
        config = config.with_overrides(parse_overrides(overrides))
    _prepare_dataset(config, quiet=unpacked)
    return preset.name, config


def _data_folder(data: str, config: RunConfig) -> tuple[Path, bool]:
    """The folder to read, and whether it was unpacked from a zip (whose report is already printed)."""
    import zipfile

    path = Path(data).expanduser()
    if path.is_dir():
        return path.resolve(), False
    if path.is_file() and (path.suffix.lower() == ".zip" or zipfile.is_zipfile(path)):
        from lab.data.ingest import ingest_zip

        report = ingest_zip(path, validation_split=config.validation_split, seed=config.seed)
        print(f"data: {report.summary()} Unpacked at {report.data_dir}", file=sys.stderr)
        return report.data_dir, True
    raise ConfigError(f"--data {data}: no such folder or .zip file")


def _prepare_dataset(config: RunConfig, quiet: bool) -> None:
    """Download a course dataset on first use; say what a folder's listing skipped or converted."""
    from lab.data.download import ensure_dataset, is_downloadable
    from lab.data.listing import list_dataset

    if config.dataset == "builtin":
        return
    if not config.data_dir and is_downloadable(config.dataset):
        ensure_dataset(config.dataset)
    listing = list_dataset(config)
    if not quiet and (listing.left_out() or listing.converted):
        print(f"data: {listing.summary()}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "presets":
        return _print_presets()
    if args.command == "datasets":
        return _print_datasets()

    from lab.data.registry import DatasetError

    try:
        _check_record(args.record, args.force)
        name, config = resolve_config(args.preset, args.data, args.overrides)
        if args.command == "compare" and not config.augmentation.enabled:
            raise ConfigError("the configuration has no augmentation switched on: nothing to compare against")
        seeds = _check_seeds(args, config)
        out = Path(args.out) if args.out else _default_run_folder(name, config)
        _check_out(out, "--out" if args.out else "the run folder")
    except (ConfigError, DatasetError) as exc:
        print(f"python -m lab: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    folder = RunFolder(out)
    if seeds > 1:
        return _exit_code(folder, _train_seeds_and_report, args, name, config, seeds, folder)
    return _exit_code(folder, _train_and_report, args, name, config, folder)


def _check_record(record: str | None, force: bool) -> None:
    """A --record NAME that is a plain file name and, unless --force, not yet taken: before any training."""
    from lab.recordings import recording_path

    if not record:
        return
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", record):
        raise ConfigError(f"--record {record!r}: use letters, digits, '_', '-' and '.' only")
    if not force and recording_path(record).exists():
        said = "a recording of that name exists; add --force to replace it, or choose another name"
        raise ConfigError(f"--record {record}: {said}")


def _check_out(out: Path, label: str) -> None:
    """The run folder is a folder, or can become one: no file in its place or in a parent's."""
    for path in (out, *out.parents):
        if path.exists() or path.is_symlink():
            if not path.is_dir():
                raise ConfigError(f"{label} {out}: {path} is a file, not a folder")
            return


def _check_seeds(args, config: RunConfig) -> int:
    """`--seeds N` within 1..MAX_SEEDS, with every seed a valid one; 1 for `run`."""
    seeds = getattr(args, "seeds", 1)
    if not 1 <= seeds <= MAX_SEEDS:
        raise ConfigError(f"--seeds {seeds}: use 1 to {MAX_SEEDS}")
    if seeds > 1 and args.record:
        raise ConfigError("--record saves one run per side: leave out --seeds, or use --seeds 1")
    try:
        config.replace(seed=config.seed + seeds - 1)
    except ConfigError:
        raise ConfigError(f"--seeds {seeds}: the last seed, {config.seed + seeds - 1}, is out of range") from None
    return seeds


def _exit_code(folder: RunFolder, command: Callable[..., int], *args: Any) -> int:
    """Run a training command: its own exit code, or that of a cancel or a failed run (said on stderr).

    A run that does not finish takes back what it wrote (half a run's files would read as a result).
    """
    try:
        return command(*args)
    except (KeyboardInterrupt, RunCancelled, TrainingFailed, WriteFailed, OSError) as exc:
        folder.discard()
        if isinstance(exc, RunCancelled | KeyboardInterrupt):
            if isinstance(exc, KeyboardInterrupt):
                print("cancelled", file=sys.stderr)
            return EXIT_CANCELLED
        if isinstance(exc, OSError):
            said = f"training failed: {_os_reason(exc)}" + (f" ({exc.filename})" if exc.filename else "")
        else:
            said = str(exc) if isinstance(exc, WriteFailed) else f"training failed: {exc}"
        print(f"python -m lab: {said}", file=sys.stderr)
        return EXIT_FAILED


class WriteFailed(Exception):
    """A file or folder of the run could not be written; the message says which and why, in one line."""

    def __init__(self, action: str, exc: OSError) -> None:
        super().__init__(f"{_os_reason(exc)}: could not {action}")


def _os_reason(exc: OSError) -> str:
    """Why a file operation failed, in words; the two a user can act on by name."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return exc.strerror or str(exc) or type(exc).__name__


class RunFolder:
    """The run folder one command writes, and how to take its writes back when the run fails.

    After a failed or cancelled run a user expects the disk as it was: the folders the run made
    go (when nothing else was put in them), the files it added go, and a file it replaced (an
    earlier run's summary.json in the same --out) comes back. Nothing else is touched.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._made: list[Path] = []  # outermost first
        self._added: list[Path] = []
        self._set_aside: dict[Path, Path] = {}  # a replaced file -> its earlier version

    def open(self) -> None:
        missing = [p for p in (self.path, *self.path.parents) if not p.exists()]
        for folder in reversed(missing):
            try:
                folder.mkdir()
            except FileExistsError:
                continue  # made meanwhile by someone else: not ours to remove
            except OSError as exc:
                raise WriteFailed(f"create the folder {folder}", exc) from None
            self._made.append(folder)

    def write(self, name: str, text: str) -> None:
        path = self.path / name
        try:
            if path not in self._added and path not in self._set_aside:
                self._note(path)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise WriteFailed(f"write {path}", exc) from None

    def _note(self, path: Path) -> None:
        if path.is_file() or path.is_symlink():
            # Moved, not copied: a full disk cannot stop it, and a rename is all it takes to undo.
            earlier = path.with_name(f".{path.name}.before-run-{os.getpid()}")
            path.replace(earlier)
            self._set_aside[path] = earlier
        else:
            self._added.append(path)

    def keep(self) -> None:
        """The run finished: nothing is to be taken back, and the files it replaced are not needed."""
        for earlier in self._set_aside.values():
            with contextlib.suppress(OSError):
                earlier.unlink()
        self._added, self._set_aside, self._made = [], {}, []

    def discard(self) -> None:
        # Each step on its own: one that fails must not stop the others, nor end in a traceback.
        for path in self._added:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        for path, earlier in self._set_aside.items():
            with contextlib.suppress(OSError):
                earlier.replace(path)
        for folder in reversed(self._made):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: a file someone else put there stays
        self._added, self._set_aside, self._made = [], {}, []


def _train_and_report(args, name: str, config: RunConfig, out: RunFolder) -> int:
    from lab.training.train import compare, train

    progress = None if args.quiet else _progress_printer(config.epochs)
    started = time.perf_counter()
    _write_config(out, name, config)
    print(
        f"{args.command} {name} ({config.key()}): {config.dataset}, {config.image_size} px, "
        f"{config.epochs} epochs -> {out.path}",
        flush=True,
    )
    if args.command == "compare":
        result = compare(config, on_epoch=progress)
        runs = {"baseline": result.baseline, "augmented": result.augmented}
    else:
        runs = {"run": train(config, on_epoch=(lambda row: progress("run", row)) if progress else None)}
    seconds = time.perf_counter() - started
    summaries = {side: hist.summarize(rows) for side, rows in runs.items()}
    for side, rows in runs.items():
        out.write(f"{side}.csv", hist.to_csv(rows))
    report = {"runs": summaries, "seconds": round(seconds, 2)}
    out.write("summary.json", json.dumps(report, indent=2) + "\n")
    out.keep()
    if args.record and not _record(args, name, config, runs, seconds, out.path):
        return EXIT_FAILED
    _print_table(summaries, seconds)
    if args.json:
        print(json.dumps(report))
    return 0


def _record(args, name: str, config: RunConfig, runs: dict[str, Any], seconds: float, out: Path) -> bool:
    """Save the finished run as a recording; False (said on stderr) when it could not: the run folder stays."""
    from lab.recordings import recording_path, save_recording

    try:
        print(f"recorded: {save_recording(args.record, name, config, runs, seconds, replace=args.force)}")
        return True
    except FileExistsError:
        said = "a recording of that name was saved while this run trained; it was not replaced"
        print(f"python -m lab: error: --record {args.record}: {said} (this run is in {out})", file=sys.stderr)
    except OSError as exc:
        action = f"write {recording_path(args.record)}"
        print(f"python -m lab: {WriteFailed(action, exc)}; the run is kept in {out}", file=sys.stderr)
    return False


def _train_seeds_and_report(args, name: str, config: RunConfig, seeds: int, out: RunFolder) -> int:
    """A comparison per seed (each decodes its data once for both sides), then the means across seeds."""
    from lab.history import seed_values
    from lab.training.train import compare

    progress = None if args.quiet else _progress_printer(config.epochs)
    started = time.perf_counter()
    _write_config(out, name, config)
    values = seed_values(config.seed, seeds)
    print(
        f"compare {name} ({config.key()}): {config.dataset}, {config.image_size} px, {config.epochs} epochs, "
        f"seeds {values[0]}-{values[-1]} -> {out.path}",
        flush=True,
    )
    runs: dict[str, list[Any]] = {"baseline": [], "augmented": []}
    for seed in values:
        # Not one decode for all seeds: the seed also picks the training subset and the validation split.
        report = (lambda side, row, seed=seed: progress(f"{side} {seed}", row)) if progress else None
        result = compare(config.replace(seed=seed), on_epoch=report)
        runs["baseline"].append(result.baseline)
        runs["augmented"].append(result.augmented)
        _print_seed_line(seed, result.baseline, result.augmented)
    seconds = time.perf_counter() - started
    for side, histories in runs.items():
        for seed, rows in zip(values, histories, strict=True):
            out.write(f"{side}-seed{seed}.csv", hist.to_csv(rows))
    report = _seeds_report(runs, values, seconds)
    out.write("summary.json", json.dumps(report, indent=2) + "\n")
    out.keep()
    _print_seeds_table(runs, report, seconds)
    if args.json:
        print(json.dumps(report))
    return 0


def _print_seed_line(seed: int, baseline, augmented) -> None:
    base, aug = hist.summarize(baseline), hist.summarize(augmented)
    print(
        f"seed {seed}: baseline val_acc {base['val_accuracy']:.3f} gap {base['gap']:.3f} | "
        f"augmented val_acc {aug['val_accuracy']:.3f} gap {aug['gap']:.3f}",
        flush=True,
    )


def _seeds_report(runs: dict[str, list[Any]], values: list[int], seconds: float) -> dict[str, Any]:
    """`runs`: each side's means across seeds (with `<field>_std` and `seeds`); `per_seed`: each run's summary."""
    from lab.history import summarize_seeds

    means = {}
    for side, histories in runs.items():
        summary = summarize_seeds(histories)
        summary["best_epochs"] = list(summary["best_epochs"])
        means[side] = summary
    per_seed = {
        side: [{"seed": seed, **hist.summarize(rows)} for seed, rows in zip(values, histories, strict=True)]
        for side, histories in runs.items()
    }
    return {"runs": means, "per_seed": per_seed, "seeds": values, "seconds": round(seconds, 2)}


def _print_seeds_table(runs: dict[str, list[Any]], report: dict[str, Any], seconds: float) -> None:
    from lab.history import format_mean_std, verdict

    columns = ["accuracy", "val_accuracy", "gap", "best_val_accuracy"]
    print()
    print(f"{'':>9}  " + "  ".join(f"{c:>17}" for c in columns) + f"  (mean ± std of {len(report['seeds'])} seeds)")
    for side, summary in report["runs"].items():
        cells = [format_mean_std(summary[c], summary[f"{c}_std"], ".3f") for c in columns]
        print(f"{side:>9}  " + "  ".join(f"{c:>17}" for c in cells))
    for side, summary in report["runs"].items():
        print(f"{side} (mean): {hist.reading(summary)}")
    print(verdict(runs["baseline"], runs["augmented"]))
    print(f"total {seconds:.1f} s")


def _progress_printer(epochs: int):
    def report(side: str, row: dict[str, Any]) -> None:
        print(
            f"{side:>9} epoch {row['epoch']:>3}/{epochs}  loss {row['loss']:.3f}  acc {row['accuracy']:.3f}  "
            f"val_loss {row['val_loss']:.3f}  val_acc {row['val_accuracy']:.3f}  {row['seconds']:.1f}s",
            flush=True,
        )

    return report


def _print_table(summaries: dict[str, dict[str, Any]], seconds: float) -> None:
    columns = ["accuracy", "val_accuracy", "gap", "best_val_accuracy", "best_epoch", "seconds"]
    print()
    print(f"{'':>9}  " + "  ".join(f"{c:>17}" for c in columns))
    for side, summary in summaries.items():
        cells = [summary.get(c, float("nan")) for c in columns]
        print(f"{side:>9}  " + "  ".join(f"{c:>17.3f}" if isinstance(c, float) else f"{c:>17}" for c in cells))
    for side, summary in summaries.items():
        print(f"{side}: {hist.reading(summary)}")
    print(f"total {seconds:.1f} s")


def _default_run_folder(name: str, config: RunConfig) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Path(os.environ.get("LAB_RUNS_DIR", "runs")) / f"{stamp}-{name}-{config.key()}"


def _write_config(out: RunFolder, name: str, config: RunConfig) -> None:
    out.open()
    out.write("config.toml", f"# preset: {name}\n" + config.to_toml())
    out.write("config.json", config.to_json() + "\n")


def _print_presets() -> int:
    for name in list_presets():
        preset = load_preset(name)
        print(f"{name:<26} {preset.title}")
    for name, problem in broken_presets().items():
        print(f"python -m lab: preset '{name}' left out: {problem}", file=sys.stderr)
    return 0


def _print_datasets() -> int:
    from lab.data.registry import REGISTRY

    for info in REGISTRY.values():
        sizes = ", ".join(f"{split} {sum(counts.values())}" for split, counts in info.split_sizes.items())
        print(f"{info.name:<18} {info.title}" + (f" ({sizes})" if sizes else ""))
    return 0
