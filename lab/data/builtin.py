"""The builtin dataset: cartoon cats and dogs, drawn in code, the lesson in miniature.

Like the course's Cats vs Dogs, the two classes differ by a detail (pointed ears that
stand up, or floppy ears that hang down) on a head that looks alike otherwise. The
training images all show their subject in one pose: centred, upright, one size, facing
the same way. The validation images show the same kinds of subject shifted, rotated,
zoomed and mirrored. A model that sees only the training pose learns where the ears
are, not what they are, and fails on the other poses; the matching augmentations show
it those poses and it generalises.

Everything is drawn from a fixed seed: the same images on every machine and every run,
no download, no files, ready in about a second.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASS_NAMES = ("cats", "dogs")
TRAIN_PER_CLASS = 150
VALIDATION_PER_CLASS = 150
DATA_SEED = 2013  # the year of Kaggle's Dogs vs. Cats: the data never depends on a run's seed
_SUPERSAMPLE = 2  # draw larger, then shrink: smooth edges at any size

# How far the validation poses vary (the training pose is the neutral one).
POSE_LIMITS = {"rotation": 40.0, "shift": 0.22, "zoom": 0.25, "mirror": True}


DESCRIPTION = (
    "Cartoon cats (pointed ears) and dogs (floppy ears), drawn in code. Training images show "
    "every subject in one pose: centred, upright, one size. Validation images show them shifted "
    f"(±{POSE_LIMITS['shift']:.0%}), rotated (±{POSE_LIMITS['rotation']:.0f}°), zoomed "
    f"(±{POSE_LIMITS['zoom']:.0%}) and mirrored: a model that only saw the training pose overfits."
)


@functools.lru_cache(maxsize=4)
def generate(image_size: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{'train': (images, labels), 'validation': (images, labels)}; uint8 [N, S, S, 3], int32 [N].

    Cached per size (a few MB each) so that a comparison, the preview and the sample
    strip draw the images once.
    """
    rng = np.random.default_rng(DATA_SEED)
    splits = {}
    poses = []
    for split, per_class, varied in (("train", TRAIN_PER_CLASS, False), ("validation", VALIDATION_PER_CLASS, True)):
        images, labels = [], []
        for index in range(per_class * len(CLASS_NAMES)):
            label = index % len(CLASS_NAMES)
            pose = _random_pose(rng) if varied else _neutral_pose()
            if varied:
                poses.append(pose)
            images.append(_draw(rng, label, pose, image_size))
            labels.append(label)
        splits[split] = (np.stack(images), np.asarray(labels, dtype=np.int32))
    _VALIDATION_POSES[image_size] = poses
    return splits


# The pose of each validation image, per image size, filled by `generate` (the draws interleave
# with the drawing, so the poses come out of the same pass).
_VALIDATION_POSES: dict[int, list[dict]] = {}


def validation_poses(image_size: int) -> list[dict]:
    """How each validation image of `generate(image_size)` is posed: rotation (degrees), dx and dy
    (fractions of the image), zoom (factor), mirror."""
    if image_size not in _VALIDATION_POSES:
        generate.cache_clear()  # drawn before the poses were kept: draw again
    generate(image_size)
    return _VALIDATION_POSES[image_size]


def describe_pose(pose: dict) -> str:
    """How far a pose is from the training pose, in words: "rotated 31°, shifted 18%, zoomed 112%, mirrored"."""
    shift = max(abs(pose["dx"]), abs(pose["dy"]))
    parts = [f"rotated {pose['rotation']:+.0f}°", f"shifted {shift:.0%}", f"zoomed {pose['zoom']:.0%}"]
    if pose["mirror"]:
        parts.append("mirrored")
    return ", ".join(parts)


def pose_distance(pose: dict) -> float:
    """How far a pose is from the training pose: the largest of rotation, shift and zoom, each as a
    fraction of its limit in `POSE_LIMITS` (0 = the training pose, 1 = as far as validation goes)."""
    limits = POSE_LIMITS
    return max(
        abs(pose["rotation"]) / limits["rotation"],
        max(abs(pose["dx"]), abs(pose["dy"])) / limits["shift"],
        abs(pose["zoom"] - 1) / limits["zoom"],
    )


def _neutral_pose() -> dict[str, float]:
    return {"rotation": 0.0, "dx": 0.0, "dy": 0.0, "zoom": 1.0, "mirror": False}


def _random_pose(rng: np.random.Generator) -> dict[str, float]:
    limits = POSE_LIMITS
    return {
        "rotation": rng.uniform(-limits["rotation"], limits["rotation"]),
        "dx": rng.uniform(-limits["shift"], limits["shift"]),
        "dy": rng.uniform(-limits["shift"], limits["shift"]),
        "zoom": rng.uniform(1 - limits["zoom"], 1 + limits["zoom"]),
        "mirror": bool(rng.random() < 0.5),
    }


def _colour(rng: np.random.Generator, low: int, high: int) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(low, high, size=3))


def _draw(rng: np.random.Generator, label: int, pose: dict, size: int) -> np.ndarray:
    canvas = size * _SUPERSAMPLE
    background = _colour(rng, 0, 256)
    image = Image.new("RGB", (canvas, canvas), background)
    draw = ImageDraw.Draw(image)
    # Clutter: a few soft blobs, different in every image, so that memorising the
    # training set is possible and telling classes apart by background is not.
    for _ in range(4):
        x, y = rng.uniform(0, canvas, size=2)
        r = rng.uniform(0.05, 0.15) * canvas
        draw.ellipse([x - r, y - r, x + r, y + r], fill=_colour(rng, 0, 256))

    # The subject, drawn in a unit frame centred on (0, 0): the head has radius 0.22.
    fur = _colour(rng, 40, 256)
    dark = tuple(max(0, c - 120) for c in fur)
    head = 0.22 + rng.uniform(-0.01, 0.01)
    shapes = []
    if CLASS_NAMES[label] == "cats":
        # Pointed ears standing up from the top of the head.
        shapes.append(("polygon", [(-0.20, -0.10), (-0.17, -0.42), (-0.02, -0.20)], fur))
        shapes.append(("polygon", [(0.20, -0.10), (0.17, -0.42), (0.02, -0.20)], fur))
    else:
        # Floppy ears hanging down the sides of the head.
        shapes.append(("polygon", [(-0.14, -0.18), (-0.34, -0.10), (-0.33, 0.20), (-0.20, 0.16)], dark))
        shapes.append(("polygon", [(0.14, -0.18), (0.34, -0.10), (0.33, 0.20), (0.20, 0.16)], dark))
    shapes.append(("circle", (0.0, 0.0, head), fur))
    # A patch over one eye makes every subject face one way, so mirroring shows.
    shapes.append(("circle", (-0.09, -0.05, 0.07), dark))
    shapes.append(("circle", (-0.08, -0.04, 0.03), (20, 20, 20)))
    shapes.append(("circle", (0.08, -0.04, 0.03), (20, 20, 20)))
    shapes.append(("circle", (0.0, 0.07, 0.035), (30, 10, 10)))

    place = _placement(pose, canvas)
    for kind, geometry, colour in shapes:
        if kind == "polygon":
            draw.polygon([place(x, y) for x, y in geometry], fill=colour)
        else:
            cx, cy, r = geometry
            x, y = place(cx, cy)
            radius = r * canvas * pose["zoom"]
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)

    image = image.filter(ImageFilter.GaussianBlur(radius=_SUPERSAMPLE * 0.5))
    image = image.resize((size, size), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.int16)
    noise = rng.integers(-12, 13, size=pixels.shape)
    return np.clip(pixels + noise, 0, 255).astype(np.uint8)


def _placement(pose: dict, canvas: int):
    """Map unit-frame (x, y) to canvas pixels under the pose: mirror, zoom, rotate, shift."""
    angle = math.radians(pose["rotation"])
    cos, sin = math.cos(angle), math.sin(angle)
    centre_x = canvas * (0.5 + pose["dx"])
    centre_y = canvas * (0.5 + pose["dy"])

    def place(x: float, y: float) -> tuple[float, float]:
        if pose["mirror"]:
            x = -x
        x, y = x * pose["zoom"], y * pose["zoom"]
        rx, ry = cos * x - sin * y, sin * x + cos * y
        return centre_x + rx * canvas, centre_y + ry * canvas

    return place
