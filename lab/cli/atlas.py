"""`python -m lab atlas PRESET`: record once the runs a class most often asks for.

For a lesson preset: the baseline (every knob off), each augmentation knob the preset sets
alone at the preset's value, and the preset's own combination. Each is trained once and
saved as a recording in experiments/atlas/PRESET/NAME.json. A server seeds its run store with
them (`lab.runs.store.RunStore.seed_from_recordings`), so these configurations are answered at
once, with no training job, by their config key.

Each entry already there is kept (the command can be stopped and run again to finish), unless
`--force`. Never imports lab.cli itself (see COMMANDS there).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from lab.cli.folder import EXIT_FAILED
from lab.cli.options import EXIT_BAD_INPUT
from lab.config import ConfigError, RunConfig
from lab.knobs import KNOBS
from lab.presets import load_preset
from lab.runs.seeding import ATLAS_DIR


def add_parser(commands: argparse._SubParsersAction) -> None:
    help_text = "record a preset's baseline, each knob alone and the combination, for servers to answer at once"
    sub = commands.add_parser("atlas", help=help_text, description=help_text)
    sub.add_argument("preset", metavar="PRESET", help="a preset name from experiments/ (or a path to a .toml file)")
    sub.add_argument("--only", metavar="NAME", action="append", default=[], help="record only this entry (repeatable)")
    sub.add_argument("--force", action="store_true", help="train and replace entries already recorded")
    sub.add_argument("--list", action="store_true", help="list the entries and their keys; train nothing")
    sub.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")


def atlas_entries(config: RunConfig) -> dict[str, RunConfig]:
    """The atlas of a preset's configuration: entry name -> configuration, in training order."""
    base = config.without_augmentation()
    entries = {"baseline": base}
    aug = config.augmentation
    for knob in KNOBS:
        value = getattr(aug, knob.name)
        if value != knob.off:
            entries[knob.name] = base.replace(augmentation=dataclasses.replace(base.augmentation, **{knob.name: value}))
    if config.augmentation.enabled:
        entries["combination"] = config
    return entries


def run(args: argparse.Namespace) -> int:
    try:
        preset = load_preset(args.preset)
        entries = atlas_entries(preset.config)
        unknown = [name for name in args.only if name not in entries]
        if unknown:
            raise ConfigError(f"--only {unknown[0]}: not an entry of this atlas ({', '.join(entries)})")
    except ConfigError as exc:
        print(f"python -m lab: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    folder = ATLAS_DIR / preset.name
    if args.list:
        for name, config in entries.items():
            there = _state(folder / f"{name}.json", config)
            print(f"{name:<20} {config.key()}  {there}")
        return 0
    wanted = {name: config for name, config in entries.items() if not args.only or name in args.only}
    return _record_all(preset.name, wanted, folder, force=args.force, quiet=args.quiet)


def _record_all(preset: str, entries: dict[str, RunConfig], folder: Path, *, force: bool, quiet: bool) -> int:
    from lab.data.download import ensure_dataset, is_downloadable
    from lab.data.registry import DatasetError
    from lab.recordings import save_recording
    from lab.training.train import LastData, train

    data = LastData()  # every entry reads the same images: decode them once
    for name, config in entries.items():
        path = folder / f"{name}.json"
        if _state(path, config) == "recorded" and not force:
            print(f"{name}: already recorded ({path.name}), kept", flush=True)
            continue
        try:
            if not config.data_dir and is_downloadable(config.dataset):
                ensure_dataset(config.dataset)
        except DatasetError as exc:  # offline, say: one line that says what to do, not a traceback
            print(f"python -m lab: error: atlas {preset}: {exc}", file=sys.stderr)
            return EXIT_FAILED
        print(f"{name} ({config.key()}): {config.epochs} epochs", flush=True)
        started = time.perf_counter()
        progress = None if quiet else _progress(name, config.epochs)
        try:
            rows = train(config, on_epoch=progress, data=data.get(config))
        except Exception as exc:  # one line, never a traceback: the entries before it are kept
            print(f"python -m lab: error: atlas {preset} {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return EXIT_FAILED
        seconds = time.perf_counter() - started
        saved = save_recording(name, preset, config, {"run": rows}, seconds, folder=folder)
        print(f"{name}: {seconds:.0f} s, val_accuracy {rows[-1]['val_accuracy']:.3f} -> {saved.name}", flush=True)
    return 0


def _state(path: Path, config: RunConfig) -> str:
    """ "recorded" when `path` holds this very configuration; "stale" when the preset has changed since."""
    try:
        recorded = RunConfig.from_dict(json.loads(path.read_text(encoding="utf-8"))["config"])
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError, KeyError, TypeError, ConfigError):
        return "stale"
    # By key: a recording made before a field was added (at its default) is still this configuration.
    return "recorded" if recorded.key() == config.key() else "stale"


def _progress(name: str, epochs: int):
    def show(row: dict) -> None:
        print(f"  {name} epoch {row['epoch']}/{epochs}: val_accuracy {row['val_accuracy']:.3f}", flush=True)

    return show
