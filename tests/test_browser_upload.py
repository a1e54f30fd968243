"""Uploading a zip of one's own images, in a real browser: Debian's chromium driven by Playwright
against `streamlit run` in hosted mode (LAB_HOSTED=1), where uploading is the only way to bring
images, since the server's folders stay private. AppTest cannot drive `st.file_uploader`.

The zips are built by the test (tests/lab_files.py): two class folders of PNGs, with a space and
non-ASCII characters in file names, and a notes.txt; and one with an entry that climbs out of the
folder ("../evil.png"). The server's data folder (LAB_DATA_DIR) and run store are in a pytest
temporary folder; everything is on 127.0.0.1.

Marked `browser`; skipped when /usr/bin/chromium or the playwright package is missing. The
browser, the fresh tab per test (`page`, which fails a test on any JavaScript error) and the
screenshot folder ($LAB_ARTIFACTS, else a pytest temporary folder) come from test_browser.py;
this module starts its own hosted server, which those fixtures use.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import pytest
from lab_files import class_files, image_bytes, tree, zip_bytes
from page_helpers import HOSTED_MODE_VARIABLES, REPO, StreamlitServer, watched_tab

# Skips this module, with its reason, when playwright is not installed.
from test_browser import (  # noqa: F401 (fixtures: artifacts, browser, page)
    CHROMIUM,
    RERUN_MS,
    artifacts,
    browser,
    page,
    shoot,
    sync_api,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: apt-get install chromium"),
]

UPLOAD_QUERY = "?preset=quick&dataset=folder"
PHOTOS = "my photos.zip"
SUMMARY = "images in 2 classes"


@pytest.fixture(scope="module")
def lab_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser-upload")
    (root / "datasets").mkdir()
    return root


@pytest.fixture(scope="module")
def server(lab_root, artifacts):  # noqa: F811 (the `page` fixture opens tabs on this server)
    env = {
        "LAB_RUN_STORE": str(lab_root / "runs"),
        "LAB_DATA_DIR": str(lab_root / "datasets"),
        "LAB_HOSTED": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    server = StreamlitServer(env, artifacts / "streamlit-upload.log", unset=HOSTED_MODE_VARIABLES)
    try:
        seconds = server.wait_ready()
        print(f"\nstreamlit (hosted mode) answered after {seconds:.1f} s on {server.url}; log: {server.log_path}")
        yield server
    finally:
        server.stop()
    assert "Traceback" not in server.log_path.read_text(errors="replace"), "the server logged an exception"


@pytest.fixture(scope="module")
def zips(lab_root) -> dict[str, Path]:
    """The zips a user picks in the file dialog, as files on disk."""
    folder = lab_root / "to-upload"
    folder.mkdir()
    photos = class_files(("cats", "dogs"), 4, prefix="my photos/")
    photos["my photos/cats/cat 05 ü.png"] = image_bytes(0, seed=905)
    photos["my photos/dogs/Hündchen Nr. 1.png"] = image_bytes(1, seed=906)
    photos["my photos/cats/notes.txt"] = "Fotos vom Urlaub, März\n".encode()
    evil = class_files(("cats", "dogs"), 3)
    evil["../evil.png"] = image_bytes(0, seed=907)
    paths = {PHOTOS: folder / PHOTOS, "evil.zip": folder / "evil.zip"}
    paths[PHOTOS].write_bytes(zip_bytes(photos))
    paths["evil.zip"].write_bytes(zip_bytes(evil))
    return paths


def open_upload_page(tab, server) -> None:
    tab.goto(server.url + UPLOAD_QUERY)
    tab.get_by_role("heading", name="1. Data").wait_for(timeout=60_000)
    # The uploader's own label: the info under it ("Upload a zip of your own images above.") may show as well.
    tab.get_by_test_id("stFileUploader").get_by_text("Upload a zip of your own images").wait_for(timeout=RERUN_MS)


def upload(tab, path: Path) -> float:
    """Pick `path` in the page's file uploader, as the file dialog would; seconds until the page answers."""
    start = time.monotonic()
    tab.locator("input[type=file]").set_input_files(str(path))
    tab.get_by_text(path.name).first.wait_for(timeout=RERUN_MS)  # the uploader lists the file
    answer = tab.get_by_role("status").filter(has_text=SUMMARY).or_(tab.get_by_role("alert").filter(has_text="refused"))
    answer.first.wait_for(timeout=RERUN_MS)
    return time.monotonic() - start


SAMPLES_JS = """
() => Array.from(document.querySelectorAll('[data-testid="stImageCaption"], p, div'))
  .filter(e => e.children.length === 0 && ['cats', 'dogs'].includes(e.textContent.trim()))
  .map(e => {
    let box = e;  // walk up from the caption to the smallest block holding one image
    while (box && box.querySelectorAll('img').length === 0) box = box.parentElement;
    const img = box && box.querySelectorAll('img').length === 1 ? box.querySelector('img') : null;
    return img && img.complete && img.naturalWidth > 0 ? e.textContent.trim() : null;
  })
"""


def sample_strip(tab) -> dict[str, int]:
    """Class -> images shown (and loaded) in the strips of training and validation images."""
    captions = [c for c in tab.evaluate(SAMPLES_JS) if c]
    return {name: captions.count(name) for name in sorted(set(captions))}


def wait_for_samples(tab, expected: dict[str, int]) -> None:
    """Wait until the strips show `expected` images per class, all loaded."""
    counts = "captions => Object.entries(captions.filter(Boolean).reduce((n, c) => ({...n, [c]: (n[c] || 0) + 1}), {}))"
    check = f"(expected) => JSON.stringify(({counts})(({SAMPLES_JS})()).sort()) === JSON.stringify(expected)"
    try:
        tab.wait_for_function(check, arg=sorted([k, v] for k, v in expected.items()), timeout=RERUN_MS)
    except sync_api.TimeoutError:
        raise AssertionError(f"the sample strip shows {sample_strip(tab)}, not {expected}") from None


def summary_text(tab) -> str:
    return tab.get_by_role("status").filter(has_text=SUMMARY).first.inner_text()


def contents(root: Path) -> set[tuple[str, bytes] | str]:
    """Every file under root with its bytes, and every folder ("name/"): what a refused upload must not change."""
    if not root.exists():
        return set()
    return {
        (str(p.relative_to(root)), p.read_bytes()) if p.is_file() else f"{p.relative_to(root)}/"
        for p in root.rglob("*")
    }


def uploads_of(lab_root: Path) -> list[str]:
    uploads = lab_root / "datasets" / "uploads"
    return sorted(p.name for p in uploads.iterdir()) if uploads.is_dir() else []


def test_upload_a_zip_of_photos_then_the_same_zip_again(page, browser, server, zips, lab_root, artifacts):  # noqa: F811
    open_upload_page(page, server)
    assert page.get_by_role("button", name="Train both runs").count() == 0, "no data before the upload"
    assert page.get_by_label("Folder on this computer").count() == 0, "hosted: the server's folders stay private"
    shoot(page, artifacts, "upload-01-before")

    seconds = upload(page, zips[PHOTOS])
    print(f"upload answered after {seconds:.1f} s")
    text = summary_text(page)
    assert text.startswith(f"{PHOTOS}: 10 images in 2 classes (cats, dogs): train 8, validation 2"), text
    assert "split by a seeded fraction" in text
    assert re.search(r"\b1 files? skipped: 1 not an image\b", text), text
    assert "uploaded before" not in text
    # The uploaded images: two training images of each class, and the one validation image of each.
    wait_for_samples(page, {"cats": 3, "dogs": 3})
    page.get_by_text("variant 1", exact=True).wait_for(timeout=RERUN_MS)  # the preview draws from them too
    assert page.get_by_role("alert").count() == 0, "no error or warning once the images are in"
    assert page.get_by_role("button", name="Train both runs").is_enabled()
    shoot(page, artifacts, "upload-02-unpacked")
    link = page.url  # the address bar holds the setup, the upload named by a random private token, no server path
    token = re.search(r"upload=([0-9a-f]{32})\b", link)
    assert token and "data_dir" not in link, link
    token = token.group(1)
    digest = hashlib.sha256(zips[PHOTOS].read_bytes()).hexdigest()
    assert digest[:16] not in link, "hosted, the token is not the zip's hash: nobody can work it out from the zip"
    assert uploads_of(lab_root) == [token], "unpacked once, under its token, no temporary folder left"
    dataset = lab_root / "datasets" / "uploads" / token / "dataset"
    assert sorted(p.name for p in dataset.iterdir()) == ["cats", "dogs"], "the wrapping folder is stepped into"
    assert (dataset / "cats" / "cat 05 ü.png").is_file() and (dataset / "dogs" / "Hündchen Nr. 1.png").is_file()
    assert (dataset / "cats" / "notes.txt").is_file(), "unpacked as it is; the lab reads only the images"
    assert sorted(p.name for p in (lab_root / "datasets").iterdir()) == ["uploads"]
    unpacked = tree(dataset)

    # The same zip in a fresh tab (another visitor): a private folder of its own, and not a word about the first.
    with watched_tab(browser.new_context(viewport=page.viewport_size)) as again:
        open_upload_page(again, server)
        upload(again, zips[PHOTOS])
        text = summary_text(again)
        assert "uploaded before" not in text and "reused" not in text, text
        wait_for_samples(again, {"cats": 3, "dogs": 3})
        assert len(uploads_of(lab_root)) == 2 and token in uploads_of(lab_root)
        shoot(again, artifacts, "upload-03-reused")
        # The link copied after the first upload opens the same images, with no upload.
        again.goto(link)
        wait_for_samples(again, {"cats": 3, "dogs": 3})
        assert again.get_by_role("alert").count() == 0
    assert tree(dataset) == unpacked, "the first visitor's images were not touched"


def test_a_zip_with_an_entry_that_climbs_out_is_refused(page, server, zips, lab_root, artifacts):  # noqa: F811
    before = contents(lab_root / "datasets")
    open_upload_page(page, server)
    upload(page, zips["evil.zip"])
    error = page.get_by_role("alert").filter(has_text="refused").first
    text = error.inner_text()
    assert "evil.zip was refused" in text and "'../evil.png'" in text and "outside" in text, text
    assert "Nothing was unpacked" in text
    shoot(page, artifacts, "upload-04-refused")
    assert page.get_by_role("status").filter(has_text=SUMMARY).count() == 0
    assert page.get_by_role("button", name="Train both runs").count() == 0, "no data, no training"

    after = contents(lab_root / "datasets")
    assert after - {"uploads/"} == before - {"uploads/"}, "nothing was written in the data folder"
    assert not [p for p in (lab_root / "datasets").rglob("*") if p.name.startswith(".")], "no temporary folder left"
    assert all(re.fullmatch(r"[0-9a-f]{16}|[0-9a-f]{32}", name) for name in uploads_of(lab_root)), uploads_of(lab_root)
    escaped = [*lab_root.rglob("evil.png"), *lab_root.parent.glob("evil.png"), *REPO.glob("evil.png")]
    assert not escaped, f"written outside the uploads folder: {escaped}"

    # The page is still usable: the builtin dataset draws its samples.
    page.goto(server.url + "?preset=quick")
    page.get_by_text("variant 1", exact=True).wait_for(timeout=60_000)
    wait_for_samples(page, {"cats": 4, "dogs": 4})  # two training and two validation images of each class
