"""Overfitting Lab: the page, laid out to be seen on one screen, like TensorFlow Playground.

The sidebar holds the knobs in the order of the lesson: preset -> data -> augmentations -> training
settings. The main area holds what they change, top to bottom: training and validation samples, the
augmented variants, the Train button, the curves; History, the code and the JSON go in tabs below.
This file only lays out the sections (app/sections/); the page's state lives in app/state.py,
its runs in app/runs.py, the work in lab/, training in a background worker. TensorFlow is never
imported here, so the page paints before it loads.
"""

from __future__ import annotations

import streamlit as st

from app import runs, state
from app.privacy import shareable_json
from app.sections import augmentations, compare, data, header, history, train, why
from lab.config import ConfigError, RunConfig
from lab.data.registry import DatasetInfo

# The first Streamlit call of every script run: the imports above draw nothing.
st.set_page_config(page_title="Overfitting Lab", page_icon="🧪", layout="wide", initial_sidebar_state="auto")


def show_config(config: RunConfig | ConfigError) -> None:
    """The whole configuration as JSON, or why the controls describe none."""
    if isinstance(config, ConfigError):
        st.error(str(config))
        return
    st.code(shareable_json(config), language="json")
    st.caption(
        "The address bar holds this whole setup: copy it to share it. Add `&hide=preset,data,augmentations,"
        "settings,code,history` (any of them) to hide controls a lesson does not need."
    )


def lower_tabs(info: DatasetInfo | None, config: RunConfig | ConfigError) -> None:
    """What a student opens on purpose: the runs kept so far, the code, the JSON, the data's details."""
    names = [name for name, section in TABS if section is None or state.shown(section)]
    for name, tab in zip(names, st.tabs(names), strict=True):
        with tab:
            if name == "History":
                history.show()
            elif name == "Code" and isinstance(config, RunConfig):
                augmentations.show_code(config.augmentation)
            elif name == "This configuration as JSON":
                show_config(config)
            elif name == "About the data" and info is not None:
                data.show_contents(info)


# (tab, the `?hide=` name that hides it, if any)
TABS = (("About the data", None), ("History", "history"), ("Code", "code"), ("This configuration as JSON", "code"))


def main() -> None:
    state.init_state()
    runs.watch_linked_runs()
    with st.sidebar:
        header.preset_picker()
        loaded = data.controls()  # the data's DatasetInfo, why it does not load, or None while no folder is given
        # Built once, after the data controls (the slider's callback has set `train_images` by now).
        config = state.read_config()
        augmentations.controls()
        train.settings()
    header.show()
    info = loaded if isinstance(loaded, DatasetInfo) else None
    if info is None:
        data.show_problem(loaded)
    else:
        data.sample_strips(info)
        if isinstance(config, RunConfig):  # otherwise train.show says why, where the button would be
            augmentations.preview_strip(config.augmentation)
    train.show(info, config)
    compare.show(config)
    why.show(info, config)
    lower_tabs(info, config)
    state.sync_link(config if isinstance(config, RunConfig) else None)


main()
