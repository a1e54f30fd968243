"""Overfitting Lab: the page, top to bottom in the order of the lesson.

Pick data -> choose augmentations (and see them) -> train -> compare -> history.
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

# The first Streamlit call of every script run: the imports above draw nothing.
st.set_page_config(page_title="Overfitting Lab", page_icon="🧪", layout="wide")


def show_config(config: RunConfig | ConfigError) -> None:
    """The whole configuration as JSON, or why the controls describe none."""
    if isinstance(config, ConfigError):
        st.error(str(config))
        return
    if not state.shown("code"):
        return
    with st.expander("This configuration as JSON"):
        st.code(shareable_json(config), language="json")
        st.caption(
            "The address bar holds this whole setup: copy it to share it. Add `&hide=preset,data,augmentations,"
            "settings,code,history` (any of them) to hide controls a lesson does not need."
        )


def main() -> None:
    state.init_state()
    runs.watch_linked_runs()
    header.show()
    info = data.show()
    # Built once, after the data section: its "Training images" slider sets `train_images`.
    config = state.read_config()
    augmentations.show(info, config)
    train.show(info, config)
    compare.show()
    why.show(info, config)
    history.show()
    show_config(config)
    state.sync_link(config if isinstance(config, RunConfig) else None)


main()
