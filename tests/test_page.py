"""The page, driven with Streamlit's AppTest: every control a user touches, the worker behind it.

Each test gets an empty run store and an empty data folder under tmp_path and a fresh worker
(`get_worker` is `st.cache_resource`, so the cache is cleared before and after). Most tests train
nothing or use a fake trainer; two run the real child-process trainer on a tiny configuration
(48 px, 4 training images, 1-2 epochs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import streamlit as st
from page_helpers import (
    APP,
    CANCEL,
    HOSTED_MODE_VARIABLES,
    NEW_VARIANTS,
    OPEN_IN_COMPARE,
    REPO,
    TOGGLES,
    TRAIN,
    Page,
    band_traces,
    curve_traces,
    fake_row,
    fake_trainer_class,
    seed_run,
    trace_x,
    wait_for,
)

import app.runs
import lab.figures
import lab.recordings
import lab.runs.trainer
import lab.runs.worker
from app.runs import queue_text
from lab.config import MAX_SEEDS, RunConfig
from lab.history import comparison_configs, from_rows
from lab.presets import load_preset
from lab.runs.store import RunStore
from lab.runs.trainer import SubprocessTrainer, TrainingFailed
from lab.runs.worker import JobStatus, Worker

REAL_RUN_TIMEOUT = 150.0  # a cold child imports TensorFlow (~5-10 s) before the first epoch


class Lab:
    """What a test needs around the page: its folders, and the workers and trainers it created."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.store_root = tmp_path / "runs"
        self.data_root = tmp_path / "datasets"
        self.data_root.mkdir()
        self.workers: list[Worker] = []
        self.trainers: list = []

    @property
    def store(self) -> RunStore:
        return RunStore(self.store_root)

    @property
    def worker(self) -> Worker:
        assert len(self.workers) == 1, f"expected the page to create one worker, it created {len(self.workers)}"
        return self.workers[0]

    def page(self, query: dict[str, str] | None = None) -> Page:
        page = Page()
        for name, value in (query or {}).items():
            page.at.query_params[name] = value
        return page

    def use_fake_trainer(self, **kwargs) -> type:
        fake = fake_trainer_class(**kwargs)
        lab_ = self

        class RecordingFake(fake):
            def __init__(self, *args, **kw):
                super().__init__(*args, **kw)
                lab_.trainers.append(self)

        self.monkeypatch.setattr(lab.runs.trainer, "SubprocessTrainer", RecordingFake)
        return RecordingFake


@pytest.fixture
def lab_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An isolated page: run store and data folder in tmp_path, a fresh worker, shut down afterwards."""
    env = Lab(tmp_path, monkeypatch)
    # Set before the page runs: get_worker() reads LAB_RUN_STORE when it creates the worker.
    monkeypatch.setenv("LAB_RUN_STORE", str(env.store_root))
    monkeypatch.setenv("LAB_DATA_DIR", str(env.data_root))  # named datasets are "not downloaded"
    for name in HOSTED_MODE_VARIABLES:  # a laptop: no caps, folders allowed
        monkeypatch.delenv(name, raising=False)

    # The page looks both classes up in their modules on every script run, so these
    # subclasses are what it builds: the test can reach, and stop, what the page started.
    class RecordingWorker(Worker):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            env.workers.append(self)

    class RecordingTrainer(SubprocessTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            env.trainers.append(self)

    monkeypatch.setattr(lab.runs.worker, "Worker", RecordingWorker)
    monkeypatch.setattr(lab.runs.trainer, "SubprocessTrainer", RecordingTrainer)
    st.cache_resource.clear()
    st.cache_data.clear()
    yield env
    for worker in env.workers:
        assert worker.shutdown(timeout=15), "the worker thread did not stop"
    for trainer in env.trainers:
        trainer.close()
    st.cache_resource.clear()
    st.cache_data.clear()


def tiny(page: Page, epochs: int = 2) -> Page:
    """Set the widgets for the smallest run: 48 px, the fewest training images, `epochs` epochs."""
    page.select_slider("Image size (pixels)").set_value(48)
    page.run()
    training_images = page.slider("Training images")
    training_images.set_value(training_images.min)
    page.slider("Epochs").set_value(epochs)
    return page.run()


def wait_until_finished(lab_env: Lab, page: Page, keys, timeout: float) -> list:
    """Rerun the page (as its polling fragment would) until no run of `keys` is queued or running."""

    def finished():
        page.run()
        statuses = [lab_env.worker.status(k) for k in keys]
        return statuses if not any(s.active for s in statuses) else None

    return wait_for(finished, timeout, step=1.0, what=f"runs {keys} to finish")


# -- first paint and data ------------------------------------------------------------------
def test_first_paint_shows_every_section_with_the_builtin_dataset(lab_env):
    page = lab_env.page().run()
    at = page.at
    assert at.title[0].value == "Overfitting Lab"
    # The knobs in the sidebar, in the lesson's order; the curves and what they come from in the main area.
    assert [h.value for h in at.sidebar.header] == ["1. Data", "2. Augmentations", "3. Train"]
    assert [h.value for h in at.main.header] == ["4. Compare", "5. History"]
    code_tabs = ("ImageDataGenerator (the course)", "Keras preprocessing layers")  # inside "Code"
    tabs = [t.label for t in at.main.tabs if t.label not in code_tabs]
    assert tabs == ["About the data", "History", "Code", "This configuration as JSON"], tabs
    assert page.selectbox("Start from a preset").value == "quick"
    assert page.selectbox("Dataset").value == "builtin"
    assert page.split_strips() == {
        "Training images": ["cats", "cats", "dogs", "dogs"],
        "Validation images": ["cats", "cats", "dogs", "dogs"],
    }, "a few training and a few validation images of each class, side by side"
    strips = page.image_strips()
    assert [s.captions for s in strips if s.captions == ["original"]], "the preview's original image is missing"
    assert len(set(page.preview_urls())) == 8, "eight distinct preview variants"
    assert page.has_button(TRAIN) and not page.button(TRAIN).disabled
    assert not page.has_button(CANCEL)
    estimate = next(c for c in page.captions() if c.startswith("Estimated time: about"))
    assert "A guess for a 2-core CPU; no run has finished on this server yet." in estimate
    assert any("curves appear here" in c for c in page.captions()), "the empty compare section explains itself"
    assert any("Runs you train are kept" in c for c in page.captions()), "the empty history explains itself"
    assert "runs" not in page.query()
    assert page.config() == RunConfig.from_dict(page.config()).to_dict()  # the JSON is a valid configuration


def test_a_course_dataset_not_downloaded_yet_says_so_calmly_with_the_details_on_request(lab_env):
    page = lab_env.page().run()
    page.selectbox("Dataset").select("cats_vs_dogs")
    page.run()
    assert not page.texts("error"), "nothing has gone wrong: the dataset is only not downloaded yet"
    assert page.texts("info") == [
        "Cats vs Dogs (course subset) is not downloaded yet on this computer: the button below fetches it."
    ]
    assert page.has_button("Download Cats vs Dogs (course subset) (69 MB)")
    details = [e for e in page.at.expander if e.label.startswith("Details")]
    assert len(details) == 1, "where the lab looks, and the steps by hand, on request"
    text = " ".join(m.value for m in details[0].markdown)
    assert "no folder at" in text and str(lab_env.data_root) in text, text
    assert "Pick a dataset that loads before training." in page.texts("warning")
    assert not page.has_button(TRAIN), "no training without data"
    assert not page.image_strips(), "no samples or preview without data"
    # The controls stay usable: back to the builtin dataset, everything is there again.
    page.selectbox("Dataset").select("builtin")
    page.run()
    assert not page.texts("error") and page.has_button(TRAIN)


def test_the_presets_lesson_shows_only_while_the_data_is_the_presets(lab_env, image_folder):
    page = lab_env.page().run()
    lesson = load_preset("quick").lesson
    assert any(f"**What to look for:** {lesson}" in c for c in page.captions()), "the quick lesson, on the cartoons"
    folder = image_folder("mine", classes=("birds", "fish"), train=6, validation=4)
    # What an upload does (it sets the folder of "Your own folder"); the lesson would describe the cartoons.
    page.selectbox("Dataset").select("folder")
    page.run()
    page.text_input("Folder on this computer").input(str(folder))
    page.run()
    assert page.split_strips()["Training images"][0] == "birds"
    assert not any("What to look for" in c for c in page.captions()), page.captions()
    page.selectbox("Dataset").select("builtin")
    page.run()
    assert any("What to look for" in c for c in page.captions()), "back on the cartoons, the lesson is back"


def test_folder_dataset_missing_then_real_folder(lab_env, image_folder, tmp_path):
    page = lab_env.page().run()
    page.selectbox("Dataset").select("folder")
    page.run()
    assert not page.texts("error"), "no error before the user has had a chance to give a folder"
    assert any("Upload a zip of your own images" in i for i in page.texts("info")), page.texts("info")

    missing = tmp_path / "no-such-folder"
    page.text_input("Folder on this computer").input(str(missing))
    page.run()
    errors = page.texts("error")
    assert len(errors) == 1 and f"no folder at {missing}" in errors[0], errors
    assert not page.has_button(TRAIN)

    folder = image_folder("pets", classes=("cats", "dogs"), train=6, validation=4)
    page.text_input("Folder on this computer").input(str(folder))
    page.run()
    assert not page.texts("error")
    assert page.split_strips() == {
        "Training images": ["cats", "cats", "dogs", "dogs"],
        "Validation images": ["cats", "cats", "dogs", "dogs"],
    }
    training_images = page.slider("Training images")
    assert (training_images.min, training_images.max) == (4, 12)
    assert len(page.preview_urls()) == 8
    config = page.config()
    assert config["dataset"] == "folder" and config["data_dir"] == str(folder)
    assert page.has_button(TRAIN)


def test_a_shared_link_sets_the_controls(lab_env):
    page = lab_env.page({"epochs": "3", "image_size": "48", "vertical_flip": "true", "rotation_range": "90"}).run()
    assert page.slider("Epochs").value == 3
    assert page.select_slider("Image size (pixels)").value == 48
    assert page.toggle("Vertical flip").value is True
    assert page.toggle("Rotation").value is True and page.slider("Rotation (degrees)").value == 90
    config = page.config()
    assert (config["epochs"], config["image_size"]) == (3, 48)
    assert config["augmentation"]["vertical_flip"] is True


# -- augmentations ------------------------------------------------------------------------
def snapshot(page: Page) -> dict:
    return {
        "config": page.config(),
        "generator": page.generator_code(),
        "keras": page.keras_code(),
        "preview": page.preview_urls(),
        "alone": page.single_knob_strips(),
        "query": page.query(),
    }


def test_a_keyboard_reaches_a_visible_shear_in_a_few_presses(lab_env):
    page = lab_env.page().run()
    shear = page.slider("Shear (degrees)")
    assert shear.step == 1.0, "whole degrees: ten presses from 0 to 10 degrees, not a hundred"
    assert shear.value == 10.0


def test_every_move_of_the_training_images_slider_is_taken(lab_env):
    """The issue's drags to 30/60/90/20/50/80%: each move, not every second one, sets the configuration."""
    page = lab_env.page().run()
    slider = page.slider("Training images")
    low, high, step = int(slider.min), int(slider.max), int(slider.step)
    assert (slider.value, page.config()["train_images"]) == (high, 0), "all the training images (0 = all)"
    for percent in (30, 60, 90, 20, 50, 80):
        wanted = low + step * round((high - low) * percent / 100 / step)  # on the slider's steps
        page.slider("Training images").set_value(wanted)
        page.run()
        assert page.slider("Training images").value == wanted, f"the slider snapped back from {wanted}"
        assert page.config()["train_images"] == wanted, f"the move to {percent}% was dropped"
        assert f"{wanted} training images at" in next(c for c in page.captions() if c.startswith("Estimated"))
    # Another control's rerun keeps the choice, and back at the maximum the configuration says "all".
    page.toggle("Vertical flip").set_value(True)
    page.run()
    assert page.slider("Training images").value == wanted and page.config()["train_images"] == wanted
    page.slider("Training images").set_value(high)
    page.run()
    assert page.config()["train_images"] == 0
    # A link that sets it moves the slider too.
    linked = lab_env.page({"preset": "quick", "train_images": "100"}).run()
    assert linked.slider("Training images").value == 100 and linked.config()["train_images"] == 100


@pytest.mark.parametrize("label, field, on_value", TOGGLES, ids=[t[1] for t in TOGGLES])
def test_each_augmentation_toggle_changes_config_code_and_preview(lab_env, label, field, on_value):
    page = lab_env.page().run()
    before = snapshot(page)
    was_on = page.toggle(label).value
    assert was_on == bool(before["config"]["augmentation"][field])

    page.toggle(label).set_value(not was_on)
    page.run()
    after = snapshot(page)
    expected = (False if isinstance(on_value, bool) else 0.0) if was_on else on_value
    assert after["config"]["augmentation"][field] == expected
    others = {k: v for k, v in after["config"]["augmentation"].items() if k != field}
    assert others == {k: v for k, v in before["config"]["augmentation"].items() if k != field}
    assert after["generator"] != before["generator"], "the ImageDataGenerator code follows the switch"
    assert after["keras"] != before["keras"], "the Keras layers code follows the switch"
    assert after["preview"] != before["preview"], "the preview follows the switch"
    assert (label in after["alone"]) is (not was_on), "each switched-on knob has a strip of its own"
    assert field in after["query"], "the link carries the change from the preset"
    if not isinstance(on_value, bool):
        unit_slider = next(s for s in page.at.slider if s.label.startswith(f"{label} ("))
        assert unit_slider.disabled is was_on, "a knob's slider is disabled while its switch is off"
    if field == "shear_range":
        notes = [note for note in page.captions() if note.startswith("shear_range=")]
        assert notes and "degrees" in notes[0], "switching shear on explains its unit"
        # At the 10 degrees a switched-on shear starts at, the note gives no advice to try 10-20.
        assert "Try 10-20" not in notes[0], notes

    page.toggle(label).set_value(was_on)
    page.run()
    assert snapshot(page) == before, "switching back restores the configuration, code and preview exactly"


def test_all_augmentations_off_disables_the_comparison(lab_env):
    page = lab_env.page().run()
    for label, _, _ in TOGGLES:
        page.toggle(label).set_value(False)
    page.run()
    assert not any(page.config()["augmentation"][field] for _, field, _ in TOGGLES)
    assert any("Switch an augmentation on" in c for c in page.captions())
    assert "Switch on at least one augmentation to compare." in page.texts("info")
    assert not page.has_button(TRAIN)
    assert "fill_mode" not in page.generator_code(), "no augmentation, no fill mode"


def test_knob_values_and_fill_mode_change_code_and_preview(lab_env):
    page = lab_env.page().run()
    before = snapshot(page)
    page.slider("Rotation (degrees)").set_value(90.0)
    page.run()
    rotated = snapshot(page)
    assert rotated["config"]["augmentation"]["rotation_range"] == 90.0
    assert "rotation_range=90," in rotated["generator"] and "RandomRotation(0.25" in rotated["keras"]
    assert rotated["preview"] != before["preview"]
    assert rotated["alone"]["Rotation"] != before["alone"]["Rotation"]
    assert rotated["alone"]["Zoom"] == before["alone"]["Zoom"], "a knob's own strip ignores the other knobs"

    page.selectbox("Fill mode").select("constant")
    page.run()
    constant = snapshot(page)
    assert "fill_mode='constant'" in constant["generator"] and "cval=0," in constant["generator"]
    assert constant["preview"] != rotated["preview"]
    page.slider("Fill value (cval)").set_value(255.0)
    page.run()
    white = snapshot(page)
    assert "cval=255," in white["generator"] and "fill_value=255" in white["keras"]
    assert white["config"]["augmentation"]["cval"] == 255.0
    assert white["preview"] != constant["preview"]


def test_new_variants_draws_other_variants(lab_env):
    page = lab_env.page().run()
    first = snapshot(page)
    original = [s.value for s in page.image_strips() if s.captions == ["original"]]
    page.click(NEW_VARIANTS)
    second = snapshot(page)
    assert second["preview"] != first["preview"]
    assert set(second["preview"]).isdisjoint(first["preview"])
    assert all(second["alone"][k] != first["alone"][k] for k in first["alone"])
    assert [s.value for s in page.image_strips() if s.captions == ["original"]] == original
    assert second["config"] == first["config"] and second["generator"] == first["generator"]
    page.click(NEW_VARIANTS)
    assert page.preview_urls() not in (first["preview"], second["preview"])


def test_preset_sets_every_control(lab_env, image_folder):
    # A stand-in for the course's photos where the lab looks for them (LAB_DATA_DIR).
    image_folder(f"{lab_env.data_root.name}/cats_and_dogs_filtered", classes=("cats", "dogs"), train=6, validation=4)
    page = lab_env.page().run()
    page.selectbox("Start from a preset").select("cats_vs_dogs_course")
    page.run()
    assert page.toggle("Shear").value is True
    assert page.slider("Shear (degrees)").value == pytest.approx(0.2)
    notes = [n for n in page.captions() if n.startswith("shear_range=0.2")]
    assert notes and "degrees" in notes[0] and "Try 10-20 degrees" in notes[0], page.captions()
    config = page.config()
    assert config["dataset"] == "cats_vs_dogs"
    assert (config["image_size"], config["epochs"], config["batch_size"]) == (150, 100, 20)
    assert config["learning_rate"] == pytest.approx(1e-4)
    assert config["augmentation"]["shear_range"] == pytest.approx(0.2)
    assert "shear_range=0.2," in page.generator_code()
    assert any("cats_vs_dogs_quick" in c for c in page.captions()), "the preset's lesson is shown"
    assert not page.texts("error")
    assert len(page.preview_urls()) == 8

    page.selectbox("Start from a preset").select("quick")
    page.run()
    assert page.config()["dataset"] == "builtin" and page.toggle("Shear").value is False
    assert not page.texts("error")
    assert not any(n.startswith("shear_range=") for n in page.captions())


# -- honest status ------------------------------------------------------------------------------
def record_timed_run(store: RunStore, config: RunConfig, epoch_seconds: float) -> None:
    """A finished run whose every epoch took `epoch_seconds`, as this server's worker would have stored it."""
    rows = [{**fake_row(epoch, config), "seconds": epoch_seconds} for epoch in range(1, config.epochs + 1)]
    store.record_queued(config)
    store.record_start(config.key())
    store.record_finish(config.key(), from_rows(rows))


def test_the_estimate_learns_this_servers_speed_from_its_finished_runs(lab_env):
    page = lab_env.page().run()
    quick = RunConfig.from_dict(page.config())  # 300 training images, 100 validation images at 64 px, 20 epochs
    guess = next(c for c in page.captions() if c.startswith("Estimated time"))
    assert guess.startswith("Estimated time: about 40 s") and "A guess for a 2-core CPU" in guess, guess

    # Two runs on this server at 64 px took 2 s an epoch (the guess says 0.6 s): a slower machine, or a busy one.
    for seed in (1, 2):
        record_timed_run(lab_env.store, quick.replace(seed=seed, epochs=3), epoch_seconds=2.0)
    st.cache_data.clear()
    page.run()
    measured = next(c for c in page.captions() if c.startswith("Estimated time"))
    # 2 runs × 20 epochs × 2 s, and the start-up these runs measured (next to none): 80 s.
    assert measured.startswith("Estimated time: about 80 s"), measured
    assert measured.endswith("Measured on this server: 2 runs at 64 px."), measured

    page.select_slider("Image size (pixels)").set_value(48)
    page.run()
    scaled = next(c for c in page.captions() if c.startswith("Estimated time"))
    # (48/64)² of the pixels: 45 s.
    assert scaled.startswith("Estimated time: about 45 s"), scaled
    assert scaled.endswith("Measured on this server: 2 runs at 64 px, scaled to 48 px."), scaled


@pytest.mark.parametrize(
    "position, own_running, own_queued, words",
    [
        (1, 1, 0, "queued; it trains right after your other run, no one else's."),
        (2, 1, 1, "queued; it trains right after your 2 other runs, no one else's."),
        (1, 0, 0, "queued behind another visitor's run."),
        (2, 0, 0, "queued behind 2 runs of other visitors."),
        (3, 1, 0, "queued behind 2 runs of other visitors and your other run."),
    ],
)
def test_a_queued_run_says_whose_runs_are_ahead(position, own_running, own_queued, words):
    assert queue_text(position, own_running, own_queued) == words


@pytest.mark.parametrize("warm", [False, True])
def test_a_starting_run_says_loading_tensorflow_only_while_it_is_not_loaded(monkeypatch, warm):
    class Trainer:
        pass

    trainer = Trainer()
    trainer.warm = warm
    monkeypatch.setattr(app.runs, "get_trainer", lambda: trainer)
    starting = JobStatus(key="k", state="running", epochs_done=0, epochs_total=5)
    line = app.runs.status_line("With augmentation", starting)
    assert ("loading TensorFlow" in line) is not warm, line
    assert line.startswith("With augmentation: ")
    assert app.runs.status_line("With augmentation", replace(starting, epochs_done=1)) == ""


# -- training through the worker ------------------------------------------------------------
def test_train_both_runs_to_the_end_in_the_child_trainer(lab_env):
    page = tiny(lab_env.page().run(), epochs=2)
    config = RunConfig.from_dict(page.config())
    assert (config.image_size, config.train_images, config.epochs) == (48, 4, 2)
    assert "2 epochs × 2 runs, 4 training images at 48 px" in " ".join(page.captions())

    page.click(TRAIN)
    keys = page.active_runs()
    assert keys == (config.without_augmentation().key(), config.key())
    assert lab_env.worker.queue_snapshot() in ([keys[0], keys[1]], [keys[1]], [])
    if any(lab_env.worker.status(k).active for k in keys):
        assert page.button(TRAIN).disabled and page.has_button(CANCEL)
        waiting = " ".join(page.texts("info"))
        assert "warming up" in waiting or "waiting in the queue" in waiting, waiting

    start = time.monotonic()
    statuses = wait_until_finished(lab_env, page, keys, REAL_RUN_TIMEOUT)
    print(f"two tiny runs in the child trainer: {time.monotonic() - start:.1f} s")
    assert [s.state for s in statuses] == ["done", "done"], [(s.state, s.error) for s in statuses]
    assert [s.epochs_done for s in statuses] == [2, 2]
    assert lab_env.trainers and lab_env.trainers[0]._child is not None, "trained in the child process"
    assert lab_env.trainers[0].warm, "TensorFlow stays loaded in the child: the next run says so, not 'loading'"

    page.run()
    curves = curve_traces(page.chart_traces())
    assert len(curves) == 8, "training and validation, accuracy and loss, on both sides"
    assert {c["name"] for c in curves} == {"training", "validation"}
    readings = [
        m for m in page.texts("markdown") if m.startswith(("**Without augmentation:**", "**With augmentation:**"))
    ]
    assert len(readings) == 2 and all("Training accuracy" in r for r in readings), readings
    assert len(page.at.dataframe) >= 2, "the summary table under the charts"
    assert not page.has_button(CANCEL) and not page.button(TRAIN).disabled
    assert "Both runs are already in the run store: they show at once." in page.captions()
    assert {r.key: r.status.state for r in lab_env.store.list_runs()} == {keys[0]: "done", keys[1]: "done"}

    page.click(TRAIN)  # the same configuration again: answered from the store, nothing queued
    assert page.active_runs() == keys and lab_env.worker.queue_snapshot() == []
    assert all(lab_env.worker.status(k).done for k in keys)


def test_cancel_stops_a_running_comparison_within_seconds(lab_env):
    page = tiny(lab_env.page().run(), epochs=60)
    page.slider("Training images").set_value(page.slider("Training images").max)  # slower epochs
    page.run()
    page.click(TRAIN)
    keys = page.active_runs()
    # Cancel once the model trains, so the stop request meets a running epoch.
    wait_for(lambda: lab_env.worker.status(keys[0]).epochs_done >= 1, REAL_RUN_TIMEOUT, what="the first epoch")
    page.run()
    assert any(p.startswith("Without augmentation: epoch") for p in progress_texts(page))
    assert page.has_button(CANCEL)

    start = time.monotonic()
    page.click(CANCEL)

    def stopped():
        statuses = [lab_env.worker.status(k) for k in keys]
        return None if any(s.active for s in statuses) else statuses

    statuses = wait_for(stopped, 10, step=0.1, what="the runs to stop")
    seconds = time.monotonic() - start
    print(f"cancel took {seconds:.2f} s")
    assert [s.state for s in statuses] == ["cancelled", "cancelled"]
    assert seconds < 6.0, f"cancel took {seconds:.1f} s"
    assert 1 <= statuses[0].epochs_done < 60 and statuses[1].epochs_done == 0
    assert lab_env.trainers[0]._child is not None and lab_env.trainers[0]._child.poll() is None, (
        "a cancelled run stops in the child; the child is kept for the next job"
    )
    page.run()
    warnings = page.texts("warning")
    assert any(w.startswith("Without augmentation: cancelled after") for w in warnings), warnings
    assert any(w.startswith("With augmentation: cancelled after 0 epochs") for w in warnings), warnings
    assert not page.has_button(CANCEL) and not page.button(TRAIN).disabled
    assert lab_env.store.load(keys[0]).status.state == "cancelled"


def progress_texts(page: Page) -> list[str]:
    return [p.proto.text for p in page.elements("progress")]


def test_live_progress_and_a_second_visitor_finds_the_running_job(lab_env):
    lab_env.use_fake_trainer(epoch_seconds=0.4)
    page = lab_env.page().run()
    page.slider("Epochs").set_value(5)
    page.run()
    page.click(TRAIN)
    keys = page.active_runs()
    wait_for(lambda: lab_env.worker.status(keys[0]).epochs_done >= 1, 10, step=0.05, what="the first epoch")
    page.run()
    assert any(p.startswith("Without augmentation: epoch ") and p.endswith(" of 5") for p in progress_texts(page))
    assert "With augmentation: queued; it trains right after your other run, no one else's." in page.texts("info")

    # Another tab (or a refresh) with the link: the same job, not a new one.
    other = lab_env.page({"runs": ",".join(keys)}).run()
    assert other.has_button(CANCEL)
    assert len(lab_env.trainers[0].calls) <= 2
    wait_until_finished(lab_env, other, keys, 30)
    other.run()
    assert len(curve_traces(other.chart_traces())) == 8
    assert [c.key() for c in lab_env.trainers[0].calls] == list(keys), "each run trained once, in order"


def test_a_failed_run_shows_its_error_and_the_page_stays_up(lab_env):
    lab_env.use_fake_trainer(
        error=TrainingFailed(
            "the training process stopped unexpectedly with exit code -9 (killed: most likely out of memory)"
        )
    )
    page = tiny(lab_env.page().run(), epochs=2)
    page.click(TRAIN)
    keys = page.active_runs()
    statuses = wait_until_finished(lab_env, page, keys, 30)
    assert [s.state for s in statuses] == ["failed", "failed"]
    page.run()
    errors = page.texts("error")
    assert len(errors) == 2 and all("the run failed" in e and "exit code -9" in e for e in errors), errors
    assert lab_env.worker.alive and not page.button(TRAIN).disabled
    assert {r.status.state for r in lab_env.store.list_runs()} == {"failed"}


# -- several seeds per side -------------------------------------------------------------------
SEEDS = "Seeds per side"


def wait_until_all_done(lab_env: Lab, page: Page, keys, timeout: float) -> None:
    """Rerun the page (it hands over runs its queue could not take yet) until every run of `keys` is done."""

    def done():
        page.run()
        return all(lab_env.worker.status(k).done for k in keys)

    wait_for(done, timeout, step=0.2, what=f"runs {keys} to be done")


def test_two_seeds_per_side_train_four_runs_and_show_their_mean_with_a_band(lab_env):
    lab_env.use_fake_trainer()
    page = tiny(lab_env.page().run(), epochs=3)
    assert page.number_input(SEEDS).value == 1 and "seeds" not in page.query()
    page.number_input(SEEDS).set_value(2)
    page.run()
    assert page.query()["seeds"] == "2", "the link carries the seed count"
    assert any("3 epochs × 4 runs, 2 seeds per side" in c for c in page.captions()), page.captions()

    config = RunConfig.from_dict(page.config())
    page.click(TRAIN)
    keys = page.watched_runs()
    assert keys == [c.key() for c in comparison_configs(config, 2)]
    wait_until_all_done(lab_env, page, keys, 30)
    calls = [(c.seed, c.augmentation.enabled) for c in lab_env.trainers[0].calls]
    assert calls == [(42, False), (42, True), (43, False), (43, True)], "each side with seeds 42 and 43, pair by pair"

    page.run()
    assert_two_seed_comparison(page)
    assert not page.has_button(CANCEL) and not page.button(TRAIN).disabled
    assert "All 4 runs are already in the run store: they show at once." in page.captions()

    # A refresh, or the link opened elsewhere: the seed count and all four runs come back, nothing trains again.
    again = lab_env.page(page.query()).run()
    assert again.number_input(SEEDS).value == 2
    assert again.watched_runs() == keys
    assert_two_seed_comparison(again)
    assert len(lab_env.trainers[0].calls) == 4

    # Back to one seed: the seed already trained is the whole comparison, answered at once.
    page.number_input(SEEDS).set_value(1)
    page.run()
    assert "seeds" not in page.query()
    page.click(TRAIN)
    assert page.watched_runs() == keys[:2] and len(lab_env.trainers[0].calls) == 4
    assert len(curve_traces(page.chart_traces())) == 8 and band_traces(page.chart_traces()) == []


def assert_two_seed_comparison(page: Page) -> None:
    traces = page.chart_traces()
    assert len(curve_traces(traces)) == 8, "the mean curves: training and validation, accuracy and loss, both sides"
    bands = band_traces(traces)
    assert len(bands) == 8, "a band under every mean curve"
    assert all("mean of 2 seeds" in t["hovertemplate"] for t in curve_traces(traces))
    captions = page.captions()
    for side in ("Without augmentation", "With augmentation"):
        assert f"{side}: 2 of 2 seeds done." in captions, captions
    tables = [d.value for d in page.at.table if "Seeds" in d.value.index]
    assert len(tables) == 1, "the summary table under the chart"
    table = tables[0]
    assert list(table.loc["Seeds"]) == ["2 of 2", "2 of 2"]
    # The fake's seed 43 ends 2 points below seed 42: a standard deviation of 1.4 points.
    assert all(" ± 1.4%" in cell for cell in table.loc["Validation accuracy"]), table
    readings = [m for m in page.texts("markdown") if ", mean of 2 seeds:**" in m]
    assert len(readings) == 2 and all("Training accuracy" in r for r in readings), readings
    assert any(m.startswith("**Across seeds:**") for m in page.texts("markdown"))


def test_more_seeds_than_the_queue_holds_are_handed_over_as_it_drains(lab_env):
    lab_env.use_fake_trainer()
    page = tiny(lab_env.page().run(), epochs=2)
    page.number_input(SEEDS).set_value(4)  # 8 runs; a visitor may have 4 waiting
    page.run()
    page.click(TRAIN)
    keys = page.watched_runs()
    assert len(keys) == 8
    wait_until_all_done(lab_env, page, keys, 60)
    seeds = sorted(c.seed for c in lab_env.trainers[0].calls)
    assert seeds == [42, 42, 43, 43, 44, 44, 45, 45], "every run trained, once"
    page.run()
    assert "Without augmentation: 4 of 4 seeds done." in page.captions()


def test_cancel_stops_every_seed_including_those_not_yet_handed_over(lab_env):
    lab_env.use_fake_trainer(epoch_seconds=0.5)
    page = lab_env.page().run()
    page.slider("Epochs").set_value(20)
    page.number_input(SEEDS).set_value(4)
    page.run()
    page.click(TRAIN)
    keys = page.watched_runs()
    assert any(lab_env.worker.status(k).state == "unknown" for k in keys), "some runs wait for room in the queue"
    assert page.has_button(CANCEL)
    progress = [p for p in progress_texts(page) if p.startswith("Without augmentation: 0 of 4 seeds done")]
    assert progress, progress_texts(page)

    page.click(CANCEL)
    wait_for(lambda: not any(lab_env.worker.status(k).active for k in keys), 10, step=0.1, what="the runs to stop")
    for _ in range(3):  # later polls hand nothing more over
        page.run()
    states = {lab_env.worker.status(k).state for k in keys}
    assert states <= {"cancelled", "unknown"}, states
    assert len(lab_env.trainers[0].calls) <= 1
    assert not page.has_button(CANCEL) and not page.button(TRAIN).disabled
    assert any("seeds done." in c for c in page.captions())


def test_a_link_asks_for_seeds_within_what_the_server_allows(lab_env):
    page = lab_env.page({"seeds": "4"}).run()
    assert page.number_input(SEEDS).value == 4 and page.number_input(SEEDS).max == MAX_SEEDS == 10
    assert page.query()["seeds"] == "4"
    lab_env.monkeypatch.setenv("LAB_HOSTED", "1")
    hosted = lab_env.page({"seeds": "5"}).run()
    assert hosted.number_input(SEEDS).max == 3 and hosted.number_input(SEEDS).value == 3
    assert hosted.query()["seeds"] == "3", "the link says what the page does"
    assert lab_env.page({"seeds": "many"}).run().number_input(SEEDS).value == 1


# -- history --------------------------------------------------------------------------------
def test_reopen_two_runs_from_the_history(lab_env):
    lab_env.use_fake_trainer()
    store = lab_env.store
    base = RunConfig(image_size=48, epochs=3)
    without = seed_run(store, base.without_augmentation())
    time.sleep(0.01)  # distinct "queued" times: the history lists newest first
    rotated = seed_run(store, base.replace(augmentation={"rotation_range": 30.0}))
    time.sleep(0.01)
    flipped = seed_run(
        store, base.replace(epochs=4, augmentation={"horizontal_flip": True}), epochs=2, state="cancelled"
    )

    page = lab_env.page().run()
    assert "runs" not in page.query()
    table = next(d.value for d in page.at.dataframe if "state" in d.value.columns)
    assert list(table.index) == [flipped, rotated, without]
    assert list(table["state"]) == ["cancelled", "done", "done"]
    left, right = page.selectbox("Left run"), page.selectbox("Right run")
    assert left.options and len(left.options) == 3
    left.select(without)
    right.select(flipped)
    page.click(OPEN_IN_COMPARE)

    assert page.active_runs() == (without, flipped)
    assert page.query()["runs"] == f"{without},{flipped}"
    curves = curve_traces(page.chart_traces())
    assert len(curves) == 8
    lengths = [len(trace_x(c)) for c in curves]
    assert sorted(lengths) == [2, 2, 2, 2, 3, 3, 3, 3], "each side shows its own run's epochs"
    assert any(w == "With augmentation: cancelled after 2 epochs." for w in page.texts("warning")), page.texts(
        "warning"
    )
    readings = [
        m for m in page.texts("markdown") if m.startswith(("**Without augmentation:**", "**With augmentation:**"))
    ]
    assert len(readings) == 2
    downloads = [d.proto.label for d in page.elements("download_button")]
    assert downloads.count("History (CSV)") == 2 and downloads.count("Configuration (JSON)") == 2
    assert lab_env.trainers == [] or lab_env.trainers[0].calls == [], "reopening trains nothing"

    # The link alone reopens them, as after a refresh.
    again = lab_env.page({"runs": f"{rotated},{without}"}).run()
    assert again.active_runs() == (rotated, without)
    assert len(curve_traces(again.chart_traces())) == 8
    assert not again.has_button(CANCEL)


def test_a_finished_comparison_is_drawn_once_for_every_visitor_and_a_stored_one_shows_on_the_first_click(
    lab_env, monkeypatch
):
    lab_env.use_fake_trainer()
    base = load_preset("quick").config.replace(image_size=48, epochs=3, train_images=8)
    without, with_ = seed_run(lab_env.store, base.without_augmentation()), seed_run(lab_env.store, base)
    monkeypatch.setattr(lab.recordings, "RECORDINGS_DIR", lab_env.data_root / "no-recordings")  # count ours only
    built = []
    real = lab.figures.compare_figure
    monkeypatch.setattr(lab.figures, "compare_figure", lambda *a, **k: built.append(1) or real(*a, **k))

    # A class opening the same link: one figure for all of them.
    charts = [curve_traces(lab_env.page({"runs": f"{without},{with_}"}).run().chart_traces()) for _ in range(3)]
    assert len(built) == 1 and charts[0] == charts[1] == charts[2] and len(charts[0]) == 8

    # Pressing Train on a configuration the store holds shows it at once, training nothing.
    page = lab_env.page(base.to_query(load_preset("quick").config)).run()
    assert RunConfig.from_dict(page.config()) == base
    page.click(TRAIN)
    assert page.active_runs() == (without, with_)
    assert len(curve_traces(page.chart_traces())) == 8 and len(built) == 1
    assert not page.has_button(CANCEL) and lab_env.trainers[0].calls == []


# -- the first paint never loads TensorFlow ------------------------------------------------------
def test_the_page_does_not_import_tensorflow(tmp_path):
    script = f"""
import json, sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({str(APP)!r}, default_timeout=60)
at.run()
assert not at.exception, [e.message for e in at.exception]
next(t for t in at.toggle if t.label == "Vertical flip").set_value(True)
at.run()
next(b for b in at.button if b.label == {NEW_VARIANTS!r}).click()
at.run()
assert not at.exception, [e.message for e in at.exception]
print(json.dumps({{name: name in sys.modules for name in ("tensorflow", "keras")}}))
"""
    env = {**os.environ, "LAB_RUN_STORE": str(tmp_path / "runs"), "LAB_DATA_DIR": str(tmp_path / "data")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    imported = json.loads(done.stdout.strip().splitlines()[-1])
    assert imported == {"tensorflow": False, "keras": False}
