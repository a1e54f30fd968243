"""The Horses or Humans lesson: its presets, and the recordings its lesson quotes (the quoted figures
themselves are checked against the recordings in tests/test_hosting.py)."""

from __future__ import annotations

import pytest

from lab.history import to_frame
from lab.presets import load_preset
from lab.recordings import list_recordings, load_recording


def test_the_quick_preset_is_cpu_sized_and_the_course_preset_trains_the_notebooks_cnn():
    quick = load_preset("horses_or_humans_quick").config
    assert (quick.dataset, quick.image_size, quick.epochs, quick.batch_size) == ("horses_or_humans", 64, 25, 32)
    assert quick.learning_rate == pytest.approx(1e-3) and quick.augmentation.rotation_range == 40
    course = load_preset("horses_or_humans_course").config
    assert (course.architecture, course.image_size, course.epochs, course.batch_size) == ("course5", 300, 100, 128)
    assert course.learning_rate == pytest.approx(1e-4)


def test_the_recording_shows_what_the_lesson_says():
    assert "horses_or_humans_quick_64px" in list_recordings()
    recording = load_recording("horses_or_humans_quick_64px")
    assert recording.config == load_preset("horses_or_humans_quick").config
    baseline, augmented = (to_frame(recording.runs[side]) for side in ("baseline", "augmented"))
    # Without augmentation: training memorised, validation stays well below it.
    assert baseline["accuracy"].iloc[-1] >= 0.99 and baseline["val_accuracy"].iloc[-1] <= 0.9
    # With it: validation jumps from a coin toss to over 90% from one epoch to another.
    assert augmented["val_accuracy"].min() <= 0.55 and augmented["val_accuracy"].max() >= 0.9
    assert augmented["val_accuracy"].diff().abs().max() >= 0.3


def test_a_validation_set_drawn_like_the_training_set_changes_the_picture():
    official = load_recording("horses_or_humans_quick_64px")
    pooled = load_recording("horses_or_humans_quick_pooled_64px")
    # The same preset, only the split differs: both splits pooled, a seeded fifth held out.
    assert pooled.config.replace(dataset="horses_or_humans", data_dir=None) == official.config
    assert pooled.config.validation_split == pytest.approx(0.2)
    baseline = to_frame(pooled.runs["baseline"])
    assert baseline["accuracy"].iloc[-1] >= 0.99 and baseline["val_accuracy"].iloc[-1] >= 0.97
    official_final = to_frame(official.runs["baseline"])["val_accuracy"].iloc[-1]
    assert baseline["val_accuracy"].iloc[-1] - official_final >= 0.08
