"""The data-size curve (lab/runs/sweep.py) and `python -m lab sweep PRESET --train-images ...`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_image_folder

from lab.config import ConfigError, RunConfig
from lab.history import comparison_configs
from lab.runs import sweep

REPO = Path(__file__).resolve().parents[1]


def run_lab(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-m", "lab", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_sizes_are_read_sorted_and_checked_against_the_training_split():
    assert sweep.parse_sizes("200, 50,100,50", available=300, minimum=2) == [50, 100, 200]
    for text, words in [
        ("50,abc", "whole numbers"),
        ("50,-3", "whole numbers"),
        ("50", "2 to 8 different sizes"),
        ("1,2,3,4,5,6,7,8,9", "2 to 8"),
        ("1,50", "at least 2 images"),
        ("50,400", "only 300 images"),
    ]:
        with pytest.raises(ConfigError, match=words):
            sweep.parse_sizes(text, available=300, minimum=2)


def test_the_page_sweeps_five_sizes_up_to_the_split_or_the_hosted_cap():
    assert sweep.default_sizes(300, minimum=2) == [60, 120, 180, 240, 300]
    assert sweep.default_sizes(2000, minimum=2, cap=1000) == [200, 400, 600, 800, 1000]
    assert sweep.default_sizes(9, minimum=3) == [6, 7, 9]  # never under two images per class
    assert sweep.default_sizes(4, minimum=2) == [4]  # too small to sweep


def test_each_size_is_the_comparison_the_page_trains_at_that_size_so_runs_are_shared():
    config = RunConfig.from_dict({"augmentation": {"rotation_range": 30}})
    configs = sweep.sweep_configs(config, [50, 100])
    assert [(c.train_images, c.augmentation.enabled) for c in configs] == [
        (50, False),
        (50, True),
        (100, False),
        (100, True),
    ]
    same = comparison_configs(config.replace(train_images=100), 1)
    assert [c.key() for c in configs[2:]] == [c.key() for c in same]
    with pytest.raises(ConfigError, match="no augmentation"):
        sweep.sweep_configs(config.without_augmentation(), [50])


def rows(val_accuracies: list[float]) -> list[dict]:
    return [
        {"epoch": e, "loss": 0.5, "accuracy": 0.9, "val_loss": 0.6, "val_accuracy": v, "seconds": 1.0}
        for e, v in enumerate(val_accuracies, start=1)
    ]


def test_points_table_and_chart_hold_the_last_epochs_validation_accuracy_per_side():
    config = RunConfig.from_dict({"augmentation": {"rotation_range": 30}})
    configs = sweep.sweep_configs(config, [50, 100])
    found = sweep.points(configs, [rows([0.6, 0.55]), rows([0.6, 0.7]), rows([0.65, 0.6]), []])
    assert [(p.train_images, p.side, p.val_accuracy, p.best_val_accuracy) for p in found] == [
        (50, "baseline", 0.55, 0.6),
        (50, "augmented", 0.7, 0.7),
        (100, "baseline", 0.6, 0.65),
    ]
    assert sweep.table(found) == [
        {"train_images": 50, "baseline": 0.55, "augmented": 0.7},
        {"train_images": 100, "baseline": 0.6, "augmented": None},
    ]
    traces = {t.name: t for t in sweep.sweep_figure(found, [50, 100]).data}
    assert list(traces["Without augmentation"].x) == [50, 100] and list(traces["Without augmentation"].y) == [0.55, 0.6]
    assert list(traces["With augmentation"].y) == [0.7]


@pytest.mark.parametrize("classes", [("cats", "dogs"), ("apples", "bananas", "cherries")])
def test_the_command_line_sweep_trains_each_size_both_ways_and_reports_json(tmp_path, classes):
    if len(classes) == 2:
        preset = "quick"
        sizes = "4,8"
        more = ["--set", "image_size=48"]
    else:
        root = write_image_folder(tmp_path / "fruit", classes=classes, train=4, validation=2, size=(48, 48))
        preset_file = tmp_path / "fruit.toml"
        preset_file.write_text(
            RunConfig.from_dict(
                {
                    "dataset": "folder",
                    "data_dir": str(root),
                    "image_size": 48,
                    "augmentation": {"horizontal_flip": True},
                }
            ).to_toml()
        )
        preset, sizes, more = str(preset_file), "3,12", []
    out = tmp_path / "out"
    done = run_lab("sweep", preset, "--train-images", sizes, "--set", "epochs=1", *more, "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    wanted = [int(s) for s in sizes.split(",")]
    assert report["sizes"] == wanted
    assert [(p["train_images"], p["side"]) for p in report["points"]] == [
        (size, side) for size in wanted for side in ("baseline", "augmented")
    ]
    assert all(0 <= p["val_accuracy"] <= 1 and p["epochs"] == 1 for p in report["points"])
    assert [row["train_images"] for row in report["table"]] == wanted
    written = (out / "sweep.csv").read_text().splitlines()
    assert written[0].startswith("train_images,side,val_accuracy") and len(written) == 1 + 2 * len(wanted)
    assert (out / f"baseline-{wanted[0]}.csv").exists() and json.loads((out / "summary.json").read_text())["sizes"]
    assert "validation" in done.stdout and "without" in done.stdout


@pytest.mark.parametrize(
    "args, words",
    [
        (["--train-images", "50,x"], "give whole numbers"),
        (["--train-images", "50,400"], "only 300 images"),
        (["--train-images", "50,100", "--set", "rotation_range=0", "--set", "width_shift_range=0"], None),
        (["--train-images", "50,100", "--set", "epochs"], "FIELD=VALUE"),
    ],
)
def test_bad_sweeps_say_why_in_one_line(args, words, tmp_path):
    if words is None:  # the quick preset with every augmentation switched off
        args = [*args, "--set", "height_shift_range=0", "--set", "zoom_range=0", "--set", "horizontal_flip=false"]
        words = "no augmentation"
    done = run_lab("sweep", "quick", *args, "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert words in done.stderr and len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
