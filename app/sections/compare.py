"""Section 4, Compare: the live comparison (progress, the two panels, summaries and readings),
polled while its runs train, and the recorded full-length runs below it."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.privacy import public_text
from app.runs import comparison_figure, comparison_running, get_worker, recorded_figure, recording_version, top_up
from app.state import session_id
from lab import history as hist
from lab import recordings

POLL_SECONDS = 1.5
SIDES = ("Without augmentation", "With augmentation")


def show() -> None:
    st.header("4. Compare")
    active = st.session_state.active
    if not active:
        st.caption("Train both runs (section 3) and their curves appear here, live, epoch by epoch.")
        show_recorded()
        return
    top_up()
    polling = comparison_running()
    # Only the comparison reruns while it trains: the rest of the page stays as it is.
    st.fragment(run_every=POLL_SECONDS if polling else None)(show_comparison)(active, polling)
    show_recorded()


def show_recorded() -> None:
    """Full-length results trained earlier by the command line, shown at once beside a live run."""
    names = recordings.list_recordings()
    if not names:
        return
    # The lesson's own recording first: a teacher who picks a preset finds its full-length result.
    lesson = [n for n in names if recorded_figure(n, recording_version(n))[0].preset == st.session_state.preset]
    if st.session_state.get("recording_for") != st.session_state.preset:
        st.session_state.recording_for = st.session_state.preset
        if lesson:
            st.session_state.recording = lesson[0]
    with st.expander("Recorded runs: full-length results without waiting", expanded=False):
        name = st.selectbox("Recording", names, key="recording")
        recording, figure = recorded_figure(name, recording_version(name))
        st.caption(recording.title())
        st.plotly_chart(figure, width="stretch", key=f"recording-{name}")
        for side, rows in recording.runs.items():
            st.markdown(f"**{side.capitalize()}:** {hist.reading(hist.summarize(rows))}")


def show_comparison(keys: tuple[str, ...], was_polling: bool) -> None:
    top_up()
    worker = get_worker()
    statuses = [worker.status(k, watcher=session_id()) for k in keys]
    sides = hist.split_sides(statuses)
    for side, runs in zip(SIDES, sides, strict=True):
        if len(runs) == 1:
            show_progress(side, runs[0])
        else:
            show_seeds_progress(side, runs)
    st.plotly_chart(comparison_figure(statuses), width="stretch", key=f"chart-{keys[0]}-{keys[1]}")
    if len(keys) == 2:
        show_summary([s.history for s in statuses])
    else:
        show_seeds_summary([[s.history for s in runs] for runs in sides])
    if was_polling and not comparison_running():
        st.rerun()  # the whole page: stop polling, enable the buttons again


def show_progress(side: str, status) -> None:
    if status.state == "queued":
        st.info(f"{side}: waiting in the queue, position {status.position}.")
    elif status.state == "running":
        if status.epochs_done == 0:
            st.info(f"{side}: warming up (loading TensorFlow, decoding images, building the model)…")
        else:
            st.progress(
                status.epochs_done / max(status.epochs_total, 1),
                text=f"{side}: epoch {status.epochs_done} of {status.epochs_total}",
            )
    elif status.state == "failed":
        st.error(f"{side}: the run failed. {public_text(status.error or '')}")
    elif status.state in ("cancelled", "interrupted"):
        st.warning(f"{side}: {status.state} after {status.epochs_done} epochs.")


def show_seeds_progress(side: str, statuses) -> None:
    """How many of a side's seeds are done, the one training, and any that failed or stopped."""
    done = sum(s.done for s in statuses)
    text = f"{side}: {done} of {len(statuses)} seeds done"
    training = next((s for s in statuses if s.state == "running"), None)
    if comparison_running() and any(not s.done for s in statuses):
        epochs = max(s.epochs_total for s in statuses) or 1
        share = sum(min(s.epochs_done, epochs) for s in statuses) / (epochs * len(statuses))
        if training is not None:
            text += f", one at epoch {training.epochs_done} of {training.epochs_total}"
        st.progress(min(share, 1.0), text=text)
    else:
        st.caption(text + ".")
    for number, status in enumerate(statuses, start=1):
        if status.state == "failed":
            st.error(f"{side}, seed {number} of {len(statuses)}: the run failed. {public_text(status.error or '')}")
        elif status.state in ("cancelled", "interrupted"):
            st.warning(f"{side}, seed {number} of {len(statuses)}: {status.state} after {status.epochs_done} epochs.")


def show_summary(histories: list) -> None:
    summaries = {name: hist.summarize(h) for name, h in zip(("without", "with"), histories, strict=True)}
    if all(s.get("epochs") for s in summaries.values()):
        table = pd.DataFrame(summaries).T[["accuracy", "val_accuracy", "gap", "best_val_accuracy", "best_epoch"]]
        table = table.astype({"best_epoch": "int64"})
        st.dataframe(table.style.format("{:.1%}", subset=["accuracy", "val_accuracy", "gap", "best_val_accuracy"]))
    for name, summary in summaries.items():
        st.markdown(f"**{name.capitalize()} augmentation:** {hist.reading(summary)}")


def show_seeds_summary(sides: list[list]) -> None:
    """Means ± standard deviations across seeds; the reading is the mean's."""
    summaries = {name: hist.summarize_seeds(runs) for name, runs in zip(("without", "with"), sides, strict=True)}
    if all(s["seeds"] for s in summaries.values()):
        rows = {name: hist.summary_row(s, len(runs)) for (name, s), runs in zip(summaries.items(), sides, strict=True)}
        st.dataframe(pd.DataFrame(rows).T)
        st.caption("Mean ± standard deviation across the seeds that have finished an epoch, each at its last epoch.")
    for (name, summary), runs in zip(summaries.items(), sides, strict=True):
        st.markdown(f"**{name.capitalize()} augmentation, mean of {len(runs)} seeds:** {hist.reading(summary)}")
    verdict = hist.verdict(*sides)
    if verdict:
        st.markdown(f"**Across seeds:** {verdict}")
