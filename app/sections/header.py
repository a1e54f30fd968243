"""The page's title, what it is for and the preset's lesson (main area), and the preset picker (sidebar)."""

from __future__ import annotations

import streamlit as st

from app.privacy import public_text
from app.state import on_preset_change, shown
from lab.presets import list_presets, load_preset

# Streamlit leaves 6rem above the title and draws it at 2.75rem: the one-screen layout needs that room for the curves.
COMPACT = """<style>
[data-testid="stMainBlockContainer"] { padding-top: 4rem; }
[data-testid="stMainBlockContainer"] h1 { font-size: 2.2rem; padding-top: 0; }
</style>"""


def show() -> None:
    st.html(COMPACT)
    st.title("Overfitting Lab")
    intro = (
        "Train the course's small CNN twice, **without** and **with** image augmentation, and compare the curves. "
        "Set the data and the augmentations in the sidebar."
    )
    lesson = preset_lesson()
    st.caption(intro + (f" **What to look for:** {lesson}" if lesson else ""))
    if lowered := st.session_state.get("lowered"):
        st.info(
            "This page changed what the link or preset asked, to keep within what it offers: "
            + "; ".join(lowered)
            + "."
        )
    if "link_error" in st.session_state:
        st.warning(public_text(st.session_state.pop("link_error")))


def preset_lesson() -> str:
    """The preset's lesson while the data is still the preset's own: after an upload it would describe other images."""
    state = st.session_state
    preset = load_preset(state.preset)
    same_folder = state.dataset == "builtin" or (state.data_dir or "") == (preset.config.data_dir or "")
    same_data = state.dataset == preset.config.dataset and same_folder
    return preset.lesson if same_data else ""


def preset_picker() -> None:
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
