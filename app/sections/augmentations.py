"""Section 2, Augmentations: one switch per knob of `lab.knobs.KNOBS` with its slider and the fill mode
(`controls`, in the sidebar), a compact preview of the variants the model would train on (`preview_strip`,
in the main area), and the equivalent code (`show_code`, in a tab)."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from app.sections.data import load_samples
from app.state import shown
from lab.config import FILL_MODES, RANGES, Augmentation
from lab.knobs import KNOBS, Knob
from lab.training.augment import image_data_generator_code, keras_layers_code, preview, shear_note

# The page lays out the range knobs first, then the flips.
RANGE_KNOBS = tuple(knob for knob in KNOBS if not knob.is_flip)
FLIP_KNOBS = tuple(knob for knob in KNOBS if knob.is_flip)
VARIANTS = 8


def slider_format(knob: Knob) -> str | None:
    """Degrees read as "40°" (and the course's 0.2 as "0.2°"); other units keep Streamlit's two decimals."""
    return "%g°" if knob.unit == "degrees" else None


def controls() -> None:
    """Every knob's switch and slider, the flips and the fill mode, one under the other (the sidebar)."""
    st.header("2. Augmentations")
    st.caption("Applied on the fly to training images only. The files are never changed.")
    if not shown("augmentations"):
        return
    state = st.session_state
    for knob in RANGE_KNOBS:
        on = st.toggle(knob.label, key=f"on_{knob.name}", help=knob.help)
        st.slider(
            f"{knob.label} ({knob.unit})",
            0.0,
            knob.high,
            step=knob.step,
            key=f"value_{knob.name}",
            disabled=not on,
            format=slider_format(knob),
            label_visibility="collapsed",
        )
        if knob.name == "shear_range" and on:
            st.caption(shear_note(replace(Augmentation(), shear_range=state[f"value_{knob.name}"])))
    for knob in FLIP_KNOBS:
        st.toggle(knob.label, key=f"on_{knob.name}", help=knob.help)
    st.selectbox("Fill mode", FILL_MODES, key="fill_mode", help="What fills the pixels a transform uncovers.")
    if state.fill_mode == "constant":
        low, high, _ = RANGES["augmentation.cval"]
        st.slider("Fill value (cval)", low, high, step=1.0, key="cval")


def preview_strip(aug: Augmentation) -> None:
    """The first training image and eight variants of it in one row, with the buttons that draw others."""
    state = st.session_state
    samples = load_samples(state.dataset, (state.data_dir or None), state.image_size)
    first = next(iter(samples.values()))
    cols = st.columns([1, 8, 2], vertical_alignment="center")
    with cols[0]:
        st.image(first[0], caption="original", width=64)
    with cols[1]:
        if aug.enabled:
            variants = preview(first[0], aug, count=VARIANTS, seed=state.preview_seed)
            st.image(list(variants), width=64, caption=[f"variant {i + 1}" for i in range(len(variants))])
        else:
            st.caption("Switch an augmentation on (sidebar) to see the variants the model would train on.")
    with cols[2]:
        if st.button("New variants", help="Draw other random variants"):
            state.preview_seed += 1
            st.rerun()
        if aug.enabled:
            with st.popover("Each on its own", help="Each switched-on augmentation alone"):
                for knob in single_knobs(aug):
                    alone = single_knob(aug, knob.name)
                    strip = preview(first[0], alone, count=6, seed=state.preview_seed)
                    st.image(list(strip), width=72, caption=[knob.label] * 6)


def show_code(aug: Augmentation) -> None:
    """The same augmentation as the course's ImageDataGenerator, and as Keras preprocessing layers."""
    tabs = st.tabs(["ImageDataGenerator (the course)", "Keras preprocessing layers"])
    tabs[0].code(image_data_generator_code(aug), language="python")
    tabs[1].code(keras_layers_code(aug), language="python")


def single_knobs(aug: Augmentation) -> list[Knob]:
    """The knobs switched on, in the page's order (range knobs, then flips)."""
    return [knob for knob in RANGE_KNOBS + FLIP_KNOBS if getattr(aug, knob.name)]


def single_knob(aug: Augmentation, name: str) -> Augmentation:
    """`aug` with every knob but `name` switched off (fill mode and rescale kept)."""
    return replace(aug.switched_off(), **{name: getattr(aug, name)})
