"""The page's title and what it is for (main area), and the preset picker with its lesson (sidebar)."""

from __future__ import annotations

import streamlit as st

from app.privacy import public_text
from app.state import on_preset_change, shown
from lab.presets import list_presets, load_preset


def show() -> None:
    st.title("Overfitting Lab")
    st.caption(
        "Train the course's small CNN twice, **without** and **with** image augmentation, and watch the training "
        "and validation curves. Set the data and the augmentations in the sidebar, then press Train."
    )
    if lowered := st.session_state.get("lowered"):
        st.info(
            "This page changed what the link or preset asked, to keep within what it offers: "
            + "; ".join(lowered)
            + "."
        )
    if "link_error" in st.session_state:
        st.warning(public_text(st.session_state.pop("link_error")))


def preset_picker() -> None:
    """The preset, and its lesson while the data is still the preset's own (after an upload it would mislead)."""
    if not shown("preset"):
        return
    names = list_presets()
    st.selectbox(
        "Start from a preset",
        names,
        key="preset",
        format_func=lambda name: f"{name}: {load_preset(name).title}",
        on_change=on_preset_change,
        help="Sets every control below; change any of them afterwards.",
    )
    preset = load_preset(st.session_state.preset)
    same_data = st.session_state.dataset == preset.config.dataset and not (
        st.session_state.data_dir and st.session_state.data_dir != (preset.config.data_dir or "")
    )
    if preset.lesson and same_data:
        st.caption(preset.lesson)
