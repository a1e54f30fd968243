"""The headless Chromium every tool and browser test starts: Debian's, with one list of flags."""

from __future__ import annotations

from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch(browser_type: Any, *extra_args: str) -> Any:
    """`browser_type.launch(...)` of Debian's Chromium with `CHROMIUM_ARGS` and `extra_args`.

    `browser_type` is Playwright's `playwright.chromium`, sync or async (for the async API, await the result).
    """
    return browser_type.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args])
