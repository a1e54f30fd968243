"""The command line as a user drives it: a subprocess, its exit code, its output and its run folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lab.config import RunConfig
from lab.errors import RunCancelled, TrainingFailed
from lab.history import COLUMNS
from lab.presets import list_presets, load_preset

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LAB_SHARED_DATASETS", REPO.parent / "shared" / "datasets"))
CATS_AND_DOGS = SHARED / "cats_and_dogs_filtered"


def run_lab(*args: str, cwd: Path = REPO, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-m", "lab", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_every_preset_loads_and_the_course_preset_is_the_course_experiment():
    assert {"quick", "cats_vs_dogs_course", "cats_vs_dogs_quick", "horses_or_humans_course"} <= set(list_presets())
    course = load_preset("cats_vs_dogs_course").config
    aug = course.augmentation
    assert (course.dataset, course.image_size, course.batch_size, course.epochs) == ("cats_vs_dogs", 150, 20, 100)
    assert course.learning_rate == pytest.approx(1e-4)
    assert (aug.rotation_range, aug.width_shift_range, aug.height_shift_range) == (40, 0.2, 0.2)
    assert (aug.shear_range, aug.zoom_range, aug.horizontal_flip, aug.fill_mode) == (0.2, 0.2, True, "nearest")
    assert aug.rescale == pytest.approx(1 / 255)
    assert load_preset("quick").config.dataset == "builtin"


@pytest.mark.parametrize(
    "args, words",
    [
        (["compare", "no_such_preset"], "no preset 'no_such_preset'"),
        (["compare", "quick", "--set", "epochs=0"], "epochs = 0 is out of range"),
        (["compare", "quick", "--set", "rotation_range=500"], "augmentation.rotation_range"),
        (["compare", "quick", "--set", "colour=red"], "unknown field 'colour'"),
        (["compare", "quick", "--set", "epochs"], "FIELD=VALUE"),
        (["compare", "quick", "--data", "/no/such/folder"], "no such folder"),
        (
            [
                "compare",
                "quick",
                "--set",
                "rotation_range=0",
                "--set",
                "width_shift_range=0",
                "--set",
                "height_shift_range=0",
                "--set",
                "zoom_range=0",
                "--set",
                "horizontal_flip=false",
            ],
            "no augmentation",
        ),
        (["frobnicate"], "invalid choice"),
        (["compare", "quick", "--seeds", "0"], "--seeds 0: use 1 to 10"),
        (["compare", "quick", "--seeds", "11"], "--seeds 11: use 1 to 10"),
        (["compare", "quick", "--seeds", "two"], "invalid int value"),
        (
            ["compare", "quick", "--seeds", "3", "--set", "seed=2147483646"],
            "the last seed, 2147483648, is out of range",
        ),
        (["compare", "quick", "--seeds", "2", "--record", "x"], "--record saves one run per side"),
    ],
)
def test_bad_arguments_exit_nonzero_with_a_one_line_reason(args, words):
    result = run_lab(*args, timeout=120)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("python -m lab")]
    assert len(lines) == 1 and words in lines[0], result.stderr


def test_one_class_folder_is_refused_with_a_clear_message(tmp_path):
    from PIL import Image

    (tmp_path / "only_cats").mkdir()
    Image.new("RGB", (60, 60), "red").save(tmp_path / "only_cats" / "a.png")
    result = run_lab("run", "quick", "--data", str(tmp_path), timeout=120)
    assert result.returncode == 2
    assert "only one class" in result.stderr


def test_help_explains_every_option():
    result = run_lab("compare", "--help", timeout=60)
    assert result.returncode == 0
    for option in ("--data", "--set", "--json", "--out", "PRESET"):
        assert option in result.stdout


@pytest.mark.parametrize(
    "error, code, said",
    [
        (KeyboardInterrupt(), 130, "cancelled"),
        (RunCancelled([]), 130, None),
        (TrainingFailed("training diverged at epoch 1"), 1, "python -m lab: training failed: training diverged"),
    ],
    ids=["ctrl-c", "cancelled", "failed"],
)
@pytest.mark.parametrize("command", [["run", "quick"], ["compare", "quick", "--seeds", "2"]], ids=["run", "seeds"])
def test_a_cancelled_or_failed_run_ends_with_its_exit_code_and_one_line(
    tmp_path, monkeypatch, capsys, command, error, code, said
):
    from lab import cli
    from lab.training import train

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(train, "train", fail)
    monkeypatch.setattr(train, "compare", fail)
    assert cli.main([*command, "--out", str(tmp_path / "out"), "--quiet"]) == code
    lines = capsys.readouterr().err.splitlines()
    if said is None:
        assert lines == []
    else:
        assert len(lines) == 1 and said in lines[0], lines


def test_run_writes_history_and_exact_configuration_to_the_run_folder(tmp_path):
    out = tmp_path / "run"
    result = run_lab(
        "run",
        "quick",
        "--set",
        "epochs=2",
        "--set",
        "train_images=40",
        "--set",
        "image_size=48",
        "--out",
        str(out),
        "--json",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = last_json(result.stdout)
    assert set(report) == {"runs", "seconds"} and set(report["runs"]) == {"run"}
    for key in ("accuracy", "val_accuracy", "loss", "val_loss", "best_val_accuracy", "best_epoch", "gap", "seconds"):
        assert key in report["runs"]["run"]
    assert "epoch   1/2" in result.stdout and "epoch   2/2" in result.stdout  # progress per epoch
    saved = RunConfig.from_toml((out / "config.toml").read_text())
    expected = load_preset("quick").config.with_overrides({"epochs": 2, "train_images": 40, "image_size": 48})
    assert saved == expected
    assert RunConfig.from_json((out / "config.json").read_text()) == expected
    history = pd.read_csv(out / "run.csv")
    assert list(history.columns) == COLUMNS and len(history) == 2
    assert report["runs"]["run"]["val_accuracy"] == pytest.approx(history["val_accuracy"].iloc[-1])


def test_compare_quick_shows_the_lesson(tmp_path):
    """The promise of the default preset: the baseline memorises, augmentation generalises."""
    result = run_lab("compare", "quick", "--out", str(tmp_path / "cmp"), "--json", timeout=600)
    assert result.returncode == 0, result.stderr
    runs = last_json(result.stdout)["runs"]
    baseline, augmented = runs["baseline"], runs["augmented"]
    assert baseline["accuracy"] >= 0.95
    assert baseline["val_accuracy"] <= baseline["accuracy"] - 0.20
    assert augmented["val_accuracy"] >= baseline["val_accuracy"] + 0.15
    assert (tmp_path / "cmp" / "baseline.csv").is_file() and (tmp_path / "cmp" / "augmented.csv").is_file()


def test_compare_json_gives_each_runs_confusion_matrix_and_the_folder_its_misclassified_images(tmp_path):
    out = tmp_path / "cmp"
    tiny = ["--set", "epochs=2", "--set", "train_images=40", "--set", "image_size=48"]
    result = run_lab("compare", "quick", *tiny, "--out", str(out), "--json", "--quiet", timeout=300)
    assert result.returncode == 0, result.stderr
    runs = last_json(result.stdout)["runs"]
    wrong = {}
    for side in ("baseline", "augmented"):
        summary = runs[side]
        matrix = summary["confusion_matrix"]
        assert summary["classes"] == ["cats", "dogs"]
        assert len(matrix) == 2 and all(len(row) == 2 for row in matrix) and sum(map(sum, matrix)) == 300
        # Rows are the true classes: the builtin validation set holds 150 of each.
        assert [sum(row) for row in matrix] == [150, 150]
        assert (matrix[0][0] + matrix[1][1]) / 300 == pytest.approx(summary["val_accuracy"], abs=1e-6)
        wrong[side] = matrix[0][1] + matrix[1][0]
        assert (out / side / "weights.npz").is_file() and (out / side / "predictions.npz").is_file()
    assert json.loads((out / "summary.json").read_text())["runs"]["baseline"]["confusion_matrix"]
    table = pd.read_csv(out / "misclassified.csv")
    assert list(table.columns) == [
        "file",
        "true_class",
        "baseline_prediction",
        "baseline_confidence",
        "augmented_prediction",
        "augmented_confidence",
    ]
    assert max(wrong.values()) <= len(table) <= sum(wrong.values())
    assert table["file"].str.match(r"builtin/\d+$").all()
    assert (table["baseline_prediction"] != table["true_class"]).sum() == wrong["baseline"]
    assert table["augmented_confidence"].between(0.5, 1).all()


def test_compare_with_seeds_trains_each_side_per_seed_and_reports_the_means(tmp_path):
    out = tmp_path / "seeds"
    tiny = ["--set", "epochs=2", "--set", "train_images=40", "--set", "image_size=48"]
    result = run_lab("compare", "quick", *tiny, "--seeds", "2", "--out", str(out), "--json", timeout=300)
    assert result.returncode == 0, result.stderr
    report = last_json(result.stdout)
    assert set(report) == {"runs", "per_seed", "seeds", "seconds"} and report["seeds"] == [42, 43]
    assert "seed 42: baseline val_acc" in result.stdout and "seed 43: baseline val_acc" in result.stdout
    assert "augmented 43 epoch   2/2" in result.stdout, "progress names the side and the seed"
    assert "(mean ± std of 2 seeds)" in result.stdout
    assert json.loads((out / "summary.json").read_text()) == report
    for side in ("baseline", "augmented"):
        runs = report["per_seed"][side]
        assert [r["seed"] for r in runs] == [42, 43]
        finals = []
        for run in runs:
            history = pd.read_csv(out / f"{side}-seed{run['seed']}.csv")
            assert list(history.columns) == COLUMNS and len(history) == 2
            assert run["val_accuracy"] == pytest.approx(history["val_accuracy"].iloc[-1])
            finals.append(run["val_accuracy"])
        mean = report["runs"][side]
        assert mean["seeds"] == 2
        assert mean["val_accuracy"] == pytest.approx(sum(finals) / 2)
        assert mean["val_accuracy_std"] == pytest.approx(abs(finals[0] - finals[1]) / 2**0.5)
        for run in runs:
            matrix = run["confusion_matrix"]
            assert run["classes"] == ["cats", "dogs"] and sum(map(sum, matrix)) == 300
            assert (matrix[0][0] + matrix[1][1]) / 300 == pytest.approx(run["val_accuracy"], abs=1e-6)
            assert (out / f"seed{run['seed']}" / side / "predictions.npz").is_file()
        assert f"{side} (mean): Training accuracy" in result.stdout


@pytest.mark.realdata
@pytest.mark.skipif(not CATS_AND_DOGS.is_dir(), reason=f"real dataset not found at {CATS_AND_DOGS}")
def test_cats_vs_dogs_quick_shows_the_lesson_on_the_real_photos(tmp_path):
    result = run_lab(
        "compare",
        "cats_vs_dogs_quick",
        "--data",
        str(CATS_AND_DOGS),
        "--out",
        str(tmp_path / "cvd"),
        "--json",
        "--quiet",
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr
    runs = last_json(result.stdout)["runs"]
    baseline_gap, augmented_gap = runs["baseline"]["gap"], runs["augmented"]["gap"]
    assert baseline_gap >= 0.15
    assert abs(augmented_gap) <= baseline_gap / 2
