# ruff: noqa: F811  (tests take the `lab_env` fixture imported from test_page by name)
"""The lesson atlas on the page: a fresh server answers the default lesson's comparison with no training job."""

from __future__ import annotations

from test_page import TRAIN, lab_env  # noqa: F401 (lab_env: a fixture, shared with test_page)

from lab.config import RunConfig
from lab.presets import load_preset


def test_a_fresh_server_shows_the_default_lesson_at_once_from_the_atlas(lab_env, monkeypatch):
    monkeypatch.setenv("LAB_ATLAS", "1")  # the tests' default is off (tests/conftest.py)
    fake = lab_env.use_fake_trainer()
    page = lab_env.page().run()
    config = RunConfig.from_dict(page.config())
    assert config == load_preset("quick").config, "the page starts on the quick lesson, as the atlas recorded it"
    page.click(TRAIN)
    keys = page.active_runs()
    assert keys == (config.without_augmentation().key(), config.key())
    assert all(lab_env.worker.status(key).done for key in keys), "answered at once"
    assert lab_env.worker.queue_snapshot() == [] and all(not trainer.calls for trainer in fake.instances)
    page.run()
    # The live comparison's two readings (the recorded runs below name their length: "(20 epochs)").
    readings = [
        m for m in page.texts("markdown") if m.startswith(("**Without augmentation:**", "**With augmentation:**"))
    ]
    assert len(readings) == 2, readings
