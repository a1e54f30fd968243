"""The command line: `python -m lab run|compare PRESET`, plus listings of presets and datasets."""

from __future__ import annotations

import argparse
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lab.cli import atlas, sweep
from lab.cli.folder import EXIT_CANCELLED, EXIT_FAILED, RunFolder, exit_code
from lab.cli.options import EXIT_BAD_INPUT, add_set_option, parse_overrides
from lab.cli.report import train_and_report, train_seeds_and_report
from lab.config import MAX_SEEDS, ConfigError, RunConfig
from lab.presets import broken_presets, list_presets, load_preset

# Commands with a module of their own (lab/cli/NAME.py): each has `add_parser(commands)`, which adds its
# subparser, and `run(args) -> int`. Such a module never imports lab.cli itself (that would be a circle).
COMMANDS: dict[str, Any] = {"sweep": sweep, "atlas": atlas}

__all__ = ["EXIT_BAD_INPUT", "EXIT_CANCELLED", "EXIT_FAILED", "build_parser", "main", "resolve_config"]


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
        add_set_option(sub, "--set epochs=5 --set rotation_range=30")
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
    for command in COMMANDS.values():
        command.add_parser(commands)
    commands.add_parser("presets", help="list the presets in experiments/")
    commands.add_parser("datasets", help="list the registered datasets")
    return parser


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
    if args.command in COMMANDS:
        return COMMANDS[args.command].run(args)

    from lab.data.registry import DatasetError

    try:
        _check_record(args.record, args.force)
        name, config = resolve_config(args.preset, args.data, args.overrides)
        if args.command == "compare" and not config.augmentation.enabled:
            raise ConfigError("the configuration has no augmentation switched on: nothing to compare against")
        seeds = _check_seeds(args, config)
        out = Path(args.out) if args.out else _default_run_folder(name, config)
        check_out(out, "--out" if args.out else "the run folder")
    except (ConfigError, DatasetError) as exc:
        print(f"python -m lab: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    folder = RunFolder(out)
    if seeds > 1:
        return exit_code(folder, train_seeds_and_report, args, name, config, seeds, folder)
    return exit_code(folder, train_and_report, args, name, config, folder)


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


def check_out(out: Path, label: str) -> None:
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


def _default_run_folder(name: str, config: RunConfig) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Path(os.environ.get("LAB_RUNS_DIR", "runs")) / f"{stamp}-{name}-{config.key()}"


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
