"""The page's title, what it is for, and the preset picker with its lesson."""

from __future__ import annotations

import streamlit as st

from app.privacy import public_text
from app.state import on_preset_change, shown
from lab.presets import list_presets, load_preset


def show() -> None:
    st.title("Overfitting Lab")
    st.markdown(
        "Train the course's small CNN twice, **without** and **with** image augmentation, and watch what happens "
        "to the training and validation curves. Without augmentation the model memorises its training images; "
        "augmentation shows it new variants every epoch, in memory, and the curves move together."
    )
    if lowered := st.session_state.get("lowered"):
        st.info(
            "This page changed what the link or preset asked, to keep within what it offers: "
            + "; ".join(lowered)
            + "."
        )
    if "link_error" in st.session_state:
        st.warning(public_text(st.session_state.pop("link_error")))
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
    lesson = load_preset(st.session_state.preset).lesson
    if lesson:
        st.caption(lesson)
