"""The page's runs: one worker for the server, handing a comparison's runs to it, cancelling and
polling them, finding them again after a refresh, and the figures drawn from them.

The worker class, the trainer class, `lab.figures.compare_figure` and `lab.recordings.RECORDINGS_DIR`
are looked up in their modules at call time, never bound at import: this module is imported once
per server, and tests swap them between script runs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import streamlit as st

from app.privacy import remember_runs
from app.state import limits, runs_from_link, secrets, session_id
from lab import figures, recordings
from lab import history as hist
from lab.config import RunConfig
from lab.runs import trainer as trainer_module
from lab.runs import worker as worker_module
from lab.runs.hosting import max_queued
from lab.runs.store import RunStore, default_store_root
from lab.runs.worker import CancelOutcome, OverCap, QueueFull, Worker

# A run no page has polled for this long is cancelled: closing every tab stops its training. Generous,
# because browsers slow the timers of background tabs to about one a minute.
UNWATCHED_SECONDS = float(os.environ.get("LAB_UNWATCHED_SECONDS", 180))


# -- the worker ---------------------------------------------------------------------------------
@st.cache_resource
def get_worker() -> Worker:
    """One worker for the whole server: every session and rerun shares it.

    It trains in a child process (lab/runs/trainer.py): a run that runs out of
    memory takes down the child, never the app, and the page stays responsive.
    """
    return worker_module.Worker(
        RunStore(default_store_root()),
        train_fn=trainer_module.SubprocessTrainer(start_now=True),  # TensorFlow loads before the first click
        limits=limits(),  # the worker enforces the caps itself, whatever a link or a widget asks
        max_queued=max_queued(secrets()),
        unwatched_seconds=UNWATCHED_SECONDS or None,
    )


# -- handing runs over -------------------------------------------------------------------------
def submit_in_order(
    worker: Worker,
    configs: Sequence[RunConfig],
    owner: str | None,
    train_count: int | None = None,
    refusals: list[str] | None = None,
) -> list[RunConfig]:
    """Submit `configs` in order until the worker takes no more; returns those left.

    The worker lets one visitor have only a few runs waiting (lab.runs.worker.MAX_WAITING_PER_OWNER),
    so a comparison of many seeds is handed over a few runs at a time as earlier ones start.
    Runs already in the store are answered at once and never fill the queue. Why the worker
    refused the first run left is added to `refusals`.
    """
    for index, config in enumerate(configs):
        try:
            worker.submit(config, owner=owner, train_count=train_count)
        except (QueueFull, OverCap) as exc:
            if refusals is not None:
                refusals.append(str(exc))
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
    configs = hist.comparison_configs(stored.config, len(keys) // 2)
    if [config.key() for config in configs] != list(keys):
        return []  # not a comparison this page asked for
    return [config for config, status in zip(configs, statuses, strict=True) if status.state == "unknown"]


# -- a comparison: start, cancel, poll ---------------------------------------------------------
def watch_linked_runs() -> None:
    """A link or a refresh carries the runs being watched, so a running job is found again."""
    state = st.session_state
    if "active" not in state:
        state.active = runs_from_link()
        remember_runs(state.active)
        state.pending = unsubmitted(get_worker(), state.active) if state.active else []
        state.setdefault("train_count", None)


def start_comparison(configs: list[RunConfig], train_count: int | None = None) -> None:
    """Hand the runs to the worker; those its queue cannot take yet follow as it drains (`top_up`)."""
    refusals: list[str] = []
    st.session_state.train_count = train_count
    left = submit_in_order(get_worker(), configs, session_id(), train_count, refusals)
    if len(left) == len(configs):
        st.session_state.start_warning = refusals[0] if refusals else "The server took none of the runs."
        return
    st.session_state.active = tuple(c.key() for c in configs)
    remember_runs(st.session_state.active)
    st.session_state.pending = left


def cancel_comparison() -> None:
    st.session_state.pending = []  # first, so that no poll hands over a run being cancelled
    worker = get_worker()
    # Waiting runs first: cancelling the running one first would let the worker start the next.
    keys = sorted(st.session_state.active or (), key=lambda k: worker.status(k).state == "running")
    outcomes = {worker.cancel(key, watcher=session_id()) for key in keys}
    if CancelOutcome.UNWATCHED in outcomes and CancelOutcome.CANCELLED not in outcomes:
        # Another page still watches these runs: they go on for it, and this page stops watching them.
        st.session_state.active = None
        st.session_state.cancel_note = "You stopped watching: the runs go on for the others who watch them."
    else:
        st.session_state.cancel_note = "Cancelled: the runs stopped."


def comparison_running() -> bool:
    """A run watched is queued or training, or still waits to be handed to the worker."""
    active = st.session_state.active
    if active is None:
        return False
    worker = get_worker()
    return bool(st.session_state.pending) or any(worker.status(k, watcher=session_id()).active for k in active)


def top_up() -> None:
    """Hand the worker the runs of a many-seed comparison that its queue could not take before."""
    if st.session_state.pending:
        count = st.session_state.get("train_count")
        st.session_state.pending = submit_in_order(get_worker(), st.session_state.pending, session_id(), count)


# -- figures ----------------------------------------------------------------------------------------
def comparison_figure(statuses):
    """The figure, rebuilt only when an epoch has finished: polling stays cheap while a run trains."""
    version = tuple((s.key, s.state, s.epochs_done) for s in statuses)
    if not any(s.active for s in statuses):
        return finished_figure(version, statuses)
    cached = st.session_state.get("figure_cache")
    if cached is None or cached[0] != version:
        st.session_state.figure_cache = cached = (version, build_comparison_figure(statuses))
    return cached[1]


@st.cache_resource(show_spinner=False, max_entries=32)
def finished_figure(version: tuple, _statuses):
    """A comparison that no longer changes: one figure for every visitor who opens it (a class, a shared link).

    Keyed by `version` alone (runs, states, epochs done); never mutated once built.
    """
    return build_comparison_figure(_statuses)


def build_comparison_figure(statuses):
    epochs = max((s.epochs_total for s in statuses), default=0) or None
    baseline, augmented = hist.split_sides([s.history for s in statuses])
    return figures.compare_figure(baseline, augmented, epochs=epochs)


def recording_version(name: str) -> int:
    path = recordings.RECORDINGS_DIR / f"{name}.json"
    return path.stat().st_mtime_ns if path.exists() else 0


@st.cache_resource(show_spinner=False, max_entries=16)
def recorded_figure(name: str, version: int):
    """One figure per recording for the whole server: building it costs more than the rest of a rerun.

    Shared, never mutated: `st.plotly_chart` copies a figure (`to_dict`) before sending it.
    """
    recording = recordings.load_recording(name)
    runs = recording.runs
    figure = figures.compare_figure(runs.get("baseline"), runs.get("augmented"), epochs=recording.config.epochs)
    return recording, figure
