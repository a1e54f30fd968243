"""What every command shares: `--set FIELD=VALUE` and the exit status of bad input.

Its own module so that `lab.cli` and the command modules (`sweep`, `atlas`) use one definition without
importing `lab.cli` (a circle).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from lab.config import ConfigError

EXIT_BAD_INPUT = 2


def add_set_option(parser: argparse.ArgumentParser, example: str = "--set epochs=5") -> None:
    """The repeatable `--set FIELD=VALUE`, collected into `args.overrides`."""
    parser.add_argument(
        "--set",
        dest="overrides",
        metavar="FIELD=VALUE",
        action="append",
        default=[],
        help=f"override a configuration field, repeatable: {example} "
        "(augmentation knobs by bare name or as augmentation.NAME)",
    )


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`FIELD=VALUE` pairs; VALUE is read as JSON when it can be (numbers, true/false), else text."""
    overrides: dict[str, Any] = {}
    for item in items:
        field, sep, raw = item.partition("=")
        if not sep or not field.strip():
            raise ConfigError(f"--set expects FIELD=VALUE, got '{item}'")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        overrides[field.strip()] = value
    return overrides
