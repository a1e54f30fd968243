"""The one object that travels: a validated, hashable run configuration.

The page builds a `RunConfig` from its widgets, the command line from a preset plus
`--set` overrides, and the run store keys results by `RunConfig.key()`. Nothing else
keeps its own copy of the settings.

Augmentation knobs keep the names and units of the course's `ImageDataGenerator`,
with one documented exception in meaning (see `Augmentation.shear_range`).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import tomllib
from dataclasses import dataclass, field, fields
from typing import Any

from lab.knobs import KNOBS

# Bump when a change makes old stored results incomparable with new ones.
SCHEMA_VERSION = 1

FILL_MODES = ("nearest", "constant", "reflect", "wrap")

# The course CNN has four 3x3 convolutions each followed by 2x2 pooling: anything
# smaller than 46 px collapses to nothing before `Flatten`.
MIN_IMAGE_SIZE = 48
# The models a run may train (`lab.training.model.build_model`): the filters of each 3x3
# convolution, each followed by 2x2 max-pooling, then Dense 512. "course" is the course's
# Cats vs Dogs CNN; "course5" the five-convolution CNN of the course's Horses or Humans notebook.
ARCHITECTURES: dict[str, tuple[int, ...]] = {"course": (32, 64, 128, 128), "course5": (16, 32, 64, 64, 64)}
# Fields added after schema 1. Each enters the hash only when set away from its default, so
# that every run stored before it was added keeps its key (and is still found in the store).
ADDED_FIELDS: dict[str, object] = {"architecture": "course", "l2": 0.0, "early_stopping": 0}
MAX_IMAGE_SIZE = 512
# How many seeds per side a comparison may train (the page and the command line alike).
MAX_SEEDS = 10


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type or out of range."""


def _with_knob_fields(cls: type) -> type:
    """Give the class one field per row of `lab.knobs.KNOBS`, after `rescale`, each off by default.

    Why: a knob is declared in the table alone, so its name, type and range cannot drift apart.
    """
    annotations = dict(cls.__annotations__)
    fields_in_order = {"rescale": annotations.pop("rescale")}
    for knob in KNOBS:
        fields_in_order[knob.name] = "bool" if knob.is_flip else "float"
        setattr(cls, knob.name, knob.off)
    cls.__annotations__ = {**fields_in_order, **annotations}
    return cls


@dataclass(frozen=True)
@_with_knob_fields
class Augmentation:
    """The knobs of the course's `ImageDataGenerator` (`lab.knobs.KNOBS`), applied on the fly.

    Units follow `ImageDataGenerator`: degrees for rotation and shear, fractions of the
    image size for shifts, `z` for a zoom factor drawn from [1 - z, 1 + z] (independently
    for width and height, as `ImageDataGenerator` does). `rescale` multiplies every pixel,
    training and validation alike, and is not an augmentation: a run "without
    augmentation" keeps it. `fill_mode` and `cval` say what fills the pixels a transform uncovers.
    """

    rescale: float = 1 / 255
    fill_mode: str = "nearest"
    cval: float = 0.0

    def __post_init__(self) -> None:
        _validate(self, "augmentation")

    @property
    def enabled(self) -> bool:
        """True when at least one knob changes images (rescale does not count)."""
        return any(getattr(self, knob.name) for knob in KNOBS)

    def switched_off(self) -> Augmentation:
        """The same settings with every knob off; rescale and fill mode are kept."""
        return Augmentation(rescale=self.rescale, fill_mode=self.fill_mode, cval=self.cval)


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides the outcome of one training run."""

    dataset: str = "builtin"
    # Folder holding the images, for datasets read from disk. `None` uses the
    # dataset's default location (the builtin dataset needs none).
    data_dir: str | None = None
    image_size: int = 64
    # How many training images to use: 0 means all of the training split. A smaller
    # number is a class-balanced, seeded subset, so a user can see that less data
    # overfits sooner.
    train_images: int = 0
    # Used only for a folder without train/ and validation/: the fraction held out.
    validation_split: float = 0.2
    epochs: int = 20
    batch_size: int = 20
    learning_rate: float = 1e-4
    dropout: float = 0.0
    # L2 weight decay: `l2 * sum(w**2)` of every convolution and dense kernel joins the loss
    # (`keras.regularizers.L2`). 0 is off.
    l2: float = 0.0
    # Early stopping: end the run once validation loss has not improved for this many epochs,
    # and keep the weights of its best epoch (`restore_best_weights`). 0 is off.
    early_stopping: int = 0
    architecture: str = "course"
    seed: int = 42
    augmentation: Augmentation = field(default_factory=Augmentation)

    def __post_init__(self) -> None:
        if isinstance(self.augmentation, dict):
            object.__setattr__(self, "augmentation", _build(Augmentation, self.augmentation, "augmentation"))
        elif not isinstance(self.augmentation, Augmentation):
            raise ConfigError("augmentation must be a table of augmentation settings")
        _validate(self, "")

    # -- derived configurations -------------------------------------------------
    def without_augmentation(self) -> RunConfig:
        """The baseline of a comparison: same data, model and seed, knobs off."""
        return dataclasses.replace(self, augmentation=self.augmentation.switched_off())

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def with_overrides(self, overrides: dict[str, Any]) -> RunConfig:
        """Apply `{"epochs": 5, "augmentation.rotation_range": 40}` style overrides.

        A bare augmentation knob (`rotation_range`) is accepted too.
        """
        data = self.to_dict()
        aug_names = {f.name for f in fields(Augmentation)}
        for dotted, value in overrides.items():
            parts = dotted.split(".")
            if len(parts) == 2 and parts[0] == "augmentation":
                data["augmentation"][parts[1]] = value
            elif len(parts) == 1 and parts[0] in aug_names and parts[0] not in data:
                data["augmentation"][parts[0]] = value
            elif len(parts) == 1:
                data[parts[0]] = value
            else:
                raise ConfigError(f"unknown field '{dotted}': use NAME or augmentation.NAME")
        return RunConfig.from_dict(data)

    # -- identity -----------------------------------------------------------------
    def key(self) -> str:
        """A stable hash of everything that decides the result: the cache key."""
        data = {k: v for k, v in self.to_dict().items() if k not in ADDED_FIELDS or v != ADDED_FIELDS[k]}
        payload = json.dumps({"schema": SCHEMA_VERSION, **data}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    # -- a page's URL ---------------------------------------------------------------------
    def to_query(self, base: RunConfig | None = None) -> dict[str, str]:
        """The fields that differ from `base` (the defaults), as URL query parameters (knobs by bare name)."""
        default = base or RunConfig()
        query = {
            f.name: _query_text(getattr(self, f.name))
            for f in fields(self)
            if f.name != "augmentation" and getattr(self, f.name) != getattr(default, f.name)
        }
        for f in fields(Augmentation):
            value = getattr(self.augmentation, f.name)
            if value != getattr(default.augmentation, f.name):
                query[f.name] = _query_text(value)
        return query

    @classmethod
    def from_query(cls, query: dict[str, str], base: RunConfig | None = None) -> RunConfig:
        """The configuration a link describes, on top of `base`; other query parameters are ignored."""
        names = {f.name for f in fields(cls)} | {f.name for f in fields(Augmentation)}
        overrides = {k: v for k, v in query.items() if k in names and k != "augmentation"}
        return (base or cls()).with_overrides(overrides)

    # -- serialisation --------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        return _build(cls, data, "")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def to_toml(self) -> str:
        data = self.to_dict()
        aug = data.pop("augmentation")
        lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if v is not None]
        lines += ["", "[augmentation]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in aug.items()]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_toml(cls, text: str) -> RunConfig:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML: {exc}") from None
        return cls.from_dict(data)


# -- validation -------------------------------------------------------------------
# (minimum, maximum, unit) for every number: the one place a bound is written (the knobs' in
# their table). The page's sliders read their bounds from here.
RANGES: dict[str, tuple[float, float, str]] = {
    "image_size": (MIN_IMAGE_SIZE, MAX_IMAGE_SIZE, "pixels"),
    "train_images": (0, 1_000_000, "images, 0 = all"),
    "validation_split": (0.05, 0.9, "fraction held out"),
    "epochs": (1, 1000, "epochs"),
    "batch_size": (1, 1024, "images"),
    "learning_rate": (1e-7, 1.0, ""),
    "dropout": (0.0, 0.9, "fraction"),
    "l2": (0.0, 0.1, "weight decay factor"),
    "early_stopping": (0, 1000, "epochs of patience, 0 = off"),
    "seed": (0, 2**31 - 1, ""),
    "augmentation.rescale": (1e-6, 1.0, "factor"),
    "augmentation.cval": (0.0, 255.0, "pixel value"),
    **{f"augmentation.{knob.name}": (0.0, knob.high, knob.unit) for knob in KNOBS if not knob.is_flip},
}


def _validate(obj: Any, prefix: str) -> None:
    for f in fields(obj):
        name = f"{prefix}.{f.name}" if prefix else f.name
        value = getattr(obj, f.name)
        if f.name == "augmentation":
            continue
        value = _coerce(name, value, f.type)
        object.__setattr__(obj, f.name, value)
        if name in RANGES and value is not None:
            low, high, unit = RANGES[name]
            if not (math.isfinite(value) and low <= value <= high):
                unit_text = f" ({unit})" if unit else ""
                raise ConfigError(f"{name} = {value!r} is out of range: allowed {low:g} to {high:g}{unit_text}")
    if isinstance(obj, Augmentation) and obj.fill_mode not in FILL_MODES:
        raise ConfigError(
            f"augmentation.fill_mode = {obj.fill_mode!r} is not allowed: choose one of {', '.join(FILL_MODES)}"
        )
    if isinstance(obj, RunConfig) and not obj.dataset:
        raise ConfigError("dataset must be a dataset name, e.g. 'builtin'")
    if isinstance(obj, RunConfig):
        _validate_architecture(obj)


def smallest_image_size(architecture: str) -> int:
    """The smallest image the architecture's 3x3 convolutions and 2x2 poolings leave a pixel of."""
    size = 1
    for _ in ARCHITECTURES[architecture]:
        size = 2 * size + 2  # undo a pooling (floor), then a 3x3 convolution without padding
    return max(size, MIN_IMAGE_SIZE)


def _validate_architecture(config: RunConfig) -> None:
    if config.architecture not in ARCHITECTURES:
        raise ConfigError(
            f"architecture = {config.architecture!r} is not allowed: choose one of {', '.join(ARCHITECTURES)}"
        )
    smallest = smallest_image_size(config.architecture)
    if config.image_size < smallest:
        raise ConfigError(
            f"image_size = {config.image_size} is too small for the {config.architecture!r} architecture: "
            f"its convolutions need at least {smallest} pixels"
        )


def _coerce(name: str, value: Any, type_name: Any) -> Any:
    """Accept what TOML, JSON, a URL or a widget gives, reject what is plainly wrong."""
    type_name = str(type_name)
    if type_name == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    if type_name in ("int", "float"):
        if isinstance(value, bool):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a number, got {value!r}") from None
        if type_name == "int":
            if not number.is_integer():
                raise ConfigError(f"{name} must be a whole number, got {value!r}")
            return int(number)
        return number
    if type_name == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be text, got {value!r}")
        return value
    if type_name == "str | None":
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be text, got {value!r}")
        return value
    return value


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'configuration'} must be a table of settings, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = [k for k in data if k not in known]
    if unknown:
        name = unknown[0]
        where = f" in {prefix}" if prefix else ""
        hint = difflib.get_close_matches(name, sorted(known), n=1)
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise ConfigError(f"unknown field '{name}'{where}{suggestion}; known fields: {', '.join(sorted(known))}")
    try:
        return cls(**data)
    except TypeError as exc:  # a missing or malformed nested value
        raise ConfigError(str(exc)) from None


def _query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    # A TOML basic string is a JSON string, except that TOML wants characters outside the
    # Basic Multilingual Plane as themselves (not surrogate pairs) and DEL escaped.
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
