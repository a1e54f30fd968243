"""Helpers for driving the Streamlit page in tests: AppTest lookups by visible label, a fake trainer,
finished runs written straight into a run store, and a `streamlit run` server for the browser test.

Controls are found by their visible labels, as a user finds them; nothing here needs the page to carry
test ids.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from streamlit.testing.v1 import AppTest

from lab.config import RunConfig
from lab.errors import RunCancelled
from lab.history import from_rows
from lab.runs.store import RunStore
from tools.streamlit_server import StreamlitServer, free_port  # noqa: F401 (used by the browser tests)

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "streamlit_app.py"
# One script run of the page takes about a second; a shared 2-core machine can be much slower.
RUN_TIMEOUT = 60.0

TRAIN = "▶ Train both runs"
CANCEL = "■ Cancel"
NEW_VARIANTS = "New variants"
# Hosted mode (lab/hosting.py) caps runs and hides server folders; the tests run the page as on a laptop.
HOSTED_MODE_VARIABLES = (
    "LAB_HOSTED",
    "LAB_ALLOW_SERVER_FOLDERS",
    "LAB_MAX_EPOCHS",
    "LAB_MAX_IMAGE_SIZE",
    "LAB_MAX_TRAIN_IMAGES",
    "LAB_MAX_SEEDS",
)
OPEN_IN_COMPARE = "Open these two in the compare view"
# (toggle label, configuration field, value the field takes when the toggle is on by default)
TOGGLES = [
    ("Rotation", "rotation_range", 40.0),
    ("Width shift", "width_shift_range", 0.2),
    ("Height shift", "height_shift_range", 0.2),
    ("Shear", "shear_range", 10.0),
    ("Zoom", "zoom_range", 0.2),
    ("Brightness", "brightness_range", 0.2),
    ("Contrast", "contrast_range", 0.3),
    ("Horizontal flip", "horizontal_flip", True),
    ("Vertical flip", "vertical_flip", True),
]


# -- AppTest ----------------------------------------------------------------------------------
class Page:
    """An `AppTest` of streamlit_app.py with lookups by visible label.

    `run()` fails the test on any exception the script raised, so every step of every test also
    checks "no exception".
    """

    def __init__(self, timeout: float = RUN_TIMEOUT) -> None:
        self.at = AppTest.from_file(str(APP), default_timeout=timeout)

    def run(self) -> Page:
        self.at.run()
        assert not self.at.exception, [e.message for e in self.at.exception]
        return self

    # -- widgets by label ----------------------------------------------------------------------
    def _by_label(self, kind: str, label: str):
        elements = [e for e in getattr(self.at, kind) if e.label == label]
        assert elements, f"no {kind} labelled {label!r}; the page has {[e.label for e in getattr(self.at, kind)]}"
        assert len(elements) == 1, f"{len(elements)} {kind} widgets labelled {label!r}"
        return elements[0]

    def toggle(self, label: str):
        return self._by_label("toggle", label)

    def slider(self, label: str):
        return self._by_label("slider", label)

    def select_slider(self, label: str):
        return self._by_label("select_slider", label)

    def selectbox(self, label: str):
        return self._by_label("selectbox", label)

    def text_input(self, label: str):
        return self._by_label("text_input", label)

    def number_input(self, label: str):
        return self._by_label("number_input", label)

    def button(self, label: str):
        return self._by_label("button", label)

    def has_button(self, label: str) -> bool:
        return any(b.label == label for b in self.at.button)

    def click(self, label: str) -> Page:
        self.button(label).click()
        return self.run()

    # -- what the page shows -------------------------------------------------------------------
    def elements(self, kind: str, in_expanders: bool = True) -> list:
        """Every element of `kind` ("image", "plotly_chart", "download_button", ...) in page order."""
        roots = (self.at.main, self.at.sidebar)
        return [n for root in roots for n in _walk(root, in_expanders) if getattr(n, "type", None) == kind]

    def image_strips(self) -> list:
        return self.elements("image")

    def split_strips(self) -> dict[str, list[str]]:
        """The main area's sample strips: "Training images"/"Validation images" -> the class under each image."""
        strips = {}
        for block in _walk(self.at.main):
            children = getattr(block, "children", None)
            if not isinstance(children, dict):
                continue
            children = list(children.values())
            kinds = [getattr(child, "type", None) for child in children]
            if kinds[:2] == ["caption", "image"]:
                title = children[0].value.strip("*")
                strips[title] = list(children[1].captions)
        return strips

    def preview_urls(self) -> list[str]:
        """The media URLs of the eight preview variants (they name the image bytes by hash)."""
        strips = [s for s in self.image_strips() if s.captions and s.captions[0] == "variant 1"]
        assert len(strips) == 1, f"expected one strip of preview variants, found {len(strips)}"
        return list(strips[0].value)

    def single_knob_strips(self) -> dict[str, list[str]]:
        """ "Each augmentation on its own": knob label -> media URLs of its strip."""
        labels = {label for label, _, _ in TOGGLES}
        return {s.captions[0]: list(s.value) for s in self.image_strips() if s.captions and s.captions[0] in labels}

    def code(self, language: str) -> list[str]:
        return [c.value for c in self.at.code if c.language == language]

    def generator_code(self) -> str:
        return next(c for c in self.code("python") if "ImageDataGenerator(" in c)

    def keras_code(self) -> str:
        return next(c for c in self.code("python") if "keras.Sequential" in c)

    def config(self) -> dict[str, Any]:
        """The "This configuration as JSON" code block, parsed."""
        blocks = self.code("json")
        assert len(blocks) == 1, f"expected one JSON configuration block, found {len(blocks)}"
        return json.loads(blocks[0])

    def texts(self, kind: str) -> list[str]:
        return [e.value for e in getattr(self.at, kind)]

    def captions(self) -> list[str]:
        return self.texts("caption")

    def query(self) -> dict[str, str]:
        return {k: v if isinstance(v, str) else ",".join(v) for k, v in self.at.query_params.items()}

    def watched_runs(self) -> list[str]:
        """Every run key the URL names: without and with augmentation, pair by pair for several seeds."""
        return [key for key in self.query().get("runs", "").split(",") if key]

    def active_runs(self) -> tuple[str, str]:
        keys = self.query().get("runs", "").split(",")
        assert len(keys) == 2, f"the URL names no two runs: {self.query()}"
        return keys[0], keys[1]

    def chart_traces(self) -> list[dict[str, Any]]:
        # The comparison is the chart in the open page; recorded runs have theirs in an expander.
        charts = self.elements("plotly_chart", in_expanders=False)
        assert len(charts) == 1, f"expected one comparison chart, found {len(charts)}"
        return json.loads(charts[0].proto.spec)["data"]


def _walk(node, in_expanders: bool = True) -> Iterator:
    yield node
    children = getattr(node, "children", None)
    if isinstance(children, dict) and (in_expanders or getattr(node, "type", None) != "expander"):
        for child in children.values():
            yield from _walk(child, in_expanders)


def curve_traces(traces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The training and validation curves of a comparison figure (not the best-epoch markers)."""
    return [t for t in traces if t.get("name") in ("training", "validation")]


def band_traces(traces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The shaded bands (lowest to highest seed) of a comparison figure with several seeds per side."""
    return [t for t in traces if t.get("fill") == "toself"]


def trace_x(trace: dict[str, Any]) -> list:
    """A trace's x values, whether plotly wrote them as a list or as typed base64 data."""
    x = trace["x"]
    if isinstance(x, dict):
        return np.frombuffer(base64.b64decode(x["bdata"]), dtype=np.dtype(x["dtype"])).tolist()
    return list(x)


def wait_for(condition: Callable[[], Any], timeout: float, step: float = 0.5, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


# -- a trainer without TensorFlow ----------------------------------------------------------------
def fake_row(epoch: int, config: RunConfig) -> dict[str, float]:
    """A plausible epoch: the run without augmentation overfits, the one with it does not.

    Seeds 43 and 44 score 2 and 4 points lower than the default 42, so several seeds draw a band.
    """
    augmented = config.augmentation.enabled
    luck = 0.02 * ((config.seed - 42) % 3)
    accuracy = min(0.99, 0.5 + 0.1 * epoch) - luck
    val_accuracy = accuracy - (0.02 if augmented else 0.3) if epoch > 1 else 0.5 - luck
    return {
        "epoch": epoch,
        "loss": 1.0 / (epoch + 1),
        "accuracy": accuracy,
        "val_loss": 0.7 + (0.0 if augmented else 0.05 * epoch),
        "val_accuracy": max(0.0, val_accuracy),
        "seconds": 0.01,
    }


def fake_trainer_class(epoch_seconds: float = 0.02, error: Exception | None = None) -> type:
    """A stand-in for `SubprocessTrainer` with its call signature, for page tests that need no model.

    Each epoch takes `epoch_seconds`, checking `should_stop` every 10 ms as the real trainer does
    between batches; with `error`, a run raises it after its first epoch.
    """

    class FakeTrainer:
        instances: list[FakeTrainer] = []

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.calls: list[RunConfig] = []
            self.closed = False
            self.lock = threading.Lock()
            FakeTrainer.instances.append(self)

        def __call__(self, config: RunConfig, on_epoch=None, should_stop=None):
            with self.lock:
                self.calls.append(config)
            rows = []
            for epoch in range(1, config.epochs + 1):
                end = time.monotonic() + epoch_seconds
                while time.monotonic() < end:
                    if should_stop is not None and should_stop():
                        raise RunCancelled(from_rows(rows))
                    time.sleep(0.01)
                rows.append(fake_row(epoch, config))
                if on_epoch is not None:
                    on_epoch(rows[-1])
                if error is not None:
                    raise error
            return from_rows(rows)

        def close(self) -> None:
            self.closed = True

    return FakeTrainer


def seed_run(store: RunStore, config: RunConfig, epochs: int | None = None, state: str = "done") -> str:
    """Write a run into `store` as the worker would have, without training; returns its key."""
    key = config.key()
    rows = [fake_row(e, config) for e in range(1, (epochs or config.epochs) + 1)]
    store.record_queued(config)
    store.record_start(key)
    for n in range(1, len(rows) + 1):
        store.record_epoch(key, from_rows(rows[:n]))
    if state == "done":
        store.record_finish(key, from_rows(rows))
    elif state == "cancelled":
        store.record_cancel(key, from_rows(rows))
    elif state == "failed":
        store.record_failure(key, "RuntimeError: seeded failure", from_rows(rows))
    else:
        raise ValueError(state)
    return key


# -- a real server: tools.streamlit_server.StreamlitServer (also the benchmark's and the load test's) ------------------


# -- the browser tests ----------------------------------------------------------------------------
def artifacts_folder(tmp_path_factory: Any) -> Path:
    """Where the browser tests leave screenshots and server logs: `$LAB_ARTIFACTS`, else a temporary folder."""
    configured = os.environ.get("LAB_ARTIFACTS")
    folder = Path(configured) if configured else tmp_path_factory.mktemp("artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def watched_tab(context: Any, closing: Any = None) -> Iterator[Any]:
    """A new tab in the Playwright `context`; afterwards `closing` (else the context) is closed, and any
    JavaScript error the page raised fails the test."""
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield tab
    finally:
        (closing or context).close()
    assert not errors, f"JavaScript errors in the page: {errors}"
