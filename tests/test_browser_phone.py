"""The comparison on a phone (390 × 844, a phone's browser): panel titles that do not overlap, a
table that is not cut off, and History's run pickers that follow a run to its end.

Marked `browser`; skipped without /usr/bin/chromium or the playwright package. Two finished runs
are written into the server's run store and opened by their link, so nothing trains. Screenshots
go to $LAB_ARTIFACTS (else a pytest temporary folder) as phone-*.png.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from page_helpers import (
    HOSTED_MODE_VARIABLES,
    StreamlitServer,
    artifacts_folder,
    fake_row,
    seed_run,
    watched_tab,
)

from lab.config import RunConfig
from lab.history import comparison_configs, from_rows
from lab.runs.store import RunStore
from tools import browser as chromium

CHROMIUM = Path(chromium.CHROMIUM)
RERUN_MS = 60_000  # a rerun of the page on a shared 2-core machine
PHONE = {"width": 390, "height": 844}
# A phone's browser: its user agent says "Mobile", the page lays the chart out for a narrow screen.
PHONE_AGENT = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
CONFIG = RunConfig(image_size=48, epochs=6, augmentation={"rotation_range": 40.0, "horizontal_flip": True})

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: apt-get install chromium"),
]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    return artifacts_folder(tmp_path_factory)


@pytest.fixture(scope="module")
def lab(tmp_path_factory, artifacts):
    """A server whose run store holds one finished comparison; yields (server, store)."""
    root = tmp_path_factory.mktemp("phone-lab")
    (root / "datasets").mkdir()
    store = RunStore(root / "runs")
    for config in comparison_configs(CONFIG, 1):
        seed_run(store, config)
    env = {"LAB_RUN_STORE": str(root / "runs"), "LAB_DATA_DIR": str(root / "datasets"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    server = StreamlitServer(env, artifacts / "streamlit-phone.log", unset=HOSTED_MODE_VARIABLES)
    try:
        server.wait_ready()
        yield server, store
    finally:
        server.stop()
    assert "Traceback" not in server.log_path.read_text(errors="replace"), "the server logged an exception"


@pytest.fixture
def phone(lab):
    with sync_api.sync_playwright() as playwright:
        browser = chromium.launch(playwright.chromium)
        context = browser.new_context(
            viewport=PHONE, user_agent=PHONE_AGENT, is_mobile=True, has_touch=True, device_scale_factor=2
        )
        with watched_tab(context, closing=browser) as tab:
            yield tab


def comparison_chart(tab):
    tab.locator(".js-plotly-plot .annotation-text").first.wait_for(timeout=RERUN_MS)
    charts = [c for c in tab.locator(".js-plotly-plot").all() if not c.evaluate("e => !!e.closest('details')")]
    assert len(charts) == 1, f"expected one comparison chart outside the expanders, found {len(charts)}"
    return charts[0]


def summary_table(tab, chart):
    """The first table after the comparison chart: the summary (the data section's table comes before it)."""
    deadline = time.monotonic() + RERUN_MS / 1000  # the table may draw a moment after the chart
    while True:
        tables = tab.get_by_test_id("stTable").all()
        after = [
            t for t in tables if chart.evaluate("(c, t) => !!(c.compareDocumentPosition(t) & 4)", t.element_handle())
        ]
        if after or time.monotonic() > deadline:
            break
        tab.wait_for_timeout(250)
    assert after, "no summary table under the chart"
    return after[0]


def overlap(a: dict, b: dict) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def test_on_a_phone_the_panel_titles_do_not_overlap_and_the_table_fits(lab, phone, artifacts):
    server, _ = lab
    keys = [config.key() for config in comparison_configs(CONFIG, 1)]
    phone.goto(f"{server.url}?runs={','.join(keys)}")
    chart = comparison_chart(phone)
    chart.locator(".annotation-text").first.scroll_into_view_if_needed()
    titles = {}
    for name in ("Without augmentation", "With augmentation"):
        title = chart.locator(".annotation-text", has_text=re.compile(f"^{name}$"))
        assert title.count() == 1, f"one panel titled {name!r}"
        titles[name] = title.bounding_box()
    boxes = list(titles.values())
    print(f"panel titles: {titles}")
    assert not overlap(*boxes), f"the panel titles overlap: {titles}"
    assert all(0 <= box["x"] and box["x"] + box["width"] <= PHONE["width"] for box in boxes), "a title off screen"
    phone.screenshot(path=str(artifacts / "phone-chart.png"))
    chart.locator(".annotation-text", has_text=re.compile("^With augmentation$")).scroll_into_view_if_needed()
    phone.screenshot(path=str(artifacts / "phone-chart-second-side.png"))

    table = summary_table(phone, chart)
    table.scroll_into_view_if_needed()
    box = table.bounding_box()
    # The table scrolls sideways only when its columns are wider than the screen: then it is cut off.
    widths = table.evaluate("e => [e.scrollWidth, e.clientWidth]")
    print(f"table box: {box}, scroll/client width: {widths}")
    phone.screenshot(path=str(artifacts / "phone-table.png"))
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], f"the table runs off the screen: {box}"
    assert widths[0] <= widths[1] + 1, f"the table's columns are cut off: {widths}"


def picker_text(tab, label: str) -> str:
    """What a run picker shows: the text in its box."""
    return tab.get_by_role("combobox", name=label).input_value()


def test_historys_run_picker_follows_a_run_to_its_end(lab, phone):
    # A browser's selectbox keeps the label it was showing; a run's label changes when it ends.
    server, store = lab
    running = CONFIG.replace(seed=9)
    key = running.key()
    store.record_queued(running)
    store.record_start(key)
    store.record_epoch(key, from_rows([fake_row(1, running)]))
    phone.goto(server.url)
    phone.get_by_role("tab", name="History").click(timeout=RERUN_MS)  # History sits in a tab below the curves
    phone.get_by_role("combobox", name="Left run").wait_for(timeout=RERUN_MS)
    before = picker_text(phone, "Left run")
    assert "seed 9" in before and before.endswith("running"), before

    store.record_finish(key, from_rows([fake_row(e, running) for e in range(1, 7)]))
    phone.get_by_role("button", name="New variants").click()  # any rerun of the page
    phone.wait_for_function(
        "() => { const e = document.querySelector('input[aria-label=\"Left run\"]');"
        " return !!e && e.value.includes('seed 9') && !e.value.endsWith('running'); }",
        timeout=RERUN_MS,
    )
    after = picker_text(phone, "Left run")
    print(f"picker before: {before!r}; after: {after!r}")
    assert "seed 9" in after and after.endswith("done") and "6/6 epochs" in after, after
