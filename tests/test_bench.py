"""`python -m tools.bench` as a smoke test: tiny settings on the builtin cartoons written to a temp folder.

Nothing here asserts a timing (the machine is shared and noisy): only the shape of the JSON, that every
figure is a positive number, and that the ratios are the ones the epoch seconds give.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.bench import cli, data, memory, sizes, variants
from tools.bench import group as grouping

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {"course_plain", "course_aug", "lab_plain", "lab_aug", "floor"}
RATIOS = {"lab_aug_over_lab_plain", "lab_aug_over_floor", "lab_aug_over_course_aug"}


def run_bench(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-m", "tools.bench", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def positive(value) -> bool:
    return isinstance(value, int | float) and value > 0


@pytest.fixture(scope="module")
def tiny() -> dict:
    done = run_bench(
        "--size", "48", "--epochs", "2", "--train-images", "40", "--data", "builtin",
        "--extras", "lab_plain_u8", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_json_has_every_variant_and_ratio(tiny):
    assert tiny["size"] == 48
    for key in ("epoch_seconds", "cpu_seconds", "images_per_second", "peak_mb"):
        assert set(tiny[key]) == VARIANTS, key
        assert all(positive(v) for v in tiny[key].values()), (key, tiny[key])
    assert RATIOS <= set(tiny["ratios"])
    assert all(positive(v) for v in tiny["ratios"].values()), tiny["ratios"]
    # One size: `results` holds that one size, the same figures as the top level.
    assert [r["size"] for r in tiny["results"]] == [48]
    assert tiny["results"][0]["epoch_seconds"] == tiny["epoch_seconds"]
    assert tiny["machine"]["cpus"] >= 1 and tiny["machine"]["tensorflow"]


def test_ratios_are_the_epoch_seconds_divided(tiny):
    seconds = tiny["epoch_seconds"]
    for name, (top, bottom) in sizes.RATIOS.items():
        assert tiny["ratios"][name] == pytest.approx(seconds[top] / seconds[bottom]), name
    cpu = tiny["cpu_seconds"]
    for name, (top, bottom) in sizes.RATIOS.items():
        assert tiny["cpu_ratios"][name] == pytest.approx(cpu[top] / cpu[bottom]), name
    for variant, rate in tiny["images_per_second"].items():
        assert rate == pytest.approx(40 / seconds[variant]), variant


def test_every_variant_trained_the_same_images_for_the_asked_epochs(tiny):
    runs = tiny["results"][0]["runs"]
    for name in VARIANTS | {"lab_plain_u8"}:
        run = runs[name]
        assert "error" not in run, run
        assert run["images"] == 40 and run["steps"] == 2, name
        assert len(run["epoch_seconds_all"]) == 1 + 2, name  # one warm-up epoch, two measured
        assert run["peak_mb"] >= run["rss_after_import_mb"] > 0, name


def test_an_extra_is_reported_against_its_base_measured_beside_it(tiny):
    extra = tiny["extras"]["lab_plain_u8"]
    assert extra["base"] == "lab_plain" and extra["error"] is None
    assert extra["over_base"] == pytest.approx(extra["epoch_seconds"] / extra["base_epoch_seconds"])
    assert extra["cpu_over_base"] == pytest.approx(extra["cpu_seconds"] / extra["base_cpu_seconds"])
    # The base ran again in the extra's group, beside it: its own figures, not the core group's.
    again = tiny["results"][0]["extra_bases"]["lab_plain"]
    assert again["epoch_seconds"] == extra["base_epoch_seconds"]


def test_groups_put_each_extra_beside_its_base():
    groups = grouping.plan_groups(list(variants.CORE), list(variants.EXTRAS))
    assert groups[0] == list(variants.CORE)
    assert sorted(n for g in groups[1:] for n in g if n in variants.EXTRAS) == sorted(variants.EXTRAS)
    for group in groups[1:]:
        assert len(group) <= 6
        for name in group:
            if name in variants.EXTRAS:
                assert variants.EXTRAS[name].base in group, (name, group)


def test_several_sizes_are_listed_in_order(tmp_path):
    done = run_bench(
        "--size", "48,56", "--epochs", "1", "--train-images", "20", "--data", "builtin",
        "--variants", "lab_plain,floor", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert [r["size"] for r in report["results"]] == [48, 56]
    assert report["size"] == 48
    for result in report["results"]:
        assert positive(result["epoch_seconds"]["lab_plain"]) and positive(result["epoch_seconds"]["floor"])
        assert result["epoch_seconds"]["course_plain"] is None  # not asked for: null, not a made-up figure
        assert result["ratios"]["lab_plain_over_floor"] == pytest.approx(
            result["epoch_seconds"]["lab_plain"] / result["epoch_seconds"]["floor"]
        )


def test_arguments():
    assert cli.parse_sizes(["150,64", "96"]) == [150, 64, 96]
    assert cli.parse_sizes(None) == [150, 64]
    assert cli.parse_extras("all") == list(variants.EXTRAS)
    assert cli.parse_extras("none") == []
    with pytest.raises(SystemExit):
        cli.parse_extras("warp_drive")
    for name, extra in variants.EXTRAS.items():
        assert extra.base in variants.CORE, name
    assert cli.parse_train_images("1000", [150, 64]) == {150: 1000, 64: 1000}
    assert cli.parse_train_images("150:1000", [150, 64]) == {150: 1000, 64: 0}


def test_a_subset_folder_links_the_same_class_balanced_images(tmp_path, image_folder):
    source = image_folder(train=10, validation=3)
    subset = data.subset_folder(source, tmp_path / "subset", 8, seed=1)
    for split, count in (("train", 4), ("validation", 3)):
        for name in ("cats", "dogs"):
            files = sorted((subset / split / name).iterdir())
            assert len(files) == count, (split, name)
            assert all(f.is_symlink() and f.resolve().parent == source / split / name for f in files)


def test_growth_slope():
    assert memory._slope([100.0, 101.0, 102.0, 103.0]) == pytest.approx(1.0)
    assert memory._slope([5.0, 5.0, 5.0]) == pytest.approx(0.0)


def test_together_measures_both_sides_four_ways_and_each_learns_what_it_learns_alone():
    """`python -m tools.bench.together` at tiny settings: every mode reported, ratios to `apart`, the same lesson."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    tiny = ["--preset", "quick", "--epochs", "1", "--train-images", "20", "--repeats", "1", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "tools.bench.together", *tiny],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    modes = report["modes"]
    assert set(modes) == {"apart", "threads", "processes", "shared"}
    for figures in modes.values():
        assert positive(figures["wall_seconds"]) and positive(figures["cpu_seconds"])
        assert figures["wall_over_apart"] == pytest.approx(figures["wall_seconds"] / modes["apart"]["wall_seconds"])
        assert set(figures["finals"]) == {"baseline", "augmented"}
    assert modes["apart"]["wall_over_apart"] == 1
    # Two threads train exactly what one after the other trains (tests/test_train.py checks every epoch).
    assert modes["threads"]["finals"] == modes["apart"]["finals"]


def _rows(accuracy: float, val_accuracy: float, epochs: int = 3) -> list[dict]:
    return [
        {"epoch": e, "loss": 0.5, "accuracy": accuracy, "val_loss": 0.6, "val_accuracy": val_accuracy, "seconds": 1.0}
        for e in range(1, epochs + 1)
    ]


def test_the_page_benchmark_judges_the_lesson_on_the_finished_runs_it_finds_in_the_store(tmp_path):
    """`tools.bench.lesson_page` reads each side's last epoch from the page's store and applies the thresholds
    `tools.bench.lessons` (and tests/test_cli.py) apply to the command line."""
    from lab.presets import load_preset
    from lab.runs.store import RunStore
    from tools.bench.lesson_page import finals
    from tools.bench.lessons import lesson_held

    config = load_preset("quick").config
    store = RunStore(tmp_path)
    store.seed(config.without_augmentation(), _rows(1.0, 0.63))
    store.seed(config, _rows(0.92, 0.84))
    sides = finals(tmp_path)
    assert sides["baseline"]["accuracy"] == 1.0 and sides["augmented"]["val_accuracy"] == 0.84
    assert sides["baseline"]["gap"] == pytest.approx(0.37)
    assert lesson_held("quick", sides)
    # The augmented side no better than the baseline's validation + 0.15: the lesson does not hold.
    other = RunStore(tmp_path / "other")
    other.seed(config.without_augmentation(), _rows(1.0, 0.63))
    other.seed(config, _rows(0.92, 0.70))
    assert not lesson_held("quick", finals(tmp_path / "other"))
