"""The augmentation knobs turned into an on-the-fly transform, a preview, and code.

`ImageDataGenerator` composes rotation, shift, shear and zoom into one matrix and
resamples each image once. `Augment` does the same as a Keras preprocessing layer over a
batch, with `keras.ops.image.affine_transform`, so the knobs keep the course's meaning
while the work stays one resample per image (the separate `RandomRotation`,
`RandomTranslation`, ... layers resample once each).

Randomness is stateless and keyed by a per-batch seed: the same seed gives the same
augmented images on every run, while each batch of each epoch draws new variants.
Nothing is stored: every variant exists only while its batch is in flight.
"""

from __future__ import annotations

import math

import numpy as np

from lab.config import ARCHITECTURES, Augmentation, RunConfig
from lab.knobs import KNOBS, STREAMS, Knob


def affine_matrix(theta, tx, ty, shear, zx, zy, height: int, width: int, xp=np):
    """The 3x3 matrices mapping output pixel (x, y) to input (x', y'), as in ImageDataGenerator.

    Arguments are per-image arrays: rotation `theta` (degrees, counter-clockwise), shift
    `tx`/`ty` (pixels along the width/height; the content moves by -tx, -ty), `shear`
    (degrees), zoom `zx`/`zy` (sampling scale along the width/height: above 1 shows more
    of the scene, smaller). The composition order is ImageDataGenerator's: rotation,
    shift, shear, zoom, about the image centre. `xp` is numpy or a tensor namespace with
    the same functions (tensorflow's experimental numpy), so the page and the tests can
    use the same formula as the pipeline.
    """
    t = xp.asarray(theta) * (math.pi / 180)
    s = xp.asarray(shear) * (math.pi / 180)
    cos, sin = xp.cos(t), xp.sin(t)
    zx, zy = xp.asarray(zx), xp.asarray(zy)
    tx, ty = xp.asarray(tx), xp.asarray(ty)
    # R(theta) @ T(tx, ty) @ Shear(s) @ Zoom(zx, zy), multiplied out.
    a00 = cos * zx
    a01 = (-cos * xp.sin(s) - sin * xp.cos(s)) * zy
    a10 = sin * zx
    a11 = (-sin * xp.sin(s) + cos * xp.cos(s)) * zy
    a02 = cos * tx - sin * ty
    a12 = sin * tx + cos * ty
    # About the centre: C @ M @ C^-1, C a shift by the centre (pixel-centre convention
    # of ImageDataGenerator: (size - 1) / 2).
    ox, oy = width / 2 - 0.5, height / 2 - 0.5
    b02 = a02 + ox - a00 * ox - a01 * oy
    b12 = a12 + oy - a10 * ox - a11 * oy
    return a00, a01, b02, a10, a11, b12


def _uniform(seed, stream: str, shape, low, high):
    import tensorflow as tf

    stream_seed = tf.stack([seed[0], seed[1] + STREAMS[stream] * 1_000_003])
    return tf.random.stateless_uniform(shape, stream_seed, minval=low, maxval=high)


def _spread(knob: Knob, value: float) -> tuple[float, float]:
    """The interval a knob's draws come from, as `lab.knobs.Knob.spread` says."""
    if knob.spread == "around_one":
        return 1 - value, 1 + value
    if knob.spread == "coin":
        return 0.0, 1.0
    return -value, value


def sample_parameters(aug: Augmentation, batch: int, height: int, width: int, seed) -> dict:
    """Draw the per-image parameters of one batch, the way ImageDataGenerator draws them.

    A knob that is off draws nothing: its parameters hold "no change".
    """
    import tensorflow as tf

    sizes = {"": 1, "width": width, "height": height}
    params = {}
    for knob in KNOBS:
        value = getattr(aug, knob.name)
        for name in knob.draws:
            if knob.spread == "coin":
                params[name] = _uniform(seed, name, [batch], 0, 1) < 0.5 if value else tf.zeros([batch], tf.bool)
            elif value:
                # Fractions of the width move along the width: ImageDataGenerator in Keras 3 swaps
                # these two axes; with equal ranges, as in the course, that makes no difference.
                params[name] = _uniform(seed, name, [batch], *_spread(knob, value)) * sizes[knob.scale]
            else:
                params[name] = tf.fill([batch], float(knob.spread == "around_one"))
    return params


def apply_parameters(images, params: dict, aug: Augmentation):
    """Transform a float batch [B, H, W, C] in 0..255 with fixed per-image parameters."""
    import keras
    import tensorflow as tf

    height, width = images.shape[1], images.shape[2]
    if height is None or width is None:
        height, width = tf.shape(images)[1], tf.shape(images)[2]
    if _geometric(aug):
        rows = affine_matrix(
            params["theta"],
            params["tx"],
            params["ty"],
            params["shear"],
            params["zx"],
            params["zy"],
            int(height),
            int(width),
            xp=tf.experimental.numpy,
        )
        rows = fold_flips([tf.cast(r, tf.float32) for r in rows], params, aug, int(height), int(width), xp=tf)
        zeros = tf.zeros_like(rows[0])
        transforms = tf.stack(list(rows) + [zeros, zeros], axis=1)
        images = keras.ops.image.affine_transform(
            images, transforms, interpolation="bilinear", fill_mode=aug.fill_mode, fill_value=aug.cval
        )
    else:  # no resample to ride on: mirror directly
        if aug.horizontal_flip:
            images = tf.where(params["hflip"][:, None, None, None], tf.reverse(images, axis=[2]), images)
        if aug.vertical_flip:
            images = tf.where(params["vflip"][:, None, None, None], tf.reverse(images, axis=[1]), images)
    if aug.brightness_range:
        images = images + params["brightness"][:, None, None, None] * 255.0
    if aug.contrast_range:
        mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
        images = (images - mean) * params["contrast"][:, None, None, None] + mean
    if aug.brightness_range or aug.contrast_range:
        images = tf.clip_by_value(images, 0.0, 255.0)
    return images


def _geometric(aug: Augmentation) -> bool:
    """Whether a knob that moves pixels is on: then one resample does every move, flips included."""
    return any(getattr(aug, knob.name) for knob in KNOBS if knob.kind == "geometric")


def fold_flips(rows, params: dict, aug: Augmentation, height: int, width: int, xp=np):
    """Fold the horizontal and vertical flips into the affine rows (a00, a01, a02, a10, a11, a12).

    Mirroring a resampled image's x is sampling it at W-1-x (and y at H-1-y): the flipped image
    is the affine one with x replaced, so the flips ride on the one resample instead of costing
    a reverse and a select over the whole batch (29-36% of the augmentation's work, see
    docs/performance.md). The source coordinates, hence the pixels, are the same. `xp` is numpy
    (the page's preview) or tensorflow (the training layer).
    """

    def as_float(flags):
        return np.asarray(flags, np.float64) if xp is np else xp.cast(flags, xp.float32)

    a00, a01, a02, a10, a11, a12 = rows
    if aug.horizontal_flip:
        flip = as_float(params["hflip"])
        a02, a12 = a02 + flip * a00 * (width - 1), a12 + flip * a10 * (width - 1)
        a00, a10 = a00 * (1.0 - 2.0 * flip), a10 * (1.0 - 2.0 * flip)
    if aug.vertical_flip:
        flip = as_float(params["vflip"])
        a02, a12 = a02 + flip * a01 * (height - 1), a12 + flip * a11 * (height - 1)
        a01, a11 = a01 * (1.0 - 2.0 * flip), a11 * (1.0 - 2.0 * flip)
    return a00, a01, a02, a10, a11, a12


def make_layer(aug: Augmentation):
    """A Keras preprocessing layer applying `aug` to a batch, given a per-batch seed."""
    import keras

    class Augment(keras.layers.Layer):
        """ImageDataGenerator's knobs as one layer: one resample per image, stateless seeds."""

        def __init__(self, augmentation: Augmentation, **kwargs):
            super().__init__(trainable=False, **kwargs)
            self.augmentation = augmentation

        def call(self, images, seed):
            import tensorflow as tf

            images = tf.cast(images, tf.float32)
            shape = tf.shape(images)
            params = sample_parameters(self.augmentation, shape[0], images.shape[1], images.shape[2], seed)
            return apply_parameters(images, params, self.augmentation)

    return Augment(aug, name="augment")


class StepAugmentation:
    """What a model's training step does to each batch when augmentation is on (`lab.training.model`).

    Batch number `step` of a run (counted from 0 across epochs) is augmented with the seed
    `(seed, step)` and then rescaled: every epoch draws new variants, and the same seed draws
    the same ones again. The seed lives in a variable, so a compiled model kept for the next run
    (`lab.training.train.ModelCache`) takes that run's seed without tracing its step again.
    """

    def __init__(self, aug: Augmentation, seed: int = 0) -> None:
        import tensorflow as tf

        self.augmentation = aug
        self.layer = make_layer(aug)
        self.seed = tf.Variable(seed, dtype=tf.int64, trainable=False, name="augmentation_seed")

    def __call__(self, images, step):
        """Float (or uint8) images [B, H, W, C] in 0..255 → augmented, rescaled float32 images."""
        import tensorflow as tf

        seed = tf.stack([tf.convert_to_tensor(self.seed), tf.cast(step, tf.int64)])
        return tf.cast(self.layer(images, seed=seed), tf.float32) * self.augmentation.rescale


# -- the preview, in numpy -------------------------------------------------------------
# The page shows variants on its first paint, before TensorFlow is imported (importing it
# takes seconds). The same formula (`affine_matrix`) drives both; a test checks that this
# numpy version draws what the training layer draws.
def preview(image: np.ndarray, aug: Augmentation, count: int = 8, seed: int = 0) -> np.ndarray:
    """`count` augmented variants of one uint8 image [H, W, 3], as uint8 [count, H, W, 3]."""
    height, width = image.shape[:2]
    params = sample_parameters_np(aug, count, height, width, np.random.default_rng(seed))
    batch = np.repeat(image[None].astype(np.float32), count, axis=0)
    out = apply_parameters_np(batch, params, aug)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def sample_parameters_np(aug: Augmentation, count: int, height: int, width: int, rng: np.random.Generator) -> dict:
    """Per-image parameters drawn as `sample_parameters` draws them (numpy's generator, every draw made)."""
    sizes = {"": 1, "width": width, "height": height}
    params = {}
    for knob in KNOBS:
        value = getattr(aug, knob.name)
        for name in knob.draws:
            drawn = rng.uniform(*_spread(knob, float(value)), size=count)
            params[name] = (drawn < 0.5) & bool(value) if knob.spread == "coin" else drawn * sizes[knob.scale]
    return params


def apply_parameters_np(images: np.ndarray, params: dict, aug: Augmentation) -> np.ndarray:
    """`apply_parameters` in numpy: float [N, H, W, C] in 0..255, fixed per-image parameters."""
    count, height, width = images.shape[:3]
    rows = affine_matrix(
        params["theta"], params["tx"], params["ty"], params["shear"], params["zx"], params["zy"], height, width
    )
    rows = [np.broadcast_to(np.asarray(r, np.float64), (count,)) for r in rows]
    a00, a01, a02, a10, a11, a12 = fold_flips(rows, params, aug, height, width)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    out = np.empty_like(images, dtype=np.float32)
    for i in range(count):
        src_x = a00[i] * xs + a01[i] * ys + a02[i]
        src_y = a10[i] * xs + a11[i] * ys + a12[i]
        out[i] = _bilinear(images[i], src_x, src_y, aug.fill_mode, aug.cval)
    if aug.brightness_range:
        out = out + np.asarray(params["brightness"])[:, None, None, None] * 255.0
    if aug.contrast_range:
        mean = out.mean(axis=(1, 2), keepdims=True)
        out = (out - mean) * np.asarray(params["contrast"])[:, None, None, None] + mean
    return np.clip(out, 0, 255)


def _fill_coordinates(coord: np.ndarray, size: int, mode: str) -> np.ndarray:
    """Map sample coordinates outside [0, size - 1] back inside, as TensorFlow's fill modes do."""
    if mode == "reflect":  # (d c b a | a b c d | d c b a)
        period = 2 * size
        coord = np.mod(coord + 0.5, period)
        coord = np.where(coord >= size, period - coord, coord) - 0.5
    elif mode == "wrap":  # (a b c d | a b c d | a b c d), with TensorFlow's period of size - 1 steps
        span = max(size - 1, 1)
        below = coord + size * (np.trunc(-coord / span) + 1)
        above = coord - size * np.trunc(coord / span)
        coord = np.where(coord < 0, below, np.where(coord > size - 1, above, coord))
    return coord


def _bilinear(image: np.ndarray, src_x: np.ndarray, src_y: np.ndarray, mode: str, cval: float) -> np.ndarray:
    height, width = image.shape[:2]
    src_x = _fill_coordinates(src_x, width, mode)
    src_y = _fill_coordinates(src_y, height, mode)
    if mode != "constant":
        src_x = np.clip(src_x, 0, width - 1)
        src_y = np.clip(src_y, 0, height - 1)
    x0, y0 = np.floor(src_x).astype(int), np.floor(src_y).astype(int)
    fx, fy = (src_x - x0)[..., None], (src_y - y0)[..., None]

    def read(y, x):
        inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        pixels = image[np.clip(y, 0, height - 1), np.clip(x, 0, width - 1)]
        return np.where(inside[..., None], pixels, cval)

    top = read(y0, x0) * (1 - fx) + read(y0, x0 + 1) * fx
    bottom = read(y0 + 1, x0) * (1 - fx) + read(y0 + 1, x0 + 1) * fx
    return top * (1 - fy) + bottom * fy


# -- equivalent code ------------------------------------------------------------------
def _num(value: float) -> str:
    return f"{value:g}"


def image_data_generator_code(aug: Augmentation) -> str:
    """The course's `ImageDataGenerator(...)` call for these settings, ready to copy."""
    args: list[tuple[str, str]] = [(f"rescale={_rescale_text(aug.rescale, course=True)}", "")]
    missing = []
    for knob in KNOBS:
        value = getattr(aug, knob.name)
        if not value:
            continue
        if not knob.generator:
            missing.append(knob.label.lower())
            continue
        text = knob.generator.format(name=knob.name, value=_num(value), low=_num(1 - value), high=_num(1 + value))
        args.append((text, knob.note))
    if aug.enabled:
        args.append((f"fill_mode='{aug.fill_mode}'", ""))
        if aug.fill_mode == "constant":
            args.append((f"cval={_num(aug.cval)}", ""))
    lines = ["from tensorflow.keras.preprocessing.image import ImageDataGenerator", ""]
    lines += ["train_datagen = ImageDataGenerator(", *_argument_lines(args), ")"]
    lines += [f"# {name} has no ImageDataGenerator knob: see the Keras layers version" for name in missing]
    return "\n".join(lines)


def cures_code(config: RunConfig) -> str:
    """The Keras lines of the cures switched on besides augmentation (dropout, L2 weight decay, early
    stopping) and of the model they change, ready to copy; empty when none is on and the model is the
    course's CNN."""
    decay = f", kernel_regularizer=regularizers.l2({_num(config.l2)})" if config.l2 else ""
    if not (config.dropout or config.l2 or config.early_stopping or config.architecture != "course"):
        return ""
    lines = ["from tensorflow.keras import callbacks, layers, models, regularizers", "", "model = models.Sequential(["]
    lines.append(f"    layers.Input(shape=({config.image_size}, {config.image_size}, 3)),")
    for filters in ARCHITECTURES[config.architecture]:
        lines.append(f"    layers.Conv2D({filters}, (3, 3), activation='relu'{decay}),")
        lines.append("    layers.MaxPooling2D(2, 2),")
    lines.append("    layers.Flatten(),")
    if config.dropout:
        lines.append(f"    layers.Dropout({_num(config.dropout)}),")
    lines.append(f"    layers.Dense(512, activation='relu'{decay}),")
    lines.append(f"    layers.Dense(1, activation='sigmoid'{decay}),  # two classes; more: a softmax")
    lines.append("])")
    if config.early_stopping:
        lines += [
            "",
            "# Stop once validation loss has not improved for `patience` epochs; keep the best epoch's weights.",
            "early_stop = callbacks.EarlyStopping(",
            f"    monitor='val_loss', patience={config.early_stopping}, restore_best_weights=True",
            ")",
            "# model.fit(..., callbacks=[early_stop])",
        ]
    return "\n".join(lines)


def keras_layers_code(aug: Augmentation) -> str:
    """The same settings as Keras 3 preprocessing layers, ready to copy."""
    fill = f'fill_mode="{aug.fill_mode}"' + (f", fill_value={_num(aug.cval)}" if aug.fill_mode == "constant" else "")
    wanted = {knob.layer for knob in KNOBS if getattr(aug, knob.name)}
    layers = [spell(aug, fill) for name, spell in _LAYERS.items() if name in wanted]
    layers.append((f"keras.layers.Rescaling({_rescale_text(aug.rescale)})", ""))
    body = "\n".join(_argument_lines(layers))
    return f"import keras\n\naugmentation = keras.Sequential([\n{body}\n])"


def _flip_layer(aug: Augmentation, fill: str) -> tuple[str, str]:
    modes = [m for m, on in (("horizontal", aug.horizontal_flip), ("vertical", aug.vertical_flip)) if on]
    return f'keras.layers.RandomFlip("{"_and_".join(modes)}")', ""


def _rotation_layer(aug: Augmentation, fill: str) -> tuple[str, str]:
    factor = _num(round(aug.rotation_range / 360, 4))
    return f"keras.layers.RandomRotation({factor}, {fill})", f"±{_num(aug.rotation_range)}°"


def _translation_layer(aug: Augmentation, fill: str) -> tuple[str, str]:
    height, width = _num(aug.height_shift_range), _num(aug.width_shift_range)
    return f"keras.layers.RandomTranslation({height}, {width}, {fill})", ""


def _shear_layer(aug: Augmentation, fill: str) -> tuple[str, str]:
    factor = _num(round(math.tan(math.radians(aug.shear_range)), 4))
    return f"keras.layers.RandomShear(x_factor={factor}, {fill})", f"tan({_num(aug.shear_range)}°)"


def _zoom_layer(aug: Augmentation, fill: str) -> tuple[str, str]:
    return f"keras.layers.RandomZoom({_num(aug.zoom_range)}, {_num(aug.zoom_range)}, {fill})", ""


def _brightness_layer(aug: Augmentation, fill: str) -> tuple[str, str]:
    return f"keras.layers.RandomBrightness({_num(aug.brightness_range)}, value_range=(0, 255))", ""


def _contrast_layer(aug: Augmentation, fill: str) -> tuple[str, str]:
    # A single number would draw the factor from [1, 1 + c] only: give the range both ways.
    c = _num(aug.contrast_range)
    return (
        f"keras.layers.RandomContrast(({c}, {c}))",
        f"factor in [{_num(1 - aug.contrast_range)}, {_num(1 + aug.contrast_range)}]",
    )


# How each Keras layer a knob names (`Knob.layer`) is spelled, in the order the snippet stacks them.
_LAYERS = {
    "RandomFlip": _flip_layer,
    "RandomRotation": _rotation_layer,
    "RandomTranslation": _translation_layer,
    "RandomShear": _shear_layer,
    "RandomZoom": _zoom_layer,
    "RandomBrightness": _brightness_layer,
    "RandomContrast": _contrast_layer,
}


def _argument_lines(items: list[tuple[str, str]]) -> list[str]:
    """One indented line per item, its comma before its comment so the code stays valid."""
    return [f"    {code}," + (f"  # {comment}" if comment else "") for code, comment in items]


def _rescale_text(rescale: float, course: bool = False) -> str:
    """`1 / 255` rather than 0.00392157; spelled `1./255` as the course writes it."""
    if not _is_inverse_int(rescale):
        return _num(rescale)
    return f"1./{round(1 / rescale)}" if course else f"1 / {round(1 / rescale)}"


def shear_note(aug: Augmentation) -> str:
    """What the shear number means, since the course's 0.2 is easy to misread."""
    degrees = aug.shear_range
    shift = math.tan(math.radians(degrees))
    note = (
        f"shear_range={_num(degrees)} is read in degrees, as ImageDataGenerator reads it: a point "
        f"half an image away from the centre moves by at most {shift * 50:.1f}% of the image."
    )
    if degrees >= 10:  # already a shear one can see: advice to try more would read as a correction
        return note
    return note + " The course's 0.2 is 0.2 degrees (0.2% of the image): a shear too small to see. Try 10-20 degrees."


def _is_inverse_int(value: float) -> bool:
    inverse = 1 / value
    return abs(inverse - round(inverse)) < 1e-6 and round(inverse) > 1
