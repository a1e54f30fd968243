"""Saving a recording: never half a file, and never over another one unless asked."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from lab.presets import load_preset
from lab.recordings import list_recordings, load_recording, recording_path, save_recording

ROWS = [{"epoch": 1, "loss": 0.7, "accuracy": 0.5, "val_loss": 0.7, "val_accuracy": 0.5, "seconds": 0.1}]


@pytest.fixture
def config():
    return load_preset("quick").config


def test_recording_path_names_the_file_in_the_folder(tmp_path):
    assert recording_path("demo", tmp_path) == tmp_path / "demo.json"


def test_save_without_replace_refuses_an_existing_recording_and_leaves_it(tmp_path, config):
    save_recording("demo", "quick", config, {"run": ROWS}, seconds=1, folder=tmp_path)
    before = (tmp_path / "demo.json").read_bytes()
    other = [dict(ROWS[0], accuracy=0.9)]
    with pytest.raises(FileExistsError):
        save_recording("demo", "quick", config, {"run": other}, seconds=2, folder=tmp_path, replace=False)
    assert (tmp_path / "demo.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.json"], "no temporary file left"


def test_save_with_replace_replaces(tmp_path, config):
    save_recording("demo", "quick", config, {"run": ROWS}, seconds=1, folder=tmp_path)
    other = [dict(ROWS[0], accuracy=0.9)]
    save_recording("demo", "quick", config, {"run": other}, seconds=2, folder=tmp_path)
    assert load_recording("demo", tmp_path).runs["run"] == other
    save_recording("new", "quick", config, {"run": ROWS}, seconds=1, folder=tmp_path, replace=False)
    assert list_recordings(tmp_path) == ["demo", "new"]


def test_a_full_disk_leaves_the_earlier_recording_and_no_temporary_file(tmp_path, config, monkeypatch):
    save_recording("demo", "quick", config, {"run": ROWS}, seconds=1, folder=tmp_path)
    before = (tmp_path / "demo.json").read_bytes()
    write_text = Path.write_text

    def fill_up(self, text, *args, **kwargs):
        write_text(self, text[:10], *args, **kwargs)  # half a file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", fill_up)
    with pytest.raises(OSError) as full:
        save_recording("demo", "quick", config, {"run": ROWS}, seconds=3, folder=tmp_path)
    assert full.value.errno == errno.ENOSPC
    assert (tmp_path / "demo.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.json"]


def test_a_recording_keeps_the_device_that_trained_it_and_an_older_one_without_it_still_loads(tmp_path, config):
    import json

    save_recording("demo", "quick", config, {"run": ROWS}, seconds=1, folder=tmp_path, device="GPU: NVIDIA Test")
    recording = load_recording("demo", tmp_path)
    assert recording.device == "GPU: NVIDIA Test" and "GPU: NVIDIA Test" in recording.title()
    older = json.loads((tmp_path / "demo.json").read_text())
    del older["device"]
    (tmp_path / "old.json").write_text(json.dumps(older))
    assert load_recording("old", tmp_path).device == ""
    assert load_recording("old", tmp_path).runs == recording.runs
