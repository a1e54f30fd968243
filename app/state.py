"""The page's state: widgets <-> `RunConfig` <-> the address bar, and hosted mode's caps.

Every control keeps its value in `st.session_state` under a fixed key; this module sets those
keys from a configuration (a preset, a link, a reopened run), reads them back into one, and
keeps the whole setup in the URL so that copying the link shares it.
"""

from __future__ import annotations

import uuid

import streamlit as st

from lab.config import MAX_SEEDS, Augmentation, ConfigError, RunConfig
from lab.data.ingest import upload_folder, upload_token
from lab.knobs import KNOBS
from lab.presets import list_presets, load_preset
from lab.runs.hosting import host_limits

# The page's own choices: the lab accepts any value in `lab.config.RANGES`, the page offers these.
IMAGE_SIZES = [48, 64, 96, 128, 150, 224, 300]
BATCH_SIZES = [8, 16, 20, 32, 64, 128]
LEARNING_RATES = [1e-4, 3e-4, 1e-3, 3e-3]
L2_CHOICES = [0.0, 1e-4, 1e-3, 1e-2]
MAX_EPOCHS = 300

# Sections a teacher can hide with ?hide=...: the lesson then shows only what it needs.
HIDEABLE = ("preset", "data", "augmentations", "settings", "code", "history")
# Query parameters that are not settings of the configuration.
LINK_ONLY = ("preset", "runs", "hide", "seeds", "upload")


# -- hosted mode ------------------------------------------------------------------------------
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


# -- widgets <-> configuration ------------------------------------------------------------------
def apply_config_to_widgets(config: RunConfig) -> None:
    """Set every widget from a configuration (a preset, a link), and say in `state.lowered` what the page changed."""
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
    state.l2 = min(L2_CHOICES, key=lambda v: abs(v - config.l2))
    state.early_stopping = config.early_stopping
    state.architecture = config.architecture
    state.seed = config.seed
    aug = config.augmentation
    for knob in KNOBS:
        value = getattr(aug, knob.name)
        state[f"on_{knob.name}"] = bool(value)
        if not knob.is_flip:
            # A knob switched off keeps a value worth seeing for when it is switched on.
            state[f"value_{knob.name}"] = float(value) if value else knob.on
    state.fill_mode = aug.fill_mode
    state.cval = float(aug.cval)
    state.rescale = aug.rescale
    state.lowered = changes_made(config)


def changes_made(asked: RunConfig) -> list[str]:
    """Each setting the widgets could not take as asked (a cap, or the nearest choice), in words."""
    state = st.session_state
    changes = []
    for name, label, unit in (("epochs", "epochs", ""), ("image_size", "image size", " px")):
        if getattr(asked, name) != state[name]:
            changes.append(f"{label} {getattr(asked, name)}{unit} → {state[name]}{unit}")
    caps = limits()
    if caps is not None and asked.train_images > caps.max_train_images:
        state.train_images = caps.max_train_images
        changes.append(f"training images {asked.train_images} → {caps.max_train_images}")
    if asked.batch_size != state.batch_size:
        changes.append(f"batch size {asked.batch_size} → {state.batch_size} (the nearest the page offers)")
    if asked.learning_rate != state.learning_rate:
        changes.append(f"learning rate {asked.learning_rate:g} → {state.learning_rate:g} (the nearest the page offers)")
    return changes


def config_from_widgets() -> RunConfig:
    """The configuration the widgets describe; raises ConfigError when they describe none."""
    state = st.session_state
    knobs = {knob.name: knob_value(knob) for knob in KNOBS}
    augmentation = Augmentation(rescale=state.rescale, fill_mode=state.fill_mode, cval=state.cval, **knobs)
    return RunConfig(
        dataset=state.dataset,
        data_dir=(state.data_dir or None) if state.dataset != "builtin" else None,
        image_size=state.image_size,
        train_images=state.train_images,
        epochs=state.epochs,
        batch_size=state.batch_size,
        learning_rate=state.learning_rate,
        dropout=state.dropout,
        l2=state.l2,
        early_stopping=state.early_stopping,
        architecture=state.architecture,
        seed=state.seed,
        augmentation=augmentation,
    )


def knob_value(knob) -> float | bool:
    state = st.session_state
    if knob.is_flip:
        return bool(state[f"on_{knob.name}"])
    return state[f"value_{knob.name}"] if state[f"on_{knob.name}"] else 0.0


def read_config() -> RunConfig | ConfigError:
    """`config_from_widgets`, or the ConfigError that says why the widgets describe no configuration.

    Built once per script run, after the data section (its slider sets `train_images`).
    """
    try:
        return config_from_widgets()
    except ConfigError as exc:
        return exc


def on_preset_change() -> None:
    apply_config_to_widgets(load_preset(st.session_state.preset).config)


def widget_keys() -> list[str]:
    keys = ["dataset", "data_dir", "image_size", "epochs", "batch_size", "learning_rate", "dropout", "seed"]
    keys += ["l2", "early_stopping", "architecture"]
    keys += ["fill_mode", "cval", "preset", "seeds_per_side"]
    keys += [f"on_{knob.name}" for knob in KNOBS]
    return keys + [f"value_{knob.name}" for knob in KNOBS if not knob.is_flip]


def init_state() -> None:
    state = st.session_state
    if "dataset" not in state:
        state.preset = "quick"
        state.preview_seed = 0
        state.hidden = {name for name in st.query_params.get("hide", "").split(",") if name in HIDEABLE}
        apply_config_to_widgets(config_from_link())
        state.seeds_per_side = seeds_from_link()
        asked = seeds_asked()
        if asked > state.seeds_per_side:
            state.lowered.append(f"seeds per side {asked} → {state.seeds_per_side}")
    else:
        # Streamlit forgets the value of a widget that was not drawn in a run; hidden
        # controls must keep theirs.
        for key in widget_keys():
            if key in state:
                state[key] = state[key]


def shown(section: str) -> bool:
    return section not in st.session_state.hidden


# -- the address bar ----------------------------------------------------------------------------
def runs_from_link() -> tuple[str, ...] | None:
    """`?runs=`: without and with augmentation, pair by pair for several seeds (`a,b` alone: one seed)."""
    keys = tuple(key for key in st.query_params.get("runs", "").split(",") if key)
    return keys if len(keys) % 2 == 0 and 2 <= len(keys) <= 2 * max_seeds() else None


def seeds_asked() -> int:
    """`?seeds=N` as the link asks; 1 when absent or unreadable."""
    try:
        return max(1, int(st.query_params.get("seeds", "1")))
    except ValueError:
        return 1


def seeds_from_link() -> int:
    """`?seeds=N`, kept within the seeds this server allows."""
    return min(seeds_asked(), max_seeds())


def config_from_link() -> RunConfig:
    """The setup a shared link describes, or the quick preset when it describes none."""
    query = {key: st.query_params[key] for key in st.query_params}
    if "preset" in query and query["preset"] in list_presets():
        st.session_state.preset = query["preset"]
        base = load_preset(query["preset"]).config
    else:
        base = load_preset("quick").config
    settings = {k: v for k, v in query.items() if k not in LINK_ONLY}
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
