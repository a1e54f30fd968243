"""The page in a real browser: Debian's chromium driven by Playwright against `streamlit run`.

Marked `browser`; skipped when /usr/bin/chromium or the playwright package is missing
(`.ci/run` installs both). Screenshots go to $LAB_ARTIFACTS, else to a pytest temporary
folder; their paths are printed (`pytest -s` shows them). The README's screenshot is taken at a
laptop's size by tests/test_browser_layout.py.

Controls are found by their visible labels and roles, as a user finds them.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from page_helpers import HOSTED_MODE_VARIABLES, StreamlitServer, artifacts_folder, watched_tab

from tools import browser as chromium

CHROMIUM = Path(chromium.CHROMIUM)
CHROMIUM_ARGS = chromium.CHROMIUM_ARGS  # one list of flags for every headless Chromium the project starts
# Streamlit scrolls inside an inner container, so a full-page screenshot shows one screen:
# a tall window holds the whole page.
VIEWPORT = {"width": 1400, "height": 3600}
RERUN_MS = 30_000  # one rerun of the page; generous for a shared 2-core machine
TRAINING_MS = 180_000  # a cold child imports TensorFlow, then two tiny runs
README_TRAINING_MS = 600_000  # the quick preset: 2 x 20 epochs at 64 px, about 75 s on an idle 2-core CPU

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: apt-get install chromium"),
]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    return artifacts_folder(tmp_path_factory)


@pytest.fixture(scope="module")
def server(tmp_path_factory, artifacts):
    root = tmp_path_factory.mktemp("browser-lab")
    (root / "datasets").mkdir()
    env = {"LAB_RUN_STORE": str(root / "runs"), "LAB_DATA_DIR": str(root / "datasets"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    server = StreamlitServer(env, artifacts / "streamlit.log", unset=HOSTED_MODE_VARIABLES)
    try:
        seconds = server.wait_ready()
        print(f"\nstreamlit answered after {seconds:.1f} s on {server.url}; log: {server.log_path}")
        yield server
    finally:
        server.stop()
    assert "Traceback" not in server.log_path.read_text(errors="replace"), "the server logged an exception"


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser, server):
    """A fresh tab (a new Streamlit session) on the page; fails the test on any script error in the page."""
    with watched_tab(browser.new_context(viewport=VIEWPORT)) as tab:
        yield tab


def shoot(tab, artifacts: Path, name: str, **kwargs) -> Path:
    path = artifacts / f"{name}.png"
    tab.screenshot(path=str(path), **kwargs)
    print(f"screenshot: {path}")
    return path


def open_page(tab, server) -> float:
    """Load the page; seconds until the title shows."""
    start = time.monotonic()
    tab.goto(server.url)
    tab.get_by_role("heading", name="Overfitting Lab").wait_for(timeout=60_000)
    seconds = time.monotonic() - start
    tab.get_by_text("variant 1", exact=True).wait_for(timeout=60_000)  # the preview has drawn
    return seconds


PREVIEW_JS = """
() => {
  const captions = Array.from(document.querySelectorAll('p')).filter(p => /^variant \\d+$/.test(p.textContent.trim()));
  return captions.map(p => {
    let box = p;  // walk up from the caption to the smallest block holding one image
    while (box && box.querySelectorAll('img').length === 0) box = box.parentElement;
    const img = box && box.querySelectorAll('img').length === 1 ? box.querySelector('img') : null;
    if (!img) return null;
    const r = img.getBoundingClientRect();
    return {src: img.getAttribute('src'), x: r.x, y: r.y, width: r.width, height: r.height};
  });
}
"""


def preview_images(tab) -> list[dict]:
    images = tab.evaluate(PREVIEW_JS)
    assert len(images) == 8 and all(images), f"expected eight preview variants, found {images}"
    return images


def wait_for_new_preview(tab, before: list[dict]) -> None:
    """Wait for the rerun that redraws the preview: its image sources (hashes of the bytes) change."""
    changed = f"(before) => ({PREVIEW_JS})().map(i => i && i.src).join() !== before.join()"
    tab.wait_for_function(changed, arg=[i["src"] for i in before], timeout=RERUN_MS)


def preview_clip(images: list[dict]) -> dict:
    left, top = min(i["x"] for i in images), min(i["y"] for i in images)
    right = max(i["x"] + i["width"] for i in images)
    bottom = max(i["y"] + i["height"] for i in images)
    return {"x": left - 8, "y": top - 8, "width": right - left + 16, "height": bottom - top + 40}


def wait_for_caption(tab, pattern: str) -> None:
    tab.get_by_text(re.compile(pattern)).first.wait_for(timeout=RERUN_MS)


def press(tab, slider_name: str, *keys: str) -> None:
    """Move a slider the way a keyboard user does: focus it, then press keys."""
    slider = tab.get_by_role("slider", name=slider_name)
    slider.wait_for(state="visible", timeout=RERUN_MS)
    slider.focus()
    for key in keys:
        tab.keyboard.press(key)


def test_the_page_paints_quickly(page, server, artifacts):
    seconds = open_page(page, server)
    paint = page.evaluate(
        "() => Object.fromEntries(performance.getEntriesByType('paint').map(e => [e.name, e.startTime]))"
    )
    print(f"title visible after {seconds:.2f} s; browser paint timings (ms): {paint}")
    shoot(page, artifacts, "01-first-paint")
    assert seconds < 30, f"the title took {seconds:.1f} s to show"
    assert paint.get("first-contentful-paint", 0) < 15_000
    # The page streams its sections top to bottom: wait for each (a 2-core CI machine drew "4. Compare"
    # just after the preview), rather than looking once.
    for heading in ("1. Data", "2. Augmentations", "3. Train", "4. Compare"):
        page.get_by_role("heading", name=heading).wait_for(state="visible", timeout=RERUN_MS)
    assert page.get_by_role("button", name="Train both runs").is_enabled()


def test_switching_an_augmentation_changes_the_preview(page, server, artifacts):
    open_page(page, server)
    before = preview_images(page)
    shoot(page, artifacts, "02-preview-before", clip=preview_clip(before))
    switch = page.get_by_role("switch", name="Vertical flip")
    assert not switch.is_checked()
    page.get_by_text("Vertical flip", exact=True).click()
    wait_for_new_preview(page, before)
    after = preview_images(page)
    shoot(page, artifacts, "03-preview-after-vertical-flip", clip=preview_clip(after))
    assert switch.is_checked()
    assert [i["src"] for i in after] != [i["src"] for i in before]
    page.get_by_role("tab", name="Code", exact=True).click()  # the code waits in its tab, below the curves
    assert page.get_by_text("vertical_flip=True").first.is_visible(), "the ImageDataGenerator code follows"

    # A knob's value: Rotation from 40 to 0 degrees with the keyboard changes the preview again.
    press(page, "Rotation (degrees)", "Home")
    wait_for_new_preview(page, after)
    assert [i["src"] for i in preview_images(page)] != [i["src"] for i in after]


def test_a_tiny_comparison_runs_to_the_end_with_both_charts(page, server, artifacts):
    open_page(page, server)
    # The smallest run, through the controls: fewest training images, 48 px, 2 epochs.
    press(page, "Training images", "Home")
    wait_for_caption(page, r"\d+ epochs? × 2 runs, 4 training images at")
    press(page, "Image size (pixels)", "Home")
    wait_for_caption(page, r"4 training images at 48 px")
    page.get_by_text("Training settings").click()
    press(page, "Epochs", "Home")
    wait_for_caption(page, r"\(1 epoch × 2 runs, 4 training images at 48 px\)")
    press(page, "Epochs", "ArrowRight")
    wait_for_caption(page, r"\(2 epochs × 2 runs, 4 training images at 48 px\)")
    shoot(page, artifacts, "04-tiny-settings")

    seconds = train_and_wait(page, artifacts, TRAINING_MS, "05-tiny-training")
    print(f"two tiny runs trained and shown after {seconds:.1f} s")
    assert "runs=" in page.url, "the URL names the runs being watched"
    check_comparison(page)
    shoot(page, artifacts, "06-comparison-finished")


def train_and_wait(tab, artifacts: Path, timeout_ms: int, name: str) -> float:
    """Press "Train both runs" and wait until both runs are over; seconds taken."""
    start = time.monotonic()
    tab.get_by_role("button", name="Train both runs").click()
    cancel = tab.get_by_role("button", name="Cancel")
    cancel.wait_for(timeout=RERUN_MS)
    assert tab.get_by_role("button", name="Train both runs").is_disabled()
    shoot(tab, artifacts, name)
    cancel.wait_for(state="detached", timeout=timeout_ms)
    readings(tab).nth(1).wait_for(timeout=RERUN_MS)
    return time.monotonic() - start


def readings(tab):
    return tab.locator("p", has_text=re.compile(r"^With(out)? augmentation: Training accuracy"))


def check_comparison(tab) -> None:
    """Both panels hold training and validation curves, with the reading of each run under them."""
    charts = [c for c in tab.locator(".js-plotly-plot").all() if not c.evaluate("e => !!e.closest('details')")]
    assert len(charts) == 1, f"expected one comparison chart outside the expanders, found {len(charts)}"
    chart = charts[0]
    traces = chart.locator(".scatterlayer .trace").count()
    legend = chart.locator(".legendtext").evaluate_all("els => els.map(e => e.textContent)")
    titles = chart.locator(".annotation-text").evaluate_all("els => els.map(e => e.textContent)")
    print(f"traces: {traces}, legend: {legend}")
    assert traces >= 8, "training and validation accuracy and loss on both sides"
    assert {"training", "validation"} <= set(legend)
    assert {"Without augmentation", "With augmentation"} <= set(titles)
    assert readings(tab).count() == 2
    assert not tab.get_by_text("the run failed").count()
    assert tab.get_by_role("button", name="Train both runs").is_enabled()
