"""Named experiment presets: TOML files in experiments/ with a [preset] table of words.

A preset file is a run configuration (see lab/config.py) plus an optional `[preset]`
table: `title`, `description` and `lesson` (what to look for). Files are versioned with
the code, so a preset name always means the same experiment.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.config import ConfigError, RunConfig

EXPERIMENTS_DIR = Path(__file__).resolve().parent.parent / "experiments"
WORDS = ("title", "description", "lesson")


@dataclass(frozen=True)
class Preset:
    name: str
    config: RunConfig
    title: str = ""
    description: str = ""
    lesson: str = ""
    path: Path | None = None


def list_presets(folder: Path | None = None) -> list[str]:
    """The presets in `folder` (experiments/) that load; a broken file is left out (see `broken_presets`)."""
    return [name for name, problem in _scan(folder) if problem is None]


def broken_presets(folder: Path | None = None) -> dict[str, str]:
    """Each preset file in `folder` that does not load, with the one-line reason."""
    return {name: problem for name, problem in _scan(folder) if problem is not None}


def _scan(folder: Path | None) -> list[tuple[str, str | None]]:
    # Loading every file is what keeps one broken preset from taking down a listing that
    # then asks each name for its title (the page, `python -m lab presets`).
    folder = folder or EXPERIMENTS_DIR
    found = []
    for path in sorted(folder.glob("*.toml")):
        try:
            _read(path)
        except ConfigError as exc:
            found.append((path.stem, str(exc)))
        else:
            found.append((path.stem, None))
    return found


def load_preset(name_or_path: str, folder: Path | None = None) -> Preset:
    """Load a preset by name (a file in experiments/) or by path to a .toml file; ConfigError names a bad file."""
    folder = folder or EXPERIMENTS_DIR
    path = Path(name_or_path).expanduser()
    if not (path.suffix == ".toml" and path.is_file()):
        path = folder / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(list_presets(folder)) or "none"
        raise ConfigError(f"no preset '{name_or_path}': give a name from experiments/ ({known}) or a .toml path")
    return _read(path)


def _read(path: Path) -> Preset:
    data = _toml(path)
    words = _words(path, data.pop("preset", {}))
    try:
        config = RunConfig.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path.name}: {exc}") from None
    return Preset(name=path.stem, config=config, path=path, **{"title": path.stem, **words})


def _toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path.name}: not UTF-8 text; save the preset as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path.name}: could not be read ({exc.strerror or exc})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _words(path: Path, table: Any) -> dict[str, str]:
    """The [preset] table, checked: only `title`, `description` and `lesson`, each text."""
    if not isinstance(table, dict):
        raise ConfigError(f"{path.name}: [preset] must be a table of {', '.join(WORDS)}, got {table!r}")
    for key, value in table.items():
        if key not in WORDS:
            raise ConfigError(f"{path.name}: unknown field 'preset.{key}'; known: {', '.join(WORDS)}")
        if not isinstance(value, str):
            raise ConfigError(f"{path.name}: preset.{key} must be text, got {value!r}")
    return dict(table)
