"""The run store: what survives on disk, what counts as a cache hit, what a crash leaves."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from lab.config import RunConfig
from lab.runs import store as store_module
from lab.runs.store import RunStore, default_store_root

REPO = Path(__file__).resolve().parents[1]


def rows(n: int, start: int = 1) -> list[dict]:
    # Values with long binary expansions, so a lossy CSV round trip would show.
    return [
        {
            "epoch": e,
            "loss": 1.0 / (e + 2),
            "accuracy": 0.1 * e + 1 / 3,
            "val_loss": 1.0 / (e + 1) + 0.1,
            "val_accuracy": 0.05 * e + 1 / 7,
            "seconds": 0.25 + e / 1000,
        }
        for e in range(start, start + n)
    ]


def epochs(history: list[dict]) -> list[int]:
    return [row["epoch"] for row in history]


def config(seed: int = 1, epochs: int = 3) -> RunConfig:
    return RunConfig(epochs=epochs, seed=seed)


def finished_run(store: RunStore, cfg: RunConfig, epochs: int | None = None) -> str:
    key = cfg.key()
    store.record_queued(cfg)
    store.record_start(key)
    n = cfg.epochs if epochs is None else epochs
    for e in range(1, n + 1):
        store.record_epoch(key, rows(e))
    store.record_finish(key, rows(n))
    return key


def test_a_finished_run_reads_back_exactly(tmp_path):
    store = RunStore(tmp_path / "runs")
    cfg = config(epochs=3)
    key = finished_run(store, cfg)

    run = RunStore(tmp_path / "runs").load(key)  # a fresh store object: only the disk counts
    assert run is not None
    assert run.config == cfg
    assert run.status.state == "done"
    assert (run.status.epochs_done, run.status.epochs_total) == (3, 3)
    assert run.status.created and run.status.started and run.status.finished
    assert run.status.seconds == pytest.approx(sum(r["seconds"] for r in rows(3)))
    assert run.history == rows(3)  # exactly: every float survives the CSV
    assert json.loads((tmp_path / "runs" / key / "config.json").read_text()) == cfg.to_dict()


def test_history_csv_keeps_its_format_so_older_run_stores_still_read(tmp_path):
    """history.csv is what pandas' `to_csv(index=False)` wrote before: byte for byte, both ways."""
    store = RunStore(tmp_path)
    cfg = config(epochs=4)
    key = cfg.key()
    store.record_queued(cfg)
    store.record_start(key)
    history = rows(3)
    history[1]["val_loss"] = math.nan  # a missing number is an empty field
    store.record_epoch(key, history)
    written = (tmp_path / key / "history.csv").read_text()
    assert written == pd.DataFrame(history).to_csv(index=False)

    older = pd.DataFrame(rows(4)).to_csv(index=False)
    (tmp_path / key / "history.csv").write_text(older)
    assert RunStore(tmp_path).load(key).history == rows(4)
    store.record_epoch(key, history)
    read = RunStore(tmp_path).load(key).history
    assert math.isnan(read[1]["val_loss"]) and read[0] == history[0] and read[2] == history[2]


@pytest.mark.parametrize(
    "bad",
    [[{"epoch": 1, "loss": 0.5}], [{**rows(1)[0], "loss": "lots"}], "epoch,loss", pd.DataFrame(rows(1))],
    ids=["missing-keys", "not-a-number", "text", "dataframe"],
)
def test_a_history_that_is_not_epoch_rows_is_refused_and_nothing_is_written(tmp_path, bad):
    store = RunStore(tmp_path)
    cfg = config()
    store.record_queued(cfg)
    store.record_start(cfg.key())
    store.record_epoch(cfg.key(), rows(1))
    with pytest.raises(ValueError):
        store.record_epoch(cfg.key(), bad)
    with pytest.raises(ValueError):
        store.record_finish(cfg.key(), bad)
    run = RunStore(tmp_path).load(cfg.key())
    assert run.status.state == "running" and run.history == rows(1)


def test_history_is_on_disk_after_every_epoch(tmp_path):
    store = RunStore(tmp_path)
    cfg = config(epochs=5)
    key = cfg.key()
    store.record_queued(cfg)
    store.record_start(key)
    store.record_epoch(key, rows(2))

    run = RunStore(tmp_path).load(key)
    assert run.status.state == "running"
    assert run.status.epochs_done == 2
    assert epochs(run.history) == [1, 2]


def test_only_done_runs_are_cache_hits(tmp_path):
    store = RunStore(tmp_path)
    done = finished_run(store, config(seed=1))

    failed_cfg, cancelled_cfg, running_cfg = config(seed=2), config(seed=3), config(seed=4)
    for cfg in (failed_cfg, cancelled_cfg, running_cfg):
        store.record_queued(cfg)
        store.record_start(cfg.key())
        store.record_epoch(cfg.key(), rows(1))
    store.record_failure(failed_cfg.key(), "ValueError: boom")
    store.record_cancel(cancelled_cfg.key())

    assert store.cache_hit(done) is not None
    for cfg in (failed_cfg, cancelled_cfg, running_cfg):
        assert store.load(cfg.key()) is not None
        assert store.cache_hit(cfg.key()) is None
    assert store.load(failed_cfg.key()).status.error == "ValueError: boom"
    assert len(store.load(cancelled_cfg.key()).history) == 1  # partial history is kept


def test_rerunning_a_failed_key_starts_a_clean_record(tmp_path):
    store = RunStore(tmp_path)
    cfg = config(epochs=4)
    key = cfg.key()
    store.record_queued(cfg)
    store.record_start(key)
    store.record_epoch(key, rows(2))
    store.record_failure(key, "RuntimeError: out of memory", rows(2))

    store.record_queued(cfg)
    run = store.load(key)
    assert run.status.state == "queued"
    assert run.status.error is None
    assert run.status.started is None and run.status.finished is None
    assert run.status.epochs_done == 0
    assert run.history == []

    store.record_start(key)
    store.record_finish(key, rows(4))
    assert store.cache_hit(key).status.error is None
    assert len(store.cache_hit(key).history) == 4


def test_a_done_run_is_not_overwritten_by_accident(tmp_path):
    store = RunStore(tmp_path)
    cfg = config()
    key = finished_run(store, cfg)
    with pytest.raises(ValueError, match="already done"):
        store.record_queued(cfg)
    assert store.cache_hit(key) is not None
    store.record_queued(cfg, overwrite_done=True)
    assert store.load(key).status.state == "queued"


def test_list_runs_newest_first(tmp_path, monkeypatch):
    stamps = iter(f"2030-01-01T00:00:{s:02d}.000000+00:00" for s in range(60))
    monkeypatch.setattr(store_module, "_now", lambda: next(stamps))
    store = RunStore(tmp_path)
    first = finished_run(store, config(seed=1))
    second = config(seed=2)
    store.record_queued(second)
    third = finished_run(store, config(seed=3))

    assert [r.key for r in store.list_runs()] == [third, second.key(), first]
    assert [r.key for r in store.list_runs(limit=2)] == [third, second.key()]
    # Re-running an old key makes it the newest.
    store.record_queued(config(seed=1), overwrite_done=True)
    assert store.list_runs()[0].key == first


def test_failed_replace_leaves_the_old_file_whole(tmp_path, monkeypatch):
    """A crash after the temporary file is written but before the rename (here: the
    rename fails) must leave the previous history and status readable and unchanged."""
    store = RunStore(tmp_path)
    cfg = config(epochs=5)
    key = cfg.key()
    store.record_queued(cfg)
    store.record_start(key)
    store.record_epoch(key, rows(2))
    folder = tmp_path / key
    before = {name: (folder / name).read_bytes() for name in ("history.csv", "status.json")}

    def crash(src, dst):
        raise OSError("disk pulled out")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk pulled out"):
        store.record_epoch(key, rows(3))
    with pytest.raises(OSError):
        store.record_finish(key, rows(5))
    monkeypatch.undo()

    assert {name: (folder / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "history.csv", "status.json"]
    run = RunStore(tmp_path).load(key)
    assert run.status.state == "running" and epochs(run.history) == [1, 2]
    assert RunStore(tmp_path).cache_hit(key) is None


def test_crash_while_writing_never_exposes_a_partial_file(tmp_path, monkeypatch):
    """Kill the writer halfway through writing the bytes: the real file must not change."""
    store = RunStore(tmp_path)
    cfg = config(epochs=5)
    key = cfg.key()
    store.record_queued(cfg)
    store.record_start(key)
    store.record_epoch(key, rows(1))
    history_path = tmp_path / key / "history.csv"
    before = history_path.read_bytes()

    real_fdopen = os.fdopen

    class HalfWriter:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()
            return False

        def write(self, text):
            self.handle.write(text[: len(text) // 2])
            self.handle.flush()
            raise KeyboardInterrupt  # the process dies mid-write

    monkeypatch.setattr(os, "fdopen", lambda *a, **k: HalfWriter(real_fdopen(*a, **k)))
    with pytest.raises(KeyboardInterrupt):
        store.record_epoch(key, rows(4))
    monkeypatch.undo()

    assert history_path.read_bytes() == before
    assert epochs(RunStore(tmp_path).load(key).history) == [1]


def test_leftover_temporary_files_are_ignored(tmp_path):
    store = RunStore(tmp_path)
    key = finished_run(store, config())
    (tmp_path / key / ".status.json.x1y2.tmp").write_text('{"state": "runn')
    (tmp_path / key / ".history.csv.x1y2.tmp").write_text("epoch,loss\n1,")
    run = RunStore(tmp_path).load(key)
    assert run.done and len(run.history) == 3


def _run_python(code: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=REPO, **kwargs)


def test_runs_left_by_a_dead_process_become_interrupted(tmp_path):
    """A process that dies mid-run leaves "running"; the next worker must not wait for it,
    nor serve it as a result. A run whose process is still alive is left alone."""
    child = _run_python(
        f"""
        import sys
        from lab.config import RunConfig
        from lab.runs.store import RunStore
        store = RunStore({str(tmp_path)!r})
        running, queued = RunConfig(epochs=5, seed=1), RunConfig(epochs=5, seed=2)
        store.record_queued(running)
        store.record_start(running.key())
        store.record_epoch(running.key(), {rows(2)!r})
        store.record_queued(queued)
        print("written", flush=True)
        sys.stdin.readline()  # stay alive until the test lets go
        """,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "written"
        running_key, queued_key = RunConfig(epochs=5, seed=1).key(), RunConfig(epochs=5, seed=2).key()

        assert RunStore(tmp_path).mark_interrupted() == []  # its owner is alive
        assert RunStore(tmp_path).load(running_key).status.state == "running"
    finally:
        child.communicate("\n", timeout=30)
    assert child.returncode == 0

    store = RunStore(tmp_path)
    assert sorted(store.mark_interrupted()) == sorted([running_key, queued_key])
    run = store.load(running_key)
    assert run.status.state == "interrupted"
    assert epochs(run.history) == [1, 2]  # kept, whole
    assert store.load(queued_key).status.state == "interrupted"
    assert store.cache_hit(running_key) is None
    assert store.mark_interrupted() == []  # nothing left to mark


def test_runs_of_this_process_are_not_marked_interrupted(tmp_path):
    store = RunStore(tmp_path)
    cfg = config()
    store.record_queued(cfg)
    store.record_start(cfg.key())
    assert RunStore(tmp_path).mark_interrupted() == []
    assert store.load(cfg.key()).status.state == "running"


def test_a_previous_process_with_our_pid_counts_as_gone(tmp_path, monkeypatch):
    """A restarted container often reuses the pid: the pid alone must not keep a run alive."""
    store = RunStore(tmp_path)
    cfg = config()
    store.record_queued(cfg)
    store.record_start(cfg.key())
    monkeypatch.setattr(store_module, "_PROCESS_TOKEN", "a-new-process")
    assert store.mark_interrupted() == [cfg.key()]


def test_damaged_run_folders_are_skipped_with_a_warning(tmp_path, caplog):
    store = RunStore(tmp_path)
    good = finished_run(store, config(seed=1))

    bad_status = finished_run(store, config(seed=2))
    (tmp_path / bad_status / "status.json").write_text("{not json")
    bad_history = finished_run(store, config(seed=3))
    (tmp_path / bad_history / "history.csv").write_text("epoch,loss\n1,0.5,7,8\nzzz\n")
    no_config = finished_run(store, config(seed=4))
    (tmp_path / no_config / "config.json").unlink()
    bad_state = finished_run(store, config(seed=5))
    status = json.loads((tmp_path / bad_state / "status.json").read_text())
    (tmp_path / bad_state / "status.json").write_text(json.dumps({**status, "state": "exploded"}))
    wrong_config = finished_run(store, config(seed=6))
    (tmp_path / wrong_config / "config.json").write_text(config(seed=99).to_json())
    (tmp_path / "0123456789abcdef").mkdir()  # an empty run folder
    (tmp_path / "notes.txt").write_text("not a run")
    (tmp_path / "not-a-key").mkdir()

    with caplog.at_level(logging.WARNING, logger="lab.runs.store"):
        runs = store.list_runs()
    assert [r.key for r in runs] == [good]
    for key in (bad_status, bad_history, no_config, bad_state, wrong_config, "0123456789abcdef"):
        assert store.load(key) is None
        assert store.cache_hit(key) is None
        assert any(key in record.getMessage() for record in caplog.records), key

    # Polling again does not repeat the warnings.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lab.runs.store"):
        store.list_runs()
    assert caplog.records == []

    # Training the key again replaces the damaged folder with a clean record.
    store.record_queued(config(seed=2))
    assert store.load(bad_status).status.state == "queued"


def test_keys_that_are_not_run_keys_never_touch_the_file_system(tmp_path):
    store = RunStore(tmp_path / "runs")
    (tmp_path / "status.json").write_text("{}")
    for key in ("..", "../runs", "/etc", "", "ABCDEF0123456789"):
        assert store.load(key) is None
        with pytest.raises(ValueError):
            store.record_start(key)


def test_default_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_RUN_STORE", str(tmp_path / "elsewhere"))
    assert default_store_root() == tmp_path / "elsewhere"
    assert RunStore().root == tmp_path / "elsewhere"
    assert (tmp_path / "elsewhere").is_dir()
    monkeypatch.delenv("LAB_RUN_STORE")
    assert default_store_root() == Path.home() / ".cache" / "overfitting-lab" / "runs"


def test_a_run_cancelled_for_a_reason_keeps_the_reason(tmp_path):
    store = RunStore(tmp_path)
    clicked, unwatched = config(seed=1), config(seed=2)
    for cfg in (clicked, unwatched):
        store.record_queued(cfg)
        store.record_start(cfg.key())
        store.record_epoch(cfg.key(), rows(1))
    store.record_cancel(clicked.key())
    store.record_cancel(unwatched.key(), rows(1), reason="cancelled: nobody was watching the run")

    assert store.load(clicked.key()).status.error is None
    status = store.load(unwatched.key()).status
    assert (status.state, status.error, status.epochs_done) == (
        "cancelled",
        "cancelled: nobody was watching the run",
        1,
    )
    assert store.cache_hit(unwatched.key()) is None
