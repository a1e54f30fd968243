"""Train a configuration for `run` and `compare`, write its run folder and print what it shows."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from lab import history as hist
from lab.cli.folder import EXIT_FAILED, RunFolder, WriteFailed
from lab.config import RunConfig


def train_and_report(args, name: str, config: RunConfig, out: RunFolder) -> int:
    from lab.cli.outcome import add_outcomes, outcome_folder
    from lab.training.child import import_tensorflow_lean
    from lab.training.train import compare, train

    progress = None if args.quiet else _progress_printer(config.epochs)
    started = time.perf_counter()
    _write_config(out, name, config)
    import_tensorflow_lean()
    print(
        f"{args.command} {name} ({config.key()}): {config.dataset}, {config.image_size} px, "
        f"{config.epochs} epochs -> {out.path}",
        flush=True,
    )
    if args.command == "compare":
        for side in ("baseline", "augmented"):
            outcome_folder(out, side)
        result = compare(config, on_epoch=progress, outcome_dir=out.path)
        runs = {"baseline": result.baseline, "augmented": result.augmented}
    else:
        on_epoch = (lambda row: progress("run", row)) if progress else None
        runs = {"run": train(config, on_epoch=on_epoch, outcome_dir=outcome_folder(out, "run"))}
    seconds = time.perf_counter() - started
    summaries = {side: hist.summarize(rows) for side, rows in runs.items()}
    add_outcomes(out, summaries)
    for side, rows in runs.items():
        out.write(f"{side}.csv", hist.to_csv(rows))
    report = {"runs": summaries, "seconds": round(seconds, 2)}
    out.write("summary.json", json.dumps(report, indent=2) + "\n")
    out.keep()
    if args.record and not _record(args, name, config, runs, seconds, out.path):
        return EXIT_FAILED
    _print_table(summaries, seconds)
    _print_readings(runs, config)
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


def train_seeds_and_report(args, name: str, config: RunConfig, seeds: int, out: RunFolder) -> int:
    """A comparison per seed (each decodes its data once for both sides), then the means across seeds."""
    from lab.cli.outcome import add_seed_outcomes, outcome_folder
    from lab.history import seed_values
    from lab.training.child import import_tensorflow_lean
    from lab.training.train import compare

    progress = None if args.quiet else _progress_printer(config.epochs)
    started = time.perf_counter()
    _write_config(out, name, config)
    import_tensorflow_lean()
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
        folder = outcome_folder(out, f"seed{seed}")
        result = compare(config.replace(seed=seed), on_epoch=report, outcome_dir=folder)
        runs["baseline"].append(result.baseline)
        runs["augmented"].append(result.augmented)
        _print_seed_line(seed, result.baseline, result.augmented)
    seconds = time.perf_counter() - started
    for side, histories in runs.items():
        for seed, rows in zip(values, histories, strict=True):
            out.write(f"{side}-seed{seed}.csv", hist.to_csv(rows))
    report = _seeds_report(runs, values, seconds)
    add_seed_outcomes(out, report["per_seed"])
    out.write("summary.json", json.dumps(report, indent=2) + "\n")
    out.keep()
    _print_seeds_table(runs, report, seconds)
    _print_readings(runs, config)
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
    print(verdict(runs["baseline"], runs["augmented"]))
    print(f"total {seconds:.1f} s")


def _print_readings(runs: dict[str, Any], config: RunConfig) -> None:
    """Each side's reading of its whole curve (the mean curve of several seeds) and what augmentation did."""
    from lab.data.registry import REGISTRY

    known = REGISTRY.get(config.dataset)
    classes = len(known.class_names) if known is not None and known.class_names else None  # else guessed
    sides = {
        side: value if isinstance(value, list) and value and isinstance(value[0], list) else [value]
        for side, value in runs.items()
    }
    for side, histories in sides.items():
        curve = histories[0] if len(histories) == 1 else hist.mean_history(hist.aggregate(histories))
        print(f"{side}{' (mean)' if len(histories) > 1 else ''}: {hist.reading(curve, classes)}")
    if {"baseline", "augmented"} <= set(sides):
        print(
            f"augmentation: {hist.augmentation_effect(sides['baseline'], sides['augmented'], config.augmentation, classes)}"
        )


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
    print(f"total {seconds:.1f} s")


def _write_config(out: RunFolder, name: str, config: RunConfig) -> None:
    out.open()
    out.write("config.toml", f"# preset: {name}\n" + config.to_toml())
    out.write("config.json", config.to_json() + "\n")
