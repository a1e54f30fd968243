"""Several seeds per side: the configurations to train, and their histories summed up.

One run's curve mixes the effect of augmentation with the luck of its seed (the initial
weights, the shuffling, the augmentation draws and, with a subset of the training images,
which images). Training each side with seeds `seed, seed+1, ...` and drawing the mean with
a band from the lowest to the highest seed shows how much of a difference is luck.

Pure pandas apart from `submit_in_order`, which talks to a `lab.worker.Worker`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from lab.config import RunConfig
from lab.history import COLUMNS, empty_history, summarize

if TYPE_CHECKING:  # the figures and the command line use this module without a worker
    from lab.worker import Worker

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


def submit_in_order(worker: Worker, configs: Sequence[RunConfig], owner: str | None) -> list[RunConfig]:
    """Submit `configs` in order until the worker's per-visitor queue is full; returns those left.

    The worker lets one visitor have only a few runs waiting (lab.worker.MAX_WAITING_PER_OWNER),
    so a comparison of many seeds is handed over a few runs at a time as earlier ones start.
    Runs already in the store are answered at once and never fill the queue.
    """
    from lab.worker import QueueFull

    for index, config in enumerate(configs):
        try:
            worker.submit(config, owner=owner)
        except QueueFull:
            return list(configs[index:])
    return []


def unsubmitted(worker: Worker, keys: Sequence[str]) -> list[RunConfig]:
    """The runs of a comparison (`keys` from `comparison_configs`) still to hand to the worker.

    After a refresh the page knows the keys from its link but not which runs the closed page
    had yet to submit. While the comparison still trains, those are the runs the worker has
    never heard of; their configurations follow from the first seed's stored run. A finished
    or cancelled comparison gets nothing: opening its link never starts training.
    """
    if len(keys) <= 2:
        return []
    statuses = [worker.status(key) for key in keys]
    if not any(status.active for status in statuses):
        return []
    stored = worker.store.load(keys[1])
    if stored is None:
        return []
    configs = comparison_configs(stored.config, len(keys) // 2)
    if [config.key() for config in configs] != list(keys):
        return []  # not a comparison this page asked for
    return [config for config, status in zip(configs, statuses, strict=True) if status.state == "unknown"]


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
