"""Recorded runs in the page: a full-length result shows at once, and a re-recorded file shows its new run."""

from __future__ import annotations

import json

import pytest
import streamlit as st
from page_helpers import HOSTED_MODE_VARIABLES, Page, curve_traces, trace_x

import lab.recordings
from lab.history import from_rows
from lab.presets import load_preset
from lab.recordings import save_recording

PRESET_LABEL = "Start from a preset"


@pytest.fixture
def recordings(tmp_path, monkeypatch):
    folder = tmp_path / "recorded"
    monkeypatch.setattr(lab.recordings, "RECORDINGS_DIR", folder)
    monkeypatch.setenv("LAB_RUN_STORE", str(tmp_path / "runs"))
    monkeypatch.setenv("LAB_DATA_DIR", str(tmp_path / "datasets"))
    for name in HOSTED_MODE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    st.cache_resource.clear()
    st.cache_data.clear()
    yield folder
    st.cache_resource.clear()


def record(folder, epochs: int, val_accuracy: float, name: str = "demo", preset: str = "quick") -> None:
    rows = [
        {
            "epoch": e,
            "loss": 1 / e,
            "accuracy": min(1.0, 0.5 + e / 10),
            "val_loss": 0.7,
            "val_accuracy": val_accuracy,
            "seconds": 1.0,
        }
        for e in range(1, epochs + 1)
    ]
    config = load_preset(preset).config.replace(epochs=epochs)
    runs = {"baseline": from_rows(rows), "augmented": from_rows(rows)}
    save_recording(name, preset, config, runs, seconds=90, folder=folder)


def recorded_chart(page: Page) -> list[dict]:
    charts = [c for c in page.elements("plotly_chart") if c not in page.elements("plotly_chart", in_expanders=False)]
    assert len(charts) == 1, f"expected one recorded chart, found {len(charts)}"
    return curve_traces(json.loads(charts[0].proto.spec)["data"])


def test_a_recording_shows_its_curves_and_a_new_recording_replaces_them(recordings):
    record(recordings, epochs=3, val_accuracy=0.6)
    page = Page().run()
    traces = recorded_chart(page)
    assert len(traces) == 8 and all(trace_x(t) == [1, 2, 3] for t in traces)
    captions = " ".join(c.value for c in page.at.caption)
    assert "demo: quick" in captions and "cores" in captions
    assert any("60.0%" in m.value or "60%" in m.value for m in page.at.markdown)
    # The sides are named as the live comparison names them, each with its reading, then what augmentation did.
    said = [m.value for m in page.at.markdown]
    for side in ("Without augmentation", "With augmentation"):
        assert any(m.startswith(f"**{side} (3 epochs):** Training accuracy") for m in said), said
    assert not any("Baseline" in m or "Augmented" in m or "baseline" in m for m in said), said
    assert any(m.startswith("**What augmentation did:** Augmentation made no clear difference") for m in said), said

    # Another visitor gets the same chart (built once per server)...
    assert recorded_chart(Page().run()) == traces
    # ...and once the file is recorded again, everyone sees the new run, not a stale figure.
    record(recordings, epochs=5, val_accuracy=0.7)
    assert all(trace_x(t) == [1, 2, 3, 4, 5] for t in recorded_chart(Page().run()))


def test_picking_a_preset_opens_its_own_recording(recordings):
    record(recordings, epochs=2, val_accuracy=0.6, name="a_course", preset="cats_vs_dogs_course")
    record(recordings, epochs=3, val_accuracy=0.6, name="b_quick", preset="quick")
    page = Page().run()
    assert page.selectbox("Recording").value == "b_quick"  # the default lesson is the quick one
    page.selectbox(PRESET_LABEL).select("cats_vs_dogs_course")
    page.run()
    assert page.selectbox("Recording").value == "a_course"
    assert all(trace_x(t) == [1, 2] for t in recorded_chart(page))
    page.selectbox("Recording").select("b_quick")  # a choice of the visitor's own stays
    page.run()
    assert page.selectbox("Recording").value == "b_quick"
