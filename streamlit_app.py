"""Overfitting Lab: the page, top to bottom in the order of the lesson.

Pick data -> choose augmentations (and see them) -> train -> compare -> history.
Widgets, layout and charts only: the work happens in lab/, training in a background
worker. TensorFlow is never imported here, so the page paints before it loads.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

import pandas as pd
import streamlit as st

from app.runs import submit_in_order, unsubmitted
from lab import figures
from lab import history as hist
from lab.data import registry
from lab.data.listing import dataset_info, sample_images
from lab.training.augment import image_data_generator_code, keras_layers_code, preview, shear_note
from lab.config import Augmentation, ConfigError, RunConfig
from lab.data.download import DownloadError, download_bytes, ensure_dataset, is_downloadable
from lab.runs.estimate import estimate_seconds, format_duration
from lab.runs.hosting import apply_limits, host_limits, server_folders_allowed
from lab.data.ingest import ingest_upload, is_upload_folder, upload_folder, upload_token
from lab.presets import list_presets, load_preset
from lab.recordings import RECORDINGS_DIR, list_recordings, load_recording
from lab.runs.store import RunStore, default_store_root
from lab.runs.trainer import SubprocessTrainer
from lab.runs.worker import MAX_WAITING_PER_OWNER, Worker

st.set_page_config(page_title="Overfitting Lab", page_icon="🧪", layout="wide")

IMAGE_SIZES = [48, 64, 96, 128, 150, 224, 300]
BATCH_SIZES = [8, 16, 20, 32, 64, 128]
LEARNING_RATES = [1e-4, 3e-4, 1e-3, 3e-3]
POLL_SECONDS = 1.5
MAX_EPOCHS = 300
MAX_SEEDS = 5
SIDES = ("Without augmentation", "With augmentation")

# (key, label, unit, min, max, step, default when switched on, help)
KNOBS = [
    ("rotation_range", "Rotation", "degrees", 0.0, 180.0, 1.0, 40.0, "turn by up to ± this angle"),
    ("width_shift_range", "Width shift", "fraction of the width", 0.0, 0.9, 0.05, 0.2, "move left/right"),
    ("height_shift_range", "Height shift", "fraction of the height", 0.0, 0.9, 0.05, 0.2, "move up/down"),
    ("shear_range", "Shear", "degrees", 0.0, 60.0, 0.1, 10.0, "slant by up to ± this angle"),
    ("zoom_range", "Zoom", "z: zoom in [1-z, 1+z]", 0.0, 0.9, 0.05, 0.2, "zoom in or out"),
    ("brightness_range", "Brightness", "fraction of the pixel range", 0.0, 1.0, 0.05, 0.2, "lighter or darker"),
    ("contrast_range", "Contrast", "factor in [1-c, 1+c]", 0.0, 1.0, 0.05, 0.3, "more or less contrast"),
]
FLIPS = [("horizontal_flip", "Horizontal flip"), ("vertical_flip", "Vertical flip")]
FILL_MODES = ["nearest", "constant", "reflect", "wrap"]


# -- shared, long-lived objects ----------------------------------------------------------
@st.cache_resource
def get_worker() -> Worker:
    """One worker for the whole server: every session and rerun shares it.

    It trains in a child process (lab/subprocess_trainer.py): a run that runs out of
    memory takes down the child, never the app, and the page stays responsive.
    """
    return Worker(RunStore(default_store_root()), train_fn=SubprocessTrainer())


@st.cache_data(show_spinner=False, max_entries=16)
def load_samples(dataset: str, data_dir: str | None, image_size: int) -> dict:
    config = RunConfig(dataset=dataset, data_dir=data_dir, image_size=image_size)
    return sample_images(config, per_class=6)


@st.cache_data(show_spinner=False, max_entries=16)
def describe_dataset(dataset: str, data_dir: str | None, validation_split: float, seed: int):
    config = RunConfig(dataset=dataset, data_dir=data_dir, validation_split=validation_split, seed=seed)
    return dataset_info(config)


def secrets() -> dict:
    try:
        return dict(st.secrets)
    except Exception:  # no secrets file: a laptop
        return {}


def limits():
    """Hosted mode's caps, or None on a laptop."""
    return host_limits(secrets())


def image_sizes() -> list[int]:
    caps = limits()
    return [size for size in IMAGE_SIZES if caps is None or size <= caps.max_image_size]


def max_epochs() -> int:
    caps = limits()
    return MAX_EPOCHS if caps is None else min(MAX_EPOCHS, caps.max_epochs)


def max_seeds() -> int:
    caps = limits()
    return MAX_SEEDS if caps is None else max(1, min(MAX_SEEDS, caps.max_seeds))


def session_id() -> str:
    if "session_id" not in st.session_state:
        st.session_state.session_id = uuid.uuid4().hex[:12]
    return st.session_state.session_id


# -- widgets <-> configuration -------------------------------------------------------------
def apply_config_to_widgets(config: RunConfig) -> None:
    """Set every widget from a configuration (a preset, a reopened run)."""
    state = st.session_state
    state.dataset = config.dataset
    state.data_dir = config.data_dir or ""
    sizes = image_sizes()
    state.image_size = max((size for size in sizes if size <= config.image_size), default=sizes[0])
    state.train_images = config.train_images
    state.epochs = min(config.epochs, max_epochs())
    state.batch_size = config.batch_size if config.batch_size in BATCH_SIZES else 20
    state.learning_rate = min(LEARNING_RATES, key=lambda lr: abs(lr - config.learning_rate))
    state.dropout = config.dropout
    state.seed = config.seed
    aug = config.augmentation
    for key, _, _, _, _, _, default, _ in KNOBS:
        value = getattr(aug, key)
        state[f"on_{key}"] = bool(value)
        state[f"value_{key}"] = float(value) if value else default
    for key, _ in FLIPS:
        state[f"on_{key}"] = getattr(aug, key)
    state.fill_mode = aug.fill_mode
    state.cval = float(aug.cval)
    state.rescale = aug.rescale


def config_from_widgets() -> RunConfig:
    state = st.session_state
    knobs = {key: (state[f"value_{key}"] if state[f"on_{key}"] else 0.0) for key, *_ in KNOBS}
    flips = {key: bool(state[f"on_{key}"]) for key, _ in FLIPS}
    augmentation = Augmentation(rescale=state.rescale, fill_mode=state.fill_mode, cval=state.cval, **knobs, **flips)
    return RunConfig(
        dataset=state.dataset,
        data_dir=(state.data_dir or None) if state.dataset != "builtin" else None,
        image_size=state.image_size,
        train_images=state.train_images,
        epochs=state.epochs,
        batch_size=state.batch_size,
        learning_rate=state.learning_rate,
        dropout=state.dropout,
        seed=state.seed,
        augmentation=augmentation,
    )


def on_preset_change() -> None:
    apply_config_to_widgets(load_preset(st.session_state.preset).config)


# Sections a teacher can hide with ?hide=...: the lesson then shows only what it needs.
HIDEABLE = ("preset", "data", "augmentations", "settings", "code", "history")


def init_state() -> None:
    state = st.session_state
    if "dataset" not in state:
        state.preset = "quick"
        state.preview_seed = 0
        state.hidden = {name for name in st.query_params.get("hide", "").split(",") if name in HIDEABLE}
        apply_config_to_widgets(config_from_link())
        state.seeds_per_side = seeds_from_link()
    else:
        # Streamlit forgets the value of a widget that was not drawn in a run; hidden
        # controls must keep theirs.
        for key in widget_keys():
            if key in state:
                state[key] = state[key]
    # A link or a refresh carries the runs being watched, so a running job is found again.
    if "active" not in state:
        state.active = runs_from_link()
        state.pending = unsubmitted(get_worker(), state.active) if state.active else []


def runs_from_link() -> tuple[str, ...] | None:
    """`?runs=`: without and with augmentation, pair by pair for several seeds (`a,b` alone: one seed)."""
    keys = tuple(key for key in st.query_params.get("runs", "").split(",") if key)
    return keys if len(keys) % 2 == 0 and 2 <= len(keys) <= 2 * MAX_SEEDS else None


def seeds_from_link() -> int:
    """`?seeds=N`, kept within the seeds this server allows; 1 when absent or unreadable."""
    try:
        count = int(st.query_params.get("seeds", "1"))
    except ValueError:
        return 1
    return max(1, min(count, max_seeds()))


def config_from_link() -> RunConfig:
    """The setup a shared link describes, or the quick preset when it describes none."""
    query = {key: st.query_params[key] for key in st.query_params}
    if "preset" in query and query["preset"] in list_presets():
        st.session_state.preset = query["preset"]
        base = load_preset(query["preset"]).config
    else:
        base = load_preset("quick").config
    settings = {k: v for k, v in query.items() if k not in ("preset", "runs", "hide", "seeds", "upload")}
    if "upload" in query:
        folder = upload_folder(query["upload"])
        if folder is None:
            st.session_state.link_error = (
                "The link names an upload this server does not have (uploads stay on the server they were made "
                "on): upload the zip again under 'Your own folder'."
            )
        else:
            settings.update(dataset="folder", data_dir=str(folder))
    if not settings:
        return base
    try:
        # The link holds every difference from its preset (see sync_link).
        return RunConfig.from_query(settings, base)
    except ConfigError as exc:
        st.session_state.link_error = f"The link's settings could not be used ({exc}); showing the preset instead."
        return base


def widget_keys() -> list[str]:
    keys = ["dataset", "data_dir", "image_size", "epochs", "batch_size", "learning_rate", "dropout", "seed"]
    keys += ["fill_mode", "cval", "preset", "seeds_per_side"]
    keys += [f"on_{key}" for key, *_ in KNOBS] + [f"value_{key}" for key, *_ in KNOBS]
    return keys + [f"on_{key}" for key, _ in FLIPS]


def shown(section: str) -> bool:
    return section not in st.session_state.hidden


def sync_link(config: RunConfig | None) -> None:
    """Keep the whole setup in the address bar, so copying it shares it."""
    query = {"preset": st.session_state.preset}
    if config is not None:
        query.update(config.to_query(load_preset(st.session_state.preset).config))
        # An upload is named by its zip's hash: the link works on this server and shows none of its paths.
        token = upload_token(config.data_dir) if config.data_dir else None
        if token is not None:
            query.pop("data_dir", None)
            query["upload"] = token
    if st.session_state.seeds_per_side > 1:
        query["seeds"] = str(st.session_state.seeds_per_side)
    if st.session_state.active:
        query["runs"] = ",".join(st.session_state.active)
    if st.session_state.hidden:
        query["hide"] = ",".join(sorted(st.session_state.hidden))
    if dict(st.query_params) != query:
        st.query_params.from_dict(query)


# -- sections ---------------------------------------------------------------------------------
def header() -> None:
    st.title("Overfitting Lab")
    st.markdown(
        "Train the course's small CNN twice, **without** and **with** image augmentation, and watch what happens "
        "to the training and validation curves. Without augmentation the model memorises its training images; "
        "augmentation shows it new variants every epoch, in memory, and the curves move together."
    )
    if "link_error" in st.session_state:
        st.warning(st.session_state.pop("link_error"))
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


def data_section() -> registry.DatasetInfo | None:
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
        where = ", or type the path of a folder on this computer." if folders else "."
        st.info("Upload a zip of your own images above" + where)
        return None
    try:
        info = describe_dataset(state.dataset, (state.data_dir or None), 0.2, state.seed)
    except registry.DatasetError as exc:
        message = st.empty()  # a failed download replaces this message: its own says what to do by hand
        message.error(str(exc))
        if is_downloadable(state.dataset) and not state.data_dir and shown("data"):
            download_control(state.dataset, message)
        return None
    st.markdown(info.description)
    sizes = pd.DataFrame(info.split_sizes).rename_axis("class")
    left, right = st.columns([1, 3])
    with left:
        st.dataframe(sizes, width="content")
    with right:
        samples = load_samples(state.dataset, (state.data_dir or None), state.image_size)
        for name, images in samples.items():
            st.image(list(images), caption=[name] * len(images), width=84)
    if shown("data"):
        subset_and_size_controls(info)
    return info


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
        message.error(str(exc))
        return
    describe_dataset.clear()
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
            done[upload.file_id] = ingest_upload(upload.getvalue(), upload.name)
        except registry.DatasetError as exc:
            done[upload.file_id] = str(exc)
    report = done[upload.file_id]
    if isinstance(report, str):
        st.error(report)
        return
    st.success(report.summary())
    if state.data_dir != str(report.data_dir):
        state.data_dir = str(report.data_dir)
        st.rerun()


def subset_and_size_controls(info: registry.DatasetInfo) -> None:
    state = st.session_state
    total = info.total("train")
    caps = limits()
    if caps is not None:
        total = min(total, caps.max_train_images)
    minimum = min(total, 2 * info.num_classes)
    cols = st.columns(2)
    with cols[0]:
        if state.train_images > total or state.train_images < 0:
            state.train_images = 0
        value = state.train_images or total
        chosen = st.slider(
            "Training images",
            min_value=minimum,
            max_value=total,
            value=value,
            step=max(1, total // 100),
            help="A class-balanced subset of the training split: less data overfits sooner.",
        )
        state.train_images = 0 if chosen >= total else chosen
    with cols[1]:
        st.select_slider("Image size (pixels)", image_sizes(), key="image_size", help="The course uses 150.")


def augmentation_section(info: registry.DatasetInfo | None) -> None:
    st.header("2. Augmentations")
    st.caption("Applied on the fly to training images only, as they stream to the model. The files are never changed.")
    if shown("augmentations"):
        knob_controls()
    preview_section(info, config_from_widgets().augmentation)


def knob_controls() -> None:
    state = st.session_state
    cols = st.columns(3)
    for index, (key, label, unit, low, high, step, _, tip) in enumerate(KNOBS):
        with cols[index % 3]:
            on = st.toggle(label, key=f"on_{key}", help=tip)
            st.slider(f"{label} ({unit})", low, high, step=step, key=f"value_{key}", disabled=not on)
    with cols[len(KNOBS) % 3]:
        for key, label in FLIPS:
            st.toggle(label, key=f"on_{key}", help="mirror half of the images")
    with cols[(len(KNOBS) + 1) % 3]:
        st.selectbox("Fill mode", FILL_MODES, key="fill_mode", help="What fills the pixels a transform uncovers.")
        if state.fill_mode == "constant":
            st.slider("Fill value (cval)", 0.0, 255.0, step=1.0, key="cval")


def preview_section(info: registry.DatasetInfo | None, aug: Augmentation) -> None:
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
            for key, label in single_knobs(aug):
                alone = single_knob(aug, key)
                st.image(
                    list(preview(first[0], alone, count=6, seed=state.preview_seed)), width=96, caption=[label] * 6
                )


def single_knobs(aug: Augmentation) -> list[tuple[str, str]]:
    knobs = [(key, label) for key, label, *_ in KNOBS if getattr(aug, key)]
    return knobs + [(key, label) for key, label in FLIPS if getattr(aug, key)]


def single_knob(aug: Augmentation, key: str) -> Augmentation:
    return replace(aug.switched_off(), **{key: getattr(aug, key)})


def train_section(info: registry.DatasetInfo | None) -> None:
    st.header("3. Train")
    if shown("settings"):
        with st.expander("Training settings", expanded=False):
            training_settings()
    if info is None:
        st.warning("Pick a dataset that loads before training.")
        return
    try:
        config, notes = apply_limits(config_from_widgets(), limits(), info.total("train"))
        configs = hist.comparison_configs(config, st.session_state.seeds_per_side)
    except ConfigError as exc:  # a seed too large for seed + 1, ... among them
        st.error(str(exc))
        return
    if notes:
        st.info("Hosted mode keeps runs small for everyone: " + "; ".join(notes) + ".")
    worker = get_worker()
    train_count = config.train_images or info.total("train")
    seconds = sum(
        0.0 if worker.status(c.key()).state == "done" else estimate_seconds(c, train_count, info.total("validation"))
        for c in configs
    )
    running = comparison_running()
    cols = st.columns([2, 1, 3])
    if not config.augmentation.enabled:
        cols[2].info("Switch on at least one augmentation to compare.")
    else:
        # Callbacks run before the script: the run that follows the click already shows the
        # comparison (a stored one at once), with no second script run.
        cols[0].button(
            "▶ Train both runs", type="primary", disabled=running, on_click=start_comparison, args=(configs,)
        )
    if running:
        cols[1].button("■ Cancel", on_click=cancel_comparison)
    if warning := st.session_state.pop("start_warning", None):
        st.warning(warning)
    if not running:
        cols[2].caption(estimate_text(config, len(configs), seconds, train_count))


def start_comparison(configs: list[RunConfig]) -> None:
    """Hand the runs to the worker; those its queue cannot take yet follow as it drains (`top_up`)."""
    left = submit_in_order(get_worker(), configs, session_id())
    if len(left) == len(configs):
        st.session_state.start_warning = (
            f"{MAX_WAITING_PER_OWNER} of your runs are already waiting: let them finish or cancel them first"
        )
        return
    st.session_state.active = tuple(c.key() for c in configs)
    st.session_state.pending = left


def cancel_comparison() -> None:
    st.session_state.pending = []  # first, so that no poll hands over a run being cancelled
    worker = get_worker()
    # Waiting runs first: cancelling the running one first would let the worker start the next.
    keys = sorted(st.session_state.active or (), key=lambda k: worker.status(k).state == "running")
    for key in keys:
        worker.cancel(key, owner=session_id())


def comparison_running() -> bool:
    """A run watched is queued or training, or still waits to be handed to the worker."""
    active = st.session_state.active
    if active is None:
        return False
    return bool(st.session_state.pending) or any(get_worker().status(k).active for k in active)


def top_up() -> None:
    """Hand the worker the runs of a many-seed comparison that its queue could not take before."""
    if st.session_state.pending:
        st.session_state.pending = submit_in_order(get_worker(), st.session_state.pending, session_id())


def estimate_text(config: RunConfig, runs: int, seconds: float, train_count: int) -> str:
    if not seconds:
        return f"{'Both' if runs == 2 else f'All {runs}'} runs are already in the run store: they show at once."
    per_side = f", {runs // 2} seeds per side" if runs > 2 else ""
    return (
        f"Estimated time on a 2-core CPU: {format_duration(seconds)} "
        f"({config.epochs} epoch{'s' if config.epochs != 1 else ''} × {runs} runs{per_side}, "
        f"{train_count} training images at {config.image_size} px)."
    )


def training_settings() -> None:
    cols = st.columns(6)
    cols[0].slider("Epochs", 1, max_epochs(), key="epochs")
    cols[1].selectbox("Batch size", BATCH_SIZES, key="batch_size")
    cols[2].selectbox("Learning rate (RMSprop)", LEARNING_RATES, key="learning_rate", format_func=lambda v: f"{v:g}")
    cols[3].slider("Dropout", 0.0, 0.9, step=0.1, key="dropout")
    cols[4].number_input("Seed", 0, 2**31 - 1, key="seed")
    cols[5].number_input(
        "Seeds per side",
        1,
        max_seeds(),
        key="seeds_per_side",
        help="Train each side with seeds seed, seed+1, …: the chart shows their mean with a band from the lowest "
        "to the highest seed, so the luck of one seed is not read as a result.",
    )


def compare_section() -> None:
    st.header("4. Compare")
    active = st.session_state.active
    if not active:
        st.caption("Train both runs (section 3) and their curves appear here, live, epoch by epoch.")
        recorded_section()
        return
    top_up()
    polling = comparison_running()
    st.fragment(run_every=POLL_SECONDS if polling else None)(show_comparison)(active, polling)
    recorded_section()


def recorded_section() -> None:
    """Full-length results trained earlier by the command line, shown at once beside a live run."""
    names = list_recordings()
    if not names:
        return
    # The lesson's own recording first: a teacher who picks a preset finds its full-length result.
    lesson = [n for n in names if recorded_figure(n, recording_version(n))[0].preset == st.session_state.preset]
    if st.session_state.get("recording_for") != st.session_state.preset:
        st.session_state.recording_for = st.session_state.preset
        if lesson:
            st.session_state.recording = lesson[0]
    with st.expander("Recorded runs: full-length results without waiting", expanded=False):
        name = st.selectbox("Recording", names, key="recording")
        recording, figure = recorded_figure(name, recording_version(name))
        st.caption(recording.title())
        st.plotly_chart(figure, width="stretch", key=f"recording-{name}")
        for side, frame in recording.runs.items():
            st.markdown(f"**{side.capitalize()}:** {hist.reading(hist.summarize(frame))}")


def recording_version(name: str) -> int:
    path = RECORDINGS_DIR / f"{name}.json"
    return path.stat().st_mtime_ns if path.exists() else 0


@st.cache_resource(show_spinner=False, max_entries=16)
def recorded_figure(name: str, version: int):
    """One figure per recording for the whole server: building it costs more than the rest of a rerun.

    Shared, never mutated: `st.plotly_chart` copies a figure (`to_dict`) before sending it.
    """
    recording = load_recording(name)
    runs = recording.runs
    figure = figures.compare_figure(runs.get("baseline"), runs.get("augmented"), epochs=recording.config.epochs)
    return recording, figure


def show_comparison(keys: tuple[str, ...], was_polling: bool) -> None:
    top_up()
    worker = get_worker()
    statuses = [worker.status(k) for k in keys]
    sides = hist.split_sides(statuses)
    for side, runs in zip(SIDES, sides, strict=True):
        if len(runs) == 1:
            show_progress(side, runs[0])
        else:
            show_seeds_progress(side, runs)
    st.plotly_chart(comparison_figure(statuses), width="stretch", key=f"chart-{keys[0]}-{keys[1]}")
    if len(keys) == 2:
        show_summary([s.history for s in statuses])
    else:
        show_seeds_summary([[s.history for s in runs] for runs in sides])
    if was_polling and not comparison_running():
        st.rerun()  # the whole page: stop polling, enable the buttons again


def show_summary(histories: list[pd.DataFrame]) -> None:
    summaries = {name: hist.summarize(h) for name, h in zip(("without", "with"), histories, strict=True)}
    if all(s.get("epochs") for s in summaries.values()):
        table = pd.DataFrame(summaries).T[["accuracy", "val_accuracy", "gap", "best_val_accuracy", "best_epoch"]]
        table = table.astype({"best_epoch": "int64"})
        st.dataframe(table.style.format("{:.1%}", subset=["accuracy", "val_accuracy", "gap", "best_val_accuracy"]))
    for name, summary in summaries.items():
        st.markdown(f"**{name.capitalize()} augmentation:** {hist.reading(summary)}")


def show_seeds_summary(sides: list[list[pd.DataFrame]]) -> None:
    """Means ± standard deviations across seeds; the reading is the mean's."""
    summaries = {name: hist.summarize_seeds(runs) for name, runs in zip(("without", "with"), sides, strict=True)}
    if all(s["seeds"] for s in summaries.values()):
        rows = {name: hist.summary_row(s, len(runs)) for (name, s), runs in zip(summaries.items(), sides, strict=True)}
        st.dataframe(pd.DataFrame(rows).T)
        st.caption("Mean ± standard deviation across the seeds that have finished an epoch, each at its last epoch.")
    for (name, summary), runs in zip(summaries.items(), sides, strict=True):
        st.markdown(f"**{name.capitalize()} augmentation, mean of {len(runs)} seeds:** {hist.reading(summary)}")
    verdict = hist.verdict(*sides)
    if verdict:
        st.markdown(f"**Across seeds:** {verdict}")


def show_seeds_progress(side: str, statuses) -> None:
    """How many of a side's seeds are done, the one training, and any that failed or stopped."""
    done = sum(s.done for s in statuses)
    text = f"{side}: {done} of {len(statuses)} seeds done"
    training = next((s for s in statuses if s.state == "running"), None)
    if comparison_running() and any(not s.done for s in statuses):
        epochs = max(s.epochs_total for s in statuses) or 1
        share = sum(min(s.epochs_done, epochs) for s in statuses) / (epochs * len(statuses))
        if training is not None:
            text += f", one at epoch {training.epochs_done} of {training.epochs_total}"
        st.progress(min(share, 1.0), text=text)
    else:
        st.caption(text + ".")
    for number, status in enumerate(statuses, start=1):
        if status.state == "failed":
            st.error(f"{side}, seed {number} of {len(statuses)}: the run failed. {status.error}")
        elif status.state in ("cancelled", "interrupted"):
            st.warning(f"{side}, seed {number} of {len(statuses)}: {status.state} after {status.epochs_done} epochs.")


def comparison_figure(statuses):
    """The figure, rebuilt only when an epoch has finished: polling stays cheap while a run trains."""
    version = tuple((s.key, s.state, s.epochs_done) for s in statuses)
    if not any(s.active for s in statuses):
        return finished_figure(version, statuses)
    cached = st.session_state.get("figure_cache")
    if cached is None or cached[0] != version:
        st.session_state.figure_cache = cached = (version, build_comparison_figure(statuses))
    return cached[1]


@st.cache_resource(show_spinner=False, max_entries=32)
def finished_figure(version: tuple, _statuses):
    """A comparison that no longer changes: one figure for every visitor who opens it (a class, a shared link).

    Keyed by `version` alone (runs, states, epochs done); never mutated once built.
    """
    return build_comparison_figure(_statuses)


def build_comparison_figure(statuses):
    epochs = max((s.epochs_total for s in statuses), default=0) or None
    baseline, augmented = hist.split_sides([s.history for s in statuses])
    return figures.compare_figure(baseline, augmented, epochs=epochs)


def show_progress(side: str, status) -> None:
    if status.state == "queued":
        st.info(f"{side}: waiting in the queue, position {status.position}.")
    elif status.state == "running":
        if status.epochs_done == 0:
            st.info(f"{side}: warming up (loading TensorFlow, decoding images, building the model)…")
        else:
            st.progress(
                status.epochs_done / max(status.epochs_total, 1),
                text=f"{side}: epoch {status.epochs_done} of {status.epochs_total}",
            )
    elif status.state == "failed":
        st.error(f"{side}: the run failed. {status.error}")
    elif status.state in ("cancelled", "interrupted"):
        st.warning(f"{side}: {status.state} after {status.epochs_done} epochs.")


def history_section() -> None:
    if not shown("history"):
        return
    st.header("5. History")
    runs = get_worker().store.list_runs(limit=200)
    if not runs:
        st.caption("Runs you train are kept in the run store and listed here.")
        return
    rows = [describe_run(run) for run in runs]
    table = pd.DataFrame(rows).set_index("key")
    st.dataframe(table, width="stretch")
    labels = {row["key"]: f"{row['when']} · {row['dataset']} · {row['augmentation']} · {row['state']}" for row in rows}
    keys = list(labels)
    cols = st.columns(2)
    left = cols[0].selectbox("Left run", keys, format_func=labels.get, key="history_left")
    right = cols[1].selectbox(
        "Right run", keys, index=min(1, len(keys) - 1), format_func=labels.get, key="history_right"
    )
    if st.button("Open these two in the compare view"):
        st.session_state.active = (left, right)
        st.session_state.pending = []
        st.query_params["runs"] = f"{left},{right}"
        st.rerun()
    for column, key in zip(cols, (left, right), strict=True):
        run = next(r for r in runs if r.key == key)
        column.download_button(
            "History (CSV)", run.history.to_csv(index=False), file_name=f"{key}-history.csv", key=f"csv-{column}-{key}"
        )
        column.download_button(
            "Configuration (JSON)", run.config.to_json(), file_name=f"{key}-config.json", key=f"json-{column}-{key}"
        )


def describe_run(run) -> dict:
    aug = run.config.augmentation
    knobs = [label for key, label in single_knobs(aug)] if aug.enabled else []
    summary = hist.summarize(run.history)
    return {
        "key": run.key,
        "when": (run.status.created or "")[:16].replace("T", " "),
        "dataset": run.config.dataset,
        "size": run.config.image_size,
        "epochs": f"{run.status.epochs_done}/{run.config.epochs}",
        "augmentation": ", ".join(knobs) if knobs else "none",
        "state": run.status.state,
        "val_accuracy": summary.get("val_accuracy"),
        "gap": summary.get("gap"),
    }


def main() -> None:
    init_state()
    header()
    info = data_section()
    augmentation_section(info)
    train_section(info)
    compare_section()
    history_section()
    try:
        config = config_from_widgets()
    except ConfigError as exc:
        st.error(str(exc))
        config = None
    if config is not None and shown("code"):
        with st.expander("This configuration as JSON"):
            st.code(json.dumps(config.to_dict(), indent=2), language="json")
            st.caption(
                "The address bar holds this whole setup: copy it to share it. Add `&hide=preset,data,augmentations,"
                "settings,code,history` (any of them) to hide controls a lesson does not need."
            )
    sync_link(config)


main()
