"""The compare view says the right thing: titles and readings from each run's own settings, what
differs between two reopened runs, a table in plain words with one best epoch, History's pickers
that follow the runs' states, and a notice when the page's settings no longer match the curves.

Runs are written straight into the run store (`seed_run`, the fake trainer's curves): no training.
"""

from __future__ import annotations

import json

from page_helpers import seed_run
from test_page import lab_env  # noqa: F401 (fixture: an isolated page with its own store and data folder)

from lab.config import RunConfig
from lab.history import comparison_configs, from_rows
from lab.presets import load_preset

BASE = RunConfig(image_size=48, epochs=3)


def chart_titles(page) -> list[str]:
    (chart,) = page.elements("plotly_chart", in_expanders=False)
    layout = json.loads(chart.proto.spec)["layout"]
    return [a["text"] for a in layout["annotations"] if "name" not in a]


def markdown(page) -> list[str]:
    """The page's markdown outside the expanders (the recorded runs have readings of their own)."""
    return [m.value for m in page.elements("markdown", in_expanders=False)]


def bold_lines(page) -> dict[str, str]:
    """Each markdown line "**Label:** text" of the page, by its label."""
    lines = {}
    for text in markdown(page):
        if text.startswith("**") and ":**" in text:
            label, _, rest = text[2:].partition(":**")
            lines[label] = rest.strip()
    return lines


def summary_table(page):
    tables = [d.value for d in page.at.table if "Best epoch" in d.value.index]
    assert len(tables) == 1, "one summary table under the chart"
    return tables[0]


def test_two_augmented_runs_reopened_are_each_titled_and_read_by_their_own_settings(lab_env):  # noqa: F811
    rotated = seed_run(lab_env.store, BASE.replace(augmentation={"rotation_range": 30.0}))
    flipped = seed_run(lab_env.store, BASE.replace(augmentation={"horizontal_flip": True}))
    page = lab_env.page({"runs": f"{rotated},{flipped}"}).run()

    left, right = (
        "With augmentation: rotation 30°, horizontal flip off",
        "With augmentation: rotation off, horizontal flip on",
    )
    assert chart_titles(page) == [left, right], "never 'Without augmentation' for an augmented run"
    lines = bold_lines(page)
    assert lines[left].startswith("Training accuracy") and lines[right].startswith("Training accuracy")
    assert not any(label.startswith("Without augmentation") for label in lines), lines
    assert "What augmentation did" not in lines, "both have augmentation: nothing to say about it"
    differ = next(t for t in markdown(page) if t.startswith("**The two runs differ in**"))
    assert "rotation: 30° on the left, off on the right" in differ
    assert "horizontal flip: off on the left, on on the right" in differ
    assert list(summary_table(page).columns) == [left, right]


def test_a_reopened_pair_in_either_order_says_which_side_has_augmentation_and_what_else_differs(lab_env):  # noqa: F811
    without = seed_run(lab_env.store, BASE.without_augmentation())
    rotated = seed_run(lab_env.store, BASE.replace(epochs=4, augmentation={"rotation_range": 30.0}))
    page = lab_env.page({"runs": f"{rotated},{without}"}).run()

    assert chart_titles(page) == ["With augmentation", "Without augmentation"]
    lines = bold_lines(page)
    assert set(lines) >= {"With augmentation", "Without augmentation", "What augmentation did"}
    # The fake trainer's run without augmentation trails by 30 points, the one with it by 2.
    assert "(overfitting)" in lines["Without augmentation"]
    assert "generalises" in lines["With augmentation"]
    assert lines["What augmentation did"].startswith("Augmentation helped validation by"), lines
    differ = next(t for t in markdown(page) if t.startswith("**The two runs differ in**"))
    assert differ == "**The two runs differ in** epochs: 4 on the left, 3 on the right.", "knobs go without saying"


def test_the_summary_table_speaks_plain_words_with_one_best_epoch_in_percentages(lab_env):  # noqa: F811
    config = BASE.replace(augmentation={"rotation_range": 30.0})
    keys = [seed_run(lab_env.store, c) for c in comparison_configs(config, 1)]
    # The run with augmentation peaks at epoch 2 and falls back: its best is epoch 2, at epoch 2's accuracy.
    lab_env.store.record_finish(keys[1], from_rows(peaked(config)))
    page = lab_env.page({"runs": ",".join(keys)}).run()

    table = summary_table(page)
    assert list(table.columns) == ["Without augmentation", "With augmentation"]
    assert list(table.index) == [
        "Training accuracy",
        "Validation accuracy",
        "Gap (training − validation)",
        "Best validation accuracy",
        "Best epoch",
    ]
    assert table.loc["Best epoch", "With augmentation"] == "2"
    assert table.loc["Best validation accuracy", "With augmentation"] == "80.0%"
    assert table.loc["Validation accuracy", "With augmentation"] == "60.0%"
    assert all(str(v).endswith("%") for v in table.drop(index="Best epoch").to_numpy().ravel())
    assert not any("_" in label for label in [*table.index, *table.columns]), "no code names"
    note = " ".join(page.captions())
    assert "the best epoch is the epoch with the highest validation accuracy" in note


def peaked(config: RunConfig) -> list[dict]:
    values = [(0.6, 0.55, 0.7), (0.8, 0.8, 0.5), (0.9, 0.6, 0.9)]  # (accuracy, validation accuracy, val loss)
    return [
        {"epoch": e, "loss": 1 - a, "accuracy": a, "val_loss": vl, "val_accuracy": va, "seconds": 0.01}
        for e, (a, va, vl) in enumerate(values, start=1)
    ]


def test_historys_pickers_follow_the_runs_state_and_tell_seeds_apart(lab_env):  # noqa: F811
    store = lab_env.store
    done = seed_run(store, BASE.replace(seed=7))
    training = BASE.replace(seed=8)
    key = training.key()
    store.record_queued(training)
    store.record_start(key)
    store.record_epoch(key, from_rows(peaked(training)[:1]))
    page = lab_env.page().run()
    left = page.selectbox("Left run")
    labels = {option: option for option in left.options}
    running = next(label for label in labels if "seed 8" in label)
    assert running.endswith("· running") and "1/3 epochs" in running and "learning rate 0.0001" in running
    assert any("seed 7" in label and label.endswith("· done") for label in labels)
    left.select(key)
    page.run()

    store.record_finish(key, from_rows(peaked(training)))  # the run ends while the page is open
    page.run()
    options = list(page.selectbox("Left run").options)
    assert not any(option.endswith(("· running", "· queued")) for option in options), options
    assert page.selectbox("Left run").value == key, "the run picked stays picked"
    history = page.at.dataframe[-1]
    table = history.value
    assert table.loc[key, "state"] == "done" and table.loc[done, "val_accuracy"].endswith("%")
    shown = {name: column.get("label") for name, column in json.loads(history.proto.columns).items()}
    assert shown["val_accuracy"] == "Validation accuracy" and shown["_index"] == "Run", "plain words on screen"
    assert all(label and "_" not in label for label in shown.values()), shown


def test_the_chart_says_when_the_pages_settings_no_longer_match_it(lab_env):  # noqa: F811
    keys = [seed_run(lab_env.store, c) for c in comparison_configs(load_preset("quick").config, 1)]
    page = lab_env.page({"runs": ",".join(keys)}).run()
    assert not [w for w in page.texts("warning") if "earlier settings" in w], "the page's settings are the curves'"

    page.toggle("Rotation").set_value(False)
    page.toggle("Zoom").set_value(False)
    page.run()
    (notice,) = [w for w in page.texts("warning") if "earlier settings" in w]
    assert notice == (
        "These curves are for earlier settings: rotation 40° (yours: off); zoom ±25% (yours: off). "
        "Train again to see yours."
    )
    page.toggle("Rotation").set_value(True)
    page.toggle("Zoom").set_value(True)
    page.run()
    assert not [w for w in page.texts("warning") if "earlier settings" in w], "back to the curves' settings"
