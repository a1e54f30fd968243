"""Hosted mode through the page, as a second visitor: another's runs and paths stay private, caps are said aloud."""

from __future__ import annotations

import json

from lab_files import class_files, zip_bytes
from page_helpers import seed_run, wait_for
from test_page import lab_env  # noqa: F401 (fixture: an isolated page with its own store and data folder)

from lab.config import RunConfig
from lab.data.ingest import ingest_upload
from lab.history import comparison_configs
from lab.presets import load_preset


def history_options(page) -> list[str]:
    return list(page.selectbox("Left run").options) if page.at.selectbox else []


def someone_elses_upload_run(lab_env) -> tuple[str, str]:  # noqa: F811
    """A run another visitor trained on their own upload; returns its key and the upload's folder."""
    report = ingest_upload(zip_bytes(class_files(("birds", "fish"), 5, prefix="mine/")), "mine.zip", lab_env.data_root)
    config = RunConfig(dataset="folder", data_dir=str(report.data_dir), epochs=2, image_size=48)
    return seed_run(lab_env.store, config), str(report.data_dir)


def test_hosted_history_shows_a_visitor_their_own_runs_and_the_lessons_never_anothers(lab_env, monkeypatch):  # noqa: F811
    monkeypatch.setenv("LAB_HOSTED", "1")
    theirs, folder = someone_elses_upload_run(lab_env)
    lesson = [seed_run(lab_env.store, c) for c in comparison_configs(load_preset("quick").config, 1)]

    page = lab_env.page().run()
    options = [o for o in history_options(page)]
    keys = [str(o).split(" ")[0] for o in options]
    table = page.at.dataframe[-1].value
    assert theirs not in table.index and not any(theirs in str(o) for o in options), "another visitor's run"
    assert set(lesson) <= set(table.index), "the lesson's shared runs are everyone's"
    assert folder not in json.dumps([str(k) for k in keys])

    # A visitor's own run (one they opened by its link) is theirs to see.
    mine = lab_env.page({"runs": f"{lesson[0]},{theirs}"}).run()
    assert theirs in mine.at.dataframe[-1].value.index


def test_a_laptop_lists_every_run(lab_env):  # noqa: F811
    theirs, _ = someone_elses_upload_run(lab_env)
    page = lab_env.page().run()
    assert theirs in page.at.dataframe[-1].value.index


def test_hosted_failed_run_and_configuration_show_no_server_path(lab_env, monkeypatch):  # noqa: F811
    monkeypatch.setenv("LAB_HOSTED", "1")
    config = load_preset("quick").config.replace(epochs=2)
    pair = comparison_configs(config, 1)
    lab_env.store.record_queued(pair[0])
    lab_env.store.record_start(pair[0].key())
    lab_env.store.record_failure(
        pair[0].key(), f"FileNotFoundError: [Errno 2] No such file: '{lab_env.data_root}/x.png'"
    )
    seed_run(lab_env.store, pair[1])

    page = lab_env.page({"runs": ",".join(c.key() for c in pair)}).run()
    errors = page.texts("error")
    assert any("the run failed" in e for e in errors), errors
    assert not any(str(lab_env.data_root) in e or "file: '/" in e for e in errors), errors


def test_hosted_a_link_over_the_caps_names_every_setting_it_lowered(lab_env, monkeypatch):  # noqa: F811
    monkeypatch.setenv("LAB_HOSTED", "1")
    page = lab_env.page({"preset": "quick", "epochs": "80", "image_size": "150", "seeds": "5"}).run()
    said = " ".join(page.texts("info"))
    for change in ("epochs 80 → 30", "image size 150 px → 96 px", "seeds per side 5 → 3"):
        assert change in said, said
    assert page.config()["epochs"] == 30 and page.config()["image_size"] == 96


def test_a_link_within_the_caps_says_nothing_was_lowered(lab_env, monkeypatch):  # noqa: F811
    monkeypatch.setenv("LAB_HOSTED", "1")
    page = lab_env.page({"preset": "quick", "epochs": "12"}).run()
    assert not any("changed what the link" in text for text in page.texts("info"))


def test_hosted_a_missing_dataset_says_so_calmly_without_server_paths_or_command_lines(lab_env, monkeypatch):  # noqa: F811
    monkeypatch.setenv("LAB_HOSTED", "1")
    page = lab_env.page({"preset": "quick", "dataset": "cats_vs_dogs"}).run()
    shown = " ".join(page.texts("info") + page.texts("error") + page.texts("warning"))
    assert "not on this server yet" in shown
    assert str(lab_env.data_root) not in shown and "python -m lab" not in shown and "--data" not in shown
    assert any(b.label.startswith("Download Cats vs Dogs") for b in page.at.button)


def test_cancel_from_one_of_two_watching_pages_leaves_the_runs_to_the_other_and_says_so(lab_env):  # noqa: F811
    lab_env.use_fake_trainer(epoch_seconds=0.5)
    first = lab_env.page().run()
    first.slider("Epochs").set_value(40)
    first.run()
    first.click("▶ Train both runs")
    keys = first.active_runs()
    # A second browser opens the same runs by the link, and watches them too.
    second = lab_env.page({"runs": ",".join(keys)}).run()
    second.run()
    first.run()
    first.click("■ Cancel")
    assert any("You stopped watching" in text for text in first.texts("info")), first.texts("info")
    assert any(lab_env.worker.status(k).active for k in keys), "the other page still watches: the runs go on"

    second.run()
    second.click("■ Cancel")
    assert any("Cancelled" in text for text in second.texts("info")), second.texts("info")
    wait_for(lambda: not any(lab_env.worker.status(k).active for k in keys), 10, step=0.1, what="the runs to stop")


def test_hosted_a_link_with_more_seeds_than_the_cap_is_not_followed(lab_env, monkeypatch):  # noqa: F811
    monkeypatch.setenv("LAB_HOSTED", "1")
    config = load_preset("quick").config
    keys = [c.key() for c in comparison_configs(config, 5)]  # computed offline, as the issue found
    page = lab_env.page({"runs": ",".join(keys)}).run()
    assert not page.watched_runs()
    assert all(lab_env.worker.status(k).state == "unknown" for k in keys), "nothing queued"


def test_hosted_the_worker_refuses_a_run_over_the_caps_and_the_page_says_why(lab_env, monkeypatch):  # noqa: F811
    monkeypatch.setenv("LAB_HOSTED", "1")
    lab_env.use_fake_trainer()
    page = lab_env.page().run()
    from app.runs import get_worker, submit_in_order

    refusals: list[str] = []
    over = load_preset("quick").config.replace(image_size=150, epochs=80)
    left = submit_in_order(get_worker(), comparison_configs(over, 1), "visitor", 300, refusals)
    assert len(left) == 2 and refusals and "cap" in refusals[0], refusals
    assert page is not None
