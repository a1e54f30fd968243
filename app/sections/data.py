"""Section 1, Data: the dataset picker, an upload or a folder, the download button, what the data
holds (classes, split sizes, sample images), and how many training images at what size.

The controls go in the sidebar (`controls`); the sample strips of training and validation images
go in the main area beside the preview (`sample_strips`); the split sizes and larger samples in a
tab (`show_contents`).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.privacy import hosted, public_text
from app.state import image_sizes, limits, secrets, shown
from lab.config import RunConfig
from lab.data import registry
from lab.data.download import DownloadError, download_bytes, ensure_dataset, is_downloadable
from lab.data.ingest import ingest_upload, is_upload_folder
from lab.data.listing import dataset_info, sample_images
from lab.runs.hosting import server_folders_allowed

# The slider's own key: `train_images` (0 = all) is the configuration's, this one the widget's.
TRAIN_IMAGES_WIDGET = "train_images_widget"
STRIP_IMAGES = 8  # images per strip in the main area: one row at a laptop's width


@st.cache_data(show_spinner=False, max_entries=32)
def load_samples(dataset: str, data_dir: str | None, image_size: int, split: str = "train") -> dict:
    config = RunConfig(dataset=dataset, data_dir=data_dir, image_size=image_size)
    return sample_images(config, per_class=6, split=split)


@st.cache_data(show_spinner=False, max_entries=16)
def load_info(dataset: str, data_dir: str | None, validation_split: float, seed: int):
    """The dataset's classes and split sizes: listing a folder of thousands of images once is enough."""
    config = RunConfig(dataset=dataset, data_dir=data_dir, validation_split=validation_split, seed=seed)
    return dataset_info(config)


def controls() -> registry.DatasetInfo | registry.DatasetError | None:
    """The data controls (drawn where the caller is, the sidebar); returns what the chosen dataset holds,
    the DatasetError that says why it does not load, or None while no folder is given."""
    st.header("1. Data")
    state = st.session_state
    names = list(registry.REGISTRY)
    if shown("data"):
        st.selectbox("Dataset", names, key="dataset", format_func=lambda n: registry.REGISTRY[n].title)
    folders = server_folders_allowed(secrets())
    if not folders and state.data_dir and (state.dataset != "folder" or not is_upload_folder(state.data_dir)):
        state.data_dir = ""  # hosted: the server's folders stay private; an upload is "Your own folder" only
    if state.dataset == "folder" and shown("data"):
        upload_control()
    if state.dataset != "builtin" and folders and shown("data"):
        st.text_input(
            "Folder on this computer",
            key="data_dir",
            placeholder=str(
                registry.default_data_root() / (registry.REGISTRY[state.dataset].folder_name or "my_images")
            ),
            help="train/<class>/ and validation/<class>/, or <class>/ folders that the lab splits. "
            "Leave empty to use the dataset's default folder.",
        )
    if state.dataset == "folder" and not state.data_dir:
        return None
    try:
        info = load_info(state.dataset, (state.data_dir or None), 0.2, state.seed)
    except registry.DatasetError as exc:
        return exc
    if shown("data"):
        subset_and_size_controls(info)
    return info


def show_problem(problem: registry.DatasetError | None) -> None:
    """Why there is nothing to train on yet, in the main area: calm when the dataset is only not downloaded."""
    state = st.session_state
    if problem is None:
        where = ", or type the path of a folder on this computer." if server_folders_allowed(secrets()) else "."
        st.info("Upload a zip of your own images in the sidebar" + where)
        return
    downloadable = is_downloadable(state.dataset) and not state.data_dir
    if not downloadable:
        st.error(public_text(str(problem)))  # the user's own folder: what is wrong with it is the news
        return
    title = registry.REGISTRY[state.dataset].title
    message = st.empty()  # a failed download replaces this message: its own says what to do by hand
    missing = "is not on this server yet" if hosted() else "is not downloaded yet on this computer"
    message.info(f"{title} {missing}: the button below fetches it.")
    if shown("data"):
        download_control(state.dataset, message)
    if not hosted():  # hosted, the steps by hand name folders visitors do not have
        with st.expander("Details: where the lab looks, and how to put the files there by hand"):
            st.markdown(public_text(str(problem)))


def sample_strips(info: registry.DatasetInfo) -> None:
    """A few training and a few validation images side by side: what the model learns from, what it is judged on."""
    state = st.session_state
    per_class = max(1, STRIP_IMAGES // 2 // info.num_classes)
    cols = st.columns(2)
    for col, split, title in ((cols[0], "train", "Training images"), (cols[1], "validation", "Validation images")):
        samples = load_samples(state.dataset, (state.data_dir or None), state.image_size, split)
        images = [image for images in samples.values() for image in images[:per_class]]
        captions = [name for name, images in samples.items() for _ in images[:per_class]]
        with col:
            st.caption(f"**{title}**")
            st.image(images, caption=captions, width=56)


def show_contents(info: registry.DatasetInfo) -> None:
    """The dataset's description, its split sizes per class and more images of each class."""
    state = st.session_state
    st.markdown(info.description)
    sizes = pd.DataFrame(info.split_sizes).rename_axis("class")
    left, right = st.columns([1, 3])
    with left:
        st.dataframe(sizes, width="content")
    with right:
        for split in ("train", "validation"):
            samples = load_samples(state.dataset, (state.data_dir or None), state.image_size, split)
            for name, images in samples.items():
                label = f"{name} ({'training' if split == 'train' else 'validation'})"
                st.image(list(images), caption=[label] * len(images), width=84)


def download_control(name: str, message) -> None:
    """Fetch a course dataset on first use, with a progress bar; a failure's message replaces `message`."""
    size_mb = download_bytes(name) / 1e6
    if not st.button(f"Download {registry.REGISTRY[name].title} ({size_mb:.0f} MB)", type="primary"):
        return
    bar = st.progress(0.0, text="Connecting…")

    def progress(done: int, total: int) -> None:
        fraction = done / total if total else 0.0
        bar.progress(min(fraction, 1.0), text=f"Downloaded {done / 1e6:.1f} of {total / 1e6:.1f} MB")

    try:
        ensure_dataset(name, progress)
    except DownloadError as exc:
        bar.empty()
        message.error(public_text(str(exc)))
        return
    load_info.clear()
    st.rerun()


def upload_control() -> None:
    """Unpack a zip of the user's own images inside the lab's data folder, checked, once per file."""
    upload = st.file_uploader(
        "Upload a zip of your own images",
        type=["zip"],
        help="Class subfolders, with or without train/ and validation/ around them. "
        "Without them the lab holds out a seeded 20% for validation.",
    )
    if upload is None:
        return
    state = st.session_state
    done = state.setdefault("uploads", {})
    if upload.file_id not in done:
        try:
            done[upload.file_id] = ingest_upload(upload.getvalue(), upload.name, private=hosted())
        except registry.DatasetError as exc:
            done[upload.file_id] = str(exc)
    report = done[upload.file_id]
    if isinstance(report, str):
        st.error(public_text(report))
        return
    st.success(report.summary())
    if state.data_dir != str(report.data_dir):
        state.data_dir = str(report.data_dir)
        st.rerun()


def on_train_images_change() -> None:
    """The slider moved: the configuration takes its value (the whole training split is 0, "all")."""
    state = st.session_state
    chosen = state[TRAIN_IMAGES_WIDGET]
    state.train_images = 0 if chosen >= state.get("train_images_total", chosen) else chosen


def subset_and_size_controls(info: registry.DatasetInfo) -> None:
    state = st.session_state
    total = info.total("train")
    caps = limits()
    if caps is not None:
        total = min(total, caps.max_train_images)
    minimum = min(total, 2 * info.num_classes)
    if state.train_images > total or state.train_images < 0:
        state.train_images = 0
    state.train_images_total = total
    # The widget keeps its own key and takes its value from the configuration only when that changed
    # elsewhere (a preset, a link, another dataset). Passing `value=` instead made the value part of the
    # widget's identity: each move made a new widget, which dropped the next move and the keyboard focus.
    wanted = min(max(state.train_images or total, minimum), total)
    if state.train_images and wanted != state.train_images:  # below this dataset's minimum
        state.train_images = 0 if wanted >= total else wanted
    if state.get(TRAIN_IMAGES_WIDGET) != wanted:
        state[TRAIN_IMAGES_WIDGET] = wanted
    st.slider(
        "Training images",
        min_value=minimum,
        max_value=total,
        step=max(1, total // 100),
        key=TRAIN_IMAGES_WIDGET,
        on_change=on_train_images_change,
        help="A class-balanced subset of the training split: less data overfits sooner.",
    )
    st.select_slider("Image size (pixels)", image_sizes(), key="image_size", help="The course uses 150.")
