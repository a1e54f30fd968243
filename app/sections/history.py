"""Section 5, History: every run in the run store, two of them reopened in the compare view, and
their histories (CSV) and configurations (JSON) to download."""

from __future__ import annotations

import zlib

import pandas as pd
import streamlit as st

from app.privacy import remember_runs, shareable_json, visible_runs
from app.runs import get_worker
from app.sections.augmentations import single_knobs
from app.state import shown
from lab import history as hist


def show() -> None:
    if not shown("history"):
        return
    st.header("5. History")
    runs = visible_runs(get_worker().store.list_runs(limit=200))
    if not runs:
        st.caption("Runs you train are kept in the run store and listed here.")
        return
    rows = [run_row(run) for run in runs]
    table = pd.DataFrame(rows).set_index("key")
    st.dataframe(table, width="stretch", column_config={"_index": "Run", **COLUMN_LABELS})
    st.caption(hist.TABLE_NOTE)
    labels = {row["key"]: picker_label(row) for row in rows}
    keys = list(labels)
    cols = st.columns(2)
    left = picker(cols[0], "Left run", keys, labels, 0)
    right = picker(cols[1], "Right run", keys, labels, min(1, len(keys) - 1))
    if st.button("Open these two in the compare view"):
        st.session_state.active = (left, right)
        remember_runs((left, right))
        st.session_state.pending = []
        st.query_params["runs"] = f"{left},{right}"
        st.rerun()
    for column, key in zip(cols, (left, right), strict=True):
        run = next(r for r in runs if r.key == key)
        column.download_button(
            "History (CSV)", hist.to_csv(run.history), file_name=f"{key}-history.csv", key=f"csv-{column}-{key}"
        )
        column.download_button(
            "Configuration (JSON)",
            shareable_json(run.config, sort_keys=True),
            file_name=f"{key}-config.json",
            key=f"json-{column}-{key}",
        )


# The table's columns in plain words (the rows keep short keys).
COLUMN_LABELS = {
    "when": "Queued at",
    "dataset": "Dataset",
    "size": "Image size",
    "epochs": "Epochs done",
    "learning_rate": "Learning rate",
    "seed": "Seed",
    "augmentation": "Augmentation",
    "state": "State",
    "val_accuracy": "Validation accuracy",
    "gap": "Gap (training − validation)",
    "best": "Best validation accuracy (epoch)",
    "device": "Trained on",
}


def picker(column, label: str, keys: list[str], labels: dict[str, str], default: int) -> str:
    """A run picker whose labels follow the runs' states.

    A selectbox remembers its choice by the label shown, so a label that changes ("running" ->
    "done") would leave the old one on screen: the widget is renewed when any label changes, and
    keeps the run that was picked.
    """
    version = zlib.crc32("\n".join(labels[key] for key in keys).encode())
    picked = st.session_state.get(f"{label}-picked")
    index = keys.index(picked) if picked in keys else default
    choice = column.selectbox(label, keys, index=index, format_func=labels.get, key=f"{label}-{version}")
    st.session_state[f"{label}-picked"] = choice
    return choice


def picker_label(row: dict) -> str:
    """A run as its picker names it: enough to tell two seeds, or two learning rates, apart."""
    return (
        f"{row['when']} · {row['dataset']} · {row['augmentation']} · seed {row['seed']} · {row['epochs']} epochs · "
        f"learning rate {row['learning_rate']} · {row['state']}"
    )


def run_row(run) -> dict:
    """One stored run as a row of the history table, accuracies in percentages."""
    aug = run.config.augmentation
    knobs = [knob.label for knob in single_knobs(aug)] if aug.enabled else []
    summary = hist.summarize(run.history)
    done = bool(summary.get("epochs"))
    return {
        "key": run.key,
        "when": (run.status.created or "")[:16].replace("T", " "),
        "dataset": run.config.dataset,
        "size": run.config.image_size,
        "epochs": f"{run.status.epochs_done}/{run.config.epochs}",
        "learning_rate": f"{run.config.learning_rate:g}",
        "seed": run.config.seed,
        "augmentation": ", ".join(knobs) if knobs else "none",
        "state": run.status.state,
        "val_accuracy": f"{summary['val_accuracy']:.1%}" if done else "",
        "gap": f"{summary['gap']:.1%}" if done else "",
        "best": f"{summary['best_val_accuracy']:.1%} ({summary['best_epoch']})" if done else "",
        "device": run.status.device,
    }
