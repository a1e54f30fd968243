"""Hosted mode, shareable links and recorded runs: what a teacher and a hosted class rely on."""

from __future__ import annotations

import re

import pytest

from lab.config import ConfigError, RunConfig
from lab.history import from_rows, summarize, to_frame
from lab.presets import list_presets, load_preset
from lab.recordings import list_recordings, load_recording, save_recording
from lab.runs import hosting


@pytest.fixture
def laptop(monkeypatch):
    for name in ("LAB_HOSTED", "LAB_ALLOW_SERVER_FOLDERS", "LAB_MAX_EPOCHS", "LAB_MAX_IMAGE_SIZE"):
        monkeypatch.delenv(name, raising=False)


def test_a_laptop_has_no_limits_and_may_read_folders(laptop):
    assert hosting.host_limits() is None
    assert hosting.server_folders_allowed()
    config = load_preset("cats_vs_dogs_course").config
    assert hosting.apply_limits(config, None) == (config, [])


@pytest.mark.parametrize("how", ["env", "secrets"])
def test_hosted_mode_caps_a_big_run_and_says_what_it_lowered(laptop, monkeypatch, how):
    secrets = None
    if how == "env":
        monkeypatch.setenv("LAB_HOSTED", "1")
    else:
        secrets = {"hosted": True}
    limits = hosting.host_limits(secrets)
    assert limits is not None and not hosting.server_folders_allowed(secrets)
    config = load_preset("cats_vs_dogs_course").config  # 150 px, 100 epochs, all 2,000 images
    capped, notes = hosting.apply_limits(config, limits, train_count=2000)
    assert capped.image_size == limits.max_image_size < 150
    assert capped.epochs == limits.max_epochs < 100
    assert capped.train_images == limits.max_train_images
    assert len(notes) == 3 and "150" in notes[0] and "100" in notes[1] and "2000" in notes[2]
    assert capped.augmentation == config.augmentation  # the lesson's knobs are untouched


def test_hosted_mode_leaves_a_small_run_alone(laptop, monkeypatch):
    monkeypatch.setenv("LAB_HOSTED", "true")
    config = load_preset("quick").config  # builtin: 300 training images, 64 px, 20 epochs
    assert hosting.apply_limits(config, hosting.host_limits(), train_count=300) == (config, [])


def test_caps_move_with_environment_variables_and_folders_can_be_opened_explicitly(laptop, monkeypatch):
    monkeypatch.setenv("LAB_HOSTED", "1")
    monkeypatch.setenv("LAB_MAX_EPOCHS", "5")
    monkeypatch.setenv("LAB_ALLOW_SERVER_FOLDERS", "1")
    assert hosting.host_limits().max_epochs == 5
    assert hosting.server_folders_allowed()


@pytest.mark.parametrize("preset", list_presets())
def test_a_link_carries_every_preset_exactly(preset):
    config = load_preset(preset).config
    query = config.to_query()
    assert all(isinstance(v, str) for v in query.values())
    assert RunConfig.from_query(query) == config


def test_a_link_ignores_other_parameters_and_refuses_bad_values():
    config = RunConfig.from_query({"epochs": "7", "rotation_range": "15", "runs": "a,b", "hide": "data"})
    assert (config.epochs, config.augmentation.rotation_range) == (7, 15.0)
    with pytest.raises(ConfigError, match="rotation_range"):
        RunConfig.from_query({"rotation_range": "500"})


def test_a_recording_round_trips_with_machine_date_and_histories(tmp_path):
    rows = [
        {"epoch": e, "loss": 1 / e, "accuracy": 0.5 + e / 10, "val_loss": 0.7, "val_accuracy": 0.6, "seconds": 1.5}
        for e in (1, 2, 3)
    ]
    config = load_preset("quick").config
    runs = {"baseline": from_rows(rows), "augmented": from_rows(rows[:2])}
    save_recording("demo", "quick", config, runs, seconds=123.4, folder=tmp_path)
    assert list_recordings(tmp_path) == ["demo"] and not list(tmp_path.glob("*.tmp"))
    recording = load_recording("demo", tmp_path)
    assert recording.config == config and recording.seconds == pytest.approx(123.4)
    assert recording.recorded_at and "cores" in recording.machine
    for side, frame in runs.items():
        assert recording.runs[side] == frame


def test_a_recording_of_a_named_dataset_keeps_no_local_path_but_a_folders_does(tmp_path):
    rows = [{"epoch": 1, "loss": 1, "accuracy": 0.5, "val_loss": 0.7, "val_accuracy": 0.6, "seconds": 1.5}]
    runs = {"baseline": from_rows(rows), "augmented": from_rows(rows)}
    named = load_preset("cats_vs_dogs_quick").config.replace(data_dir="/home/me/cats_and_dogs_filtered")
    save_recording("named", "cats_vs_dogs_quick", named, runs, seconds=1, folder=tmp_path)
    assert load_recording("named", tmp_path).config == named.replace(data_dir=None)
    folder = named.replace(dataset="folder")
    save_recording("folder", "cats_vs_dogs_quick", folder, runs, seconds=1, folder=tmp_path)
    assert load_recording("folder", tmp_path).config.data_dir == "/home/me/cats_and_dogs_filtered"


def test_the_shipped_recordings_load():
    for name in list_recordings():
        recording = load_recording(name)
        assert recording.runs and all(len(frame) == recording.config.epochs for frame in recording.runs.values())


def quoted_figures(recording) -> tuple[set[str], set[int]]:
    """The percentages (as the page rounds them) and epochs a text may quote from a recording."""
    percents, epochs = set(), {recording.config.epochs}
    for rows in recording.runs.values():
        frame = to_frame(rows)
        summary = summarize(frame)
        percents |= {f"{summary[k]:.0%}" for k in ("accuracy", "val_accuracy", "best_val_accuracy")}
        # The best epoch (highest validation accuracy) and the epoch of lowest validation loss, which a lesson may name.
        epochs |= {summary["best_epoch"], int(frame.loc[frame["val_loss"].idxmin(), "epoch"])}
    return percents, epochs


def test_a_lesson_quotes_its_recordings_own_numbers():
    # "The text must match what the lab actually shows": a sentence of a lesson that names a
    # recording may quote only that recording's figures, so a re-recorded run cannot leave it stale.
    checked = 0
    for name in list_recordings():
        recording = load_recording(name)
        lesson = load_preset(recording.preset).lesson
        percents, epochs = quoted_figures(recording)
        for sentence in re.split(r"(?<=[.!?])\s+", lesson):
            if name not in sentence:
                continue
            checked += 1
            assert set(re.findall(r"\d+%", sentence)) <= percents, f"{recording.preset}: {sentence!r} vs {percents}"
            assert {int(e) for e in re.findall(r"epoch (\d+)", sentence)} <= epochs, f"{sentence!r} vs {epochs}"
    assert checked, "no lesson names a shipped recording"


def test_hosted_mode_caps_the_seeds_per_side(laptop, monkeypatch):
    monkeypatch.delenv("LAB_MAX_SEEDS", raising=False)
    monkeypatch.setenv("LAB_HOSTED", "1")
    assert hosting.host_limits().max_seeds == 3
    monkeypatch.setenv("LAB_MAX_SEEDS", "2")
    assert hosting.host_limits().max_seeds == 2


def test_the_servers_queue_is_bounded_when_hosted_and_the_bound_moves(laptop, monkeypatch):
    monkeypatch.delenv("LAB_MAX_QUEUED", raising=False)
    assert hosting.max_queued() is None  # a laptop: no bound
    assert hosting.max_queued({"hosted": True}) == hosting.HOSTED_MAX_QUEUED == 24
    monkeypatch.setenv("LAB_HOSTED", "1")
    assert hosting.max_queued() == 24
    monkeypatch.setenv("LAB_MAX_QUEUED", "8")
    assert hosting.max_queued() == 8
    monkeypatch.setenv("LAB_MAX_QUEUED", "0")
    assert hosting.max_queued() is None


def test_over_caps_names_each_setting_over_its_cap(laptop):
    limits = hosting.HostLimits()
    config = load_preset("cats_vs_dogs_course").config  # 150 px, 100 epochs, all 2,000 images
    assert hosting.over_caps(config, None) == []
    over = hosting.over_caps(config, limits, train_count=2000)
    assert over == [
        "image size 150 px is over this server's cap of 96 px",
        "100 epochs is over this server's cap of 30",
        "2000 training images is over this server's cap of 1000",
    ]
    capped, _ = hosting.apply_limits(config, limits, train_count=2000)
    assert hosting.over_caps(capped, limits, train_count=2000) == []
