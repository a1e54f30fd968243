"""The one-screen layout in a real browser at a laptop's 1400×1000: what a student sees without scrolling.

Like tests/test_browser.py (whose server, browser and helpers it shares), marked `browser` and skipped
without /usr/bin/chromium or playwright. Screenshots go to $LAB_ARTIFACTS, else a pytest temporary folder;
with LAB_UPDATE_SCREENSHOT=1 the finished quick lesson is also saved as docs/screenshot-comparison.png.
"""

from __future__ import annotations

import os
import re
import shutil

import pytest
from page_helpers import REPO, wait_for, watched_tab
from test_browser import (  # noqa: F401 (fixtures: artifacts, server, browser)
    CHROMIUM,
    README_TRAINING_MS,
    RERUN_MS,
    TRAINING_MS,
    artifacts,
    browser,
    open_page,
    press,
    server,
    shoot,
    wait_for_caption,
)

LAPTOP = {"width": 1400, "height": 1000}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: apt-get install chromium"),
]


@pytest.fixture
def laptop(browser, server):  # noqa: F811
    """A fresh tab at 1400×1000; fails the test on any script error in the page."""
    with watched_tab(browser.new_context(viewport=LAPTOP)) as tab:
        yield tab


def in_first_screen(box: dict | None, viewport: dict = LAPTOP) -> bool:
    """The whole box lies inside the window as it first shows, without scrolling."""
    return (
        box is not None
        and box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= viewport["width"]
        and box["y"] + box["height"] <= viewport["height"]
    )


def comparison_chart(tab):
    charts = [c for c in tab.locator(".js-plotly-plot").all() if not c.evaluate("e => !!e.closest('details')")]
    assert len(charts) == 1, f"expected one comparison chart outside the expanders, found {len(charts)}"
    return charts[0]


def test_the_train_button_and_the_first_switch_show_together_on_a_laptop(laptop, server, artifacts):  # noqa: F811
    open_page(laptop, server)
    train = laptop.get_by_role("button", name="Train both runs").bounding_box()
    switch = laptop.get_by_role("switch", name="Rotation").bounding_box()
    variant = laptop.get_by_text("variant 8", exact=True).bounding_box()
    validation = laptop.get_by_text("Validation images", exact=True).bounding_box()
    shoot(laptop, artifacts, "desktop-first-screen")
    print(f"Train button {train}, Rotation switch {switch}, last variant {variant}, validation strip {validation}")
    assert in_first_screen(train), f"the Train button is outside the first screen: {train}"
    assert in_first_screen(switch), f"the first augmentation switch is outside the first screen: {switch}"
    assert in_first_screen(variant) and in_first_screen(validation), "the preview and the validation strip too"
    assert switch["x"] < train["x"], "the knobs on the left (the sidebar), what they change on the right"
    rotation = laptop.get_by_role("slider", name="Rotation (degrees)").get_attribute("aria-valuetext")
    assert rotation == "40°", f"degrees read as degrees, not {rotation!r}"


def slider_state(tab, name: str) -> tuple[int, bool]:
    """A slider's value and whether it has the keyboard focus."""
    slider = tab.get_by_role("slider", name=name)
    focused = slider.evaluate("e => document.activeElement === e")
    return int(slider.get_attribute("aria-valuetext")), focused


def test_every_key_press_and_every_click_moves_the_training_images_slider(laptop, server, artifacts):  # noqa: F811
    open_page(laptop, server)
    value, _ = slider_state(laptop, "Training images")
    press(laptop, "Training images", "Home")
    wait_for_caption(laptop, r"× 2 runs, 4 training images at")
    # Each arrow press is one step (3 images of 300) and a rerun; the focus stays on the slider throughout.
    for presses in range(1, 5):
        laptop.keyboard.press("ArrowRight")
        wait_for_caption(laptop, rf"× 2 runs, {4 + 3 * presses} training images at")
        value, focused = slider_state(laptop, "Training images")
        assert value == 4 + 3 * presses, f"press {presses} gave {value}"
        assert focused, f"the slider lost the keyboard focus after press {presses}"
    # Clicks along the track, as the drags: each lands, none is dropped.
    # The track: the thumb sits in a 1-px anchor inside a 12-px handle inside it.
    track = laptop.get_by_role("slider", name="Training images").locator("xpath=../../..").bounding_box()
    seen = []
    for percent in (30, 60, 90, 20, 50, 80):
        laptop.mouse.click(track["x"] + track["width"] * percent / 100, track["y"] + track["height"] / 2)
        before = seen[-1] if seen else value
        moved = lambda before=before: slider_state(laptop, "Training images")[0] != before  # noqa: E731
        wait_for(moved, RERUN_MS / 1000, what=f"the click at {percent}%")
        value, _ = slider_state(laptop, "Training images")
        wait_for_caption(laptop, rf"× 2 runs, {value} training images at")
        seen.append(value)
    print(f"clicks at 30/60/90/20/50/80% gave {seen}")
    expected = [4 + (300 - 4) * percent / 100 for percent in (30, 60, 90, 20, 50, 80)]
    assert all(abs(got - want) <= 15 for got, want in zip(seen, expected, strict=True)), (seen, expected)
    shoot(laptop, artifacts, "desktop-slider")


def test_the_chart_is_in_view_when_a_run_ends(laptop, server, artifacts):  # noqa: F811
    open_page(laptop, server)
    # The smallest run, through the controls: fewest training images, 48 px, 2 epochs.
    press(laptop, "Training images", "Home")
    wait_for_caption(laptop, r"× 2 runs, 4 training images at")
    press(laptop, "Image size (pixels)", "Home")
    wait_for_caption(laptop, r"4 training images at 48 px")
    laptop.get_by_text("Training settings").click()
    press(laptop, "Epochs", "Home", "ArrowRight")
    wait_for_caption(laptop, r"\(2 epochs × 2 runs, 4 training images at 48 px\)")
    laptop.get_by_role("button", name="Train both runs").click()
    cancel = laptop.get_by_role("button", name="Cancel")
    cancel.wait_for(timeout=RERUN_MS)
    cancel.wait_for(state="detached", timeout=TRAINING_MS)
    wait_for_caption(laptop, r"already in the run store")
    chart = comparison_chart(laptop).bounding_box()
    shoot(laptop, artifacts, "desktop-finished")
    print(f"the chart after the run: {chart}")
    assert chart["y"] >= 0 and chart["x"] >= 0, "no scrolling needed: the page did not move"
    visible = min(chart["y"] + chart["height"], LAPTOP["height"]) - chart["y"]
    assert visible >= 0.5 * chart["height"], f"only {visible:.0f} px of the {chart['height']:.0f} px chart show"
    assert laptop.get_by_role("button", name="Train both runs").is_visible()


@pytest.mark.skipif(
    os.environ.get("LAB_UPDATE_SCREENSHOT") != "1", reason="set LAB_UPDATE_SCREENSHOT=1 to retake the README screenshot"
)
def test_update_the_readme_screenshot(laptop, server, artifacts):  # noqa: F811
    """The quick preset's whole lesson, as a student sees it on a laptop once both runs have finished."""
    open_page(laptop, server)
    laptop.get_by_role("button", name="Train both runs").click()
    # Trained here, or answered at once when the server's store already holds the lesson (the atlas seeds it):
    # either way the curves appear and no Cancel button is left.
    laptop.locator(".js-plotly-plot .scatterlayer .trace").first.wait_for(timeout=README_TRAINING_MS)
    laptop.get_by_role("button", name="Cancel").wait_for(state="detached", timeout=README_TRAINING_MS)
    laptop.get_by_text(re.compile(r"already in the run store")).first.wait_for(timeout=RERUN_MS)
    comparison_chart(laptop).locator(".scatterlayer .trace").first.wait_for(timeout=RERUN_MS)
    laptop.wait_for_timeout(1500)  # the chart's own drawing settles
    path = shoot(laptop, artifacts, "desktop-comparison")
    target = REPO / "docs" / "screenshot-comparison.png"
    shutil.copyfile(path, target)
    print(f"README screenshot updated: {target}")
