"""Readings judge the whole curve, on histories shaped like the runs that fooled the old last-epoch reading.

The three shapes of issue 13 are here as they were measured: a Horses or Humans subset whose loss
stayed at chance, the full Horses or Humans set whose validation swung between 50% and 94%, and
handwritten digits where flips and 180° rotations made augmentation hurt.
"""

from __future__ import annotations

import math

import pytest

from lab import history as hist
from lab.config import Augmentation


def curve(accuracy, val_accuracy, loss, val_loss) -> list[dict]:
    rows = zip(accuracy, val_accuracy, loss, val_loss, strict=True)
    return [
        {"epoch": e, "accuracy": a, "val_accuracy": va, "loss": lo, "val_loss": vl, "seconds": 1.0}
        for e, (a, va, lo, vl) in enumerate(rows, start=1)
    ]


# Horses or Humans subset, 5 epochs at 64 px: the loss never left ln 2 = 0.693, while training
# accuracy wandered up to 68% (outputs a hair on the right side of 0.5).
AT_CHANCE = curve(
    accuracy=[0.50, 0.55, 0.61, 0.64, 0.68],
    val_accuracy=[0.50, 0.50, 0.52, 0.50, 0.52],
    loss=[0.694, 0.692, 0.691, 0.690, 0.689],
    val_loss=[0.693, 0.693, 0.692, 0.693, 0.692],
)
AT_CHANCE_TOO = curve(  # its other side, which the old reading called "generalises"
    accuracy=[0.50, 0.51, 0.52, 0.52, 0.53],
    val_accuracy=[0.50, 0.50, 0.50, 0.51, 0.50],
    loss=[0.694, 0.693, 0.693, 0.692, 0.692],
    val_loss=[0.693, 0.693, 0.693, 0.693, 0.693],
)
# The full Horses or Humans set, 25 epochs at 64 px, with augmentation: validation jumps about.
SWINGING = curve(
    accuracy=[0.55 + 0.016 * e for e in range(25)],
    val_accuracy=[0.55, 0.6, 0.62, 0.7, 0.66, 0.75, 0.8, 0.72, 0.85, 0.78]
    + [0.88, 0.7, 0.9, 0.62, 0.86, 0.74, 0.91, 0.58, 0.93, 0.66, 0.5, 0.94, 0.6, 0.9, 0.78],
    loss=[0.68 - 0.02 * e for e in range(25)],
    val_loss=[0.65 - 0.01 * e for e in range(20)] + [1.1, 0.3, 0.9, 0.35, 0.6],
)
# Handwritten digits, 10 classes: without augmentation 99%; with flips and 180° rotations 72%.
DIGITS_WITHOUT = curve(
    accuracy=[0.90, 0.97, 0.985, 0.99, 0.995],
    val_accuracy=[0.95, 0.975, 0.985, 0.99, 0.99],
    loss=[0.35, 0.1, 0.05, 0.03, 0.02],
    val_loss=[0.17, 0.08, 0.05, 0.04, 0.04],
)
DIGITS_WITH = curve(
    accuracy=[0.55, 0.66, 0.71, 0.74, 0.76],
    val_accuracy=[0.58, 0.66, 0.70, 0.71, 0.72],
    loss=[1.3, 0.95, 0.82, 0.74, 0.69],
    val_loss=[1.2, 0.93, 0.84, 0.80, 0.78],
)
DIGIT_KNOBS = Augmentation(rotation_range=180.0, horizontal_flip=True, vertical_flip=True, zoom_range=0.1)
# The course's Cats vs Dogs without augmentation: training races to 100%, validation loss turns up at epoch 4.
OVERFITTING = curve(
    accuracy=[0.55, 0.66, 0.75, 0.84, 0.92, 0.97, 0.99, 1.0],
    val_accuracy=[0.6, 0.66, 0.70, 0.72, 0.73, 0.72, 0.74, 0.73],
    loss=[0.69, 0.6, 0.5, 0.37, 0.22, 0.1, 0.04, 0.01],
    val_loss=[0.66, 0.61, 0.57, 0.55, 0.58, 0.7, 0.9, 1.2],
)
GENERALISING = curve(
    accuracy=[0.55, 0.62, 0.68, 0.72, 0.76, 0.79, 0.81, 0.83],
    val_accuracy=[0.58, 0.63, 0.67, 0.71, 0.74, 0.77, 0.78, 0.79],
    loss=[0.69, 0.65, 0.6, 0.55, 0.5, 0.46, 0.43, 0.4],
    val_loss=[0.67, 0.64, 0.6, 0.56, 0.52, 0.48, 0.46, 0.45],
)
UNDERFITTING = curve(
    accuracy=[0.52, 0.56, 0.59, 0.62, 0.64, 0.66],
    val_accuracy=[0.53, 0.56, 0.58, 0.61, 0.62, 0.64],
    loss=[0.69, 0.675, 0.66, 0.645, 0.63, 0.615],
    val_loss=[0.69, 0.68, 0.665, 0.65, 0.64, 0.63],
)


@pytest.mark.parametrize(
    "history, classes, kind, words",
    [
        (AT_CHANCE, 2, "not learning", "has not learned yet"),
        (AT_CHANCE_TOO, 2, "not learning", "has not learned yet"),
        (SWINGING, 2, "swinging", "swings between 50% and 94%"),
        (OVERFITTING, 2, "overfitting", "validation loss has risen since its lowest at epoch 4"),
        (GENERALISING, 2, "generalising", "move together"),
        (UNDERFITTING, 2, "underfitting", "not fit even its training images yet (underfitting)"),
        (DIGITS_WITHOUT, 10, "generalising", "move together"),
        (DIGITS_WITH, 10, "underfitting", "(underfitting)"),
    ],
)
def test_each_shape_of_curve_gets_its_own_reading(history, classes, kind, words):
    assert hist.shape(history, classes) == kind
    text = hist.reading(history, classes)
    assert words in text, text
    assert text.startswith("Training accuracy"), "the page and the browser tests find a reading by its start"


def test_the_old_readings_mistakes_are_gone():
    # The subset at chance was read as "memorised the training set"; the swing as "validation stalled".
    for history in (AT_CHANCE, SWINGING):
        assert "memorised" not in hist.reading(history, 2) and "memorises" not in hist.reading(history, 2)
    assert "generalises" not in hist.reading(AT_CHANCE_TOO, 2)
    assert "overfitting" not in hist.reading(DIGITS_WITH, 10)


def test_not_learning_names_chance_for_the_number_of_classes():
    text = hist.reading(AT_CHANCE, 2)
    assert "0.69" in text and "ln 2 = 0.69" in text
    ten = curve([0.1, 0.11], [0.1, 0.1], [2.31, 2.30], [2.30, 2.30])
    assert hist.shape(ten, 10) == "not learning" and "among 10 classes (ln 10 = 2.30)" in hist.reading(ten, 10)
    assert hist.shape(ten, None) == "not learning", "without a class count, ln(classes) is guessed from the loss"
    assert hist.infer_classes(ten) == 10 and hist.infer_classes(AT_CHANCE) == 2 and hist.infer_classes([]) == 2


def test_a_learning_multiclass_run_is_not_taken_for_chance_when_the_count_is_guessed():
    # A loss of 0.69 is chance for two classes but fine for ten: 80% accuracy says it learned.
    learned = curve([0.7, 0.82], [0.7, 0.8], [0.9, 0.69], [0.88, 0.7])
    assert hist.shape(learned, None) != "not learning"
    assert hist.shape(learned, 10) != "not learning"


def test_one_noisy_last_epoch_of_validation_loss_is_not_overfitting():
    # The builtin lesson with augmentation: lowest validation loss at epoch 7 of 8, the last one 15% up.
    noisy = [{**row} for row in GENERALISING]
    noisy[6]["val_loss"], noisy[7]["val_loss"] = 0.40, 0.46
    assert hist.shape(noisy, 2) == "generalising"
    # The same rise kept up over the last epochs, from a lowest early in the run, is overfitting.
    losses = [0.6, 0.5, 0.45, 0.5, 0.55, 0.6, 0.6, 0.62]
    kept = [
        {**row, "val_loss": loss, "val_accuracy": row["val_accuracy"] - 0.03}  # and a gap of 7 points
        for row, loss in zip(GENERALISING, losses, strict=True)
    ]
    assert hist.shape(kept, 2) == "overfitting" and "since its lowest at epoch 3" in hist.reading(kept, 2)


def test_a_steady_climb_is_not_a_swing():
    climbing = curve([0.5, 0.6, 0.7, 0.8, 0.9], [0.5, 0.6, 0.7, 0.8, 0.88], [0.69, 0.6, 0.5, 0.4, 0.3], [0.69] * 5)
    assert hist.shape(climbing, 2) != "swinging"


def test_a_run_still_training_and_no_run_at_all():
    assert hist.reading([]) == "No epoch has finished yet." and hist.shape([]) == "empty"
    one = curve([0.9], [0.88], [0.2], [0.25])
    assert hist.shape(one, 2) == "generalising" and hist.reading(one, 2).startswith("Training accuracy 90%")
    with_gaps = [*GENERALISING[:3], {**GENERALISING[3], "val_loss": math.nan}]
    assert hist.shape(with_gaps, 2) in {"generalising", "underfitting"}, "an epoch with a missing number is skipped"


def test_the_comparison_says_augmentation_hurt_and_names_the_knobs_that_change_a_digit():
    text = hist.augmentation_effect([DIGITS_WITHOUT], [DIGITS_WITH], DIGIT_KNOBS, classes=10)
    assert text.startswith("Augmentation hurt validation by 28 points"), text
    assert "99% without, 71% with" in text, "each run's last three epochs"
    assert "horizontal flips, vertical flips and rotations of up to 180° can change what an image means" in text
    assert "zoom" not in text, "only the knobs that can change what an image means"
    mild = Augmentation(rotation_range=20.0, zoom_range=0.2)
    plain = hist.augmentation_effect([DIGITS_WITHOUT], [DIGITS_WITH], mild, classes=10)
    assert "hurt" in plain and "flips" not in plain and "too strong" in plain


def test_the_comparison_says_augmentation_helped_by_so_many_points():
    text = hist.augmentation_effect([OVERFITTING], [GENERALISING], Augmentation(rotation_range=40.0))
    # The last three epochs: 73.0% without, 78.0% with.
    assert text.startswith("Augmentation helped validation by 5 points"), text
    assert "73% without, 78% with" in text


def test_the_comparison_sees_no_difference_within_the_seeds_spread():
    low, high = GENERALISING, [{**row, "val_accuracy": row["val_accuracy"] - 0.06} for row in GENERALISING]
    near = [{**row, "val_accuracy": row["val_accuracy"] - 0.02} for row in GENERALISING]
    text = hist.augmentation_effect([low, high], [near, near])
    assert text.startswith("Augmentation made no difference within the seeds' spread"), text
    one_seed = hist.augmentation_effect([low], [near])
    assert one_seed.startswith("Augmentation made no clear difference"), one_seed
    apart = hist.augmentation_effect([high, high], [low, low])
    assert apart.startswith("Augmentation helped validation by 6 points"), "ranges apart: a difference"


def test_the_comparison_waits_for_both_sides_and_for_learning():
    assert hist.augmentation_effect([GENERALISING], []) is None
    assert hist.augmentation_effect([[]], [GENERALISING]) is None
    assert "Neither side has learned yet" in hist.augmentation_effect([AT_CHANCE], [AT_CHANCE_TOO], classes=2)


def test_best_epoch_is_the_epoch_of_the_highest_validation_accuracy_and_its_accuracy_is_that_epochs():
    summary = hist.summarize(OVERFITTING)
    assert summary["best_epoch"] == 7 and summary["best_val_accuracy"] == pytest.approx(0.74)
    row = hist.table_row(summary)
    assert row == {
        "accuracy": "100.0%",
        "val_accuracy": "73.0%",
        "gap": "27.0%",
        "best_val_accuracy": "74.0%",
        "best_epoch": "7",
    }
    assert set(row) <= set(hist.TABLE_LABELS) and all("_" not in label for label in hist.TABLE_LABELS.values())


def test_the_command_line_prints_the_same_readings_and_what_augmentation_did(capsys):
    from lab.cli.report import _print_readings
    from lab.config import RunConfig

    config = RunConfig(dataset="folder", data_dir="digits", augmentation=DIGIT_KNOBS)
    _print_readings({"baseline": DIGITS_WITHOUT, "augmented": DIGITS_WITH}, config)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"baseline: {hist.reading(DIGITS_WITHOUT)}"
    assert lines[1].startswith("augmented: Training accuracy 76%")
    assert lines[2].startswith("augmentation: Augmentation hurt validation by 28 points") and "flips" in lines[2]
    _print_readings({"baseline": [AT_CHANCE, AT_CHANCE_TOO], "augmented": [GENERALISING, GENERALISING]}, config)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("baseline (mean): Training accuracy") and "has not learned yet" in lines[0]
