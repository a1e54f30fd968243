"""Training histories, the few numbers that tell the lesson, and their statistics across seeds.

Kept free of TensorFlow so the page, the figures and the run store can use it cheaply.
A history has one row per finished epoch with the columns in `COLUMNS`; `epoch` counts
from 1.

Several seeds per side: one run's curve mixes the effect of augmentation with the luck of its
seed (the initial weights, the shuffling, the augmentation draws and, with a subset of the
training images, which images). Training each side with seeds `seed, seed+1, ...` and drawing
the mean with a band from the lowest to the highest seed shows how much of a difference is luck.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from lab.config import RunConfig

COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"]


def empty_history() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="int64" if c == "epoch" else "float64") for c in COLUMNS})


def from_rows(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Build a history from per-epoch rows (as the training callback reports them)."""
    if not rows:
        return empty_history()
    frame = pd.DataFrame(rows)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"history rows lack {', '.join(missing)}")
    frame = frame[COLUMNS].astype({c: "float64" for c in COLUMNS if c != "epoch"})
    return frame.astype({"epoch": "int64"}).reset_index(drop=True)


def summarize(history: pd.DataFrame) -> dict[str, Any]:
    """Final and best numbers of a run.

    `gap` is training minus validation accuracy at the last epoch: the memorisation the
    lesson is about. `best_epoch` is the epoch with the lowest validation loss, where an
    early stop would have kept the model.
    """
    if history.empty:
        return {"epochs": 0}
    last = history.iloc[-1]
    best = history.loc[history["val_loss"].idxmin()]
    return {
        "epochs": int(last["epoch"]),
        "accuracy": float(last["accuracy"]),
        "val_accuracy": float(last["val_accuracy"]),
        "loss": float(last["loss"]),
        "val_loss": float(last["val_loss"]),
        "best_val_accuracy": float(history["val_accuracy"].max()),
        "best_epoch": int(best["epoch"]),
        "gap": float(last["accuracy"] - last["val_accuracy"]),
        "seconds": float(history["seconds"].sum()),
    }


def reading(summary: dict[str, Any]) -> str:
    """One sentence, in plain words, of what a run's numbers mean."""
    if not summary.get("epochs"):
        return "No epoch has finished yet."
    train, val, gap = summary["accuracy"], summary["val_accuracy"], summary["gap"]
    if gap >= 0.15:
        return (
            f"Training accuracy reached {train:.0%} but validation stalled at {val:.0%}: "
            "the model memorised the training set."
        )
    if gap >= 0.05:
        return f"Training accuracy {train:.0%}, validation {val:.0%}: a small gap, mild overfitting."
    return f"Training accuracy {train:.0%} and validation {val:.0%} move together: the model generalises."


# -- several seeds per side ------------------------------------------------------------
# The numbers averaged per epoch ("epoch" is the key, not a number to average).
METRICS = [c for c in COLUMNS if c != "epoch"]
# The fields of `lab.history.summarize` given as mean and standard deviation across seeds.
SUMMARY_FIELDS = ("accuracy", "val_accuracy", "loss", "val_loss", "best_val_accuracy", "best_epoch", "gap", "seconds")


def seed_values(seed: int, seeds: int) -> list[int]:
    """The seeds of a comparison with `seeds` runs per side: `seed`, `seed + 1`, ..."""
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1, got {seeds}")
    return list(range(seed, seed + seeds))


def comparison_configs(config: RunConfig, seeds: int) -> list[RunConfig]:
    """Baseline and augmented run of each seed, pair by pair: [without s, with s, without s+1, ...].

    With one seed these are exactly `config.without_augmentation()` and `config`, so their
    keys (and cached results) are those of a plain comparison.
    """
    configs = []
    for seed in seed_values(config.seed, seeds):
        seeded = config.replace(seed=seed)
        configs += [seeded.without_augmentation(), seeded]
    return configs


def split_sides(items: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """Pairs [without, with, without, with, ...] into (all without, all with)."""
    if len(items) % 2:
        raise ValueError(f"expected pairs of runs, got {len(items)} items")
    return list(items[0::2]), list(items[1::2])


# -- histories ------------------------------------------------------------------------------
def aggregate(histories: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Per epoch, over the histories that have reached it: mean, min, max and std of each metric.

    One row per epoch with `epoch`, `runs` (how many histories reached it), the mean under
    the metric's own name (so the frame reads as a history: `summarize` works on it) and
    `<metric>_min`, `<metric>_max`, `<metric>_std` (sample standard deviation; NaN where a
    single run reached the epoch).
    """
    frames = [h for h in histories if not h.empty]
    if not frames:
        return _empty_aggregate()
    grouped = pd.concat(frames, ignore_index=True).groupby("epoch", sort=True)[METRICS]
    table = grouped.mean()
    for name, values in (("min", grouped.min()), ("max", grouped.max()), ("std", grouped.std())):
        table = table.join(values.add_suffix(f"_{name}"))
    table.insert(0, "runs", grouped.size().astype("int64"))
    return table.reset_index()


def mean_history(table: pd.DataFrame) -> pd.DataFrame:
    """The mean curve of an `aggregate` table, as a history (COLUMNS only)."""
    return table[COLUMNS].reset_index(drop=True) if not table.empty else empty_history()


def _empty_aggregate() -> pd.DataFrame:
    table = empty_history()
    table.insert(1, "runs", pd.Series(dtype="int64"))
    for suffix in ("min", "max", "std"):
        for metric in METRICS:
            table[f"{metric}_{suffix}"] = pd.Series(dtype="float64")
    return table


def summarize_seeds(histories: Sequence[pd.DataFrame]) -> dict[str, Any]:
    """Mean and sample standard deviation across seeds of each run's own summary.

    Each run counts with its last finished epoch, so a run still training counts with what it
    has. The mean sits under the summary's own field names (`lab.history.reading` reads it),
    the standard deviation under `<field>_std` (NaN with one run); `seeds` is how many runs
    have finished an epoch, `best_epochs` the lowest and highest best epoch.
    """
    summaries = [summarize(h) for h in histories if not h.empty]
    if not summaries:
        return {"epochs": 0, "seeds": 0}
    frame = pd.DataFrame(summaries)
    result: dict[str, Any] = {"seeds": len(summaries), "epochs": int(frame["epochs"].max())}
    for field in SUMMARY_FIELDS:
        result[field] = float(frame[field].mean())
        result[f"{field}_std"] = float(frame[field].std()) if len(frame) > 1 else math.nan
    result["best_epochs"] = (int(frame["best_epoch"].min()), int(frame["best_epoch"].max()))
    return result


def final_val_range(histories: Sequence[pd.DataFrame]) -> tuple[float, float] | None:
    """Lowest and highest final validation accuracy across seeds, or None before any epoch."""
    finals = _finals(histories)
    return (min(finals), max(finals)) if finals else None


def verdict(baseline: Sequence[pd.DataFrame], augmented: Sequence[pd.DataFrame]) -> str | None:
    """One sentence: is the difference in final validation accuracy larger than the seeds' spread?

    The test is the band's: the two sides' ranges (lowest to highest seed) overlap or not.
    None until each side has at least two runs with a finished epoch.
    """
    if min(sum(not h.empty for h in side) for side in (baseline, augmented)) < 2:
        return None
    low_base, high_base = final_val_range(baseline)
    low_aug, high_aug = final_val_range(augmented)
    difference = _mean(_finals(augmented)) - _mean(_finals(baseline))
    said = f"With augmentation, mean validation accuracy is {difference * 100:+.1f} points"
    if high_base < low_aug or high_aug < low_base:
        return f"{said}, and the seeds' ranges do not overlap: a difference larger than the luck of the seed."
    return f"{said}, but the seeds' ranges overlap: this difference may be the luck of the seed."


def _finals(histories: Sequence[pd.DataFrame]) -> list[float]:
    return [float(h["val_accuracy"].iloc[-1]) for h in histories if not h.empty]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def summary_row(summary: dict[str, Any], seeds: int) -> dict[str, str]:
    """A side's row of the page's table: means ± standard deviations across its seeds."""
    low, high = summary["best_epochs"]
    row = {"seeds": f"{summary['seeds']} of {seeds}"}
    for field in ("accuracy", "val_accuracy", "gap", "best_val_accuracy"):
        row[field] = format_mean_std(summary[field], summary[f"{field}_std"])
    row["best_epoch"] = str(low) if low == high else f"{low}–{high}"
    return row


def format_mean_std(mean: float, std: float, number: str = ".1%") -> str:
    """`71.2% ± 2.3%`; the mean alone when the spread is unknown (one run)."""
    if math.isnan(std):
        return format(mean, number)
    return f"{mean:{number}} ± {std:{number}}"
