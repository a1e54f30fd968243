"""The page's "Why it overfits" section: the images behind a finished comparison's curves, inside the
two models (Grad-CAM, the augmented batch, one's own photo), and the data-size sweep.

A comparison is written into the run store as the worker leaves it (histories, final weights and
predictions), for the builtin cartoons (two classes) and for a folder of three classes; the page opens it
by its link. The models are untrained course CNNs (their answers are the predictions written here, the
Grad-CAM maps are real); the sweep runs on the fake trainer.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import write_image_folder
from page_helpers import APP, REPO, Page, seed_run, wait_for
from PIL import Image
from test_page import lab_env  # noqa: F401 (fixture: an isolated page with its own store and data folder)

from app.sections.why import INSIDE, SWEEP_BUTTON
from lab.config import RunConfig
from lab.data import builtin
from lab.runs.store import RunStore
from lab.training.outcome import Predictions, load_predictions, save_outcome


def stored_comparison(store: RunStore, config: RunConfig, with_outcome: bool = True) -> tuple[str, str]:
    """Both runs of `config`'s comparison, finished, as the worker stores them; returns their keys.

    The baseline gets the second half of the validation images wrong (for the builtin cartoons, the
    half moved farthest from the training pose); the augmented model gets all but two right.
    """
    from lab.training.model import build_model

    keys = tuple(seed_run(store, side) for side in (config.without_augmentation(), config))
    if not with_outcome:
        return keys
    if config.dataset == "builtin":
        labels = builtin.generate(config.image_size)["validation"][1]
        files = [f"builtin/{i}" for i in range(len(labels))]
        classes = list(builtin.CLASS_NAMES)
        poses = builtin.validation_poses(config.image_size)
        kinds = [builtin.describe_pose(p) for p in poses]
        moved = np.asarray([builtin.pose_distance(p) for p in poses])
        far = moved >= np.median(moved)
    else:
        root = config.data_dir
        classes = sorted(os.listdir(os.path.join(root, "validation")))
        files = [
            f"validation/{c}/{f}" for c in classes for f in sorted(os.listdir(os.path.join(root, "validation", c)))
        ]
        labels = np.asarray([classes.index(f.split("/")[1]) for f in files])
        kinds = None
        far = np.arange(len(files)) >= len(files) // 2
    n = len(classes)
    right = np.eye(n)[labels] * 0.7 + 0.3 / n
    wrong = np.eye(n)[(labels + 1) % n] * 0.7 + 0.3 / n
    baseline = np.where(far[:, None], wrong, right)
    augmented = right.copy()
    augmented[:2] = wrong[:2]
    for key, side_config, probs in zip(
        keys, (config.without_augmentation(), config), (baseline, augmented), strict=True
    ):
        model = build_model(side_config, n)
        predictions = Predictions(files=files, labels=labels, probs=probs, classes=classes, kinds=kinds)
        save_outcome(store.run_dir(key), model, predictions)
    return keys


def builtin_config() -> RunConfig:
    return RunConfig.from_dict({"image_size": 48, "epochs": 2, "augmentation": {"rotation_range": 40}})


def folder_config(root) -> RunConfig:
    write_image_folder(root, classes=("apples", "bananas", "cherries"), train=4, validation=3, size=(48, 48))
    return builtin_config().replace(dataset="folder", data_dir=str(root))


@pytest.fixture(params=["two classes", "three classes"])
def comparison(request, lab_env, tmp_path):  # noqa: F811
    config = builtin_config() if request.param == "two classes" else folder_config(tmp_path / "fruit")
    keys = stored_comparison(lab_env.store, config)
    return config, keys


def open_runs(lab_env, keys) -> Page:  # noqa: F811
    return lab_env.page({"runs": ",".join(keys)}).run()


def strips(page: Page, title_word: str) -> list:
    return [s for s in page.image_strips() if s.captions and title_word in s.captions[0]]


def test_the_poses_it_never_saw_each_way_with_both_confidences_and_a_confusion_matrix_per_side(lab_env, comparison):  # noqa: F811
    config, keys = comparison
    page = open_runs(lab_env, keys)
    found = [load_predictions(lab_env.store.run_dir(key)) for key in keys]
    fixed = int((~found[0].correct & found[1].correct).sum())
    broken = int((found[0].correct & ~found[1].correct).sum())
    markdown = " ".join(page.texts("markdown"))
    assert f"Wrong without augmentation, right with it** ({fixed})" in markdown
    assert f"Right without augmentation, wrong with it** ({broken})" in markdown
    captions = [c for s in page.image_strips() for c in (s.captions or [])]
    assert any("without →" in c and "with →" in c and "%" in c for c in captions), captions
    if config.dataset == "builtin":
        # The baseline's surest mistakes are cartoons moved from the training pose, and say how.
        assert all("rotated" in c for c in captions if "without →" in c)
    tables = [d.value for d in page.at.dataframe if any(str(i).startswith("true ") for i in d.value.index)]
    assert len(tables) == 2, "one confusion matrix per side"
    baseline, augmented = tables
    classes = 2 if config.dataset == "builtin" else 3
    assert baseline.shape == (classes, classes)
    total = 300 if config.dataset == "builtin" else 9
    assert baseline.to_numpy().sum() == total and augmented.to_numpy().sum() == total
    assert np.trace(augmented.to_numpy()) == total - 2, "the augmented model got all but two right"


def test_runs_stored_before_the_change_say_their_images_are_not_available(lab_env):  # noqa: F811
    keys = stored_comparison(lab_env.store, builtin_config(), with_outcome=False)
    page = open_runs(lab_env, keys)
    assert any("images are not available" in text for text in page.texts("info"))
    assert not lab_env.page().run().at.exception  # and a page without runs says nothing of it


def png(colour=(200, 30, 30), size=(80, 60)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_inside_the_models_grad_cam_the_augmented_batch_and_your_own_photo(lab_env, comparison):  # noqa: F811
    config, keys = comparison
    page = open_runs(lab_env, keys)
    assert not page.at.file_uploader, "nothing inside the models shows before the switch"
    page.toggle(INSIDE).set_value(True)
    page.run()
    # Grad-CAM of both models beside the picked validation image (the first image they disagree on).
    looks = [s for s in page.image_strips() if s.captions and "augmentation:" in s.captions[0]]
    assert [s.captions[0].split(":")[0] for s in looks] == ["without augmentation", "with augmentation"]
    picked = page.selectbox("Validation image")
    options = picked.options
    picked.set_value(picked.value if config.dataset == "builtin" else options[-1])  # any image can be picked
    page.run()
    # The run's first augmented batch, with the class of each image.
    classes = {"cats", "dogs"} if config.dataset == "builtin" else {"apples", "bananas", "cherries"}
    batch = [s for s in page.image_strips() if s.captions and len(s.value) == 8 and set(s.captions) <= classes]
    assert len(batch) == 1
    # Without a photo, the picked validation image's predictions by both models.
    tables = [
        d.value for d in page.at.dataframe if list(d.value.columns) == ["without augmentation", "with augmentation"]
    ]
    assert len(tables) == 1 and tables[0].shape[0] == (2 if config.dataset == "builtin" else 3)
    assert np.allclose(tables[0].sum().to_numpy(), 1.0, atol=1e-4)
    files_before = sorted(p for p in lab_env.store_root.rglob("*"))
    page.at.file_uploader[0].set_value(("me.png", png(), "image/png"))
    page.run()
    assert any("your photo" in (s.captions or [""])[0] for s in page.image_strips())
    assert sorted(p for p in lab_env.store_root.rglob("*")) == files_before, "an uploaded photo is never stored"
    page.at.file_uploader[0].set_value(("broken.png", b"\x89PNG\r\n\x1a\n broken", "image/png"))
    page.run()
    assert any("broken.png: the image is damaged" in e or "broken.png: not an image" in e for e in page.texts("error"))


def test_a_finished_comparison_shows_its_images_without_loading_tensorflow(lab_env, tmp_path):  # noqa: F811
    keys = stored_comparison(lab_env.store, builtin_config())
    script = f"""
import json, sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({str(APP)!r}, default_timeout=60)
at.query_params["runs"] = {",".join(keys)!r}
at.run()
assert not at.exception, [e.message for e in at.exception]
assert "#### The poses it never saw" in [m.value for m in at.markdown], "the strips show"
print(json.dumps({{name: name in sys.modules for name in ("tensorflow", "keras")}}))
"""
    env = {**os.environ, "LAB_RUN_STORE": str(lab_env.store_root), "LAB_DATA_DIR": str(lab_env.data_root)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"tensorflow": False, "keras": False}


# -- the data-size sweep ---------------------------------------------------------------------------
def sweep_traces(page: Page) -> dict[str, list]:
    for chart in page.elements("plotly_chart"):
        traces = json.loads(chart.proto.spec)["data"]
        if any(t.get("name") == "Without augmentation" for t in traces):
            return {t["name"]: list(t["x"]) for t in traces}
    return {}


def test_one_button_queues_the_sweep_and_draws_validation_accuracy_against_training_images(lab_env):  # noqa: F811
    fake = lab_env.use_fake_trainer()
    page = lab_env.page().run()
    page.click(SWEEP_BUTTON)
    wait_for(
        lambda: page.run() and not any("runs of the sweep done" in p.proto.text for p in page.at.get("progress")),
        60,
        what="the sweep",
    )
    wait_for(lambda: page.run() and len(sweep_traces(page).get("With augmentation", [])) == 5, 30, what="the chart")
    traces = sweep_traces(page)
    assert traces["Without augmentation"] == traces["With augmentation"] == [60, 120, 180, 240, 300]
    calls = [c for trainer in lab_env.trainers for c in trainer.calls]
    assert sorted((c.train_images, c.augmentation.enabled) for c in calls) == sorted(
        (size, aug) for size in (60, 120, 180, 240, 300) for aug in (False, True)
    )
    # Cached like every run: asking again trains nothing.
    page.click(SWEEP_BUTTON)
    assert len([c for trainer in lab_env.trainers for c in trainer.calls]) == 10
    assert fake is not None


def test_hosted_a_photo_is_never_written_to_disk_nor_shown_to_another_visitor(lab_env, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("LAB_HOSTED", "1")
    keys = stored_comparison(lab_env.store, builtin_config())
    before = sorted(p for p in tmp_path.rglob("*"))
    mine = open_runs(lab_env, keys)
    mine.toggle(INSIDE).set_value(True)
    mine.run()
    mine.at.file_uploader[0].set_value(("me.png", png(), "image/png"))
    mine.run()
    assert any("your photo" in (s.captions or [""])[0] for s in mine.image_strips())
    theirs = open_runs(lab_env, keys)
    theirs.toggle(INSIDE).set_value(True)
    theirs.run()
    assert not any("your photo" in (s.captions or [""])[0] for s in theirs.image_strips())
    written = [p for p in tmp_path.rglob("*") if p not in before and p.is_file()]
    assert not [p for p in written if png() in p.read_bytes()], "the photo is on disk"
    assert not [p for p in written if "runs" not in p.parts], written
