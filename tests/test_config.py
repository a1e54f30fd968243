"""RunConfig: what a user types is validated with a message naming the field and the allowed
range, round-trips through TOML and JSON, and hashes to a key that is stable across processes."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lab.config import FILL_MODES, RANGES, Augmentation, ConfigError, RunConfig

REPO_ROOT = Path(__file__).resolve().parents[1]

# Every knob switched away from its default, to catch a field a serialiser forgets.
ALL_KNOBS = {
    "rescale": 0.5,
    "rotation_range": 35.0,
    "width_shift_range": 0.15,
    "height_shift_range": 0.25,
    "shear_range": 12.5,
    "zoom_range": 0.3,
    "horizontal_flip": True,
    "vertical_flip": True,
    "fill_mode": "constant",
    "cval": 17.0,
    "brightness_range": 0.2,
    "contrast_range": 0.35,
}


def _field_type(dotted: str) -> str:
    cls, name = (Augmentation, dotted.split(".")[1]) if dotted.startswith("augmentation.") else (RunConfig, dotted)
    return str({f.name: f.type for f in dataclasses.fields(cls)}[name])


def _config_with(dotted: str, value) -> RunConfig:
    if dotted.startswith("augmentation."):
        return RunConfig.from_dict({"augmentation": {dotted.split(".")[1]: value}})
    return RunConfig.from_dict({dotted: value})


def _outside(dotted: str) -> list:
    """A value just below the minimum and one above the maximum, of the field's own type."""
    low, high, _ = RANGES[dotted]
    if _field_type(dotted) == "int":
        return [int(low) - 1, int(high) + 1]
    return [low / 10 if low > 0 else low - 0.1, high * 1.5 + 0.1]


# -- validation ---------------------------------------------------------------------------------
def test_defaults_are_valid_and_augmentation_is_off():
    config = RunConfig()
    assert config == RunConfig.from_dict(config.to_dict())
    assert not config.augmentation.enabled
    assert config.augmentation.rescale == pytest.approx(1 / 255)


@pytest.mark.parametrize("dotted", sorted(RANGES))
def test_out_of_range_value_names_the_field_and_the_allowed_range(dotted):
    low, high, unit = RANGES[dotted]
    for value in _outside(dotted):
        with pytest.raises(ConfigError) as info:
            _config_with(dotted, value)
        message = str(info.value)
        assert dotted in message
        assert f"{low:g}" in message and f"{high:g}" in message
        if unit:
            assert unit in message


@pytest.mark.parametrize("dotted", sorted(RANGES))
def test_both_ends_of_each_range_are_allowed(dotted):
    low, high, _ = RANGES[dotted]
    for value in (low, high):
        config = _config_with(dotted, value)
        holder = config.augmentation if dotted.startswith("augmentation.") else config
        assert getattr(holder, dotted.split(".")[-1]) == value


@pytest.mark.parametrize("value", ["nan", "inf", float("nan"), float("-inf")])
def test_non_finite_numbers_are_rejected(value):
    with pytest.raises(ConfigError, match="learning_rate"):
        RunConfig.from_dict({"learning_rate": value})


def test_unknown_field_is_named_with_a_suggestion():
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict({"epocs": 3})
    assert "'epocs'" in str(info.value) and "did you mean 'epochs'" in str(info.value)


def test_unknown_augmentation_field_is_named_with_where_it_was():
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict({"augmentation": {"rotation": 10}})
    message = str(info.value)
    assert "'rotation'" in message and "augmentation" in message and "rotation_range" in message


def test_bad_fill_mode_lists_the_choices():
    with pytest.raises(ConfigError) as info:
        Augmentation(fill_mode="mirror")
    message = str(info.value)
    assert "fill_mode" in message and "'mirror'" in message
    assert all(mode in message for mode in FILL_MODES)


@pytest.mark.parametrize(
    "data, field_name",
    [
        ({"epochs": "abc"}, "epochs"),
        ({"epochs": 2.5}, "epochs"),
        ({"epochs": True}, "epochs"),
        ({"learning_rate": [0.1]}, "learning_rate"),
        ({"dataset": 3}, "dataset"),
        ({"data_dir": 3}, "data_dir"),
        ({"augmentation": {"horizontal_flip": "maybe"}}, "augmentation.horizontal_flip"),
        ({"augmentation": {"vertical_flip": 2}}, "augmentation.vertical_flip"),
        ({"augmentation": "lots"}, "augmentation"),
    ],
)
def test_wrong_types_are_rejected_with_the_field_name(data, field_name):
    with pytest.raises(ConfigError, match=field_name):
        RunConfig.from_dict(data)


def test_empty_dataset_name_is_rejected():
    with pytest.raises(ConfigError, match="dataset"):
        RunConfig(dataset="")


def test_numbers_given_as_text_are_coerced_to_the_field_type():
    # What a URL query, a --set override or a text widget gives.
    config = RunConfig.from_dict({"epochs": "5", "learning_rate": "0.001", "augmentation": {"rotation_range": "40"}})
    assert config.epochs == 5 and isinstance(config.epochs, int)
    assert config.learning_rate == 0.001
    assert config.augmentation.rotation_range == 40.0 and isinstance(config.augmentation.rotation_range, float)
    assert RunConfig(epochs=5.0).epochs == 5 and isinstance(RunConfig(epochs=5.0).epochs, int)


@pytest.mark.parametrize(
    "text, expected",
    [("true", True), ("True", True), ("1", True), ("yes", True), ("on", True), ("ON", True)]
    + [("false", False), ("False", False), ("0", False), ("no", False), ("off", False), (1, True), (0, False)],
)
def test_bool_knobs_accept_the_usual_spellings(text, expected):
    aug = Augmentation(horizontal_flip=text, vertical_flip=text)
    assert aug.horizontal_flip is expected and aug.vertical_flip is expected


def test_empty_data_dir_means_the_default_location():
    assert RunConfig(data_dir="").data_dir is None


# -- serialisation ------------------------------------------------------------------------------
ROUND_TRIP_CONFIGS = {
    "defaults": RunConfig(),
    "every-knob-and-data-dir": RunConfig(
        dataset="folder",
        data_dir='/tmp/my photos/"quoted" and back\\slash ü',
        image_size=96,
        train_images=120,
        validation_split=0.3,
        epochs=7,
        batch_size=16,
        learning_rate=3e-5,
        dropout=0.5,
        seed=1234,
        augmentation=Augmentation(**ALL_KNOBS),
    ),
    "data-dir-none": RunConfig(dataset="cats_vs_dogs", data_dir=None, learning_rate=1e-7, augmentation=ALL_KNOBS),
}


@pytest.mark.parametrize("name", sorted(ROUND_TRIP_CONFIGS))
def test_toml_round_trip_equals_the_original(name):
    config = ROUND_TRIP_CONFIGS[name]
    again = RunConfig.from_toml(config.to_toml())
    assert again == config
    assert again.key() == config.key()


@pytest.mark.parametrize("name", sorted(ROUND_TRIP_CONFIGS))
def test_json_round_trip_equals_the_original(name):
    config = ROUND_TRIP_CONFIGS[name]
    again = RunConfig.from_json(config.to_json())
    assert again == config
    assert again.key() == config.key()


def test_toml_round_trip_keeps_a_folder_name_with_an_emoji():
    config = RunConfig(dataset="folder", data_dir="/home/me/📷 photos")
    assert RunConfig.from_toml(config.to_toml()) == config


def test_malformed_files_raise_config_errors():
    with pytest.raises(ConfigError, match="TOML"):
        RunConfig.from_toml("epochs = = 3")
    with pytest.raises(ConfigError, match="JSON"):
        RunConfig.from_json("{epochs: 3")
    with pytest.raises(ConfigError):
        RunConfig.from_json("[1, 2]")


# -- identity -------------------------------------------------------------------------------------
def test_key_is_the_same_in_another_process():
    config = ROUND_TRIP_CONFIGS["every-knob-and-data-dir"]
    code = "import sys; from lab.config import RunConfig; sys.stdout.write(RunConfig.from_json(sys.stdin.read()).key())"
    result = subprocess.run(
        [sys.executable, "-c", code],
        input=config.to_json(),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "123"},  # another str-hash salt over there
    )
    assert result.stdout == config.key()
    # A plain default config too, computed from scratch over there.
    result = subprocess.run(
        [sys.executable, "-c", "from lab.config import RunConfig; print(RunConfig().key(), end='')"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=True,
    )
    assert result.stdout == RunConfig().key()


# One change per field, top level and every augmentation knob.
FIELD_CHANGES = [
    ("dataset", "folder"),
    ("data_dir", "/somewhere"),
    ("image_size", 65),
    ("train_images", 10),
    ("validation_split", 0.25),
    ("epochs", 21),
    ("batch_size", 21),
    ("learning_rate", 2e-4),
    ("dropout", 0.1),
    ("l2", 0.001),
    ("early_stopping", 5),
    ("architecture", "course5"),
    ("seed", 43),
] + [(f"augmentation.{name}", value) for name, value in ALL_KNOBS.items()]


def test_a_run_stored_before_the_cures_and_architectures_keeps_its_key():
    # The key of the default configuration before `l2`, `early_stopping` and `architecture` existed:
    # a run stored then must still be found under it (its config.json lacks the new fields).
    assert RunConfig().key() == "7a9eeba43818cbc7"
    old = {k: v for k, v in RunConfig().to_dict().items() if k not in ("l2", "early_stopping", "architecture")}
    assert RunConfig.from_dict(old).key() == "7a9eeba43818cbc7"


def test_the_cures_and_the_architecture_travel_in_toml_json_and_links():
    config = RunConfig(image_size=100, l2=0.001, early_stopping=3, architecture="course5")
    assert RunConfig.from_toml(config.to_toml()) == config
    assert RunConfig.from_json(config.to_json()) == config
    assert RunConfig.from_query(config.to_query()) == config
    assert config.to_query() == {"image_size": "100", "l2": "0.001", "early_stopping": "3", "architecture": "course5"}


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"architecture": "vgg"}, "architecture = 'vgg' is not allowed: choose one of course, course5"),
        ({"architecture": "course5", "image_size": 64}, "image_size = 64 is too small for the 'course5' architecture"),
        ({"l2": -0.1}, "l2 = -0.1 is out of range"),
        ({"early_stopping": 2.5}, "early_stopping must be a whole number"),
    ],
)
def test_bad_cures_and_architectures_are_named(changes, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        RunConfig().with_overrides(changes)


def test_field_changes_cover_every_field():
    top = {f.name for f in dataclasses.fields(RunConfig)} - {"augmentation"}
    aug = {f"augmentation.{f.name}" for f in dataclasses.fields(Augmentation)}
    assert {name for name, _ in FIELD_CHANGES} == top | aug


@pytest.mark.parametrize("dotted, value", FIELD_CHANGES, ids=[name for name, _ in FIELD_CHANGES])
def test_key_changes_when_any_field_changes(dotted, value):
    base = RunConfig(image_size=96)  # large enough for every architecture
    changed = base.with_overrides({dotted: value})
    assert changed != base
    assert changed.key() != base.key()


def test_equal_configs_have_equal_keys_however_they_were_built():
    a = RunConfig(epochs=5, augmentation=Augmentation(rotation_range=40))
    b = RunConfig.from_dict({"epochs": "5", "augmentation": {"rotation_range": 40}})
    c = RunConfig().with_overrides({"epochs": 5, "rotation_range": "40"})
    assert a == b == c
    assert a.key() == b.key() == c.key()
    assert len(a.key()) == 16 and int(a.key(), 16) >= 0


# -- derived configurations -------------------------------------------------------------------------
def test_without_augmentation_keeps_rescale_and_fill_mode_and_turns_the_knobs_off():
    config = RunConfig(epochs=3, seed=7, data_dir="/x", augmentation=Augmentation(**ALL_KNOBS))
    baseline = config.without_augmentation()
    assert not baseline.augmentation.enabled
    assert baseline.augmentation.rescale == config.augmentation.rescale
    assert baseline.augmentation.fill_mode == config.augmentation.fill_mode
    assert baseline.augmentation.cval == config.augmentation.cval
    assert baseline.augmentation == Augmentation(rescale=0.5, fill_mode="constant", cval=17.0)
    assert baseline.replace(augmentation=config.augmentation) == config  # nothing else changed
    assert config.augmentation.enabled  # the original is untouched


@pytest.mark.parametrize("knob", [k for k in ALL_KNOBS if k not in ("rescale", "fill_mode", "cval")])
def test_each_knob_alone_counts_as_augmentation(knob):
    assert Augmentation(**{knob: ALL_KNOBS[knob]}).enabled


@pytest.mark.parametrize("only", [{"rescale": 0.5}, {"fill_mode": "wrap"}, {"cval": 9.0}])
def test_rescale_and_fill_settings_alone_are_not_augmentation(only):
    assert not Augmentation(**only).enabled


def test_overrides_accept_dotted_and_bare_knob_names():
    base = RunConfig()
    dotted = base.with_overrides({"augmentation.rotation_range": 40, "augmentation.horizontal_flip": "true"})
    bare = base.with_overrides({"rotation_range": 40, "horizontal_flip": True})
    assert dotted == bare
    assert dotted.augmentation.rotation_range == 40.0 and dotted.augmentation.horizontal_flip is True
    top = base.with_overrides({"epochs": "5", "dataset": "folder"})
    assert (top.epochs, top.dataset) == (5, "folder")
    assert base == RunConfig()  # overrides build a new config


@pytest.mark.parametrize(
    "overrides", [{"augmentation.rotaton_range": 1}, {"a.b.c": 1}, {"nonsense": 1}, {"x.epochs": 1}]
)
def test_overrides_with_unknown_names_raise(overrides):
    with pytest.raises(ConfigError):
        RunConfig().with_overrides(overrides)


def test_overrides_are_validated():
    with pytest.raises(ConfigError, match="augmentation.rotation_range"):
        RunConfig().with_overrides({"rotation_range": 500})
