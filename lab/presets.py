"""Named experiment presets: TOML files in experiments/ with a [preset] table of words.

A preset file is a run configuration (see lab/config.py) plus an optional `[preset]`
table: `title`, `description` and `lesson` (what to look for). Files are versioned with
the code, so a preset name always means the same experiment.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from lab.config import ConfigError, RunConfig

EXPERIMENTS_DIR = Path(__file__).resolve().parent.parent / "experiments"


@dataclass(frozen=True)
class Preset:
    name: str
    config: RunConfig
    title: str = ""
    description: str = ""
    lesson: str = ""
    path: Path | None = None


def list_presets(folder: Path = EXPERIMENTS_DIR) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.toml"))


def load_preset(name_or_path: str, folder: Path = EXPERIMENTS_DIR) -> Preset:
    """Load a preset by name (a file in experiments/) or by path to a .toml file."""
    path = Path(name_or_path).expanduser()
    if not (path.suffix == ".toml" and path.is_file()):
        path = folder / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(list_presets(folder)) or "none"
        raise ConfigError(f"no preset '{name_or_path}': give a name from experiments/ ({known}) or a .toml path")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    words = data.pop("preset", {})
    try:
        config = RunConfig.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path.name}: {exc}") from None
    return Preset(
        name=path.stem,
        config=config,
        title=words.get("title", path.stem),
        description=words.get("description", ""),
        lesson=words.get("lesson", ""),
        path=path,
    )
