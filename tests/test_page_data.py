"""The page's data section, driven with AppTest: a course dataset that is not there yet, downloaded
with the page's button from a local HTTP server on 127.0.0.1, and the same button while the server
is down.

The page (lab_env, from test_page.py) runs with its run store and data folder in tmp_path; the
server and the guard that fails any connection to anywhere but 127.0.0.1 come from
test_download.py. The archive is built by the test in the canonical layout of
cats_and_dogs_filtered.zip, with a handful of images per class: the page's download checks the
registry's numbers of images, so the registry is given the test archive's numbers (the page has
no way to pass `expected_sizes`), as test_download.py does for the command line.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from lab_files import class_files, zip_bytes
from page_helpers import TRAIN, Page
from test_download import (  # noqa: F401 (fixtures: the local server, and the guard used by every test here)
    CATS_ENV,
    CATS_SIZES,
    closed_port_url,
    nothing_left,
    only_localhost,
    server,
)
from test_page import lab_env  # noqa: F401 (fixture: an isolated page with its own store and data folder)

from lab.data import registry
from lab.data.download import DOWNLOADS
from lab.data.ingest import ingest_upload

CATS = "cats_vs_dogs"
# What the button says: the real archive's size, whatever the test serves.
DOWNLOAD = "Download Cats vs Dogs (course subset) (69 MB)"
ZIP_PATH = "/cats_and_dogs_filtered.zip"


def canonical_cats_zip() -> bytes:
    """cats_and_dogs_filtered.zip in small: a top folder with train/ and validation/ of class folders."""
    files = {"cats_and_dogs_filtered/vectorize.py": b"# the course's helper script\n"}
    for offset, (split, classes) in enumerate(CATS_SIZES.items()):
        counts = set(classes.values())
        assert len(counts) == 1, "class_files writes as many images for every class"
        prefix = f"cats_and_dogs_filtered/{split}/"
        files.update(class_files(tuple(classes), counts.pop(), prefix=prefix, fmt="JPEG", seed=1000 * offset))
    return zip_bytes(files)


@pytest.fixture
def small_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry expects the test archive's numbers of images (the page checks against it)."""
    monkeypatch.setitem(registry.REGISTRY, CATS, replace(registry.REGISTRY[CATS], split_sizes=CATS_SIZES))


def choose(page: Page, dataset: str) -> Page:
    page.selectbox("Dataset").select(dataset)
    return page.run()


def sample_strips(page: Page, classes: tuple[str, ...] = ("cats", "dogs")) -> dict[str, int]:
    """The "About the data" tab's training samples: class -> number of images (other strips have other captions)."""
    captions = {f"{name} (training)": name for name in classes}
    return {
        captions[s.captions[0]]: len(s.value) for s in page.image_strips() if s.captions and s.captions[0] in captions
    }


def split_sizes(page: Page) -> dict[str, dict[str, int]]:
    """The table of images per split and class beside the sample strip."""
    table = page.at.dataframe[0].value
    return {split: {name: int(count) for name, count in column.items()} for split, column in table.items()}


def test_download_a_missing_course_dataset_with_the_button(lab_env, server, small_registry, monkeypatch):  # noqa: F811
    target = lab_env.data_root / "cats_and_dogs_filtered"
    monkeypatch.setenv(CATS_ENV, server.serve(ZIP_PATH, canonical_cats_zip()))
    page = choose(lab_env.page().run(), CATS)

    assert not page.texts("error"), "a dataset not downloaded yet is no error"
    assert page.texts("info") == [
        "Cats vs Dogs (course subset) is not downloaded yet on this computer: the button below fetches it."
    ]
    details = " ".join(m.value for e in page.at.expander if e.label.startswith("Details") for m in e.markdown)
    assert f"no folder at {target}" in details and "By hand" in details, "the steps by hand, on request"
    assert page.has_button(DOWNLOAD) and not page.has_button(TRAIN)
    assert not sample_strips(page) and server.requests == [], "nothing is fetched before the click"

    page.click(DOWNLOAD)
    assert server.requests == [ZIP_PATH]
    assert sorted(p.name for p in lab_env.data_root.iterdir()) == ["cats_and_dogs_filtered"], (
        "no archive or temporary folder left beside the dataset"
    )
    assert sorted(p.name for p in target.iterdir()) == ["train", "validation", "vectorize.py"]
    assert len(list((target / "validation" / "dogs").iterdir())) == 2

    assert not page.texts("error"), page.texts("error")
    assert not page.has_button(DOWNLOAD)
    assert not page.elements("progress"), "the progress bar is gone once the dataset is in place"
    assert sample_strips(page) == {"cats": 3, "dogs": 3}, "every training image of the small archive"
    assert split_sizes(page) == CATS_SIZES
    assert registry.REGISTRY[CATS].description in page.texts("markdown")
    assert page.has_button(TRAIN) and len(page.preview_urls()) == 8
    config = page.config()
    assert (config["dataset"], config["data_dir"]) == (CATS, None), "the default folder, not a path"

    # Another visitor finds it in place: no button, no second request.
    other = choose(lab_env.page().run(), CATS)
    assert not other.texts("error") and not other.has_button(DOWNLOAD)
    assert server.requests == [ZIP_PATH]


def test_download_with_the_server_down_shows_the_url_and_the_steps_by_hand(lab_env, small_registry, monkeypatch):  # noqa: F811
    url = closed_port_url(ZIP_PATH)
    monkeypatch.setenv(CATS_ENV, url)
    page = choose(lab_env.page().run(), CATS)
    page.click(DOWNLOAD)  # Page.run fails the test on any exception in the script

    errors = page.texts("error")
    failures = [e for e in errors if "could not be downloaded" in e]
    assert len(failures) == 1 and len(errors) == 1, "one message, the steps by hand once"
    message = failures[0]
    assert "no route to its URLs" in message and url in message and "refused" in message.lower(), message
    assert "Nothing was written" in message and "By hand" in message
    assert DOWNLOADS[CATS][0].urls[0] in message, "the canonical URL to fetch on a computer with internet"
    assert str(lab_env.data_root / "cats_and_dogs_filtered.zip") in message, "where to save the zip by hand"
    assert nothing_left(lab_env.data_root), "a failed download leaves nothing in the data folder"
    assert page.has_button(DOWNLOAD), "the button stays for another try"
    assert not page.elements("progress")
    assert "Pick a dataset that loads before training." in page.texts("warning") and not page.has_button(TRAIN)

    # The page is still usable: back to the builtin dataset, everything is there.
    choose(page, "builtin")
    assert not page.texts("error") and not page.has_button(DOWNLOAD)
    assert sample_strips(page) == {"cats": 6, "dogs": 6}
    assert page.has_button(TRAIN) and len(page.preview_urls()) == 8


def test_a_download_with_other_numbers_of_images_than_the_registry_is_refused(lab_env, server, monkeypatch):  # noqa: F811
    # The registry as shipped expects 1,000 cats: the small archive is "the wrong files".
    monkeypatch.setenv(CATS_ENV, server.serve(ZIP_PATH, canonical_cats_zip()))
    page = choose(lab_env.page().run(), CATS)
    page.click(DOWNLOAD)
    failures = [e for e in page.texts("error") if "could not be downloaded" in e]
    assert len(failures) == 1, page.texts("error")
    assert "does not hold the expected files" in failures[0]
    assert "train/cats has 3 images instead of 1000" in failures[0], failures[0]
    assert server.requests == [ZIP_PATH], "the same bytes would come again: no retry"
    assert nothing_left(lab_env.data_root)
    assert page.has_button(DOWNLOAD) and not sample_strips(page)


def test_the_download_button_is_only_for_course_datasets_in_their_default_folder(lab_env, tmp_path: Path):  # noqa: F811
    page = choose(lab_env.page().run(), "folder")
    assert page.texts("info") and not any(b.label.startswith("Download ") for b in page.at.button)
    choose(page, CATS)
    assert page.has_button(DOWNLOAD)
    # A folder of one's own that is missing: the error is about that folder; nothing to download into it.
    missing = tmp_path / "elsewhere"
    page.text_input("Folder on this computer").input(str(missing))
    page.run()
    errors = page.texts("error")
    assert len(errors) == 1 and f"no folder at {missing}" in errors[0], errors
    assert not page.has_button(DOWNLOAD)


def test_hosted_a_course_dataset_chosen_after_an_upload_is_the_course_dataset(lab_env, monkeypatch):  # noqa: F811
    monkeypatch.setenv("LAB_HOSTED", "1")
    # What the page's uploader does with a zip, then the link the page shows after it (it holds the upload's folder).
    report = ingest_upload(zip_bytes(class_files(("birds", "fish"), 5, prefix="mine/")), "mine.zip", lab_env.data_root)
    page = lab_env.page({"preset": "quick", "dataset": "folder", "data_dir": str(report.data_dir)}).run()
    assert sample_strips(page, ("birds", "fish")) == {"birds": 4, "fish": 4}
    assert not page.at.text_input, "hosted: no folder box"

    choose(page, CATS)
    assert not sample_strips(page, ("birds", "fish")), "the uploaded birds and fish are not Cats vs Dogs"
    assert page.config()["data_dir"] is None
    assert page.has_button(DOWNLOAD)


def test_a_link_names_an_upload_by_its_hash_not_by_a_server_path(lab_env, monkeypatch):  # noqa: F811
    monkeypatch.setenv("LAB_HOSTED", "1")
    report = ingest_upload(zip_bytes(class_files(("birds", "fish"), 5, prefix="mine/")), "mine.zip", lab_env.data_root)
    page = lab_env.page({"preset": "quick", "dataset": "folder", "data_dir": str(report.data_dir)}).run()
    query = page.query()
    assert query["upload"] == report.token and "data_dir" not in query
    assert str(lab_env.data_root) not in json.dumps(query)

    # The link alone, in a new session, opens the same images.
    again = lab_env.page(query).run()
    assert sample_strips(again, ("birds", "fish")) == {"birds": 4, "fish": 4}
    # Hosted, the configuration shown names the upload by its token, never by the server's folder.
    shown = again.config()
    assert shown["upload"] == query["upload"] and shown["data_dir"] is None
    assert str(lab_env.data_root) not in json.dumps(shown)

    # On a server without that upload (or with a made-up name): a clear message, and the uploader to use.
    for token in ("0" * 16, "../../etc"):
        other = lab_env.page({**query, "upload": token}).run()
        assert any("upload the zip again" in w for w in other.texts("warning"))
        assert (other.config()["dataset"], other.config()["data_dir"]) == ("folder", None)
        assert other.at.get("file_uploader"), "the page offers the upload"
        assert not sample_strips(other, ("birds", "fish"))
