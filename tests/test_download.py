"""Downloads of the course's datasets, against a local HTTP server on 127.0.0.1 that each test
starts and fills with zips in the canonical layouts: a good download, one cut short or damaged
(tried once more, then reported, nothing left behind), the wrong files, a mirror, a server
that is down. A guard fails any test that tries to connect anywhere but 127.0.0.1."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from lab_files import image_bytes, tree, zip_bytes
from PIL import Image

from lab.config import RunConfig
from lab.data import listing, registry
from lab.data.download import (
    DOWNLOADS,
    DownloadError,
    dataset_folder,
    download_bytes,
    ensure_dataset,
    env_name,
    is_downloadable,
    manual_steps,
)

SHARED = Path(os.environ.get("LAB_SHARED_DATASETS") or Path(__file__).resolve().parents[2] / "shared" / "datasets")
CATS_AND_DOGS = SHARED / "cats_and_dogs_filtered"
CATS_SIZES = {"train": {"cats": 3, "dogs": 3}, "validation": {"cats": 2, "dogs": 2}}
HORSES_SIZES = {"train": {"horses": 3, "humans": 4}, "validation": {"horses": 2, "humans": 2}}
CATS_ENV = env_name(DOWNLOADS["cats_vs_dogs"][0])
HORSES_ENV = env_name(DOWNLOADS["horses_or_humans"][0])
HORSES_VALIDATION_ENV = env_name(DOWNLOADS["horses_or_humans"][1])


# -- the local server ------------------------------------------------------------------------------
class Server:
    """Serves `routes` ({path: (behaviour, bytes)}) on 127.0.0.1 and records every request path.

    Behaviours: "ok"; "cut" sends the full Content-Length but half the body, then hangs up;
    "cut-once" does that on the first request only; "damaged" flips bytes in the middle.
    """

    def __init__(self) -> None:
        self.routes: dict[str, tuple[str, bytes]] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.requests.append(self.path)
                behaviour, body = server.routes.get(self.path, ("missing", b""))
                if behaviour == "missing":
                    self.send_error(404)
                    return
                cut = behaviour == "cut" or (behaviour == "cut-once" and server.requests.count(self.path) == 1)
                if behaviour == "damaged":
                    middle = len(body) // 2
                    body = body[:middle] + bytes(b ^ 0x55 for b in body[middle : middle + 64]) + body[middle + 64 :]
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if cut else body)
                self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def serve(self, path: str, body: bytes, behaviour: str = "ok") -> str:
        self.routes[path] = (behaviour, body)
        return self.url(path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def only_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test here may reach the internet: connecting anywhere but 127.0.0.1 fails the test."""
    connect = socket.socket.connect

    def guarded(self, address):
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            pytest.fail(f"a test tried to connect to {address}")
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for name in (CATS_ENV, HORSES_ENV, HORSES_VALIDATION_ENV):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "lab-data"
    monkeypatch.setenv("LAB_DATA_DIR", str(path))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))  # get_file never touches ~/.keras
    return path


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.close()


def closed_port_url(path: str) -> str:
    """A URL on 127.0.0.1 where nothing listens: connecting is refused, as when offline."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


# -- archives in the canonical layouts ---------------------------------------------------------------
def cats_zip() -> bytes:
    """cats_and_dogs_filtered.zip in small: a top folder with train/ and validation/, real photos."""
    if not (CATS_AND_DOGS / "train" / "cats").is_dir():
        pytest.skip(f"the real Cats vs Dogs images are absent at {CATS_AND_DOGS} (set LAB_SHARED_DATASETS)")
    files = {"cats_and_dogs_filtered/vectorize.py": b"# the course's helper script\n"}
    for split, classes in CATS_SIZES.items():
        for name, count in classes.items():
            for path in sorted((CATS_AND_DOGS / split / name).glob("*.jpg"))[:count]:
                files[f"cats_and_dogs_filtered/{split}/{name}/{path.name}"] = path.read_bytes()
    return zip_bytes(files)


def rgba_png(label: int, seed: int) -> bytes:
    """A 300x300 RGBA PNG like the course's Horses or Humans images."""
    rng = np.random.default_rng(seed)
    image = np.zeros((300, 300, 4), np.uint8)
    image[..., label] = 180 + rng.integers(0, 40, size=(300, 300), dtype=np.uint8)
    image[..., 3] = 255
    image[:40, :, 3] = 0  # a transparent band, as the renders have around the figure
    import io

    out = io.BytesIO()
    Image.fromarray(image, "RGBA").save(out, "PNG")
    return out.getvalue()


def horses_zip(split: str) -> bytes:
    """horse-or-human.zip / validation-horse-or-human.zip in small: horses/ and humans/ at the top."""
    files = {}
    for label, (name, count) in enumerate(HORSES_SIZES[split].items()):
        for i in range(count):
            files[f"{name}/{name[:-1]}{i:02d}-{split}.png"] = rgba_png(label, seed=hash((split, name, i)) % 1000)
    return zip_bytes(files)


def nothing_left(root: Path) -> bool:
    return not root.exists() or not any(root.iterdir())


# -- good downloads ------------------------------------------------------------------------------------
def test_cats_vs_dogs_downloads_with_progress_into_the_data_root_and_is_then_found(root, server, monkeypatch):
    archive = cats_zip()
    monkeypatch.setenv(CATS_ENV, server.serve("/cats_and_dogs_filtered.zip", archive))
    reports: list[tuple[int, int]] = []
    folder = ensure_dataset(
        "cats_vs_dogs", lambda done, total: reports.append((done, total)), expected_sizes=CATS_SIZES
    )
    assert folder == root / "cats_and_dogs_filtered" and dataset_folder("cats_vs_dogs").is_dir()
    assert sorted(p.name for p in root.iterdir()) == ["cats_and_dogs_filtered"], "no archive or temporary folder left"
    assert (folder / "vectorize.py").is_file()
    dones = [done for done, _ in reports]
    assert dones == sorted(dones) and reports[-1] == (len(archive), len(archive))
    assert listing.dataset_info(RunConfig(dataset="cats_vs_dogs")).split_sizes == CATS_SIZES
    assert listing.resolve_folder(RunConfig(dataset="cats_vs_dogs")) == folder
    # Found the second time: no request.
    assert ensure_dataset("cats_vs_dogs", lambda *_: None, expected_sizes=CATS_SIZES) == folder
    assert server.requests == ["/cats_and_dogs_filtered.zip"]


def test_horses_or_humans_downloads_two_zips_into_train_and_validation(root, server, monkeypatch):
    monkeypatch.setenv(HORSES_ENV, server.serve("/horse-or-human.zip", horses_zip("train")))
    monkeypatch.setenv(HORSES_VALIDATION_ENV, server.serve("/validation-horse-or-human.zip", horses_zip("validation")))
    reports: list[tuple[int, int]] = []
    folder = ensure_dataset("horses_or_humans", lambda *r: reports.append(r), expected_sizes=HORSES_SIZES)
    assert folder == root / "horses_or_humans"
    assert sorted(p.name for p in folder.iterdir()) == ["train", "validation"]
    assert sorted(p.name for p in (folder / "train").iterdir()) == ["horses", "humans"]
    found = listing.list_dataset(RunConfig(dataset="horses_or_humans"))
    assert found.sizes() == HORSES_SIZES and not found.left_out()
    assert len(found.converted) == 11 and all("alpha dropped" in n.reason for n in found.converted)
    assert reports[-1][0] == reports[-1][1] and [d for d, _ in reports] == sorted(d for d, _ in reports)
    assert server.requests == ["/horse-or-human.zip", "/validation-horse-or-human.zip"]


def test_the_command_line_downloads_through_keras_get_file(root, server, monkeypatch, capsys):
    from lab.cli import resolve_config

    monkeypatch.setitem(
        registry.REGISTRY, "cats_vs_dogs", replace(registry.REGISTRY["cats_vs_dogs"], split_sizes=CATS_SIZES)
    )
    monkeypatch.setenv(CATS_ENV, server.serve("/cats.zip", cats_zip()))
    name, config = resolve_config("cats_vs_dogs_quick", None, [])
    assert config.dataset == "cats_vs_dogs" and config.data_dir is None
    assert (root / "cats_and_dogs_filtered" / "train" / "dogs").is_dir()
    assert "Downloading data from http://127.0.0.1" in capsys.readouterr().out, "Keras's get_file did the download"
    assert sorted(p.name for p in root.iterdir()) == ["cats_and_dogs_filtered"]


def test_the_mirror_is_tried_when_the_canonical_url_fails(root, server, monkeypatch):
    archive = cats_zip()
    monkeypatch.setenv(
        CATS_ENV, f"{closed_port_url('/gone.zip')} {server.url('/missing.zip')},{server.serve('/m.zip', archive)}"
    )
    ensure_dataset("cats_vs_dogs", lambda *_: None, expected_sizes=CATS_SIZES)
    assert server.requests == ["/missing.zip", "/m.zip"] and dataset_folder("cats_vs_dogs").is_dir()


def test_a_zip_saved_by_hand_in_the_data_root_is_used_and_kept(root, server, monkeypatch):
    root.mkdir()
    saved = root / "cats_and_dogs_filtered.zip"
    saved.write_bytes(cats_zip())
    monkeypatch.setenv(CATS_ENV, closed_port_url("/never.zip"))
    folder = ensure_dataset("cats_vs_dogs", lambda *_: None, expected_sizes=CATS_SIZES)
    assert (folder / "validation" / "cats").is_dir() and saved.is_file()


# -- downloads that go wrong -----------------------------------------------------------------------------
def test_a_download_cut_short_is_removed_and_tried_once_more(root, server, monkeypatch):
    monkeypatch.setenv(CATS_ENV, server.serve("/c.zip", cats_zip(), "cut-once"))
    folder = ensure_dataset("cats_vs_dogs", lambda *_: None, expected_sizes=CATS_SIZES)
    assert server.requests == ["/c.zip", "/c.zip"] and folder.is_dir()
    assert sorted(p.name for p in root.iterdir()) == ["cats_and_dogs_filtered"]


@pytest.mark.parametrize("behaviour, words", [("cut", "stopped short"), ("damaged", "is damaged")])
@pytest.mark.parametrize("with_progress", [True, False], ids=["urllib", "keras"])
def test_a_download_damaged_twice_is_reported_and_leaves_nothing(
    root, server, monkeypatch, behaviour, words, with_progress
):
    archive = cats_zip()
    monkeypatch.setenv(CATS_ENV, server.serve("/c.zip", archive, behaviour))
    progress = (lambda *_: None) if with_progress else None
    with pytest.raises(DownloadError) as failed:
        ensure_dataset("cats_vs_dogs", progress, expected_sizes=CATS_SIZES)
    message = str(failed.value)
    assert server.requests == ["/c.zip", "/c.zip"], "tried exactly once more"
    assert not failed.value.offline and server.url("/c.zip") in message
    assert words in message, message
    assert "Nothing was kept" in message and nothing_left(root)


def test_a_zip_with_the_wrong_files_is_reported_without_retrying(root, server, monkeypatch):
    # All the photos in one folder: no train/ and validation/, no class folders.
    flat = zip_bytes({f"pictures/img{i}.jpg": image_bytes(i % 2, fmt="JPEG", seed=i) for i in range(6)})
    monkeypatch.setenv(CATS_ENV, server.serve("/c.zip", flat))
    with pytest.raises(DownloadError) as failed:
        ensure_dataset("cats_vs_dogs", lambda *_: None, expected_sizes=CATS_SIZES)
    message = str(failed.value)
    assert "does not hold the expected files" in message and "expected class folders train/{cats, dogs}" in message
    assert server.requests == ["/c.zip"], "the same bytes would come again: no retry"
    assert nothing_left(root)


def test_wrong_numbers_of_images_are_named(root, server, monkeypatch):
    monkeypatch.setenv(HORSES_ENV, server.serve("/h.zip", horses_zip("train")))
    monkeypatch.setenv(HORSES_VALIDATION_ENV, server.serve("/v.zip", horses_zip("validation")))
    sizes = {"train": {"horses": 3, "humans": 5}, "validation": HORSES_SIZES["validation"]}
    with pytest.raises(DownloadError, match="train/humans has 4 images instead of 5"):
        ensure_dataset("horses_or_humans", lambda *_: None, expected_sizes=sizes)
    assert nothing_left(root)


@pytest.mark.parametrize("with_progress", [True, False], ids=["urllib", "keras"])
def test_a_server_that_is_down_gives_the_offline_message_and_the_builtin_dataset_still_works(
    root, monkeypatch, with_progress
):
    url = closed_port_url("/cats_and_dogs_filtered.zip")
    monkeypatch.setenv(CATS_ENV, url)
    with pytest.raises(DownloadError) as failed:
        ensure_dataset("cats_vs_dogs", (lambda *_: None) if with_progress else None, expected_sizes=CATS_SIZES)
    message = str(failed.value)
    assert failed.value.offline and "no route to its URLs" in message and url in message
    assert "Connection refused" in message or "refused" in message.lower()
    assert "By hand" in message and str(root / "cats_and_dogs_filtered.zip") in message
    assert DOWNLOADS["cats_vs_dogs"][0].urls[0] in message, "the canonical URL to fetch by hand"
    assert nothing_left(root)
    samples = listing.sample_images(RunConfig(image_size=48), per_class=2)
    assert set(samples) == {"cats", "dogs"}


def test_the_command_line_reports_an_offline_download_with_exit_status_2(root, monkeypatch, capsys):
    from lab.cli import main

    monkeypatch.setenv(CATS_ENV, closed_port_url("/c.zip"))
    assert main(["run", "cats_vs_dogs_quick"]) == 2
    err = capsys.readouterr().err
    assert "could not be downloaded: no route" in err and "By hand" in err


def test_a_missing_dataset_names_its_folder_and_every_url_to_fetch_by_hand(root):
    with pytest.raises(registry.DatasetError) as missing:
        listing.dataset_info(RunConfig(dataset="horses_or_humans"))
    message = str(missing.value)
    assert f"no folder at {root / 'horses_or_humans'}" in message
    assert all(archive.urls[0] in message for archive in DOWNLOADS["horses_or_humans"])
    assert str(root / "horses_or_humans" / "train") in message
    assert manual_steps("cats_vs_dogs", root).count("https://") == 1
    assert download_bytes("cats_vs_dogs") == 68_606_236 and download_bytes("horses_or_humans") > 150_000_000
    assert download_bytes("builtin") == 0 and not is_downloadable("builtin")
    assert tree(root) == {}, "describing a missing dataset downloads nothing"
