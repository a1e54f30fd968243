"""The command line on a shared host: what it refuses up front, and what a failed run leaves behind.

Training is replaced by a stand-in where the item is about files, so these run in-process in a
blink; one test trains for real (the builtin dataset, one epoch, 48 px, 8 images).
"""

from __future__ import annotations

import errno
from pathlib import Path
from types import SimpleNamespace

import pytest

import lab.presets
import lab.recordings
from lab import cli
from lab.errors import RunCancelled, TrainingFailed
from lab.recordings import load_recording, save_recording
from lab.training import train as training

TINY = ["--set", "epochs=1", "--set", "image_size=48", "--set", "train_images=8"]
ROWS = [{"epoch": 1, "loss": 0.7, "accuracy": 0.5, "val_loss": 0.7, "val_accuracy": 0.5, "seconds": 0.1}]


@pytest.fixture
def recorded(tmp_path, monkeypatch) -> Path:
    """An empty recordings folder in place of experiments/recorded/, so no test touches the shipped ones."""
    folder = tmp_path / "recorded"
    monkeypatch.setattr(lab.recordings, "RECORDINGS_DIR", folder)
    return folder


@pytest.fixture
def trained(monkeypatch) -> list[str]:
    """Training replaced by one fixed epoch; the list says which commands were trained."""
    calls: list[str] = []

    def fake_train(config, on_epoch=None, *args, **kwargs):
        calls.append("train")
        return list(ROWS)

    def fake_compare(config, on_epoch=None, *args, **kwargs):
        calls.append("compare")
        return SimpleNamespace(baseline=list(ROWS), augmented=list(ROWS), config=config)

    monkeypatch.setattr(training, "train", fake_train)
    monkeypatch.setattr(training, "compare", fake_compare)
    return calls


def failing_training(monkeypatch, error: BaseException) -> None:
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(training, "train", fail)
    monkeypatch.setattr(training, "compare", fail)


def error_lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return err.splitlines()


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- 1. --record never replaces a recording unasked ------------------------------------------------------
def test_record_refuses_an_existing_name_before_training(tmp_path, recorded, trained, capsys):
    recorded.mkdir()
    shipped = recorded / "course_150px.json"
    shipped.write_text('{"an 88-minute run": true}\n')
    out = tmp_path / "out"
    assert cli.main(["compare", "quick", "--record", "course_150px", "--out", str(out), "--quiet"]) == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and "--record course_150px: a recording of that name exists" in lines[0], lines
    assert "--force" in lines[0]
    assert trained == [], "nothing was trained"
    assert shipped.read_text() == '{"an 88-minute run": true}\n'
    assert not out.exists(), "no run folder for a refused run"


def test_record_with_force_replaces_the_recording(tmp_path, recorded, trained, capsys):
    recorded.mkdir()
    (recorded / "course_150px.json").write_text('{"an 88-minute run": true}\n')
    out = tmp_path / "out"
    args = ["compare", "quick", "--record", "course_150px", "--force", "--out", str(out), "--quiet"]
    assert cli.main(args) == 0
    assert trained == ["compare"]
    recording = load_recording("course_150px", recorded)
    assert recording.preset == "quick" and recording.runs["baseline"] == ROWS
    assert "recorded:" in capsys.readouterr().out


def test_record_of_a_new_name_needs_no_force(tmp_path, recorded, trained):
    assert cli.main(["run", "quick", "--record", "fresh", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert load_recording("fresh", recorded).runs["run"] == ROWS


def test_a_recording_saved_by_someone_else_during_training_is_not_replaced(tmp_path, recorded, monkeypatch, capsys):
    out = tmp_path / "out"

    def train_while_a_colleague_records(config, on_epoch=None, *args, **kwargs):
        save_recording("shared", "quick", config, {"run": ROWS}, seconds=5)
        return [dict(ROWS[0], accuracy=0.9)]

    monkeypatch.setattr(training, "train", train_while_a_colleague_records)
    assert cli.main(["run", "quick", "--record", "shared", "--out", str(out), "--quiet"]) == 1
    lines = error_lines(capsys)
    assert len(lines) == 1 and "--record shared: a recording of that name was saved while this run trained" in lines[0]
    assert str(out) in lines[0], "says where this run's histories are"
    assert load_recording("shared", recorded).runs["run"] == ROWS, "the colleague's recording stays"
    assert (out / "run.csv").is_file() and (out / "summary.json").is_file(), "the finished run is kept"


def test_force_replaces_a_recording_for_real_after_a_tiny_training(tmp_path, recorded, capsys):
    """The whole path once, with TensorFlow: one epoch on 8 builtin images at 48 px."""
    recorded.mkdir()
    (recorded / "demo.json").write_text("old\n")
    assert cli.main(["compare", "quick", *TINY, "--record", "demo", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert (recorded / "demo.json").read_text() == "old\n"
    args = ["compare", "quick", *TINY, "--record", "demo", "--force", "--out", str(tmp_path / "o"), "--quiet"]
    assert cli.main(args) == 0, capsys.readouterr().err
    recording = load_recording("demo", recorded)
    assert recording.config.epochs == 1 and set(recording.runs) == {"baseline", "augmented"}


# -- 2. --out that is not a folder -----------------------------------------------------------------------
@pytest.mark.parametrize("below", ["", "sub/run"], ids=["the-file", "under-the-file"])
def test_out_pointing_at_a_file_is_one_line_and_exit_2(tmp_path, trained, capsys, below):
    existing = tmp_path / "notes.txt"
    existing.write_text("mine\n")
    out = existing / below if below else existing
    assert cli.main(["run", "quick", "--out", str(out), "--quiet"]) == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and f"--out {out}: {existing} is a file, not a folder" in lines[0], lines
    assert trained == [] and existing.read_text() == "mine\n"


# -- 3. a preset file that is not UTF-8 or has a wrong type --------------------------------------------
BAD_PRESETS = {
    "latin1": b'epochs = 3\n[preset]\ntitle = "caf\xe9"\n',
    "title_number": b"[preset]\ntitle = 1\n",
    "preset_number": b"preset = 1\n",
    "epochs_word": b'epochs = "many"\n',
    "lesson_list": b'[preset]\nlesson = ["a", "b"]\n',
    "preset_typo": b'[preset]\nlesso = "look at the gap"\n',
}
BAD_WORDS = {
    "latin1": "not UTF-8 text",
    "title_number": "preset.title must be text, got 1",
    "preset_number": "[preset] must be a table",
    "epochs_word": "epochs must be a number, got 'many'",
    "lesson_list": "preset.lesson must be text",
    "preset_typo": "unknown field 'preset.lesso'",
}


@pytest.mark.parametrize("name", list(BAD_PRESETS))
def test_a_bad_preset_file_is_one_line_naming_it_and_exit_2(tmp_path, trained, capsys, name):
    path = tmp_path / f"{name}.toml"
    path.write_bytes(BAD_PRESETS[name])
    assert cli.main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and f"{name}.toml" in lines[0] and BAD_WORDS[name] in lines[0], lines
    assert trained == []


def test_a_bad_preset_is_left_out_of_the_list_and_the_others_still_load(tmp_path, monkeypatch, capsys):
    """The page lists presets by `load_preset(name).title`: a broken file must not take it down."""
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "good.toml").write_text('epochs = 3\n[preset]\ntitle = "Good"\n')
    for name, content in BAD_PRESETS.items():
        (folder / f"{name}.toml").write_bytes(content)
    assert lab.presets.list_presets(folder) == ["good"]
    assert [lab.presets.load_preset(name, folder).title for name in lab.presets.list_presets(folder)] == ["Good"]

    monkeypatch.setattr(lab.presets, "EXPERIMENTS_DIR", folder)
    assert lab.presets.list_presets() == ["good"]
    assert cli.main(["presets"]) == 0
    captured = capsys.readouterr()
    assert captured.out.split() == ["good", "Good"]
    skipped = captured.err.splitlines()
    assert len(skipped) == len(BAD_PRESETS) and all("left out" in line for line in skipped), skipped
    assert "Traceback" not in captured.err


# -- 4. a failed run takes back what it wrote ------------------------------------------------------------
FAILURES = [
    (TrainingFailed("training diverged at epoch 1"), 1),
    (RunCancelled([]), 130),
    (KeyboardInterrupt(), 130),
    (OSError(errno.EIO, "Input/output error"), 1),
]
FAILURE_IDS = ["failed", "cancelled", "ctrl-c", "oserror"]
COMMANDS = [["run", "quick"], ["compare", "quick"], ["compare", "quick", "--seeds", "2"]]
COMMAND_IDS = ["run", "compare", "seeds"]


@pytest.mark.parametrize("error, code", FAILURES, ids=FAILURE_IDS)
@pytest.mark.parametrize("command", COMMANDS, ids=COMMAND_IDS)
def test_a_failed_run_removes_the_folder_it_created(tmp_path, monkeypatch, capsys, command, error, code):
    failing_training(monkeypatch, error)
    out = tmp_path / "new" / "run"
    assert cli.main([*command, "--out", str(out), "--quiet"]) == code
    error_lines(capsys)
    assert list(tmp_path.iterdir()) == [], "the run folder and the parent it made are gone"


@pytest.mark.parametrize("error, code", FAILURES, ids=FAILURE_IDS)
def test_a_failed_run_removes_its_default_folder(tmp_path, monkeypatch, capsys, error, code):
    failing_training(monkeypatch, error)
    runs = tmp_path / "runs"
    (runs / "20240101-000000-quick-earlier").mkdir(parents=True)
    monkeypatch.setenv("LAB_RUNS_DIR", str(runs))
    assert cli.main(["compare", "quick", "--quiet"]) == code
    error_lines(capsys)
    assert [p.name for p in runs.iterdir()] == ["20240101-000000-quick-earlier"], "an earlier run stays"


@pytest.mark.parametrize("error, code", FAILURES, ids=FAILURE_IDS)
def test_a_failed_run_in_an_existing_folder_leaves_it_as_it_was(tmp_path, monkeypatch, capsys, error, code):
    """A user's folder keeps its own files, and the files of an earlier run there come back unchanged."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes\n")
    (out / "config.toml").write_text("# the earlier run's configuration\n")
    (out / "summary.json").write_text('{"earlier": true}\n')
    before = tree(out)
    failing_training(monkeypatch, error)
    assert cli.main(["compare", "quick", "--out", str(out), "--quiet"]) == code
    error_lines(capsys)
    assert tree(out) == before and sorted(p.name for p in out.iterdir()) == sorted(before)


def test_a_finished_run_in_an_existing_folder_replaces_the_earlier_run_and_keeps_no_copies(tmp_path, trained):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes\n")
    (out / "summary.json").write_text('{"earlier": true}\n')
    assert cli.main(["run", "quick", "--out", str(out), "--quiet"]) == 0
    files = ["config.json", "config.toml", "notes.txt", "run.csv", "summary.json"]
    assert sorted(p.name for p in out.iterdir()) == files
    assert "earlier" not in (out / "summary.json").read_text()


# -- 5. a full disk, a folder without permission ----------------------------------------------------------
@pytest.mark.parametrize("name", ["config.toml", "config.json", "run.csv", "summary.json"])
def test_a_full_disk_is_one_line_exit_1_and_leaves_nothing(tmp_path, monkeypatch, trained, capsys, name):
    write_text = Path.write_text

    def fill_up(self, *args, **kwargs):
        if self.name == name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", fill_up)
    out = tmp_path / "out"
    assert cli.main(["run", "quick", "--out", str(out), "--quiet"]) == 1
    lines = error_lines(capsys)
    assert len(lines) == 1 and f"the disk is full: could not write {out / name}" in lines[0], lines
    assert not out.exists()


def test_a_full_disk_while_saving_the_recording_keeps_the_finished_run(
    tmp_path, recorded, monkeypatch, trained, capsys
):
    write_text = Path.write_text

    def fill_up(self, *args, **kwargs):
        if self.parent == recorded:
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", fill_up)
    out = tmp_path / "out"
    assert cli.main(["run", "quick", "--record", "r", "--out", str(out), "--quiet"]) == 1
    lines = error_lines(capsys)
    assert len(lines) == 1 and f"the disk is full: could not write {recorded / 'r.json'}" in lines[0], lines
    assert f"the run is kept in {out}" in lines[0]
    assert (out / "summary.json").is_file() and list(recorded.iterdir()) == []


def test_permission_denied_on_the_run_folder_is_one_line_exit_1(tmp_path, monkeypatch, trained, capsys):
    def refuse(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    out = tmp_path / "locked" / "run"
    assert cli.main(["run", "quick", "--out", str(out), "--quiet"]) == 1
    lines = error_lines(capsys)
    assert len(lines) == 1 and "permission denied: could not create the folder" in lines[0], lines
    assert trained == []


def test_permission_denied_on_a_file_is_one_line_exit_1(tmp_path, monkeypatch, trained, capsys):
    write_text = Path.write_text

    def refuse(self, *args, **kwargs):
        if self.name == "config.toml":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", refuse)
    out = tmp_path / "out"
    assert cli.main(["run", "quick", "--out", str(out), "--quiet"]) == 1
    lines = error_lines(capsys)
    assert len(lines) == 1 and f"permission denied: could not write {out / 'config.toml'}" in lines[0], lines
    assert not out.exists()
