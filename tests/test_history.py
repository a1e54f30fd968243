"""Several seeds per side: which runs a comparison asks for, and the numbers across seeds."""

from __future__ import annotations

import math
import threading

import pandas as pd
import pytest
from page_helpers import wait_for

from app import runs as app_runs
from lab import history as hist
from lab.config import RunConfig
from lab.errors import RunCancelled
from lab.history import COLUMNS, from_rows
from lab.runs.store import RunStore
from lab.runs.worker import MAX_WAITING_PER_OWNER, Worker


def history(val_accuracy, accuracy=None, val_loss=None) -> list[dict]:
    """A history whose every column is known: accuracy defaults to val_accuracy + 0.1, loss to 1 - accuracy."""
    rows = []
    for epoch, val in enumerate(val_accuracy, start=1):
        acc = accuracy[epoch - 1] if accuracy else val + 0.1
        rows.append(
            {
                "epoch": epoch,
                "accuracy": acc,
                "val_accuracy": val,
                "loss": 1 - acc,
                "val_loss": val_loss[epoch - 1] if val_loss else 1 - val,
                "seconds": float(epoch),
            }
        )
    return from_rows(rows)


def test_from_rows_keeps_the_columns_as_numbers_and_refuses_what_is_not_a_history():
    rows = [{"epoch": 1.0, "loss": "0.5", "accuracy": 1, "val_loss": None, "val_accuracy": "", "seconds": 2, "x": 9}]
    (row,) = from_rows(rows)
    assert list(row) == COLUMNS and row["epoch"] == 1 and isinstance(row["epoch"], int)
    assert row["loss"] == 0.5 and row["accuracy"] == 1.0 and isinstance(row["accuracy"], float)
    assert math.isnan(row["val_loss"]) and math.isnan(row["val_accuracy"])
    assert rows[0]["loss"] == "0.5", "a copy: the caller's rows stay as they were"
    for bad in ([{"epoch": 1}], [{**history([0.5])[0], "loss": "lots"}], [{**history([0.5])[0], "epoch": 1.5}]):
        with pytest.raises(ValueError):
            from_rows(bad)
    for not_rows in ("epoch,loss", {"epoch": 1}, pd.DataFrame(history([0.5])), None):
        with pytest.raises(ValueError):
            from_rows(not_rows)


def test_csv_round_trips_exactly_and_reads_like_pandas():
    rows = history([1 / 3, 2 / 7, 0.1])
    rows[1]["val_loss"] = math.nan
    text = hist.to_csv(rows)
    assert text == pd.DataFrame(rows).to_csv(index=False), "the file format of the run store is unchanged"
    back = hist.from_csv(text)
    assert back[0] == rows[0] and back[2] == rows[2] and math.isnan(back[1]["val_loss"])
    assert hist.from_csv(hist.to_csv([])) == [] and hist.to_csv([]) == ",".join(COLUMNS) + "\n"
    assert hist.to_csv(hist.to_frame(rows)) == text, "a DataFrame writes as its rows do"
    for bad in ("", "epoch,loss\n1,0.5\n", hist.to_csv(rows) + "4,1,2,3,4,5,6\n", text.replace("0.1", "x", 1)):
        with pytest.raises(ValueError):
            hist.from_csv(bad)


def test_summarize_reads_rows_and_dataframes_alike():
    rows = history([0.5, 0.7, 0.6], val_loss=[0.5, 0.3, 0.3])
    summary = hist.summarize(rows)
    assert summary == hist.summarize(hist.to_frame(rows))
    assert summary["epochs"] == 3 and summary["best_epoch"] == 2, "the epoch of the highest validation accuracy"
    assert summary["val_accuracy"] == pytest.approx(0.6) and summary["best_val_accuracy"] == pytest.approx(0.7)
    assert summary["gap"] == pytest.approx(0.1) and summary["seconds"] == pytest.approx(6.0)
    assert hist.summarize([]) == hist.summarize(hist.to_frame([])) == {"epochs": 0}
    assert hist.reading([]) == hist.reading(hist.to_frame([])) == "No epoch has finished yet."
    tied = history([0.5, 0.7, 0.7])
    assert hist.summarize(tied)["best_epoch"] == 2, "the first of equal accuracies"


def test_aggregate_gives_mean_min_max_and_std_per_epoch():
    table = hist.aggregate([history([0.5, 0.6, 0.7]), history([0.7, 0.8, 0.9]), history([0.6, 0.7, 0.8])])
    assert table["epoch"].tolist() == [1, 2, 3]
    assert table["runs"].tolist() == [3, 3, 3]
    assert table["val_accuracy"].tolist() == pytest.approx([0.6, 0.7, 0.8])
    assert table["val_accuracy_min"].tolist() == pytest.approx([0.5, 0.6, 0.7])
    assert table["val_accuracy_max"].tolist() == pytest.approx([0.7, 0.8, 0.9])
    # Sample standard deviation of (a - 0.1, a, a + 0.1) is 0.1.
    assert table["val_accuracy_std"].tolist() == pytest.approx([0.1, 0.1, 0.1])
    assert table["accuracy"].tolist() == pytest.approx([0.7, 0.8, 0.9])
    assert table["loss_max"].tolist() == pytest.approx([0.4, 0.3, 0.2])


def test_aggregate_of_runs_still_training_counts_only_the_runs_that_reached_each_epoch():
    table = hist.aggregate([history([0.5, 0.6, 0.7]), history([0.7, 0.8]), history([])])
    assert table["runs"].tolist() == [2, 2, 1]
    assert table["val_accuracy"].tolist() == pytest.approx([0.6, 0.7, 0.7])
    assert table.loc[2, "val_accuracy_min"] == table.loc[2, "val_accuracy_max"] == pytest.approx(0.7)
    assert math.isnan(table.loc[2, "val_accuracy_std"]), "one run has no spread"
    assert hist.mean_history(table).columns.tolist() == COLUMNS


def test_aggregate_of_nothing_is_an_empty_table_with_the_columns():
    table = hist.aggregate([history([])])
    assert table.empty and {"epoch", "runs", "val_accuracy", "val_accuracy_max"} <= set(table.columns)
    assert hist.mean_history(table).empty


def test_summarize_seeds_gives_mean_and_std_of_each_runs_own_summary():
    runs = [history([0.5, 0.6], accuracy=[0.6, 0.9]), history([0.7, 0.8], accuracy=[0.8, 0.9])]
    summary = hist.summarize_seeds([*runs, history([])])
    assert summary["seeds"] == 2 and summary["epochs"] == 2
    assert summary["val_accuracy"] == pytest.approx(0.7)
    assert summary["val_accuracy_std"] == pytest.approx(math.sqrt(0.02))  # 0.6 and 0.8
    assert summary["gap"] == pytest.approx(0.2)  # 0.3 and 0.1
    assert summary["best_val_accuracy"] == pytest.approx(0.7)
    assert summary["best_epochs"] == (2, 2)
    one = hist.summarize_seeds([runs[0]])
    assert one["seeds"] == 1 and one["val_accuracy"] == pytest.approx(0.6) and math.isnan(one["val_accuracy_std"])
    assert hist.summarize_seeds([]) == {"epochs": 0, "seeds": 0}


def test_format_mean_std():
    assert hist.format_mean_std(0.712, 0.023) == "71.2% ± 2.3%"
    assert hist.format_mean_std(0.712, math.nan) == "71.2%"


def test_verdict_says_whether_the_seeds_ranges_overlap():
    apart = hist.verdict([history([0.60]), history([0.64])], [history([0.80]), history([0.84])])
    assert apart is not None and "+20.0 points" in apart and "do not overlap" in apart
    close = hist.verdict([history([0.60]), history([0.70])], [history([0.66]), history([0.72])])
    assert close is not None and "+4.0 points" in close and "may be the luck of the seed" in close
    assert hist.verdict([history([0.6])], [history([0.8]), history([0.9])]) is None, "needs two seeds per side"


def test_comparison_configs_pair_the_sides_seed_by_seed():
    config = RunConfig(seed=7, augmentation={"rotation_range": 30.0})
    configs = hist.comparison_configs(config, 3)
    assert [c.seed for c in configs] == [7, 7, 8, 8, 9, 9]
    assert [c.augmentation.enabled for c in configs] == [False, True] * 3
    without, with_ = hist.split_sides(configs)
    assert [c.seed for c in without] == [7, 8, 9] and all(c.augmentation.enabled for c in with_)
    assert all(c.replace(seed=7) == config for c in with_), "only the seed differs"
    # One seed is a plain comparison: the same runs, so the same cached results.
    assert [c.key() for c in hist.comparison_configs(config, 1)] == [
        config.without_augmentation().key(),
        config.key(),
    ]
    with pytest.raises(ValueError):
        hist.comparison_configs(config, 0)
    with pytest.raises(ValueError):
        hist.split_sides([1, 2, 3])


def test_submit_in_order_hands_over_what_the_queue_takes_and_keeps_the_rest(tmp_path):
    release = threading.Event()

    def slow_train(config, on_epoch=None, should_stop=None):
        release.wait(10)
        return history([0.5])

    worker = Worker(RunStore(tmp_path / "runs"), train_fn=slow_train)
    try:
        configs = hist.comparison_configs(RunConfig(epochs=1, augmentation={"rotation_range": 30.0}), 5)
        left = app_runs.submit_in_order(worker, configs, owner="visitor")
        submitted = configs[: len(configs) - len(left)]
        # At most MAX_WAITING_PER_OWNER wait, plus the one the worker may already have started.
        assert MAX_WAITING_PER_OWNER <= len(submitted) <= MAX_WAITING_PER_OWNER + 1
        assert left == configs[len(submitted) :]
        assert all(worker.status(c.key()).active for c in submitted)
        assert all(worker.status(c.key()).state == "unknown" for c in left)
        assert app_runs.submit_in_order(worker, configs[:2], owner="visitor") == [], "queued runs are shared, not added"
    finally:
        release.set()
        worker.shutdown(timeout=15)


def test_summary_row_shows_mean_and_std_and_the_best_epochs():
    runs = [history([0.5, 0.6], val_loss=[0.5, 0.4]), history([0.7, 0.8], val_loss=[0.3, 0.4])]
    row = hist.summary_row(hist.summarize_seeds(runs), 3)
    assert row["seeds"] == "2 of 3"
    assert row["val_accuracy"] == "70.0% ± 14.1%"
    assert row["gap"] == "10.0% ± 0.0%"
    assert row["best_epoch"] == "2", "each seed's best epoch is its highest validation accuracy"
    later = history([0.9, 0.6], val_loss=[0.3, 0.4])
    assert hist.summary_row(hist.summarize_seeds([runs[0], later]), 2)["best_epoch"] == "1–2"


def test_unsubmitted_names_the_runs_a_closed_page_had_not_handed_over_while_the_comparison_runs(tmp_path):
    release = threading.Event()

    def stoppable_train(config, on_epoch=None, should_stop=None):
        while not release.wait(0.01):
            if should_stop is not None and should_stop():
                raise RunCancelled(history([]))
        return history([0.5])

    worker = Worker(RunStore(tmp_path / "runs"), train_fn=stoppable_train)
    try:
        configs = hist.comparison_configs(RunConfig(epochs=1, augmentation={"rotation_range": 30.0}), 3)
        keys = [c.key() for c in configs]
        assert app_runs.unsubmitted(worker, keys) == [], "nothing submitted, nothing running: a link never starts one"
        for config in configs[:4]:
            worker.submit(config, owner="closed page")
        assert app_runs.unsubmitted(worker, keys) == configs[4:]
        assert app_runs.unsubmitted(worker, keys[:2]) == [], "one seed is submitted whole"
        assert app_runs.unsubmitted(worker, [*keys[:4], "other", "runs"]) == [], "only the runs of one comparison"
        for key in keys[:4]:
            worker.cancel(key)
        wait_for(lambda: not any(worker.status(k).active for k in keys), 10, step=0.05, what="the runs to stop")
        assert app_runs.unsubmitted(worker, keys) == [], "a cancelled comparison stays cancelled"
    finally:
        release.set()
        worker.shutdown(timeout=15)
