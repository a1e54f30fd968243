"""`python -m lab sweep PRESET --train-images 50,100,200,300 [--json]`: the data-size curve from the command line.

Each size trains without then with augmentation (`lab.runs.sweep`); the run folder gets each run's
history, `sweep.csv` (one row per run) and `summary.json`. Registered in `lab.cli.COMMANDS`; like every
such module it never imports `lab.cli` itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lab import history as hist
from lab.cli.folder import RunFolder, exit_code
from lab.cli.options import EXIT_BAD_INPUT, add_set_option, parse_overrides
from lab.config import ConfigError, RunConfig


def add_parser(commands: Any) -> None:
    help_text = "validation accuracy against the number of training images, without and with augmentation"
    sub = commands.add_parser("sweep", help=help_text, description=help_text)
    sub.add_argument("preset", metavar="PRESET", help="a preset name from experiments/ or a path to a .toml file")
    sub.add_argument(
        "--train-images",
        metavar="N,N,...",
        required=True,
        help="the training-set sizes, comma-separated (2 to 8), e.g. 50,100,200,300: each a class-balanced, "
        "seeded subset of the training split",
    )
    add_set_option(sub)
    sub.add_argument("--out", metavar="DIR", help="run folder (default: runs/<time>-sweep-<preset>-<hash>)")
    sub.add_argument("--json", action="store_true", help="print the result as one JSON object on the last line")
    sub.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")


def run(args: argparse.Namespace) -> int:
    from lab.data.registry import DatasetError
    from lab.runs.sweep import parse_sizes

    try:
        name, config = _config(args.preset, args.overrides)
        if not config.augmentation.enabled:
            raise ConfigError("the configuration has no augmentation switched on: nothing to compare against")
        available, classes = _training_split(config)
        sizes = parse_sizes(args.train_images, available, minimum=classes)
        out = Path(args.out) if args.out else _default_folder(name, config)
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out}: a file, not a folder")
    except (ConfigError, DatasetError) as exc:
        print(f"python -m lab: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    folder = RunFolder(out)
    return exit_code(folder, _sweep_and_report, args, name, config, sizes, folder)


def _config(preset_name: str, overrides: list[str]) -> tuple[str, RunConfig]:
    from lab.presets import load_preset

    preset = load_preset(preset_name)
    config = preset.config
    if overrides:
        config = config.with_overrides(parse_overrides(overrides))
    return preset.name, config


def _training_split(config: RunConfig) -> tuple[int, int]:
    """How many training images the dataset has, and how many classes (a course dataset is downloaded first)."""
    from lab.data.download import ensure_dataset, is_downloadable
    from lab.data.listing import list_dataset
    from lab.data.registry import get_info

    if config.dataset == "builtin":
        info = get_info("builtin")
        return info.total("train"), info.num_classes
    if not config.data_dir and is_downloadable(config.dataset):
        ensure_dataset(config.dataset)
    listing = list_dataset(config)
    return len(listing.files["train"]), len(listing.class_names)


def _default_folder(name: str, config: RunConfig) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Path(os.environ.get("LAB_RUNS_DIR", "runs")) / f"{stamp}-sweep-{name}-{config.key()}"


def _sweep_and_report(args: argparse.Namespace, name: str, config: RunConfig, sizes: list[int], out: RunFolder) -> int:
    from lab.runs.sweep import sweep_configs, table
    from lab.training.train import compare

    started = time.perf_counter()
    out.open()
    out.write("config.toml", f"# preset: {name}, sweep over train_images {sizes}\n" + config.to_toml())
    print(f"sweep {name} ({config.key()}): {config.dataset}, sizes {', '.join(map(str, sizes))} -> {out.path}")
    histories = []
    for size in sizes:
        progress = None if args.quiet else _progress_printer(size, config.epochs)
        result = compare(config.replace(train_images=size), on_epoch=progress)
        for side, rows in (("baseline", result.baseline), ("augmented", result.augmented)):
            out.write(f"{side}-{size}.csv", hist.to_csv(rows))
            histories.append(rows)
        base, aug = hist.summarize(result.baseline), hist.summarize(result.augmented)
        print(f"{size:>6} images: validation {base['val_accuracy']:.3f} without, {aug['val_accuracy']:.3f} with")
    from lab.runs.sweep import points

    found = points(sweep_configs(config, sizes), histories)
    seconds = time.perf_counter() - started
    report = {"sizes": sizes, "points": [asdict(p) for p in found], "table": table(found), "seconds": round(seconds, 2)}
    lines = ["train_images,side,val_accuracy,best_val_accuracy,accuracy,epochs"]
    lines += [
        f"{p.train_images},{p.side},{p.val_accuracy:.6f},{p.best_val_accuracy:.6f},{p.accuracy:.6f},{p.epochs}"
        for p in found
    ]
    out.write("sweep.csv", "\n".join(lines) + "\n")
    out.write("summary.json", json.dumps(report, indent=2) + "\n")
    out.keep()
    print(f"\n{'images':>8}  {'without':>8}  {'with':>8}   (validation accuracy, last epoch)")
    for row in report["table"]:
        print(f"{row['train_images']:>8}  {row['baseline']:>8.3f}  {row['augmented']:>8.3f}")
    print(f"total {seconds:.1f} s")
    if args.json:
        print(json.dumps(report))
    return 0


def _progress_printer(size: int, epochs: int):
    def report(side: str, row: dict[str, Any]) -> None:
        print(
            f"{size:>6} {side:>9} epoch {row['epoch']:>3}/{epochs}  acc {row['accuracy']:.3f}  "
            f"val_acc {row['val_accuracy']:.3f}  {row['seconds']:.1f}s",
            flush=True,
        )

    return report
