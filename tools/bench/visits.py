"""Timed visits to the page in headless Chromium (Playwright): what a visitor waits for, and how long."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

_VARIANT_SOURCES_JS = """() => Array.from(document.querySelectorAll('[data-testid="stImageContainer"]'))
    .filter(c => (c.innerText || '').trim().startsWith('variant '))
    .map(c => (c.querySelector('img') || {}).src || '')"""
_CHART_SELECTOR = ".js-plotly-plot svg.main-svg"


@dataclass
class _Visit:
    tab: Any  # what to close afterwards: the fresh context, or the tab in a shared context
    page: Any
    started: float  # perf_counter() when the page was requested
    seconds: float  # until the awaited thing showed

    def since(self) -> float:
        return time.perf_counter() - self.started


def timed_visit(opener, url: str, until) -> _Visit:
    """Open `url` in a new tab; seconds from the request until `until(page)` returns.

    Given the browser, the tab gets a fresh context (an empty HTTP cache: a first-time visitor); given a
    context, it shares that context's cache (a returning visitor).
    """
    fresh = hasattr(opener, "new_context")
    context = opener.new_context() if fresh else opener
    page = context.new_page()
    started = time.perf_counter()
    page.goto(url, wait_until="commit")
    until(page)
    return _Visit(context if fresh else page, page, started, time.perf_counter() - started)


def visits(opener, url: str, until, count: int, after=None) -> tuple[list[float], list[float]]:
    """`count` timed visits; also the seconds until `after(page)` returned, when given."""
    seconds, later = [], []
    for _ in range(count):
        visit = timed_visit(opener, url, until)
        seconds.append(visit.seconds)
        if after is not None:
            after(visit.page)
            later.append(visit.since())
        visit.tab.close()
    return seconds, later


def first_paint(page) -> None:
    page.get_by_text("1. Data", exact=True).wait_for(timeout=120_000)


def wait_preview(page) -> None:
    page.wait_for_function(f"() => ({_VARIANT_SOURCES_JS})().length === 8", timeout=120_000)


def chart_shown(page) -> None:
    page.locator(_CHART_SELECTOR).first.wait_for(timeout=120_000)


def compare_header(page) -> None:
    page.get_by_text("4. Compare", exact=True).wait_for(timeout=120_000)


def _preview_sources(page) -> list[str]:
    return page.evaluate(_VARIANT_SOURCES_JS)


def toggle_and_wait(page, label: str) -> float:
    """Seconds from switching `label` until every preview variant shows a new image."""
    before = _preview_sources(page)
    started = time.perf_counter()
    page.locator(f'label:has(input[role="switch"][aria-label="{label}"])').click()
    page.wait_for_function(
        "([js, before]) => { const now = eval(js)(); return now.length > 0 && now.length === before.length"
        " && now.every((src, i) => src !== before[i]); }",
        arg=[_VARIANT_SOURCES_JS, before],
        timeout=120_000,
        polling=20,
    )
    return time.perf_counter() - started


def interactions(page, count: int, label: str = "Rotation") -> list[float]:
    wait_preview(page)
    return [toggle_and_wait(page, label) for _ in range(count)]


def train_stored_and_wait(page) -> float:
    """Seconds from pressing "Train both runs" on a configuration the store already holds until its chart shows."""
    wait_preview(page)
    page.wait_for_timeout(1000)  # let the page settle, as a visitor reads it before pressing the button
    before = page.locator(_CHART_SELECTOR).count()
    started = time.perf_counter()
    page.get_by_role("button", name="▶ Train both runs").click()
    page.wait_for_function(
        f"() => document.querySelectorAll('{_CHART_SELECTOR}').length > {before}", timeout=120_000, polling=20
    )
    return time.perf_counter() - started
