"""The augmentation knobs, each defined once.

One row per knob: its name (the `Augmentation` field and the `ImageDataGenerator` argument),
what the page calls it, its unit and range, the value a switched-on slider starts at, the
random numbers it draws per image, and how the course's `ImageDataGenerator` and Keras'
preprocessing layers spell it. Validation (`lab.config`), the page's sliders, `enabled`, the
random streams and both code snippets (`lab.training.augment`) all read this table: adding a
knob means adding a row here and its transform in `lab.training.augment`.

Kept free of everything else in the lab: the config, the page and the training layer import it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Knob:
    """One augmentation knob. A "range" knob is a number from 0 (off) to `high`; a "flip" is on or off."""

    name: str
    label: str
    help: str
    draws: tuple[str, ...]  # the per-image parameters it draws, each from its own random stream
    layer: str  # the Keras preprocessing layer that does the same
    # "geometric" knobs move pixels (one resample does them all), "flip" mirrors, "colour" changes values.
    kind: str = "geometric"
    # How a draw spreads around "no change": "symmetric" in [-value, value], "around_one" in
    # [1 - value, 1 + value], "coin" a fair coin when the knob is on. `scale` multiplies a draw by
    # the image's "width" or "height" (shifts are given as fractions, drawn in pixels).
    spread: str = "symmetric"
    scale: str = ""
    unit: str = ""
    high: float = 1.0
    step: float = 0.05
    on: float = 0.0  # where a switched-on slider starts
    # How ImageDataGenerator spells it ("" when it has no such knob): `{value}`, and `{low}`/`{high}`
    # for 1 - value and 1 + value; `note` is the comment the snippet puts beside it.
    generator: str = "{name}={value}"
    note: str = ""

    @property
    def is_flip(self) -> bool:
        return self.kind == "flip"

    @property
    def off(self) -> float | bool:
        """The value that leaves images alone: the field's default."""
        return False if self.is_flip else 0.0


KNOBS: tuple[Knob, ...] = (
    Knob(
        "rotation_range",
        "Rotation",
        "turn by up to ± this angle",
        ("theta",),
        "RandomRotation",
        unit="degrees",
        high=180.0,
        step=1.0,
        on=40.0,
    ),
    Knob(
        "width_shift_range",
        "Width shift",
        "move left/right",
        ("tx",),
        "RandomTranslation",
        scale="width",
        unit="fraction of the width",
        high=0.9,
        on=0.2,
    ),
    Knob(
        "height_shift_range",
        "Height shift",
        "move up/down",
        ("ty",),
        "RandomTranslation",
        scale="height",
        unit="fraction of the height",
        high=0.9,
        on=0.2,
    ),
    # Degrees, exactly as ImageDataGenerator reads it: the course's `shear_range=0.2` is 0.2
    # degrees, a shear too small to see. Use 10-20 to see a shear.
    Knob(
        "shear_range",
        "Shear",
        "slant by up to ± this angle",
        ("shear",),
        "RandomShear",
        unit="degrees",
        high=60.0,
        step=1.0,  # whole degrees: a keyboard reaches 10 in ten presses (a link may still ask for 0.2)
        on=10.0,
        note="degrees",
    ),
    # A zoom factor drawn from [1 - z, 1 + z], independently for width and height, as
    # ImageDataGenerator does.
    Knob(
        "zoom_range",
        "Zoom",
        "zoom in or out",
        ("zx", "zy"),
        "RandomZoom",
        spread="around_one",
        unit="factor drawn from [1-z, 1+z]",
        high=0.9,
        on=0.2,
    ),
    Knob(
        "horizontal_flip",
        "Horizontal flip",
        "mirror half of the images",
        ("hflip",),
        "RandomFlip",
        kind="flip",
        spread="coin",
        generator="{name}=True",
    ),
    Knob(
        "vertical_flip",
        "Vertical flip",
        "mirror half of the images",
        ("vflip",),
        "RandomFlip",
        kind="flip",
        spread="coin",
        generator="{name}=True",
    ),
    # Extras beyond ImageDataGenerator's geometric knobs: brightness shifts by up to this
    # fraction of the pixel range, contrast scales by a factor in [1 - c, 1 + c].
    Knob(
        "brightness_range",
        "Brightness",
        "lighter or darker",
        ("brightness",),
        "RandomBrightness",
        kind="colour",
        unit="fraction of the pixel range",
        on=0.2,
        generator="{name}=[{low}, {high}]",
        note="multiplies; the lab adds a shift",
    ),
    Knob(
        "contrast_range",
        "Contrast",
        "more or less contrast",
        ("contrast",),
        "RandomContrast",
        kind="colour",
        spread="around_one",
        unit="factor drawn from [1-c, 1+c]",
        on=0.3,
        generator="",
    ),
)

BY_NAME: dict[str, Knob] = {knob.name: knob for knob in KNOBS}

# Each kind of draw has its own random stream, numbered in the table's order, so that
# switching one knob on does not change what the others draw.
STREAMS: dict[str, int] = {draw: number for number, draw in enumerate((d for k in KNOBS for d in k.draws), start=1)}
