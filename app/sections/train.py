"""Section 3, Train: the training settings (`settings`, in the sidebar), and in the main area the buttons
that start and cancel a comparison (without augmentation, then with it; one pair per seed) beside an
estimate of the run time (`show`)."""

from __future__ import annotations

import streamlit as st

from app.privacy import public_text
from app.runs import calibration, cancel_comparison, comparison_running, get_worker, start_comparison
from app.state import BATCH_SIZES, L2_CHOICES, LEARNING_RATES, limits, max_epochs, max_seeds, shown
from lab import history as hist
from lab.config import ARCHITECTURES, RANGES, ConfigError, RunConfig
from lab.data.registry import DatasetInfo
from lab.runs.estimate import basis, estimate_seconds, format_duration
from lab.runs.hosting import apply_limits
from lab.training.augment import cures_code


def settings() -> None:
    st.header("3. Train")
    if shown("settings"):
        with st.expander("Training settings", expanded=False):
            training_settings()


def show(info: DatasetInfo | None, config: RunConfig | ConfigError) -> None:
    """The Train and Cancel buttons and the estimate, in one row."""
    if info is None:
        st.warning("Pick a dataset that loads before training.")
        return
    if isinstance(config, ConfigError):
        st.error(str(config))
        return
    try:
        config, notes = apply_limits(config, limits(), info.total("train"))
        configs = hist.comparison_configs(config, st.session_state.seeds_per_side)
    except ConfigError as exc:  # a seed too large for seed + 1, ... among them
        st.error(public_text(str(exc)))
        return
    if notes:
        st.info("Hosted mode keeps runs small for everyone: " + "; ".join(notes) + ".")
    if code := cures_code(config):
        with st.expander("The model and its cures in Keras", expanded=False):
            st.code(code, language="python")
    worker = get_worker()
    train_count = config.train_images or info.total("train")
    validation_count = info.total("validation")
    measured = calibration(config.dataset, config.data_dir, info.total("train"), validation_count)
    seconds = sum(
        0.0 if worker.status(c.key()).state == "done" else estimate_seconds(c, train_count, validation_count, measured)
        for c in configs
    )
    running = comparison_running()
    cols = st.columns([1.3, 1, 4])
    if not config.augmentation.enabled:
        cols[2].info("Switch on at least one augmentation to compare.")
    else:
        # Callbacks run before the script: the run that follows the click already shows the
        # comparison (a stored one at once), with no second script run.
        cols[0].button(
            "▶ Train both runs",
            type="primary",
            disabled=running,
            on_click=start_comparison,
            args=(configs, info.total("train")),
        )
    if running:
        cols[1].button("■ Cancel", on_click=cancel_comparison)
    if note := st.session_state.pop("cancel_note", None):
        st.info(note)
    if warning := st.session_state.pop("start_warning", None):
        st.warning(warning)
    if not running:
        cols[2].caption(estimate_text(config, len(configs), seconds, train_count, basis(config, measured)))


def training_settings() -> None:
    st.slider("Epochs", RANGES["epochs"][0], max_epochs(), key="epochs")
    st.selectbox("Batch size", BATCH_SIZES, key="batch_size")
    st.selectbox("Learning rate (RMSprop)", LEARNING_RATES, key="learning_rate", format_func=lambda v: f"{v:g}")
    low, high, _ = RANGES["dropout"]
    st.slider("Dropout", low, high, step=0.1, key="dropout")
    low, high, _ = RANGES["seed"]
    st.number_input("Seed", low, high, key="seed")
    st.number_input(
        "Seeds per side",
        1,
        max_seeds(),
        key="seeds_per_side",
        help="Train each side with seeds seed, seed+1, …: the chart shows their mean with a band from the lowest "
        "to the highest seed, so the luck of one seed is not read as a result.",
    )
    # The other cures beside dropout, so that a student can compare cures on the same data.
    cols = st.columns(3)
    cols[0].selectbox(
        "L2 weight decay",
        L2_CHOICES,
        key="l2",
        format_func=lambda v: f"{v:g}" if v else "off",
        help="Adds l2 × (sum of squared weights) of every layer to the loss: large weights cost, so the model "
        "leans less on any one detail of the training images.",
    )
    low, high, _ = RANGES["early_stopping"]
    cols[1].number_input(
        "Early stopping (patience)",
        int(low),
        int(high),
        key="early_stopping",
        help="0 is off. Otherwise stop once validation loss has not improved for this many epochs, and keep "
        "the weights of the best epoch.",
    )
    cols[2].selectbox(
        "Model",
        list(ARCHITECTURES),
        key="architecture",
        format_func=lambda name: f"{name}: conv {'-'.join(map(str, ARCHITECTURES[name]))}",
        help="course: the Cats vs Dogs CNN; course5: the Horses or Humans notebook's five convolutions "
        "(images of 94 px or more).",
    )


def estimate_text(config: RunConfig, runs: int, seconds: float, train_count: int, source: str) -> str:
    """The estimate, what it covers, and where its speed comes from (`source`: this server's runs or a guess)."""
    if not seconds:
        return f"{'Both' if runs == 2 else f'All {runs}'} runs are already in the run store: they show at once."
    per_side = f", {runs // 2} seeds per side" if runs > 2 else ""
    return (
        f"Estimated time: {format_duration(seconds)} "
        f"({config.epochs} epoch{'s' if config.epochs != 1 else ''} × {runs} runs{per_side}, "
        f"{train_count} training images at {config.image_size} px). {source[0].upper()}{source[1:]}."
    )
