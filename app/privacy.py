"""Hosted mode's privacy: a visitor sees their own runs and uploads, never another's, and never a server path.

On a laptop the page shows everything (it is the user's own machine); in hosted mode
(`lab.runs.hosting.hosted_mode`) every text the page shows from the lab goes through
`public_text`, downloads through `shareable_json`, and History lists `visible_runs` only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import streamlit as st

from app.state import limits
from lab.config import RunConfig
from lab.data.ingest import upload_token, uploads_root
from lab.data.registry import default_data_root
from lab.history import comparison_configs
from lab.presets import list_presets, load_preset
from lab.runs.store import default_store_root

REPO = Path(__file__).resolve().parents[1]
# An absolute path that starts a word (not the path part of a URL such as https://host/a/b).
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~-])/[^\s'\"()]*[^\s'\"().,;:]")


def hosted() -> bool:
    return limits() is not None


def public_text(text: str) -> str:
    """`text` with this server's paths taken out, in hosted mode: where things live is the server's business."""
    if not hosted():
        return text
    for root, name in (
        (uploads_root(), "your upload"),
        (default_data_root(), "the lab's data folder"),
        (default_store_root(), "the run store"),
        (REPO, "the lab"),
        (Path.home(), "the server"),
    ):
        for spelling in {str(root.resolve()), str(root)}:
            text = text.replace(spelling, name)
    return _ABSOLUTE_PATH.sub("a folder on the server", text)


def shareable_json(config: RunConfig, sort_keys: bool = False) -> str:
    """The configuration as JSON to show or download; hosted, an upload is named by its link token, not its path."""
    data = config.to_dict()
    if hosted() and config.data_dir:
        token = upload_token(config.data_dir)
        data["data_dir"] = None
        if token is not None:
            data["upload"] = token
    return json.dumps(data, indent=2, sort_keys=sort_keys)


def remember_runs(keys) -> None:
    """Runs this visitor started or opened: theirs to see in History."""
    st.session_state.setdefault("my_runs", set()).update(keys or ())


@st.cache_resource(show_spinner=False)
def lesson_runs() -> frozenset[str]:
    """The runs of every preset's own comparison: shared by the whole class."""
    keys = set()
    for name in list_presets():
        config = load_preset(name).config
        if config.augmentation.enabled:
            keys.update(c.key() for c in comparison_configs(config, 1))
    return frozenset(keys)


def visible_runs(runs: list) -> list:
    """Hosted: this visitor's own runs and the lessons' shared ones; a laptop: every run."""
    if not hosted():
        return runs
    mine = st.session_state.get("my_runs", set()) | lesson_runs()
    return [run for run in runs if run.key in mine]
