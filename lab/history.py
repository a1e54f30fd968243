"""Training histories, the few numbers that tell the lesson, and their statistics across seeds.

A history is a list of epoch rows: plain dicts with the keys of `COLUMNS`, one per finished
epoch, `epoch` counting from 1. Rows are what the training child reports, and they travel
unchanged through the trainer, the worker and the run store to the page; a DataFrame is
built only where one is read (the figures, the tables). `from_rows` checks rows, `to_csv`
and `from_csv` are the run store's (and the page's download's) file format.

Kept free of TensorFlow, and of pandas until a function that needs it is called, so the
worker and the run store use it cheaply. The functions that read histories (`summarize`,
`aggregate`, ...) take rows, or a DataFrame with the same columns.

Several seeds per side: one run's curve mixes the effect of augmentation with the luck of its
seed (the initial weights, the shuffling, the augmentation draws and, with a subset of the
training images, which images). Training each side with seeds `seed, seed+1, ...` and drawing
the mean with a band from the lowest to the highest seed shows how much of a difference is luck.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lab.config import RunConfig

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"]

Row = dict[str, Any]


def from_rows(rows: Iterable[Mapping[str, Any]]) -> list[Row]:
    """Checked copies of per-epoch rows (as the training callback reports them).

    Each row keeps exactly the keys of `COLUMNS`: `epoch` an int, the others floats (a
    missing number, None or "", is NaN). Raises ValueError for a row that lacks a key, or
    holds something that is not a number.
    """
    if isinstance(rows, (str, bytes, Mapping)) or hasattr(rows, "columns") or not isinstance(rows, Iterable):
        raise ValueError(f"a history must be a list of rows, got {type(rows).__name__}")
    checked = []
    for row in rows:
        if not isinstance(row, Mapping):
            raise ValueError(f"a history row must be a dict, got {type(row).__name__}")
        missing = [c for c in COLUMNS if c not in row]
        if missing:
            raise ValueError(f"history rows lack {', '.join(missing)}")
        checked.append({"epoch": _epoch(row["epoch"]), **{c: _number(row[c], c) for c in COLUMNS[1:]}})
    return checked


def _number(value: Any, column: str) -> float:
    if value is None or value == "":
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"history column {column} holds {value!r}, not a number") from None


def _epoch(value: Any) -> int:
    number = _number(value, "epoch")
    if not number.is_integer():
        raise ValueError(f"history column epoch holds {value!r}, not a whole number")
    return int(number)


def rows_of(history: Any) -> list[Row]:
    """The rows of a history given as rows, as a DataFrame, or as None (no epoch yet)."""
    if history is None:
        return []
    if hasattr(history, "to_dict") and hasattr(history, "columns"):  # a DataFrame, without importing pandas
        return history.to_dict("records")
    return list(history)


def to_frame(history: Any) -> pd.DataFrame:
    """A history as a DataFrame with exactly `COLUMNS` (int epochs, float numbers), for reading."""
    import pandas as pd

    rows = from_rows(rows_of(history))
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.astype({c: "int64" if c == "epoch" else "float64" for c in COLUMNS})


def to_csv(history: Any) -> str:
    """The history as CSV text: a header of `COLUMNS`, one line per epoch, NaN as an empty field.

    The run store's `history.csv` and the page's download; `from_csv` reads it back exactly.
    """
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in from_rows(rows_of(history)):
        writer.writerow(["" if _isnan(row[c]) else repr(row[c]) for c in COLUMNS])
    return text.getvalue()


def from_csv(text: str) -> list[Row]:
    """The rows of a history written by `to_csv` (or by pandas' `to_csv(index=False)`).

    Raises ValueError for text that is not such a history: no header, a missing column, a
    line with more fields than the header, a field that is not a number.
    """
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None:
        raise ValueError("the history file is empty: not even a header")
    rows = []
    for row in reader:
        if None in row:
            raise ValueError(f"line {reader.line_num} of the history has more fields than its header")
        rows.append(row)
    missing = [c for c in COLUMNS if c not in reader.fieldnames]
    if missing:
        raise ValueError(f"the history file lacks the columns {', '.join(missing)}")
    return from_rows(rows)


def _isnan(value: float) -> bool:
    return isinstance(value, float) and math.isnan(value)


def total_seconds(history: Any) -> float:
    """The training time of a history: its epochs' seconds, summed (NaN counts as nothing)."""
    return float(sum(row["seconds"] for row in rows_of(history) if not _isnan(float(row["seconds"]))))


def summarize(history: Any) -> dict[str, Any]:
    """Final and best numbers of a run (rows or a DataFrame).

    `gap` is training minus validation accuracy at the last epoch: the memorisation the
    lesson is about. The best epoch is the one with the highest validation accuracy (the
    first of equals): `best_epoch` and `best_val_accuracy` are that one epoch's, so every
    "best" the page shows points at the same epoch.
    """
    rows = rows_of(history)
    if not rows:
        return {"epochs": 0}
    last = rows[-1]
    scored = [row for row in rows if not _isnan(float(row["val_accuracy"]))]
    best = max(scored, key=lambda row: float(row["val_accuracy"])) if scored else last  # max keeps the first
    return {
        "epochs": int(last["epoch"]),
        "accuracy": float(last["accuracy"]),
        "val_accuracy": float(last["val_accuracy"]),
        "loss": float(last["loss"]),
        "val_loss": float(last["val_loss"]),
        "best_val_accuracy": float(best["val_accuracy"]),
        "best_epoch": int(best["epoch"]),
        "gap": float(last["accuracy"]) - float(last["val_accuracy"]),
        "seconds": total_seconds(rows),
    }


# -- readings: what a whole curve says -----------------------------------------------------------
# The thresholds of the readings, in accuracy points (0.15 = 15 points) unless said otherwise.
CHANCE_SHARE = 0.92  # a training loss above 92% of ln(classes) has not left chance
CHANCE_ACCURACY = 0.2  # ... unless validation beats guessing (1/classes) by more than this
SWING = 0.15  # validation moving this much between its lowest and highest of the last epochs, up and down
GAP = 0.15  # training this far ahead of validation: memorising
SMALL_GAP = 0.05
LOW_TRAINING = 0.8  # training accuracy below this with no gap: underfitting
LOSS_RISE = 1.1  # validation loss 10% above its lowest, after it: overfitting
NO_DIFFERENCE = 0.03  # one seed a side: closer than this is no clear difference
LATE_EPOCHS = 3  # the comparison of the two sides averages each run's last epochs: one epoch is noisy


def _clean(history: Any) -> list[Row]:
    return [row for row in from_rows(rows_of(history)) if not any(_isnan(row[c]) for c in METRICS[:4])]


def infer_classes(history: Any) -> int:
    """A guess at the number of classes when none is given: an untrained model's loss is ln(classes)."""
    rows = _clean(history)
    return max(2, round(math.exp(rows[-1]["loss"]))) if rows else 2


def shape(history: Any, classes: int | None = None) -> str:
    """What the whole curve shows: "empty", "not learning", "swinging", "overfitting", "underfitting" or "generalising".

    `classes` sets chance (a loss of ln(classes)); None guesses it from the loss (`infer_classes`).
    """
    rows = _clean(history)
    if not rows:
        return "empty"
    last, classes = rows[-1], classes or infer_classes(rows)
    if last["loss"] >= CHANCE_SHARE * math.log(classes) and last["val_accuracy"] <= 1 / classes + CHANCE_ACCURACY:
        return "not learning"
    if _swing(rows) is not None:
        return "swinging"
    gap = last["accuracy"] - last["val_accuracy"]
    if gap >= GAP or (_loss_rose(rows) is not None and gap >= SMALL_GAP):
        return "overfitting"
    return "underfitting" if last["accuracy"] < LOW_TRAINING else "generalising"


def _window(rows: list[Row]) -> list[Row]:
    """The last epochs a swing is looked for in: a quarter of the run, at least 3."""
    return rows[-max(3, len(rows) // 4) :]


def _swing(rows: list[Row]) -> tuple[float, float] | None:
    """Lowest and highest validation accuracy of the last epochs when it went up and down by `SWING` or more."""
    values = [row["val_accuracy"] for row in _window(rows)]
    steps = [b - a for a, b in zip(values[:-1], values[1:], strict=True)]
    back_and_forth = sum(abs(s) for s in steps) - abs(sum(steps))  # 0 for a curve that only climbs or falls
    if len(values) >= 3 and max(values) - min(values) >= SWING and back_and_forth >= SWING:
        return min(values), max(values)
    return None


def _loss_rose(rows: list[Row]) -> int | None:
    """The epoch of lowest validation loss when the loss has risen since then and stayed up, else None.

    The lowest must lie a fifth of the run (at least 2 epochs) before the end, and the last epochs'
    mean be `LOSS_RISE` times above it: one noisy epoch at the end is not a rise.
    """
    lowest = min(rows, key=lambda row: row["val_loss"])
    settled = max(2, len(rows) // 5)
    late = _mean([row["val_loss"] for row in rows[-max(2, len(rows) // 10) :]])
    if (
        rows.index(lowest) < len(rows) - settled
        and late >= LOSS_RISE * lowest["val_loss"]
        and late - lowest["val_loss"] >= 0.02
    ):
        return int(lowest["epoch"])
    return None


def reading(history: Any, classes: int | None = None) -> str:
    """One sentence, in plain words, of what a run's whole curve means (see `shape`).

    Every reading starts with "Training accuracy", then says what the curve shows and, where
    it helps, what to try.
    """
    rows = _clean(history)
    kind = shape(rows, classes)
    if kind == "empty":
        return "No epoch has finished yet."
    summary, last = summarize(rows), rows[-1]
    train, val = f"{last['accuracy']:.0%}", f"{last['val_accuracy']:.0%}"
    best = f"best validation {summary['best_val_accuracy']:.0%} at epoch {summary['best_epoch']}"
    if kind == "not learning":
        classes = classes or infer_classes(rows)
        return (
            f"Training accuracy {train}, validation {val}, but the loss is still {last['loss']:.2f}, what guessing "
            f"scores among {classes} classes (ln {classes} = {math.log(classes):.2f}): the model has not learned "
            "yet. More epochs, more images or a higher learning rate may get it going."
        )
    if kind == "swinging":
        low, high = _swing(rows)
        return (
            f"Training accuracy {train}; validation swings between {low:.0%} and {high:.0%} from epoch to epoch "
            f"over the last {len(_window(rows))} epochs, so one epoch's number means little: read the trend "
            "(or train more seeds), not the last point."
        )
    if kind == "overfitting":
        rose = _loss_rose(rows)
        since = f"; validation loss has risen since its lowest at epoch {rose}" if rose else ""
        return (
            f"Training accuracy {train} but validation {val} ({best}){since}: "
            "the model memorises the training set (overfitting)."
        )
    if kind == "underfitting":
        climbing = len(rows) > 1 and last["val_accuracy"] > _window(rows)[0]["val_accuracy"]
        todo = "validation is still climbing, so more epochs should help" if climbing else "try more epochs"
        return (
            f"Training accuracy {train} and validation {val} stay together, but the model has not fit even its "
            f"training images yet (underfitting); {todo}."
        )
    gap = last["accuracy"] - last["val_accuracy"]
    small = f" with a small gap of {gap * 100:.0f} points" if gap >= SMALL_GAP else ""
    return f"Training accuracy {train} and validation {val} move together{small}: the model generalises ({best})."


def augmentation_effect(
    baseline: Sequence[Any], augmented: Sequence[Any], knobs: Any = None, classes: int | None = None
) -> str | None:
    """One sentence: what augmentation did to validation, helped by N points, no difference, or hurt.

    Each side is a list of histories (its seeds). Each run counts with its validation accuracy
    averaged over its last `LATE_EPOCHS` epochs (a swinging curve's last epoch alone is luck);
    with two or more runs a side, overlapping ranges are "no difference within the seeds'
    spread". When augmentation hurt, the switched-on knobs of `knobs` (an `Augmentation`)
    that can change what an image means are named. None until both sides have an epoch.
    """
    sides = [[_clean(h) for h in side] for side in (baseline, augmented)]
    sides = [[rows for rows in side if rows] for side in sides]
    if not all(sides):
        return None
    if all(shape(rows, classes) == "not learning" for side in sides for rows in side):
        return "Neither side has learned yet, so what augmentation does cannot be told: train longer."
    late = [[_mean([row["val_accuracy"] for row in rows[-LATE_EPOCHS:]]) for rows in side] for side in sides]
    without, with_ = _mean(late[0]), _mean(late[1])
    points = abs(with_ - without) * 100
    said = f"(validation {without:.0%} without, {with_:.0%} with, over each run's last epochs)"
    if min(len(side) for side in late) >= 2 and max(late[0]) >= min(late[1]) and max(late[1]) >= min(late[0]):
        return f"Augmentation made no difference within the seeds' spread {said}."
    if points < 100 * NO_DIFFERENCE and min(len(side) for side in late) < 2:
        return f"Augmentation made no clear difference {said}: more seeds would tell an effect from luck."
    if with_ > without:
        return f"Augmentation helped validation by {points:.0f} points {said}."
    risky = meaning_changers(knobs)
    why = (
        f" Switched on here, {_listed(risky)} can change what an image means (a 6 turned over is a 9, a "
        "mirrored letter another letter): switch them off for digits or text."
        if risky
        else " The augmentations may be too strong for these images, or need more epochs to pay off."
    )
    return f"Augmentation hurt validation by {points:.0f} points {said}.{why}"


def _listed(items: Sequence[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    return " and ".join([", ".join(items[:-1]), items[-1]] if len(items) > 1 else list(items))


def meaning_changers(knobs: Any) -> list[str]:
    """The switched-on knobs of an `Augmentation` that can turn one class into another: flips, large rotations."""
    if knobs is None:
        return []
    found = [
        name
        for name, on in (("horizontal flips", knobs.horizontal_flip), ("vertical flips", knobs.vertical_flip))
        if on
    ]
    if knobs.rotation_range >= 45:
        found.append(f"rotations of up to {knobs.rotation_range:g}°")
    return found


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
def aggregate(histories: Sequence[Any]) -> pd.DataFrame:
    """Per epoch, over the histories (rows or DataFrames) that have reached it: mean, min, max and std of each metric.

    One row per epoch with `epoch`, `runs` (how many histories reached it), the mean under
    the metric's own name (so the frame reads as a history: `summarize` works on it) and
    `<metric>_min`, `<metric>_max`, `<metric>_std` (sample standard deviation; NaN where a
    single run reached the epoch).
    """
    import pandas as pd

    frames = [to_frame(h) for h in histories if rows_of(h)]
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
    return table[COLUMNS].reset_index(drop=True) if not table.empty else to_frame([])


def _empty_aggregate() -> pd.DataFrame:
    import pandas as pd

    table = to_frame([])
    table.insert(1, "runs", pd.Series(dtype="int64"))
    for suffix in ("min", "max", "std"):
        for metric in METRICS:
            table[f"{metric}_{suffix}"] = pd.Series(dtype="float64")
    return table


def summarize_seeds(histories: Sequence[Any]) -> dict[str, Any]:
    """Mean and sample standard deviation across seeds of each run's own summary.

    Each run counts with its last finished epoch, so a run still training counts with what it
    has. The mean sits under the summary's own field names (`lab.history.reading` reads it),
    the standard deviation under `<field>_std` (NaN with one run); `seeds` is how many runs
    have finished an epoch, `best_epochs` the lowest and highest best epoch.
    """
    import pandas as pd

    summaries = [summarize(h) for h in histories if rows_of(h)]
    if not summaries:
        return {"epochs": 0, "seeds": 0}
    frame = pd.DataFrame(summaries)
    result: dict[str, Any] = {"seeds": len(summaries), "epochs": int(frame["epochs"].max())}
    for field in SUMMARY_FIELDS:
        result[field] = float(frame[field].mean())
        result[f"{field}_std"] = float(frame[field].std()) if len(frame) > 1 else math.nan
    result["best_epochs"] = (int(frame["best_epoch"].min()), int(frame["best_epoch"].max()))
    return result


def final_val_range(histories: Sequence[Any]) -> tuple[float, float] | None:
    """Lowest and highest final validation accuracy across seeds, or None before any epoch."""
    finals = _finals(histories)
    return (min(finals), max(finals)) if finals else None


def verdict(baseline: Sequence[Any], augmented: Sequence[Any]) -> str | None:
    """One sentence: is the difference in final validation accuracy larger than the seeds' spread?

    The test is the band's: the two sides' ranges (lowest to highest seed) overlap or not.
    None until each side has at least two runs with a finished epoch.
    """
    if min(len(_finals(side)) for side in (baseline, augmented)) < 2:
        return None
    low_base, high_base = final_val_range(baseline)
    low_aug, high_aug = final_val_range(augmented)
    difference = _mean(_finals(augmented)) - _mean(_finals(baseline))
    said = f"With augmentation, mean validation accuracy is {difference * 100:+.1f} points"
    if high_base < low_aug or high_aug < low_base:
        return f"{said}, and the seeds' ranges do not overlap: a difference larger than the luck of the seed."
    return f"{said}, but the seeds' ranges overlap: this difference may be the luck of the seed."


def _finals(histories: Sequence[Any]) -> list[float]:
    """Each run's validation accuracy at its last finished epoch."""
    return [float(rows[-1]["val_accuracy"]) for rows in map(rows_of, histories) if rows]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


# The page's summary tables: the keys of a row, and the plain words a table shows for them.
TABLE_LABELS = {
    "seeds": "Seeds",
    "accuracy": "Training accuracy",
    "val_accuracy": "Validation accuracy",
    "gap": "Gap (training − validation)",
    "best_val_accuracy": "Best validation accuracy",
    "best_epoch": "Best epoch",
}
TABLE_NOTE = (
    "Training, validation and the gap at the last epoch; the best epoch is the epoch with the highest "
    "validation accuracy, and the best validation accuracy is that epoch's."
)


def table_row(summary: dict[str, Any]) -> dict[str, str]:
    """One run's row of the page's table (keys of `TABLE_LABELS`), in percentages."""
    row = {field: format(summary[field], ".1%") for field in ("accuracy", "val_accuracy", "gap", "best_val_accuracy")}
    return {**row, "best_epoch": str(summary["best_epoch"])}


def summary_row(summary: dict[str, Any], seeds: int) -> dict[str, str]:
    """A side's row of the page's table: means ± standard deviations across its seeds, each at its own best epoch."""
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
