# ruff: noqa: F811  (tests take the `trainer` fixture imported from test_worker by name)
"""Several runs at once (`lab.runs.parallel`) and the lesson atlas a fresh server is seeded with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_worker import WAIT, FakeTrainer, cfg, trainer, wait_for  # noqa: F401 (trainer: a fixture)

from lab.cli.atlas import atlas_entries
from lab.config import RunConfig
from lab.presets import load_preset
from lab.runs import parallel, parallel_share
from lab.runs.hosting import HostLimits
from lab.runs.seeding import ATLAS_DIR, atlas_folder, seed_from_recordings
from lab.runs.store import RunStore
from lab.runs.worker import OverCap, Worker

REPO = Path(__file__).resolve().parents[1]


class SlotTrainer(FakeTrainer):
    """The fake trainer, saying it takes two runs at once as `ChildPool(2)` and `RayTrainer` do."""

    slots = 2


@pytest.fixture
def pair(tmp_path):
    fake = SlotTrainer()
    worker = Worker(RunStore(tmp_path / "runs"), train_fn=fake)
    yield worker, fake
    fake.release_all()
    assert worker.shutdown(timeout=WAIT)


def test_two_slots_train_two_runs_at_once_and_the_third_waits_its_turn(pair):
    worker, fake = pair
    a, b, c = cfg(1), cfg(2), cfg(3)
    for config in (a, b, c):
        fake.hold(config)
    keys = [worker.submit(config, owner=f"student{n}") for n, config in enumerate((a, b, c))]
    assert fake.started_event(a).wait(WAIT) and fake.started_event(b).wait(WAIT)
    assert [worker.status(key).state for key in keys] == ["running", "running", "queued"]
    assert worker.status(keys[2]).position == 1
    assert worker.queue_snapshot()[2] == keys[2]
    fake.release(a)
    assert wait_for(worker, keys[0]).done
    assert fake.started_event(c).wait(WAIT), "a freed slot takes the next run"
    fake.release_all()
    assert all(wait_for(worker, key).done for key in keys)
    assert fake.max_in_flight == 2


def test_cancelling_one_of_two_running_runs_leaves_the_other_training(pair):
    worker, fake = pair
    a, b = cfg(1), cfg(2)
    fake.hold(a)
    fake.hold(b)
    key_a, key_b = worker.submit(a, owner="x"), worker.submit(b, owner="y")
    assert fake.started_event(a).wait(WAIT) and fake.started_event(b).wait(WAIT)
    assert worker.cancel(key_a) == "cancelled"
    assert wait_for(worker, key_a).state == "cancelled"
    assert worker.status(key_b).state == "running"
    fake.release(b)
    assert wait_for(worker, key_b).done


def test_the_caps_hold_with_several_slots(tmp_path):
    worker = Worker(RunStore(tmp_path / "runs"), train_fn=SlotTrainer(), limits=HostLimits())
    try:
        with pytest.raises(OverCap, match="500 epochs is over"):
            worker.submit(cfg(1, epochs=500).replace(train_images=100), owner="x")
    finally:
        assert worker.shutdown(timeout=WAIT)


def test_shutdown_interrupts_every_running_run(pair):
    worker, fake = pair
    a, b = cfg(1), cfg(2)
    fake.hold(a)
    fake.hold(b)
    keys = [worker.submit(a, owner="x"), worker.submit(b, owner="y")]
    assert fake.started_event(a).wait(WAIT) and fake.started_event(b).wait(WAIT)
    assert worker.shutdown(timeout=WAIT)
    assert [worker.store.load_status(key).state for key in keys] == ["interrupted", "interrupted"]


@pytest.mark.parametrize(("cores", "memory_mb", "runs"), [(1, None, 1), (2, None, 2), (16, None, 8), (16, 4000, 3)])
def test_runs_at_once_follow_the_cores_and_the_memory(cores, memory_mb, runs):
    assert parallel_share.default_runs(cores, memory_mb) == runs


def test_lab_parallel_runs_sets_how_many_and_a_bad_value_says_so(monkeypatch):
    monkeypatch.setenv("LAB_PARALLEL_RUNS", "3")
    assert parallel.parallel_runs() == 3
    monkeypatch.setenv("LAB_PARALLEL_RUNS", "many")
    with pytest.raises(ValueError, match="LAB_PARALLEL_RUNS='many': give a whole number"):
        parallel.parallel_runs()


def test_without_ray_configured_the_server_trains_in_child_processes_and_imports_no_ray():
    code = (
        "import sys; from lab.runs import parallel; pool = parallel.make_trainer(); "
        "print(type(pool).__name__, pool.slots, 'ray' in sys.modules); pool.close()"
    )
    env = {k: v for k, v in os.environ.items() if k != "LAB_RAY_ADDRESS"} | {"LAB_PARALLEL_RUNS": "2"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, check=True)
    assert out.stdout.split() == ["ChildPool", "2", "False"]


def test_children_of_a_pool_get_disjoint_cores_and_threads_to_match():
    pool = parallel.ChildPool(2, cores=[0, 1])
    try:
        shares = [(trainer.cpus, trainer.env["TF_NUM_INTRAOP_THREADS"]) for trainer in pool._trainers]
    finally:
        pool.close()
    assert shares == [({0}, "1"), ({1}, "1")]


# -- the lesson atlas -----------------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["quick", "cats_vs_dogs_quick"])
def test_the_atlas_ships_every_entry_of_the_lesson_presets(preset):
    entries = atlas_entries(load_preset(preset).config)
    assert list(entries)[0] == "baseline" and list(entries)[-1] == "combination"
    for name, config in entries.items():
        recorded = json.loads((ATLAS_DIR / preset / f"{name}.json").read_text(encoding="utf-8"))
        # By key, as the store is seeded: fields added since (at their defaults) leave a configuration's key as it was.
        assert RunConfig.from_dict(recorded["config"]).key() == config.key(), (
            f"{preset}/{name} is its own configuration"
        )
        assert len(recorded["runs"]["run"]["epoch"]) == config.epochs


def test_a_fresh_store_answers_an_atlas_configuration_without_a_training_job(tmp_path, trainer):
    worker = Worker(RunStore(tmp_path / "runs"), train_fn=trainer, atlas=ATLAS_DIR)
    try:
        preset = load_preset("quick").config
        keys = [worker.submit(config, owner="student") for config in (preset.without_augmentation(), preset)]
        statuses = [worker.status(key) for key in keys]
        assert [status.state for status in statuses] == ["done", "done"]
        assert all(status.cached and len(status.history) == preset.epochs for status in statuses)
        assert trainer.calls == [], "no training job"
        other = worker.submit(preset.replace(seed=7), owner="student")  # not in the atlas: trained
        assert wait_for(worker, other).done and trainer.calls == [other]
    finally:
        assert worker.shutdown(timeout=WAIT)


def test_seeding_keeps_a_run_the_store_has_and_skips_a_damaged_recording(tmp_path):
    store = RunStore(tmp_path / "runs")
    atlas = tmp_path / "atlas"
    (atlas / "quick").mkdir(parents=True)
    baseline = (ATLAS_DIR / "quick" / "baseline.json").read_text(encoding="utf-8")
    (atlas / "quick" / "baseline.json").write_text(baseline, encoding="utf-8")
    (atlas / "quick" / "broken.json").write_text("{not json", encoding="utf-8")
    assert seed_from_recordings(store, atlas) == 1
    assert seed_from_recordings(store, atlas) == 0, "a second start writes nothing"
    key = load_preset("quick").config.without_augmentation().key()
    assert store.cache_hit(key) is not None


def test_lab_atlas_0_turns_the_seeding_off(monkeypatch):
    monkeypatch.setenv("LAB_ATLAS", "0")
    assert atlas_folder() is None
    monkeypatch.setenv("LAB_ATLAS", "1")
    assert atlas_folder() == ATLAS_DIR


def test_the_atlas_on_disk_is_small():
    size = sum(path.stat().st_size for path in ATLAS_DIR.rglob("*.json"))
    assert size < 200_000, f"the atlas is {size} bytes"
    assert os.path.isdir(ATLAS_DIR / "quick")


def test_the_atlas_command_lists_its_entries_and_refuses_an_unknown_one(capsys):
    from lab.cli import main

    assert main(["atlas", "quick", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    config = load_preset("quick").config
    assert lines[0].split() == ["baseline", config.without_augmentation().key(), "recorded"]
    assert lines[-1].split() == ["combination", config.key(), "recorded"]
    assert main(["atlas", "quick", "--only", "sepia"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m lab: error: --only sepia: not an entry of this atlas (baseline, rotation_range")
    assert "\n" not in err


def test_the_atlas_command_offline_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    from lab.cli import main
    from lab.data import download

    def offline(name, *args, **kwargs):
        raise download.DownloadError(f"{name} could not be downloaded: are you offline?")

    monkeypatch.setenv("LAB_DATA_DIR", str(tmp_path / "no-data-yet"))
    monkeypatch.setattr(download, "ensure_dataset", offline)
    assert main(["atlas", "cats_vs_dogs_quick", "--only", "baseline", "--force", "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m lab: error: atlas cats_vs_dogs_quick: ") and "offline" in err
    assert "\n" not in err and "Traceback" not in err
