"""Training histories as pandas DataFrames, and the few numbers that tell the lesson.

Kept free of TensorFlow so the page, the figures and the run store can use it cheaply.
A history has one row per finished epoch with the columns in `COLUMNS`; `epoch` counts
from 1.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

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
