"""Section 5, History: every run in the run store, two of them reopened in the compare view, and
their histories (CSV) and configurations (JSON) to download."""

from __future__ import annotations

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
    st.dataframe(table, width="stretch")
    labels = {row["key"]: f"{row['when']} · {row['dataset']} · {row['augmentation']} · {row['state']}" for row in rows}
    keys = list(labels)
    cols = st.columns(2)
    left = cols[0].selectbox("Left run", keys, format_func=labels.get, key="history_left")
    right = cols[1].selectbox(
        "Right run", keys, index=min(1, len(keys) - 1), format_func=labels.get, key="history_right"
    )
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


def run_row(run) -> dict:
    """One stored run as a row of the history table."""
    aug = run.config.augmentation
    knobs = [knob.label for knob in single_knobs(aug)] if aug.enabled else []
    summary = hist.summarize(run.history)
    return {
        "key": run.key,
        "when": (run.status.created or "")[:16].replace("T", " "),
        "dataset": run.config.dataset,
        "size": run.config.image_size,
        "epochs": f"{run.status.epochs_done}/{run.config.epochs}",
        "augmentation": ", ".join(knobs) if knobs else "none",
        "state": run.status.state,
        "val_accuracy": summary.get("val_accuracy"),
        "gap": summary.get("gap"),
    }
