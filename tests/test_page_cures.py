"""The cures beside augmentation on the page: L2 weight decay, early stopping and the model, each a
control that a link and a preset set, that the configuration carries, and that the Keras code shows."""

from __future__ import annotations

from test_page import lab_env  # noqa: F401 (the fixture)


def test_a_link_sets_the_cures_and_the_configuration_and_code_carry_them(lab_env):  # noqa: F811
    page = lab_env.page({"l2": "0.001", "early_stopping": "3", "architecture": "course5", "image_size": "96"}).run()
    assert page.selectbox("L2 weight decay").value == 0.001
    assert page.number_input("Early stopping (patience)").value == 3
    assert page.selectbox("Model").value == "course5"
    config = page.config()
    assert (config["l2"], config["early_stopping"], config["architecture"]) == (0.001, 3, "course5")
    code = next(c for c in page.code("python") if "EarlyStopping(" in c)
    assert "patience=3, restore_best_weights=True" in code and "regularizers.l2(0.001)" in code
    assert "layers.Conv2D(16, (3, 3)" in code, "the five-convolution model starts with 16 filters"
    assert not page.texts("error")


def test_switching_a_cure_off_takes_it_out_of_the_configuration(lab_env):  # noqa: F811
    page = lab_env.page({"l2": "0.01"}).run()
    assert page.config()["l2"] == 0.01
    page.selectbox("L2 weight decay").select(0.0)
    page.run()
    assert page.config()["l2"] == 0.0
    assert not any("regularizers.l2" in c for c in page.code("python"))


def test_a_model_too_deep_for_the_image_size_says_so(lab_env):  # noqa: F811
    page = lab_env.page({"image_size": "64"}).run()
    page.selectbox("Model").select("course5")
    page.run()
    assert any("too small for the 'course5' architecture" in e for e in page.texts("error")), page.texts("error")
