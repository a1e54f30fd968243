"""Why it overfits: the images behind the curves of the comparison above, and the data-size curve.

- The poses it never saw: the validation images one model got wrong and the other right, each way, with
  both models' confidence, and a confusion matrix per side. Read from the runs' stored predictions
  (`lab.training.outcome`): no TensorFlow.
- Inside the models, behind a switch: Grad-CAM of both models on one validation image, a real augmented
  training batch beside validation images, and "Try your own photo". These need the models, so the
  switch is what loads TensorFlow into the server (once, `st.cache_resource`); the page's first paint
  never does. An uploaded photo is decoded in memory for this visitor's script run only: never written
  to disk, never cached, never shown to anyone else.
- The data-size curve: one button hands a comparison per training-set size to the worker (cached like
  every run), and a chart of validation accuracy against training images, without and with augmentation.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from app.privacy import public_text
from app.runs import get_worker, submit_in_order
from app.state import limits, session_id
from lab.config import ConfigError, RunConfig
from lab.data.registry import DatasetInfo
from lab.runs import sweep as sweeps
from lab.runs.hosting import apply_limits
from lab.training import explain, outcome

STRIP = 10  # images per disagreement strip
THUMB = 112  # pixels a side on the page, whatever the run's image size
POLL_SECONDS = 2.0
INSIDE = "Look inside the two models (loads them on the server)"
SWEEP_BUTTON = "▶ Train the data-size sweep"
PHOTO_TYPES = ["jpg", "jpeg", "png", "gif", "bmp", "webp", "tif", "tiff"]


def show(info: DatasetInfo | None, config: RunConfig | ConfigError) -> None:
    st.subheader("Why it overfits", divider="gray")
    show_images()
    show_sweep(info, config)


# -- the images behind the curves -------------------------------------------------------------------
def show_images() -> None:
    active = st.session_state.active
    if not active:
        st.caption("Train a comparison (section 3): the validation images behind its curves show here.")
        return
    worker = get_worker()
    keys = active[:2]  # without and with augmentation (of the first seed)
    if not all(worker.status(key).done for key in keys):
        st.caption("When both runs have finished, the images behind their curves show here.")
        return
    runs = [worker.store.load(key) for key in keys]
    found = [cached_predictions(str(worker.store.run_dir(key)), key) for key in keys]
    if any(run is None for run in runs) or any(p is None for p in found):
        st.info(
            "These runs were stored before the lab kept their final predictions and weights: their curves "
            "are above, but their images are not available."
        )
        return
    baseline, augmented = found
    config = runs[1].config
    try:
        differ = explain.disagreements(baseline, augmented)
    except ValueError as exc:
        st.warning(str(exc))
        return
    st.markdown("#### The poses it never saw")
    seeds = " (the first seed's two runs)" if len(active) > 2 else ""
    st.caption(
        f"Of {differ.total} validation images, the model without augmentation got {len(differ.fixed)} wrong that "
        f"the model with it got right, and {len(differ.broken)} right that it got wrong. Each caption: the true "
        "class, then what each model said and how sure it was" + seeds + "."
    )
    disagreement_strip(config, differ.fixed, "Wrong without augmentation, right with it")
    disagreement_strip(config, differ.broken, "Right without augmentation, wrong with it")
    confusion_matrices(baseline, augmented)
    if st.toggle(INSIDE, key="why_inside", help="Loads TensorFlow and the two models into this server, once."):
        inside(keys, runs, baseline, augmented, differ)


@st.cache_resource(show_spinner=False, max_entries=32)
def cached_predictions(folder: str, key: str) -> outcome.Predictions | None:
    """A finished run's predictions never change: read once per server (a run retrained gets a new folder state,
    but only a failed or cancelled run is retrained, and those are never read here)."""
    return outcome.load_predictions(Path(folder))


def disagreement_strip(config: RunConfig, items: list, title: str) -> None:
    st.markdown(f"**{title}** ({len(items)})")
    if not items:
        st.caption("None.")
        return
    shown = [(item, explain.validation_image(config, item.file)) for item in items[:STRIP]]
    shown = [(item, image) for item, image in shown if image is not None]
    if not shown:
        st.caption("Their image files are no longer there.")
        return
    st.image(
        [image for _, image in shown],
        caption=[caption(item) for item, _ in shown],
        width=THUMB,
    )
    if len(items) > STRIP:
        st.caption(f"Showing the {STRIP} of {len(items)} that the wrong model was surest of.")


def caption(item: explain.Disagreement) -> str:
    text = (
        f"{item.true_class}: without → {item.baseline_class} {item.baseline_confidence:.0%}, "
        f"with → {item.augmented_class} {item.augmented_confidence:.0%}"
    )
    return f"{text} ({item.move})" if item.move else text


def confusion_matrices(baseline: outcome.Predictions, augmented: outcome.Predictions) -> None:
    st.markdown("**Confusion matrices** (rows: the true class; columns: what the model said)")
    columns = st.columns(2)
    for column, (name, found) in zip(columns, (("Without", baseline), ("With", augmented)), strict=True):
        classes = list(found.classes)
        table = pd.DataFrame(
            found.confusion_matrix(),
            index=[f"true {c}" for c in classes],
            columns=[f"said {c}" for c in classes],
        )
        column.caption(f"{name} augmentation: {found.accuracy:.1%} right")
        column.dataframe(table)


# -- inside the models --------------------------------------------------------------------------------
@st.cache_resource(show_spinner="Loading the model (TensorFlow, the first time: a few seconds)…", max_entries=4)
def cached_model(folder: str, config_json: str):
    """A finished run's model, rebuilt from its stored weights, once per server."""
    return outcome.load_model(Path(folder), RunConfig.from_json(config_json))


@st.cache_resource(show_spinner="Drawing the run's first augmented batch…", max_entries=8)
def cached_batch(config_json: str, count: int) -> explain.Strip:
    return explain.augmented_batch(RunConfig.from_json(config_json), count)


def inside(keys, runs, baseline: outcome.Predictions, augmented: outcome.Predictions, differ) -> None:
    store = get_worker().store
    models = {}
    for name, key, run in zip(("without", "with"), keys, runs, strict=True):
        model = cached_model(str(store.run_dir(key)), run.config.to_json())
        if model is None:
            st.info("This run's weights are not available: its models cannot be shown.")
            return
        models[name] = model
    config = runs[1].config
    pick = where_each_looks(config, models, baseline, augmented, differ)
    what_it_saw(config, augmented)
    own_photo(config, models, augmented, pick)


def where_each_looks(config: RunConfig, models: dict, baseline, augmented, differ) -> int:
    st.markdown("#### Where each model looks")
    # The images the models disagree on first: that is where looking differs.
    first = [d.index for d in differ.fixed] + [d.index for d in differ.broken]
    order = first + [i for i in range(len(baseline.files)) if i not in set(first)]
    kinds = baseline.kinds

    def describe(index: int) -> str:
        text = f"#{index + 1}: {baseline.classes[baseline.labels[index]]}"
        return f"{text}, {kinds[index]}" if kinds else text

    index = st.selectbox("Validation image", order, format_func=describe, key="why_image")
    image = explain.validation_image(config, baseline.files[index])
    if image is None:
        st.caption("This image's file is no longer there.")
        return index
    columns = st.columns(3)
    columns[0].image(image, caption=f"validation image #{index + 1}", width=2 * THUMB)
    for column, (name, model), found in zip(columns[1:], models.items(), (baseline, augmented), strict=True):
        heat = explain.grad_cam(model, image, config.augmentation.rescale)
        said = found.classes[found.predicted[index]]
        column.image(
            explain.overlay(image, heat),
            caption=f"{name} augmentation: {said} {found.confidence[index]:.0%}",
            width=2 * THUMB,
        )
    st.caption(
        "Grad-CAM on the last convolution: red where the features that raised the model's answer lie. "
        "The last convolution is coarse (a few cells a side), so the map is too."
    )
    return index


def what_it_saw(config: RunConfig, found: outcome.Predictions) -> None:
    st.markdown("#### What the model saw, and what it was tested on")
    batch = cached_batch(config.to_json(), 8)
    st.image(list(batch.images), caption=batch.classes, width=THUMB)
    st.caption("The run's first augmented training batch (same seed: exactly what the model with augmentation saw).")
    images = [explain.validation_image(config, f"builtin/{i}") for i in range(8)] if config.dataset == "builtin" else []
    if not images:
        # Spread over the split: a folder's validation images come class by class.
        step = max(1, len(found.files) // 8)
        images = [explain.validation_image(config, f) for f in found.files[::step][:8]]
    images = [image for image in images if image is not None]
    if images:
        st.image(images, width=THUMB)
        st.caption("Validation images: what both models were tested on.")


def own_photo(config: RunConfig, models: dict, found: outcome.Predictions, picked: int) -> None:
    st.markdown("#### Try your own photo")
    upload = st.file_uploader(
        "Upload a photo",
        type=PHOTO_TYPES,
        key="why_photo",
        help="Read in memory for this page only: never saved, never shown to anyone else.",
    )
    if upload is not None:
        try:
            image = explain.read_photo(upload.getvalue())
        except explain.BadPhoto as exc:
            st.error(f"{upload.name}: {exc}")
            return
        label = "your photo"
    else:
        image = explain.validation_image(config, found.files[picked])
        if image is None:
            return
        label = f"validation image #{picked + 1} (picked above)"
    probs = explain.predict_photo(models, image, config)
    classes = list(found.classes)
    columns = st.columns([1, 2])
    columns[0].image(explain.fit_to_model(image, config.image_size), caption=label, width=2 * THUMB)
    table = pd.DataFrame({f"{name} augmentation": p for name, p in probs.items()}, index=classes)
    columns[1].dataframe(table.style.format("{:.1%}"))
    said = {name: classes[int(p.argmax())] for name, p in probs.items()}
    columns[1].markdown(f"Without augmentation: **{said['without']}**. With augmentation: **{said['with']}**.")


# -- the data-size curve ------------------------------------------------------------------------------
def show_sweep(info: DatasetInfo | None, config: RunConfig | ConfigError) -> None:
    st.markdown("#### The data-size curve: augmentation acts like more data")
    if info is None or isinstance(config, ConfigError):
        st.caption("Pick a dataset that loads, and settings that make a configuration, to sweep.")
        return
    caps = limits()
    total = info.total("train")
    sizes = sweeps.default_sizes(total, info.num_classes, cap=caps.max_train_images if caps else None)
    if len(sizes) < 2 or not config.augmentation.enabled:
        st.caption("Needs a training split of a few images per class and at least one augmentation.")
        return
    try:
        base, _ = apply_limits(config, caps, total)
        configs = sweeps.sweep_configs(base, sizes)
    except ConfigError as exc:
        st.error(public_text(str(exc)))
        return
    state = st.session_state
    st.caption(
        f"Validation accuracy after {base.epochs} epochs with {', '.join(map(str, sizes))} training images, "
        f"without and with the augmentations above: {len(configs)} runs, each cached like any run."
    )
    if st.button(SWEEP_BUTTON, key="why_sweep_button"):
        refusals: list[str] = []
        state.sweep = tuple(configs)
        state.sweep_pending = submit_in_order(get_worker(), configs, session_id(), total, refusals)
        if len(state.sweep_pending) == len(configs) and refusals:
            st.warning(public_text(refusals[0]))
    if state.get("sweep"):
        polling = sweep_running()
        st.fragment(run_every=POLL_SECONDS if polling else None)(sweep_chart)(polling, total)


def sweep_running() -> bool:
    worker = get_worker()
    state = st.session_state
    return bool(state.get("sweep_pending")) or any(worker.status(c.key()).active for c in state.sweep)


def sweep_chart(was_polling: bool, total: int) -> None:
    state = st.session_state
    worker = get_worker()
    if state.get("sweep_pending"):
        state.sweep_pending = submit_in_order(worker, state.sweep_pending, session_id(), total)
    statuses = [worker.status(c.key(), watcher=session_id()) for c in state.sweep]
    done = sum(s.done for s in statuses)
    found = sweeps.points(state.sweep, [s.history if s.done else [] for s in statuses])
    sizes = sorted({c.train_images for c in state.sweep})
    if done < len(statuses):
        failed = [s for s in statuses if s.state in ("failed", "cancelled", "interrupted")]
        st.progress(done / len(statuses), text=f"{done} of {len(statuses)} runs of the sweep done")
        for status in failed[:1]:
            st.warning(f"A run of the sweep {status.state}. {public_text(status.error or '')}")
    st.plotly_chart(sweeps.sweep_figure(found, sizes), width="stretch", key="why-sweep-chart")
    rows = sweeps.table(found)
    if rows:
        table = pd.DataFrame(rows).set_index("train_images").rename_axis("training images")
        table.columns = ["without augmentation", "with augmentation"]
        st.dataframe(table.style.format("{:.1%}", na_rep="…"))
    if was_polling and not sweep_running():
        st.rerun()
