"""Section 4, Compare: the live comparison (progress, the two panels, summaries and readings),
polled while its runs train, and the recorded full-length runs below it.

Each panel is titled and read from its own run's settings (two runs reopened from History may both
be augmented), and the page says when its settings no longer match the curves shown.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.privacy import public_text
from app.runs import (
    comparison_figure,
    comparison_running,
    get_worker,
    recorded_figure,
    recording_version,
    status_line,
    top_up,
)
from app.state import limits, read_config, session_id
from lab import figures, recordings
from lab import history as hist
from lab.config import ConfigError, RunConfig
from lab.data.listing import dataset_info
from lab.data.registry import REGISTRY
from lab.runs.hosting import apply_limits

POLL_SECONDS = 1.5
SIDES = ("Without augmentation", "With augmentation")
# Recordings name their sides by these keys; the page says what the live panels say.
RECORDED_SIDES = {"baseline": SIDES[0], "augmented": SIDES[1], "run": "The run"}


def show(config: RunConfig | ConfigError | None = None) -> None:
    """The section; `config` is the page's current settings (read from the widgets when not given)."""
    st.header("4. Compare")
    active = st.session_state.active
    if not active:
        st.caption('Press "Train both runs" above and the curves appear here, live, epoch by epoch.')
        show_recorded()
        return
    top_up()
    polling = comparison_running()
    notice = stale_notice(active, read_config() if config is None else config)
    # Only the comparison reruns while it trains: the rest of the page stays as it is.
    st.fragment(run_every=POLL_SECONDS if polling else None)(show_comparison)(active, polling, notice)
    show_recorded()


def on_phone() -> bool:
    """A phone's browser says so; its screen is too narrow for two panels side by side."""
    try:
        return "Mobi" in (st.context.headers.get("User-Agent") or "")
    except Exception:  # no request behind the script run (a test harness)
        return False


@st.cache_data(show_spinner=False, max_entries=16)
def dataset_facts(dataset: str, data_dir: str | None) -> tuple[int | None, int | None]:
    """(classes, training images) of a dataset: chance for the readings, the caps for the stale check."""
    known = REGISTRY.get(dataset)
    try:
        info = known if known is not None and known.class_names else dataset_info(RunConfig(dataset, data_dir))
    except (ValueError, OSError):  # not downloaded, or a folder gone: the reading guesses chance from the loss
        return None, None
    return (info.num_classes or None), (info.total("train") or None)


def classes_of(config: RunConfig | None) -> int | None:
    return dataset_facts(config.dataset, config.data_dir)[0] if config is not None else None


def run_configs(keys: tuple[str, ...]) -> tuple[RunConfig, RunConfig] | None:
    """The settings of the first pair of runs shown, from the run store (kept: they never change)."""
    known = st.session_state.setdefault("run_configs", {})
    for key in keys[:2]:
        if key not in known:
            stored = get_worker().store.load(key)
            if stored is None:
                return None  # not in the store yet: the panels keep their places' names
            known[key] = stored.config
    return known[keys[0]], known[keys[1]]


def stale_notice(keys: tuple[str, ...], config: RunConfig | ConfigError) -> str | None:
    """A sentence when the page's settings are no longer those of the curves shown, saying what changed."""
    shown = run_configs(keys)
    if shown is None or isinstance(config, ConfigError):
        return None
    with_run = shown[1] if shown[1].augmentation.enabled or not shown[0].augmentation.enabled else shown[0]
    yours, _ = apply_limits(config, limits(), dataset_facts(config.dataset, config.data_dir)[1])
    changed = [f"{what} {then} (yours: {now})" for what, then, now in figures.differences(with_run, yours)]
    seeds = len(keys) // 2
    if seeds != st.session_state.get("seeds_per_side", seeds):
        changed.append(f"seeds per side {seeds} (yours: {st.session_state.seeds_per_side})")
    if not changed:
        return None
    listed = "; ".join(changed[:5]) + (f"; and {len(changed) - 5} more" if len(changed) > 5 else "")
    return f"These curves are for earlier settings: {listed}. Train again to see yours."


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
        st.plotly_chart(figures.stack(figure) if on_phone() else figure, width="stretch", key=f"recording-{name}")
        classes = classes_of(recording.config)
        for side, rows in recording.runs.items():
            # The length too: a recording is the full-length run a short live one is read beside.
            said = f"{RECORDED_SIDES.get(side, side)} ({len(rows)} epochs)"
            st.markdown(f"**{said}:** {hist.reading(rows, classes)}")
        if {"baseline", "augmented"} <= set(recording.runs):
            effect = hist.augmentation_effect(
                [recording.runs["baseline"]], [recording.runs["augmented"]], recording.config.augmentation, classes
            )
            st.markdown(f"**What augmentation did:** {effect}")


def show_comparison(keys: tuple[str, ...], was_polling: bool, notice: str | None = None) -> None:
    top_up()
    worker = get_worker()
    statuses = [worker.status(k, watcher=session_id()) for k in keys]
    sides = hist.split_sides(statuses)
    configs = run_configs(keys)
    titles = figures.side_titles(*configs) if configs else SIDES
    for side, runs in zip(titles, sides, strict=True):
        if len(runs) == 1:
            show_progress(side, runs[0])
        else:
            show_seeds_progress(side, runs)
    if notice:
        st.warning(notice, icon="⚠️")
    figure = comparison_figure(statuses)
    if tuple(titles) != SIDES:
        figure = figures.retitle(figure, titles)
    if on_phone():
        figure = figures.stack(figure)
    st.plotly_chart(figure, width="stretch", key=f"chart-{keys[0]}-{keys[1]}")
    show_summary([[s.history for s in runs] for runs in sides], titles, configs)
    if was_polling and not comparison_running():
        st.rerun()  # the whole page: stop polling, enable the buttons again


def show_progress(side: str, status) -> None:
    if line := status_line(side, status):  # queued, or before its first epoch: who is ahead, what it waits for
        st.info(line)
    elif status.state == "running":
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


def summary_table(rows: dict[str, dict[str, str]]) -> pd.DataFrame:
    """The sides as columns and the measures, in plain words, as rows: narrow enough for a phone.

    Shown with `st.table`, whose headers wrap: a grid's would run off a phone's screen.
    """
    table = pd.DataFrame(rows)
    return table.rename(index=hist.TABLE_LABELS)


def show_summary(sides: list[list], titles: tuple[str, str], configs: tuple[RunConfig, RunConfig] | None) -> None:
    """The table, each side's reading, what augmentation did and what else differs between the two runs.

    One run a side shows its numbers; several show means ± standard deviations, and the reading
    is the mean curve's.
    """
    seeds = max(len(runs) for runs in sides)
    classes = classes_of(configs[0]) if configs else None
    columns = titles if titles[0] != titles[1] else (f"{titles[0]} (left)", f"{titles[1]} (right)")
    if seeds == 1:
        summaries = [hist.summarize(runs[0]) for runs in sides]
        if all(s.get("epochs") for s in summaries):
            st.table(summary_table({c: hist.table_row(s) for c, s in zip(columns, summaries, strict=True)}))
            st.caption(hist.TABLE_NOTE)
        curves = [runs[0] for runs in sides]
    else:
        summaries = [hist.summarize_seeds(runs) for runs in sides]
        if all(s["seeds"] for s in summaries):
            rows = {c: hist.summary_row(s, len(runs)) for c, s, runs in zip(columns, summaries, sides, strict=True)}
            st.table(summary_table(rows))
            st.caption(f"Mean ± standard deviation across the seeds that have finished an epoch. {hist.TABLE_NOTE}")
        curves = [hist.mean_history(hist.aggregate(runs)) for runs in sides]
    mean = f", mean of {seeds} seeds" if seeds > 1 else ""
    for title, rows in zip(titles, curves, strict=True):
        st.markdown(f"**{title}{mean}:** {hist.reading(rows, classes)}")
    show_effect(sides, configs, classes)
    if seeds > 1 and (verdict := hist.verdict(*sides)):
        st.markdown(f"**Across seeds:** {verdict}")


def show_effect(sides: list[list], configs: tuple[RunConfig, RunConfig] | None, classes: int | None) -> None:
    """What augmentation did, when one side has it and the other not; else what sets the two runs apart."""
    enabled = [c.augmentation.enabled for c in configs] if configs else [False, True]
    # A pair trained together differs in its augmentations alone (the titles say which has them).
    apart = figures.differences(*configs, knobs=enabled[0] == enabled[1]) if configs else []
    if enabled[0] != enabled[1]:
        without, with_ = (0, 1) if enabled[1] else (1, 0)
        knobs = configs[with_].augmentation if configs else None
        effect = hist.augmentation_effect(sides[without], sides[with_], knobs, classes)
        if effect:
            st.markdown(f"**What augmentation did:** {effect}")
    if apart:
        said = "; ".join(f"{what}: {left} on the left, {right} on the right" for what, left, right in apart)
        st.markdown(f"**The two runs differ in** {said}.")
