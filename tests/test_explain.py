"""Why it overfits, in lab/training/explain.py: the images the two models disagree on, where each model
looks (Grad-CAM), the augmented batch the model saw, and a photo of one's own.

One test trains (the builtin baseline, 48 px, 8 epochs, about 25 s on a busy 2-core machine); the rest
build small Keras models by hand or use predictions written out directly.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from lab.config import RunConfig
from lab.data import builtin
from lab.training import explain
from lab.training.outcome import Predictions, load_predictions


def predictions(probs, labels, classes=("a", "b", "c"), kinds=None) -> Predictions:
    files = [f"validation/{i}" for i in range(len(labels))]
    return Predictions(
        files=files, labels=np.asarray(labels), probs=np.asarray(probs), classes=list(classes), kinds=kinds
    )


def test_disagreements_each_way_with_both_confidences_most_confident_mistake_first():
    labels = [0, 1, 2, 0, 1]
    baseline = predictions(
        [[0.1, 0.8, 0.1], [0.1, 0.6, 0.3], [0.1, 0.1, 0.8], [0.2, 0.1, 0.7], [0.5, 0.4, 0.1]],
        labels,
        kinds=list("vwxyz"),
    )
    augmented = predictions(
        [[0.7, 0.2, 0.1], [0.2, 0.3, 0.5], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1], [0.1, 0.9, 0.0]],
        labels,
        kinds=list("vwxyz"),
    )
    found = explain.disagreements(baseline, augmented)
    # Baseline wrong, augmented right: images 0, 3, 4; the baseline's surest mistake (0.8) first.
    assert [d.index for d in found.fixed] == [0, 3, 4]
    first = found.fixed[0]
    assert (first.true_class, first.baseline_class, first.augmented_class) == ("a", "b", "a")
    assert first.baseline_confidence == pytest.approx(0.8) and first.augmented_confidence == pytest.approx(0.7)
    assert first.move == "v"
    # Baseline right, augmented wrong: image 1 only; image 2 both got right.
    assert [(d.index, d.augmented_class) for d in found.broken] == [(1, "c")]
    assert found.total == 5


def test_disagreements_refuse_two_runs_on_different_images():
    one = predictions([[0.9, 0.1, 0.0]], [0])
    other = Predictions(
        files=["validation/9"], labels=np.asarray([0]), probs=np.asarray([[0.9, 0.1, 0.0]]), classes=["a", "b", "c"]
    )
    with pytest.raises(ValueError, match="different images"):
        explain.disagreements(one, other)


def test_the_baseline_gets_the_moved_cartoons_wrong(tmp_path):
    """The builtin lesson: a model trained on the one training pose fails on the validation images moved far from it."""
    from lab.training.train import train

    config = RunConfig.from_dict({"image_size": 48, "epochs": 8, "learning_rate": 1e-3, "batch_size": 20})
    rows = train(config, outcome_dir=tmp_path)
    result = load_predictions(tmp_path)
    assert rows[-1]["accuracy"] > 0.95, "the baseline should fit its training pose"
    wrong = ~result.correct
    assert 10 <= wrong.sum() <= 200, f"expected an overfit baseline, got {wrong.sum()} mistakes of {len(wrong)}"
    far = result.moved >= np.median(result.moved)  # the half of the validation images moved farthest
    assert wrong[far].sum() / wrong.sum() >= 0.6, "most mistakes should be on the images moved farthest"
    assert wrong[far].mean() >= 1.5 * wrong[~far].mean()
    assert result.kinds[int(np.flatnonzero(wrong)[0])].startswith("rotated")


# -- Grad-CAM ---------------------------------------------------------------------------------------
def red_detector(num_classes: int):
    """A model whose class score is the mean redness of the image: Grad-CAM must point at the red pixels."""
    import keras

    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Conv2D(1, 1, activation="relu", name="red"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(
                1 if num_classes == 2 else num_classes, activation="sigmoid" if num_classes == 2 else "softmax"
            ),
        ]
    )
    model.layers[0].set_weights([np.asarray([1.0, 0.0, 0.0]).reshape(1, 1, 3, 1), np.zeros(1)])
    out = np.linspace(1.0, 2.0, model.layers[-1].units).reshape(1, -1) * 4
    model.layers[-1].set_weights([out, np.zeros(out.shape[1])])
    return model


@pytest.mark.parametrize("num_classes", [2, 3])
def test_grad_cam_points_at_what_decides_the_score(num_classes):
    image = np.zeros((16, 16, 3), np.uint8)
    image[2:7, 10:15, 0] = 255  # a red patch in the top right
    heat = explain.grad_cam(red_detector(num_classes), image, rescale=1 / 255, class_index=num_classes - 1)
    assert heat.shape == (16, 16)
    assert heat.min() >= 0 and heat.max() == pytest.approx(1.0)
    assert heat[2:7, 10:15].mean() > 0.8 and heat[10:, :6].mean() < 0.2


@pytest.mark.parametrize("num_classes", [2, 4])
def test_grad_cam_and_predictions_on_the_course_cnn(num_classes):
    from lab.training.model import build_model

    config = RunConfig(image_size=64)
    model = build_model(config, num_classes)
    image = builtin.generate(64)["validation"][0][0]
    heat = explain.grad_cam(model, image, rescale=1 / 255)
    assert heat.shape == (64, 64) and 0 <= heat.min() and heat.max() <= 1
    assert explain.overlay(image, heat).shape == (64, 64, 3)
    probs = explain.predict_photo({"baseline": model}, np.zeros((200, 120, 3), np.uint8), config)["baseline"]
    assert probs.shape == (num_classes,) and probs.sum() == pytest.approx(1.0, abs=1e-5)


# -- what the model saw ---------------------------------------------------------------------------
def test_the_augmented_batch_is_the_runs_own_and_moves_the_training_pose():
    config = RunConfig.from_dict({"image_size": 48, "batch_size": 8, "augmentation": {"rotation_range": 40}})
    first = explain.augmented_batch(config, 12)
    assert first.images.shape == (12, 48, 48, 3) and first.images.dtype == np.uint8
    assert set(first.classes) <= set(builtin.CLASS_NAMES)
    again = explain.augmented_batch(config, 12)
    assert np.array_equal(first.images, again.images), "the same seed draws the same batch"
    plain = explain.augmented_batch(config.without_augmentation(), 12)
    assert plain.classes == first.classes, "same shuffle: the same training images, in the same order"
    training = builtin.generate(48)["train"][0]
    assert any(np.array_equal(plain.images[0], image) for image in training), "without augmentation: a plain image"
    assert not np.array_equal(plain.images, first.images)


def test_a_validation_image_by_its_id(image_folder):
    config = RunConfig(image_size=48)
    assert np.array_equal(explain.validation_image(config, "builtin/3"), builtin.generate(48)["validation"][0][3])
    assert explain.validation_image(config, "builtin/100000") is None
    root = image_folder(classes=("a", "b", "c"), train=2, validation=2)
    folder = RunConfig(dataset="folder", data_dir=str(root), image_size=48)
    image = explain.validation_image(folder, "validation/c/c_001.png")
    assert image.shape == (48, 48, 3) and image[..., 2].mean() > image[..., 0].mean(), "class c is blue"
    assert explain.validation_image(folder, "../../etc/passwd") is None
    assert explain.validation_image(folder, "validation/c/gone.png") is None


# -- a photo of one's own ---------------------------------------------------------------------------
def png_bytes(size=(30, 20), mode="RGBA") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, (10, 200, 30, 255) if mode == "RGBA" else 128).save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_uploaded_photo_is_read_in_memory_and_bad_ones_say_why(monkeypatch):
    photo = explain.read_photo(png_bytes())
    assert photo.shape == (20, 30, 3) and tuple(photo[0, 0]) == (10, 200, 30)
    assert explain.read_photo(png_bytes(mode="L")).shape == (20, 30, 3)
    with pytest.raises(explain.BadPhoto, match="not an image the lab reads"):
        explain.read_photo(b"%!PS-Adobe-3.0 EPSF-3.0\n")
    with pytest.raises(explain.BadPhoto, match="damaged"):
        explain.read_photo(png_bytes()[:60])
    monkeypatch.setenv("LAB_MAX_IMAGE_PIXELS", "100")
    with pytest.raises(explain.BadPhoto, match="too large"):
        explain.read_photo(png_bytes())
