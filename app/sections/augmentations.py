"""Section 2, Augmentations: one switch per knob of `lab.knobs.KNOBS` with its slider, the fill mode,
a live preview of the variants the model would train on, and the equivalent code."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from app.sections.data import load_samples
from app.state import shown
from lab.config import FILL_MODES, RANGES, Augmentation, ConfigError, RunConfig
from lab.data.registry import DatasetInfo
from lab.knobs import KNOBS, Knob
from lab.training.augment import image_data_generator_code, keras_layers_code, preview, shear_note

# The page lays out the range knobs first, then the flips: sliders line up in their columns.
RANGE_KNOBS = tuple(knob for knob in KNOBS if not knob.is_flip)
FLIP_KNOBS = tuple(knob for knob in KNOBS if knob.is_flip)


def show(info: DatasetInfo | None, config: RunConfig | ConfigError) -> None:
    st.header("2. Augmentations")
    st.caption("Applied on the fly to training images only, as they stream to the model. The files are never changed.")
    if shown("augmentations"):
        knob_controls()
    if isinstance(config, RunConfig):  # otherwise the page says why below, under "3. Train"
        preview_section(info, config.augmentation)


def knob_controls() -> None:
    state = st.session_state
    cols = st.columns(3)
    for index, knob in enumerate(RANGE_KNOBS):
        with cols[index % 3]:
            on = st.toggle(knob.label, key=f"on_{knob.name}", help=knob.help)
            st.slider(
                f"{knob.label} ({knob.unit})",
                0.0,
                knob.high,
                step=knob.step,
                key=f"value_{knob.name}",
                disabled=not on,
            )
    with cols[len(RANGE_KNOBS) % 3]:
        for knob in FLIP_KNOBS:
            st.toggle(knob.label, key=f"on_{knob.name}", help=knob.help)
    with cols[(len(RANGE_KNOBS) + 1) % 3]:
        st.selectbox("Fill mode", FILL_MODES, key="fill_mode", help="What fills the pixels a transform uncovers.")
        if state.fill_mode == "constant":
            low, high, _ = RANGES["augmentation.cval"]
            st.slider("Fill value (cval)", low, high, step=1.0, key="cval")


def preview_section(info: DatasetInfo | None, aug: Augmentation) -> None:
    if aug.shear_range:
        st.info(shear_note(aug))
    if info is not None:
        show_preview(aug)
    if shown("code"):  # the code depends on the knobs only, not on the data
        tabs = st.tabs(["ImageDataGenerator (the course)", "Keras preprocessing layers"])
        tabs[0].code(image_data_generator_code(aug), language="python")
        tabs[1].code(keras_layers_code(aug), language="python")


def show_preview(aug: Augmentation) -> None:
    state = st.session_state
    samples = load_samples(state.dataset, (state.data_dir or None), state.image_size)
    first = next(iter(samples.values()))
    st.subheader("Preview")
    cols = st.columns([1, 5])
    with cols[0]:
        st.image(first[0], caption="original", width=120)
        if st.button("New variants", help="Draw other random variants"):
            state.preview_seed += 1
    with cols[1]:
        if aug.enabled:
            variants = preview(first[0], aug, count=8, seed=state.preview_seed)
            st.image(list(variants), width=120, caption=[f"variant {i + 1}" for i in range(len(variants))])
        else:
            st.caption("Switch an augmentation on to see the variants the model would train on.")
    if aug.enabled:
        with st.expander("Each augmentation on its own"):
            for knob in single_knobs(aug):
                alone = single_knob(aug, knob.name)
                strip = preview(first[0], alone, count=6, seed=state.preview_seed)
                st.image(list(strip), width=96, caption=[knob.label] * 6)


def single_knobs(aug: Augmentation) -> list[Knob]:
    """The knobs switched on, in the page's order (range knobs, then flips)."""
    return [knob for knob in RANGE_KNOBS + FLIP_KNOBS if getattr(aug, knob.name)]


def single_knob(aug: Augmentation, name: str) -> Augmentation:
    """`aug` with every knob but `name` switched off (fill mode and rescale kept)."""
    return replace(aug.switched_off(), **{name: getattr(aug, name)})
