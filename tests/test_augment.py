"""Augmentation keeps the course's meaning: the same transform as ImageDataGenerator, the same
directions and units, seeded draws, untouched images where a knob is off, and code that runs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from scipy.ndimage import binary_erosion
from scipy.ndimage import zoom as nd_zoom

from lab.config import FILL_MODES, Augmentation, RunConfig
from lab.training import augment
from lab.training.augment import (
    apply_parameters,
    apply_parameters_np,
    image_data_generator_code,
    keras_layers_code,
    make_layer,
    preview,
    sample_parameters,
    sample_parameters_np,
    shear_note,
)
from lab.training.pipeline import Data, training_pipeline, validation_pipeline

SIZE = 40
GEOMETRIC = {"theta": 0.0, "tx": 0.0, "ty": 0.0, "shear": 0.0, "zx": 1.0, "zy": 1.0}


def augment_images(images: np.ndarray, aug: Augmentation, seed: int = 0) -> np.ndarray:
    """Augment a uint8 batch [N, H, W, 3] once with the training layer, as uint8."""
    out = make_layer(aug)(tf.convert_to_tensor(images, tf.float32), seed=tf.constant([seed, 0], tf.int64))
    return np.clip(np.round(out.numpy()), 0, 255).astype(np.uint8)


def smooth_image(seed: int = 0, size: int = SIZE) -> np.ndarray:
    """A float32 [size, size, 3] image in 0..255 without sharp edges: 8x8 noise, upsampled."""
    small = np.random.default_rng(seed).uniform(0, 255, (8, 8, 3))
    return np.stack([nd_zoom(small[..., c], size / 8, order=1) for c in range(3)], axis=-1).astype(np.float32)


def params_for(batch: int = 1, **values) -> dict:
    """Fixed per-image parameters for apply_parameters: identity unless given."""
    defaults = {**GEOMETRIC, "brightness": 0.0, "contrast": 1.0, "hflip": False, "vflip": False}
    out = {}
    for name, default in defaults.items():
        value = np.broadcast_to(np.asarray(values.get(name, default)), (batch,))
        out[name] = tf.constant(value, tf.bool if name in ("hflip", "vflip") else tf.float32)
    return out


def run_lab(images: np.ndarray, aug: Augmentation, **values) -> np.ndarray:
    batch = images if images.ndim == 4 else images[None]
    out = apply_parameters(tf.constant(batch, tf.float32), params_for(len(batch), **values), aug)
    return out.numpy() if images.ndim == 4 else out.numpy()[0]


def centroid(image: np.ndarray) -> np.ndarray:
    """(row, col) of the bright content of an image [H, W, C]."""
    weight = image.astype(np.float64).sum(axis=-1)
    weight = np.where(weight > 0.3 * weight.max(), weight, 0.0)
    rows, cols = np.mgrid[0 : weight.shape[0], 0 : weight.shape[1]]
    return np.array([(rows * weight).sum(), (cols * weight).sum()]) / weight.sum()


def dot_image(row: int, col: int, size: int = 41) -> np.ndarray:
    image = np.zeros((size, size, 3), np.float32)
    image[row - 1 : row + 2, col - 1 : col + 2] = 255.0
    return image


# Geometric knobs all on, so apply_parameters resamples; the parameters decide the transform.
def geometric_aug(fill_mode: str) -> Augmentation:
    return Augmentation(
        rotation_range=45,
        width_shift_range=0.3,
        height_shift_range=0.3,
        shear_range=30,
        zoom_range=0.4,
        fill_mode=fill_mode,
    )


# The lab's parameters go to ImageDataGenerator.apply_transform under the same keys. In Keras 3's
# ImageDataGenerator 'tx' moves along the width and 'ty' along the height, as the lab's do.
TRANSFORMS = {
    "rotation": {"theta": 30.0},
    "rotation-negative": {"theta": -75.0},
    "shift-tx": {"tx": 6.0},
    "shift-ty": {"ty": -5.0},
    "shear": {"shear": 20.0},
    "zoom-zx": {"zx": 1.3},
    "zoom-zy": {"zy": 0.8},
    "combined": {"theta": -25.0, "tx": 4.0, "ty": 3.0, "shear": 12.0, "zx": 1.2, "zy": 0.85},
}


# -- the same transform as ImageDataGenerator ------------------------------------------------
@pytest.mark.parametrize("fill_mode", ["nearest", "reflect"])
@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_matches_image_data_generator_everywhere(name, fill_mode):
    image = smooth_image(1)
    generator = tf.keras.preprocessing.image.ImageDataGenerator(fill_mode=fill_mode)
    expected = generator.apply_transform(image.copy(), TRANSFORMS[name])
    ours = run_lab(image, geometric_aug(fill_mode), **TRANSFORMS[name])
    assert not np.allclose(expected, image, atol=1)  # the transform does something
    np.testing.assert_allclose(ours, expected, atol=2e-3)


@pytest.mark.parametrize("fill_mode", ["constant", "wrap"])
@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_matches_image_data_generator_inside_the_image(name, fill_mode):
    # scipy and TensorFlow fill the area outside the source image differently for these
    # modes, so compare where the source point lies inside the image. The mask comes from
    # ImageDataGenerator itself: an all-ones image with a zero constant fill stays 1 exactly
    # where every interpolation neighbour is inside; one pixel of erosion for rounding.
    image = smooth_image(2)
    params = TRANSFORMS[name]
    ones = np.ones_like(image)
    masker = tf.keras.preprocessing.image.ImageDataGenerator(fill_mode="constant", cval=0.0)
    inside = binary_erosion(np.all(np.abs(masker.apply_transform(ones, params) - 1) < 1e-6, axis=-1))
    assert inside.mean() > 0.5

    generator = tf.keras.preprocessing.image.ImageDataGenerator(fill_mode=fill_mode, cval=50.0)
    expected = generator.apply_transform(image.copy(), params)
    aug = dataclasses.replace(geometric_aug(fill_mode), cval=50.0)
    ours = run_lab(image, aug, **params)
    np.testing.assert_allclose(ours[inside], expected[inside], atol=2e-3)


def test_constant_fill_uses_cval_outside_the_image():
    image = smooth_image(3)
    ours = run_lab(image, Augmentation(width_shift_range=0.5, fill_mode="constant", cval=77.0), tx=15.0)
    # Content moves by -tx along the width: the last 15 columns come from outside.
    np.testing.assert_allclose(ours[:, -14:], 77.0, atol=1e-3)


# -- directions and units a user relies on ------------------------------------------------------
def test_positive_rotation_is_counter_clockwise_in_degrees():
    image = dot_image(8, 20)  # a dot above the centre (20, 20)
    for theta, expected in [(90.0, (20, 8)), (-90.0, (20, 32)), (180.0, (32, 20))]:
        out = run_lab(image, Augmentation(rotation_range=180, fill_mode="constant"), theta=theta)
        np.testing.assert_allclose(centroid(out), expected, atol=0.5)


def test_shifts_move_content_along_their_own_axis():
    image = dot_image(20, 20)
    moved_x = run_lab(image, Augmentation(width_shift_range=0.3, fill_mode="constant"), tx=6.0)
    moved_y = run_lab(image, Augmentation(height_shift_range=0.3, fill_mode="constant"), ty=6.0)
    # The content moves by -tx, -ty (ImageDataGenerator's convention).
    np.testing.assert_allclose(centroid(moved_x), (20, 14), atol=0.5)
    np.testing.assert_allclose(centroid(moved_y), (14, 20), atol=0.5)


@pytest.mark.parametrize("knob, axis", [("width_shift_range", 1), ("height_shift_range", 0)])
def test_shift_knobs_move_content_only_along_their_axis(knob, axis):
    # End to end: the knob, the drawn parameters, the layer.
    batch = np.repeat(dot_image(20, 20)[None], 16, axis=0).astype(np.uint8)
    out = augment_images(batch, Augmentation(**{knob: 0.3}, fill_mode="constant"), seed=3)
    moves = np.array([centroid(image) - (20, 20) for image in out])
    assert np.abs(moves[:, 1 - axis]).max() < 0.5
    assert np.abs(moves[:, axis]).max() > 3
    assert np.abs(moves[:, axis]).max() <= 0.3 * 41 + 0.5


def test_rotation_knob_keeps_the_distance_from_the_centre():
    batch = np.repeat(dot_image(8, 20)[None], 16, axis=0).astype(np.uint8)
    out = augment_images(batch, Augmentation(rotation_range=90, fill_mode="constant"), seed=5)
    offsets = np.array([centroid(image) - (20, 20) for image in out])
    np.testing.assert_allclose(np.hypot(*offsets.T), 12, atol=0.6)
    angles = np.degrees(np.arctan2(-offsets[:, 1], -offsets[:, 0]))  # 0 = up, positive = towards the left
    assert np.abs(angles).max() <= 90.5 and np.ptp(angles) > 30


def test_zoom_above_one_along_the_width_shrinks_content_horizontally():
    image = np.zeros((41, 41, 3), np.float32)
    image[14:27, 8:33] = 255.0  # a bar 24 wide, 13 high, centred
    aug = Augmentation(zoom_range=0.6, fill_mode="constant")
    wide = run_lab(image, aug, zx=1.5)
    tall = run_lab(image, aug, zy=0.5)

    def extent(img, axis):
        return (img[..., 0] > 127).any(axis=axis).sum()

    assert extent(wide, 0) == pytest.approx(25 / 1.5, abs=1.5)  # narrower
    assert extent(wide, 1) == extent(image, 1)  # same height
    assert extent(tall, 1) == pytest.approx(13 / 0.5, abs=1.5)  # zy < 1 enlarges vertically
    assert extent(tall, 0) == extent(image, 0)


# -- flips, brightness, contrast --------------------------------------------------------------------
def test_horizontal_flip_mirrors_only_the_images_drawn_true():
    batch = np.stack([smooth_image(4), smooth_image(5)])
    out = run_lab(batch, Augmentation(horizontal_flip=True), hflip=[True, False])
    np.testing.assert_array_equal(out[0], np.flip(batch[0], axis=1))
    np.testing.assert_array_equal(out[1], batch[1])


def test_vertical_flip_mirrors_top_and_bottom():
    batch = np.stack([smooth_image(4), smooth_image(5)])
    out = run_lab(batch, Augmentation(vertical_flip=True), vflip=[False, True])
    np.testing.assert_array_equal(out[0], batch[0])
    np.testing.assert_array_equal(out[1], np.flip(batch[1], axis=0))


def test_brightness_shifts_every_pixel_by_the_drawn_fraction_of_the_range():
    image = np.clip(smooth_image(6) * 0.4 + 70, 0, 255)  # 70..172: no clipping at +-0.2
    out = run_lab(np.stack([image, image]), Augmentation(brightness_range=0.3), brightness=[0.2, -0.2])
    np.testing.assert_allclose(out[0] - image, 0.2 * 255, atol=1e-3)
    np.testing.assert_allclose(out[1] - image, -0.2 * 255, atol=1e-3)
    bright = run_lab(image, Augmentation(brightness_range=1.0), brightness=0.9)
    assert bright.max() == 255.0  # clipped to the pixel range
    np.testing.assert_allclose(bright, np.minimum(image + 0.9 * 255, 255.0), atol=1e-3)


def test_contrast_scales_the_deviation_from_each_images_mean():
    image = np.clip(smooth_image(7) * 0.3 + 90, 0, 255)
    batch = np.stack([image, image + 10])
    out = run_lab(batch, Augmentation(contrast_range=0.5), contrast=[0.6, 1.4])
    for i, factor in enumerate([0.6, 1.4]):
        mean = batch[i].mean(axis=(0, 1), keepdims=True)
        np.testing.assert_allclose(out[i] - mean, factor * (batch[i] - mean), atol=1e-3)


def _data_from_arrays(images: np.ndarray, labels: np.ndarray) -> Data:
    return Data(
        train=tf.data.Dataset.from_tensor_slices((images, labels)),
        validation=tf.data.Dataset.from_tensor_slices((images, labels)),
        class_names=("a", "b"),
        train_count=len(labels),
        validation_count=len(labels),
        image_size=images.shape[1],
    )


@pytest.mark.parametrize("rescale", [1 / 255, 0.5])
def test_pipelines_apply_rescale_and_leave_images_untouched_without_augmentation(rescale, monkeypatch):
    images = np.random.default_rng(0).integers(0, 256, (6, 48, 48, 3), dtype=np.uint8)
    labels = np.array([0, 1] * 3, np.int32)
    data = _data_from_arrays(images, labels)
    config = RunConfig(image_size=48, batch_size=6, augmentation=Augmentation(rescale=rescale, fill_mode="constant"))

    def no_layer(aug):
        raise AssertionError("augmentation is off: no augmentation layer may be built")

    monkeypatch.setattr(augment, "make_layer", no_layer)
    dataset, steps = training_pipeline(data, config)
    assert steps == 1
    batch, batch_labels = next(iter(dataset))
    expected = {bytes((images[i].astype(np.float32) * np.float32(rescale)).tobytes()): labels[i] for i in range(6)}
    got = {
        bytes(image.tobytes()): float(label[0])
        for image, label in zip(batch.numpy(), batch_labels.numpy(), strict=True)
    }
    assert got == expected  # the same six images (shuffled), bit for bit, labels kept

    val_images, val_labels = next(iter(validation_pipeline(data, config)))
    np.testing.assert_array_equal(val_images.numpy(), images.astype(np.float32) * np.float32(rescale))
    np.testing.assert_array_equal(val_labels.numpy()[:, 0], labels)


def test_pipelines_run_without_the_autotuner_so_a_run_ends_with_its_last_epoch():
    """Deleting an iterator waits for tf.data's autotuner thread, whose sleep doubles as the iterator lives:
    with it on, a training child sat idle up to 20 s after a 20-epoch run's last epoch (issue 15)."""
    data = _data_from_arrays(np.zeros((4, 48, 48, 3), np.uint8), np.array([0, 1, 0, 1], np.int32))
    for aug in (Augmentation(), Augmentation(rotation_range=20)):
        config = RunConfig(image_size=48, batch_size=2, augmentation=aug)
        training, _ = training_pipeline(data, config)
        assert training.options().autotune.enabled is False
        assert validation_pipeline(data, config).options().autotune.enabled is False


# -- drawing the parameters ------------------------------------------------------------------------
FULL = Augmentation(
    rotation_range=40,
    width_shift_range=0.2,
    height_shift_range=0.1,
    shear_range=15,
    zoom_range=0.25,
    horizontal_flip=True,
    vertical_flip=True,
    brightness_range=0.3,
    contrast_range=0.4,
)


def draw(aug: Augmentation, seed=(1, 0), batch: int = 512, height: int = 48, width: int = 64) -> dict:
    params = sample_parameters(aug, batch, height, width, tf.constant(seed, tf.int64))
    return {k: v.numpy() for k, v in params.items()}


def test_parameters_are_drawn_within_the_configured_ranges():
    p = draw(FULL)
    bounds = {
        "theta": (-40, 40),
        "tx": (-0.2 * 64, 0.2 * 64),  # fractions of the width, in pixels
        "ty": (-0.1 * 48, 0.1 * 48),
        "shear": (-15, 15),
        "zx": (0.75, 1.25),
        "zy": (0.75, 1.25),
        "brightness": (-0.3, 0.3),
        "contrast": (0.6, 1.4),
    }
    for name, (low, high) in bounds.items():
        values = p[name]
        assert values.shape == (512,)
        assert low <= values.min() and values.max() <= high, name
        # ... and fill the range, not a corner of it
        assert values.min() < low + 0.1 * (high - low) and values.max() > high - 0.1 * (high - low), name
    for flip in ("hflip", "vflip"):
        assert p[flip].dtype == bool and 0.35 < p[flip].mean() < 0.65


def test_parameters_are_the_same_for_a_seed_and_differ_for_another():
    first, again, other, next_batch = draw(FULL, (1, 0)), draw(FULL, (1, 0)), draw(FULL, (2, 0)), draw(FULL, (1, 1))
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
        assert not np.array_equal(first[name], other[name]), name
        assert not np.array_equal(first[name], next_batch[name]), name


def test_switching_one_knob_on_does_not_change_what_the_others_draw():
    rotation_only = draw(Augmentation(rotation_range=40))
    with_more = draw(Augmentation(rotation_range=40, horizontal_flip=True, zoom_range=0.2))
    np.testing.assert_array_equal(rotation_only["theta"], with_more["theta"])


def test_each_knob_draws_independently_of_the_others():
    p = draw(FULL, batch=2048)
    continuous = ["theta", "tx", "ty", "shear", "zx", "zy", "brightness", "contrast"]
    correlation = np.corrcoef(np.stack([p[name] for name in continuous]))
    off_diagonal = correlation[~np.eye(len(continuous), dtype=bool)]
    assert np.abs(off_diagonal).max() < 0.15
    for flip in ("hflip", "vflip"):
        for name in continuous:
            agreement = np.mean(p[flip] == (p[name] < np.median(p[name])))
            assert 0.4 < agreement < 0.6, (flip, name)
    assert 0.4 < np.mean(p["hflip"] == p["vflip"]) < 0.6


def test_knobs_that_are_off_draw_the_identity():
    p = draw(Augmentation(rotation_range=10), batch=8)
    for name in ("tx", "ty", "shear", "brightness"):
        np.testing.assert_array_equal(p[name], 0.0)
    for name in ("zx", "zy", "contrast"):
        np.testing.assert_array_equal(p[name], 1.0)
    assert not p["hflip"].any() and not p["vflip"].any()


@pytest.mark.parametrize("flip, axis", [("horizontal_flip", 2), ("vertical_flip", 1)])
def test_a_flip_only_layer_leaves_every_pixel_bit_identical(flip, axis):
    # No resampling when no geometric knob is on: every image is the original or its exact mirror.
    images = np.random.default_rng(1).integers(0, 256, (16, 24, 24, 3), dtype=np.uint8)
    out = augment_images(images, Augmentation(**{flip: True}), seed=11)
    mirrored = np.flip(images, axis=axis)
    same = [np.array_equal(o, i) for o, i in zip(out, images, strict=True)]
    flipped = [np.array_equal(o, m) for o, m in zip(out, mirrored, strict=True)]
    assert all(s or f for s, f in zip(same, flipped, strict=True))
    assert any(same) and any(flipped)


@pytest.mark.parametrize(
    "aug, resamples",
    [
        (Augmentation(horizontal_flip=True, vertical_flip=True, brightness_range=0.2, contrast_range=0.2), False),
        (Augmentation(horizontal_flip=True, zoom_range=0.1), True),
    ],
    ids=["flips-and-colour", "with-zoom"],
)
def test_only_geometric_knobs_resample_the_image(monkeypatch, aug, resamples):
    import keras

    calls = []
    original = keras.ops.image.affine_transform
    monkeypatch.setattr(keras.ops.image, "affine_transform", lambda *a, **k: calls.append(1) or original(*a, **k))
    augment_images(np.zeros((2, 24, 24, 3), np.uint8), aug, seed=0)
    assert bool(calls) is resamples


def test_a_brightness_only_layer_does_not_resample():
    images = np.random.default_rng(2).integers(0, 256, (4, 24, 24, 3), dtype=np.uint8)
    layer = augment.make_layer(Augmentation(brightness_range=0.2))
    seed = tf.constant([3, 0], tf.int64)
    out = layer(tf.constant(images, tf.float32), seed=seed).numpy()
    shift = sample_parameters(Augmentation(brightness_range=0.2), 4, 24, 24, seed)["brightness"].numpy()
    expected = np.clip(images.astype(np.float32) + shift[:, None, None, None] * np.float32(255.0), 0, 255)
    np.testing.assert_allclose(out, expected, atol=1e-4)


# -- preview ---------------------------------------------------------------------------------------
def test_preview_gives_count_distinct_variants_of_the_image():
    image = smooth_image(8, 48).astype(np.uint8)
    variants = preview(image, FULL, count=6, seed=0)
    assert variants.shape == (6, 48, 48, 3) and variants.dtype == np.uint8
    flat = {v.tobytes() for v in variants}
    assert len(flat) == 6 and image.tobytes() not in flat
    np.testing.assert_array_equal(preview(image, FULL, count=6, seed=0), variants)
    assert not np.array_equal(preview(image, FULL, count=6, seed=1), variants)


def test_preview_without_augmentation_shows_the_image_itself():
    image = smooth_image(9, 48).astype(np.uint8)
    variants = preview(image, Augmentation(fill_mode="wrap"), count=3)
    for variant in variants:
        np.testing.assert_array_equal(variant, image)


# The page draws its preview in numpy (before TensorFlow loads): the numpy transform must be
# the training layer's, fill modes included, everywhere in the image.
BEYOND_ONE_PERIOD = {  # source points more than one image away, on either side
    "beyond-one-period": {"theta": 33.0, "tx": 35.0, "zx": 1.9, "zy": 1.9},
    "beyond-one-period-negative": {"theta": -20.0, "tx": -35.0, "ty": -30.0, "zx": 1.9, "zy": 1.9},
}


@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("name", sorted(TRANSFORMS) + sorted(BEYOND_ONE_PERIOD))
def test_numpy_preview_transform_matches_the_training_layer(name, fill_mode):
    image = smooth_image(10)
    params = params_for(1, **{**TRANSFORMS, **BEYOND_ONE_PERIOD}[name])
    aug = dataclasses.replace(
        geometric_aug(fill_mode), width_shift_range=0.9, height_shift_range=0.9, zoom_range=0.9, cval=50.0
    )
    expected = apply_parameters(tf.constant(image[None]), params, aug).numpy()
    ours = apply_parameters_np(image[None].copy(), {k: v.numpy() for k, v in params.items()}, aug)
    np.testing.assert_allclose(ours, expected, atol=2e-3)


def test_numpy_preview_flips_and_colour_match_the_training_layer():
    batch = np.stack([np.clip(smooth_image(i) * 0.5 + 60, 0, 255) for i in range(4)])
    values = {
        "theta": [10.0, 0.0, -5.0, 0.0],
        "hflip": [True, False, True, False],
        "vflip": [False, True, True, False],
        "brightness": [0.1, -0.2, 0.0, 0.3],
        "contrast": [0.7, 1.3, 1.0, 1.2],
    }
    params = params_for(4, **values)
    expected = apply_parameters(tf.constant(batch), params, FULL).numpy()
    ours = apply_parameters_np(batch.copy(), {k: v.numpy() for k, v in params.items()}, FULL)
    np.testing.assert_allclose(ours, expected, atol=2e-3)


def test_numpy_preview_draws_within_the_configured_ranges():
    p = sample_parameters_np(FULL, 512, 48, 64, np.random.default_rng(0))
    reference = draw(FULL)  # the training layer's draws, same ranges
    for name in ("theta", "tx", "ty", "shear", "zx", "zy", "brightness", "contrast"):
        low, high = reference[name].min(), reference[name].max()
        span = high - low
        assert low - 0.02 * span <= p[name].min() < low + 0.05 * span, name
        assert high - 0.05 * span < p[name].max() <= high + 0.02 * span, name
    off = sample_parameters_np(Augmentation(rotation_range=10), 8, 48, 48, np.random.default_rng(0))
    for name in ("tx", "ty", "shear", "brightness"):
        np.testing.assert_array_equal(off[name], 0.0)
    for name in ("zx", "zy", "contrast"):
        np.testing.assert_array_equal(off[name], 1.0)
    assert not np.any(off["hflip"]) and not np.any(off["vflip"])


# -- equivalent code -------------------------------------------------------------------------------
CODE_CASES = {
    "course": Augmentation(
        rotation_range=40,
        width_shift_range=0.2,
        height_shift_range=0.2,
        shear_range=0.2,
        zoom_range=0.2,
        horizontal_flip=True,
    ),
    "constant-fill": Augmentation(
        width_shift_range=0.1, zoom_range=0.3, vertical_flip=True, fill_mode="constant", cval=12.0, rescale=0.5
    ),
    "wrap-flip-only": Augmentation(horizontal_flip=True, fill_mode="wrap", rescale=1.0),
    "odd-rescale": Augmentation(rotation_range=12.5, rescale=0.3, fill_mode="reflect"),
    "contrast": Augmentation(rotation_range=10, contrast_range=0.2),
    "brightness": Augmentation(zoom_range=0.1, brightness_range=0.2),
}


@pytest.mark.parametrize("name", sorted(CODE_CASES))
def test_image_data_generator_code_runs_and_sets_the_same_knobs(name):
    aug = CODE_CASES[name]
    namespace: dict = {}
    exec(image_data_generator_code(aug), namespace)
    generator = namespace["train_datagen"]
    assert isinstance(generator, tf.keras.preprocessing.image.ImageDataGenerator)
    for knob in ("rotation_range", "width_shift_range", "height_shift_range", "shear_range"):
        assert getattr(generator, knob) == pytest.approx(getattr(aug, knob), rel=1e-5), knob
    assert list(generator.zoom_range) == pytest.approx([1 - aug.zoom_range, 1 + aug.zoom_range])
    assert generator.horizontal_flip is aug.horizontal_flip and generator.vertical_flip is aug.vertical_flip
    assert generator.rescale == pytest.approx(aug.rescale, rel=1e-5)
    assert generator.fill_mode == aug.fill_mode
    if aug.fill_mode == "constant":
        assert generator.cval == aug.cval


def test_image_data_generator_code_uses_the_courses_rescale_spelling():
    assert "rescale=1./255" in image_data_generator_code(Augmentation(rotation_range=40))


LAYER_CASES = {
    "translation-zoom-flip": (
        Augmentation(width_shift_range=0.2, height_shift_range=0.1, zoom_range=0.3, horizontal_flip=True),
        ["RandomFlip", "RandomTranslation", "RandomZoom", "Rescaling"],
    ),
    "colour": (
        Augmentation(vertical_flip=True, brightness_range=0.2, contrast_range=0.3, fill_mode="constant", cval=5),
        ["RandomFlip", "RandomBrightness", "RandomContrast", "Rescaling"],
    ),
    "rotation": (Augmentation(rotation_range=40, fill_mode="constant", cval=5), ["RandomRotation", "Rescaling"]),
    "shear": (Augmentation(shear_range=20), ["RandomShear", "Rescaling"]),
    "everything": (
        FULL,
        ["RandomFlip", "RandomRotation", "RandomTranslation", "RandomShear", "RandomZoom"]
        + ["RandomBrightness", "RandomContrast", "Rescaling"],
    ),
}


@pytest.mark.parametrize(
    "name",
    [n for n in sorted(LAYER_CASES)],
)
def test_keras_layers_code_runs_and_builds_the_expected_layers(name):
    import keras

    aug, expected = LAYER_CASES[name]
    namespace: dict = {}
    exec(keras_layers_code(aug), namespace)
    model = namespace["augmentation"]
    assert isinstance(model, keras.Sequential)
    assert [type(layer).__name__ for layer in model.layers] == expected
    layers = {type(layer).__name__: layer for layer in model.layers}
    assert layers["Rescaling"].scale == pytest.approx(aug.rescale, rel=1e-5)
    if "RandomTranslation" in layers:
        assert layers["RandomTranslation"].height_factor == aug.height_shift_range
        assert layers["RandomTranslation"].width_factor == aug.width_shift_range
    if "RandomRotation" in layers:
        assert layers["RandomRotation"].factor[1] * 360 == pytest.approx(aug.rotation_range, abs=0.05)
    out = model(np.full((2, 24, 24, 3), 128.0, np.float32), training=True)
    assert tuple(out.shape) == (2, 24, 24, 3)


def test_keras_layers_code_contrast_draws_the_labs_range():
    namespace: dict = {}
    exec(keras_layers_code(Augmentation(contrast_range=0.3)), namespace)
    contrast = next(layer for layer in namespace["augmentation"].layers if type(layer).__name__ == "RandomContrast")
    assert (1 - contrast.factor[0], 1 + contrast.factor[1]) == pytest.approx((0.7, 1.3))


def test_shear_note_says_degrees():
    note = shear_note(Augmentation(shear_range=0.2))
    assert "degrees" in note and "0.2" in note


@pytest.mark.parametrize(
    "knobs",
    [
        {"rotation_range": 40, "width_shift_range": 0.2, "height_shift_range": 0.2, "shear_range": 0.2,
         "zoom_range": 0.2, "horizontal_flip": True},
        {"rotation_range": 30, "horizontal_flip": True, "vertical_flip": True, "fill_mode": "reflect"},
        {"zoom_range": 0.3, "vertical_flip": True, "fill_mode": "constant", "cval": 7.0, "contrast_range": 0.2},
        {"width_shift_range": 0.3, "horizontal_flip": True, "fill_mode": "wrap", "brightness_range": 0.2},
    ],
)  # fmt: skip
def test_flips_folded_into_the_resample_equal_resampling_then_mirroring(knobs):
    """The flips ride on the affine resample: the images are those of resampling first, then mirroring."""

    aug = Augmentation(**knobs)
    unflipped = dataclasses.replace(aug, horizontal_flip=False, vertical_flip=False)
    images = tf.constant(np.random.default_rng(0).integers(0, 256, (16, 40, 40, 3)), tf.float32)
    params = sample_parameters(aug, 16, 40, 40, tf.constant([42, 3], tf.int64))
    assert 0 < int(tf.reduce_sum(tf.cast(params["hflip"] | params["vflip"], tf.int32))) < 16
    expected = apply_parameters(images, params, unflipped).numpy()
    hflip, vflip = params["hflip"].numpy(), params["vflip"].numpy()
    expected[hflip] = expected[hflip][:, :, ::-1]
    expected[vflip] = expected[vflip][:, ::-1]
    folded = apply_parameters(images, params, aug).numpy()
    # Only float rounding of the sampling coordinates differs: far below one grey level.
    np.testing.assert_allclose(folded, expected, atol=0.05)
    assert np.abs(folded - apply_parameters(images, params, unflipped).numpy()).max() > 10  # the flips did flip
