"""The child-process trainer with real TensorFlow runs, kept tiny (48 px, 40 images, 1-3 epochs).

One trainer is shared by the module so the child imports TensorFlow once; each test still
stands alone (a test that needs a fresh child makes its own). The worker calls this trainer
exactly as it would call `lab.training.train.train`: `trainer(config, on_epoch=..., should_stop=...)`.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.config import RunConfig
from lab.errors import RunCancelled, TrainingFailed
from lab.history import COLUMNS, to_frame
from lab.runs import trainer as subprocess_trainer
from lab.runs.trainer import SubprocessTrainer
from lab.training.child import UNUSED_PACKAGES

REPO = Path(__file__).resolve().parents[1]

TINY = RunConfig(image_size=48, train_images=40, epochs=2, batch_size=20, augmentation={"rotation_range": 20.0})


@pytest.fixture(scope="module")
def trainer():
    trainer = SubprocessTrainer()
    yield trainer
    trainer.close()


def child_pid(trainer: SubprocessTrainer) -> int | None:
    child = trainer._child
    return child.pid if child is not None and child.poll() is None else None


def train(trainer: SubprocessTrainer, config: RunConfig, **kwargs):
    rows: list[dict] = []
    history = trainer(config, on_epoch=rows.append, **kwargs)
    return history, rows


def test_a_tiny_run_returns_its_history_and_reports_every_epoch(trainer):
    rows_back, rows = train(trainer, TINY)
    history = to_frame(rows_back)
    assert [list(row) for row in rows_back] == [COLUMNS] * 2
    assert list(history["epoch"]) == [1, 2]
    assert [row["epoch"] for row in rows] == [1, 2], "on_epoch is called once per epoch, in order"
    assert rows_back == rows, "the rows the child reported, as they came"
    assert history[["accuracy", "val_accuracy"]].stack().between(0, 1).all()
    assert (history["seconds"] > 0).all()
    assert child_pid(trainer) is not None, "the child stays up for the next job"


def compiled_packages(names) -> list[str]:
    """Those of `names` installed here with compiled extensions: a process that imported one maps its files."""
    found = []
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec and spec.submodule_search_locations:
            folder = Path(next(iter(spec.submodule_search_locations)))
            if any(folder.rglob("*.so")):
                found.append(name)
    return found


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads the child's memory map (Linux /proc)")
def test_the_child_trains_and_cancels_without_loading_the_packages_it_does_not_need():
    """pandas is about 60 MB of the child's memory, and Keras would import it if let (docs/performance.md)."""
    trainer = SubprocessTrainer()  # its own: the shared one's job count (it recycles every 20) stays the others'
    try:
        train(trainer, TINY.replace(epochs=1, augmentation={"horizontal_flip": True}))
        with pytest.raises(RunCancelled):
            train(trainer, TINY.replace(epochs=3), should_stop=lambda: True)
        with open(f"/proc/{child_pid(trainer)}/maps", encoding="utf-8", errors="replace") as maps:
            mapped = maps.read()
    finally:
        trainer.close()
    assert "tensorflow" in mapped, "the check reads the right process: the one that trained"
    checked = compiled_packages(UNUSED_PACKAGES)
    assert "pandas" in checked and "h5py" in checked, "Streamlit needs pandas and Keras h5py: both are installed"
    loaded = [name for name in checked if f"/{name}/" in mapped]
    assert not loaded, f"loaded into the training child: {loaded}"


def test_the_command_line_imports_tensorflow_without_pandas_yet_can_import_pandas_afterwards():
    """`python -m lab run|compare` imports TensorFlow lean (`import_tensorflow_lean`, issue 15), and still reads
    several seeds' means with pandas afterwards."""
    code = (
        "import sys\n"
        "from lab.training.child import import_tensorflow_lean\n"
        "import_tensorflow_lean()\n"
        "assert 'tensorflow' in sys.modules and 'keras' in sys.modules\n"
        "print(sorted(n for n in ('pandas', 'scipy', 'h5py') if n in sys.modules))\n"
        "import pandas\n"
        "print(pandas.DataFrame({'a': [1]}).shape)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[:2] == ["[]", "(1, 1)"]


def test_a_second_job_reuses_the_same_child(trainer):
    train(trainer, TINY.replace(epochs=1))
    pid = child_pid(trainer)
    start = time.monotonic()
    history, rows = train(trainer, TINY.replace(epochs=1, seed=7))
    assert child_pid(trainer) == pid, "no new process: TensorFlow is imported once"
    assert len(history) == 1 and len(rows) == 1
    print(f"a warm one-epoch job: {time.monotonic() - start:.1f} s")


def test_a_comparisons_second_job_gives_the_history_it_gives_alone_in_a_fresh_child(trainer):
    # The child keeps the baseline's decoded images and compiled model for the augmented job:
    # what that job learns must not depend on it.
    augmented = TINY.replace(epochs=2, seed=11)
    train(trainer, augmented.without_augmentation())
    after_baseline, _ = train(trainer, augmented)
    fresh = SubprocessTrainer()
    try:
        alone, _ = train(fresh, augmented)
    finally:
        fresh.close()
    numbers = [c for c in COLUMNS if c != "seconds"]
    assert [[row[c] for c in numbers] for row in after_baseline] == [[row[c] for c in numbers] for row in alone]


def test_the_child_is_replaced_when_a_repeated_kind_of_job_leaves_it_bigger_not_for_a_bigger_first_job(
    monkeypatch,
):
    # The child's memory, as the parent reads it after each job (faked: real growth takes many runs).
    readings = iter([700.0, 1000.0, 1090.0, 1101.0, 700.0])
    monkeypatch.setattr(subprocess_trainer, "_rss_mb", lambda pid: next(readings))
    trainer = SubprocessTrainer()
    try:
        small, large = TINY.replace(epochs=1), TINY.replace(epochs=1, image_size=64)
        train(trainer, small)
        pid = child_pid(trainer)
        train(trainer, large)
        assert child_pid(trainer) == pid, "a first job of a bigger kind may leave the child bigger"
        train(trainer, small.replace(seed=2))
        assert child_pid(trainer) == pid, "90 MB over the most any earlier job left: kept"
        train(trainer, small.replace(seed=3))
        assert child_pid(trainer) is None, "101 MB over it after a job of a known kind: replaced"
        train(trainer, small.replace(seed=4))
        assert child_pid(trainer) not in (None, pid), "the next job starts a fresh child"
    finally:
        trainer.close()


def test_should_stop_cancels_within_two_seconds_with_the_partial_history(trainer):
    train(trainer, TINY.replace(epochs=1))  # a warm child: what follows measures the stop, not the start
    pid = child_pid(trainer)
    asked: list[float] = []

    def should_stop() -> bool:
        return bool(asked)

    def on_epoch(row: dict) -> None:
        if row["epoch"] == 1:
            asked.append(time.monotonic())

    config = TINY.replace(epochs=50, train_images=0, seed=3)  # long enough to be stopped mid-run
    with pytest.raises(RunCancelled) as cancelled:
        trainer(config, on_epoch=on_epoch, should_stop=should_stop)
    seconds = time.monotonic() - asked[0]
    print(f"stopped {seconds:.2f} s after the request")
    assert seconds < 2.5, f"the run took {seconds:.1f} s to stop"
    partial = cancelled.value.history
    assert 1 <= len(partial) < 50 and [row["epoch"] for row in partial] == list(range(1, len(partial) + 1))
    assert child_pid(trainer) == pid, "a cancelled run stops in the child; the child is kept"
    history, _ = train(trainer, TINY.replace(epochs=1, seed=4))
    assert len(history) == 1 and child_pid(trainer) == pid


def test_a_stop_requested_before_the_first_batch_is_not_lost(trainer):
    train(trainer, TINY.replace(epochs=1))
    pid = child_pid(trainer)
    for attempt in range(8):  # the race is timing-dependent: a few tries catch it most of the time
        start = time.monotonic()
        with pytest.raises(RunCancelled) as cancelled:
            trainer(TINY.replace(epochs=30, train_images=0, seed=100 + attempt), should_stop=lambda: True)
        assert time.monotonic() - start < 2.5
        assert cancelled.value.history == []
        assert child_pid(trainer) == pid


def test_an_error_in_the_run_fails_it_with_the_message_and_the_child_serves_the_next(trainer, tmp_path):
    train(trainer, TINY.replace(epochs=1))
    pid = child_pid(trainer)
    missing = tmp_path / "no-such-folder"
    with pytest.raises(TrainingFailed) as failed:
        trainer(RunConfig(dataset="folder", data_dir=str(missing), image_size=48, epochs=1))
    message = str(failed.value)
    assert "DatasetError" in message and f"no folder at {missing}" in message
    assert child_pid(trainer) == pid, "an error inside a run does not take the child down"
    history, _ = train(trainer, TINY.replace(epochs=1, seed=5))
    assert len(history) == 1


def test_a_killed_child_fails_the_run_and_the_next_job_starts_a_fresh_child(trainer):
    train(trainer, TINY.replace(epochs=1))
    killed: list[int] = []

    def on_epoch(row: dict) -> None:
        if not killed:
            killed.append(trainer._child.pid)
            os.kill(trainer._child.pid, signal.SIGKILL)

    with pytest.raises(TrainingFailed) as failed:
        trainer(TINY.replace(epochs=3, seed=8), on_epoch=on_epoch)
    message = str(failed.value)
    assert "exit code -9" in message and "out of memory" in message, message
    assert child_pid(trainer) is None

    history, rows = train(trainer, TINY.replace(epochs=1, seed=6))
    assert len(history) == 1 and len(rows) == 1
    assert child_pid(trainer) not in (None, killed[0]), "a new child trained the next job"


def test_close_ends_the_child():
    trainer = SubprocessTrainer()
    child = trainer._ensure_child()
    assert child.poll() is None
    trainer.close()
    assert child.poll() is not None, "the child process has ended"
    assert trainer._child is None
    trainer.close()  # closing twice is harmless


def _tensorflow_mapped(pid: int) -> bool:
    return "tensorflow" in Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc")
def test_a_trainer_started_ahead_loads_tensorflow_before_the_first_job_and_says_it_is_warm():
    idle = SubprocessTrainer()
    assert idle._child is None and not idle.warm, "a plain trainer starts nothing until a job comes"
    trainer = SubprocessTrainer(start_now=True)
    try:
        pid = child_pid(trainer)
        assert pid is not None, "the child is started with the trainer"
        deadline = time.monotonic() + 300  # a generous bound on a loaded machine, not a timing check
        while not trainer.warm and time.monotonic() < deadline:
            time.sleep(0.2)
        assert trainer.warm
        assert trainer.device.startswith(("CPU (", "GPU: ")), "the child says what it trains on"
        assert _tensorflow_mapped(pid), "TensorFlow is loaded before any job was sent"
        history, _ = train(trainer, TINY.replace(epochs=1, seed=8))
        assert len(history) == 1 and child_pid(trainer) == pid, "the warm child trained the first job"
    finally:
        trainer.close()
    assert not trainer.warm
