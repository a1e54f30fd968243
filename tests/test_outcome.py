"""What a run keeps besides its curves: final weights and each validation image's prediction, for the
views that show why a model overfits (lab/training/outcome.py), and the cures beside augmentation."""

from __future__ import annotations

import time

import numpy as np
import pytest

from lab.config import RunConfig
from lab.runs.parallel import ChildPool
from lab.runs.store import RunStore
from lab.runs.trainer import SubprocessTrainer
from lab.runs.worker import Worker
from lab.training.outcome import (
    PREDICTIONS_FILE,
    WEIGHTS_FILE,
    Predictions,
    confusion_matrix,
    load_model,
    load_predictions,
    probabilities,
    save_outcome,
    size_on_disk,
)

TINY = RunConfig(image_size=48, epochs=2, train_images=40, learning_rate=1e-3)


def test_a_confusion_matrix_has_a_row_per_true_class():
    labels = [0, 0, 1, 2, 2, 2]
    predicted = [0, 1, 1, 2, 0, 2]
    assert confusion_matrix(labels, predicted, 3) == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert confusion_matrix([], [], 2) == [[0, 0], [0, 0]]


def test_a_sigmoid_output_becomes_two_columns_and_predictions_read_them():
    probs = probabilities(np.array([[0.9], [0.2], [0.6]]), 2)
    np.testing.assert_allclose(probs, [[0.1, 0.9], [0.8, 0.2], [0.4, 0.6]], rtol=1e-6)
    p = Predictions(files=["a.png", "b.png", "c.png"], labels=[1, 1, 0], probs=probs, classes=["cats", "dogs"])
    assert p.predicted.tolist() == [1, 0, 1]
    np.testing.assert_allclose(p.confidence, [0.9, 0.8, 0.6], rtol=1e-6)
    assert p.accuracy == pytest.approx(1 / 3)
    assert p.confusion_matrix() == [[0, 1], [1, 1]]


def test_predictions_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match="probs must be"):
        Predictions(files=["a"], labels=[0], probs=np.zeros((1, 3)), classes=["x", "y"])


def test_a_run_stored_before_outcomes_were_kept_has_none(tmp_path):
    assert load_predictions(tmp_path) is None
    assert load_model(tmp_path, TINY) is None
    (tmp_path / PREDICTIONS_FILE).write_bytes(b"not a numpy file")
    assert load_predictions(tmp_path) is None, "a damaged file reads as no predictions, never a traceback"


def test_a_run_stored_before_this_change_is_still_found_with_its_curves_and_no_images(tmp_path):
    import json

    store = RunStore(tmp_path)
    config = RunConfig(epochs=1)
    store.record_queued(config)
    store.record_finish(
        config.key(), [{"epoch": 1, "loss": 0.5, "accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.7, "seconds": 1.0}]
    )
    folder = store.run_dir(config.key())
    # config.json as this lab wrote it before the cures and architectures existed.
    old = {k: v for k, v in config.to_dict().items() if k not in ("l2", "early_stopping", "architecture")}
    (folder / "config.json").write_text(json.dumps(old))
    run = store.cache_hit(config.key())
    assert run is not None and run.history[0]["val_accuracy"] == 0.7
    assert load_predictions(folder) is None and load_model(folder, run.config) is None


def test_a_trained_run_keeps_its_weights_and_the_predictions_its_last_epoch_scored(tmp_path):
    from lab.training.train import train

    rows = train(TINY, outcome_dir=tmp_path)
    p = load_predictions(tmp_path)
    assert len(p) == 300 and p.classes == ["cats", "dogs"]
    assert p.files[:2] == ["builtin/0", "builtin/1"]
    assert p.probs.shape == (300, 2) and np.allclose(p.probs.sum(axis=1), 1, atol=1e-5)
    # The predictions are the final model's: they score what the last epoch's validation scored.
    assert p.accuracy == pytest.approx(rows[-1]["val_accuracy"], abs=1e-6)
    assert sum(map(sum, p.confusion_matrix())) == 300
    # Every builtin validation image says how it was moved from the training pose.
    assert len(p.kinds) == 300 and p.kinds[0].startswith("rotated ")
    assert p.moved.shape == (300,) and 0 <= p.moved.min() and p.moved.max() <= 1
    model = load_model(tmp_path, TINY)
    images = np.stack([np.zeros((48, 48, 3), np.float32), np.ones((48, 48, 3), np.float32)])
    assert model is not None and model(images).shape == (2, 1)
    assert size_on_disk(tmp_path) == sum((tmp_path / f).stat().st_size for f in (WEIGHTS_FILE, PREDICTIONS_FILE))


def test_more_than_two_classes_get_a_full_confusion_matrix_and_their_file_names(tmp_path, image_folder):
    from lab.training.train import train

    data = image_folder(classes=("a", "b", "c"), train=4, validation=3)
    config = RunConfig(dataset="folder", data_dir=str(data), image_size=48, epochs=1, batch_size=4)
    rows = train(config, outcome_dir=tmp_path / "out")
    p = load_predictions(tmp_path / "out")
    assert p.classes == ["a", "b", "c"] and p.probs.shape == (9, 3)
    assert p.files[0] == "validation/a/a_000.png"
    assert [sum(row) for row in p.confusion_matrix()] == [3, 3, 3]
    assert p.accuracy == pytest.approx(rows[-1]["val_accuracy"], abs=1e-6)
    assert p.kinds is None and p.moved is None


def test_a_run_whose_outcome_cannot_be_written_keeps_its_curves(tmp_path, caplog):
    from lab.training.train import train

    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    rows = train(TINY.replace(epochs=1), outcome_dir=blocked)
    assert len(rows) == 1 and load_predictions(blocked) is None
    assert "could not be saved" in caplog.text


def test_early_stopping_keeps_the_weights_of_the_best_epoch(tmp_path):
    from lab.training.train import train

    config = TINY.replace(epochs=6, early_stopping=1, learning_rate=3e-3)
    rows = train(config, outcome_dir=tmp_path)
    losses = [row["val_loss"] for row in rows]
    best = losses.index(min(losses))
    assert len(rows) < config.epochs and best < len(rows) - 1, "the run stopped after its best epoch"
    assert load_predictions(tmp_path).accuracy == pytest.approx(rows[best]["val_accuracy"], abs=1e-6)


def test_l2_weight_decay_penalises_every_kernel():
    from lab.training.model import build_model

    assert not build_model(TINY, 2).losses
    decayed = build_model(TINY.replace(l2=0.01), 2)
    assert len(decayed.losses) == 6, "four convolutions and two dense layers"
    assert build_model(TINY.replace(architecture="course5", image_size=96), 2).count_params() < 400_000


@pytest.mark.parametrize(
    "make", [SubprocessTrainer, lambda: ChildPool(1)], ids=["child", "the page's pool of children"]
)
def test_the_worker_keeps_each_runs_outcome_in_its_folder_and_a_retrain_forgets_it(tmp_path, make):
    store = RunStore(tmp_path / "runs")
    trainer = make()
    worker = Worker(store, train_fn=trainer)
    config = TINY.replace(epochs=1)
    try:
        key = worker.submit(config)
        deadline = time.monotonic() + 300
        while (status := worker.status(key)).state not in ("done", "failed") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert status.state == "done", status
        folder = store.run_dir(key)
        p = load_predictions(folder)
        assert p is not None and p.accuracy == pytest.approx(store.load(key).history[-1]["val_accuracy"], abs=1e-6)
        assert (folder / WEIGHTS_FILE).is_file()
        # History says what trained it: the child reports its device once TensorFlow has loaded.
        assert store.load_status(key).device.startswith(("CPU (", "GPU: ")), store.load_status(key)
        store.record_queued(config, overwrite_done=True)
        assert load_predictions(folder) is None, "a run trained again shows no images of the last attempt"
    finally:
        worker.shutdown(timeout=30)
        trainer.close()


def test_saving_is_atomic_and_leaves_no_temporary_file(tmp_path):
    class Weights:
        def get_weights(self):
            return [np.ones((2, 2), np.float32), np.zeros(3, np.float32)]

    p = Predictions(files=["x"], labels=[0], probs=[[0.7, 0.3]], classes=["a", "b"], kinds=["moved"], moved=[0.5])
    save_outcome(tmp_path, Weights(), p)
    again = load_predictions(tmp_path)
    assert again.files == ["x"] and again.kinds == ["moved"] and again.moved.tolist() == [0.5]
    assert sorted(f.name for f in tmp_path.iterdir()) == [PREDICTIONS_FILE, WEIGHTS_FILE]
