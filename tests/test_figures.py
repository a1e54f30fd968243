"""The figures show what the lesson points at: both curves per side, shared axes, the gap, the best epoch."""

from __future__ import annotations

import pytest

from lab import figures
from lab.config import RunConfig
from lab.figures import GAP_ROOM, PLACEHOLDER, compare_figure
from lab.history import from_rows, to_frame

ACCURACY, LOSS = 1, 2


def make_history(accuracy, val_accuracy, loss, val_loss) -> list[dict]:
    rows = zip(accuracy, val_accuracy, loss, val_loss, strict=True)
    return from_rows(
        [
            {"epoch": i, "accuracy": a, "val_accuracy": va, "loss": lo, "val_loss": vl, "seconds": 1.0}
            for i, (a, va, lo, vl) in enumerate(rows, start=1)
        ]
    )


# Overfits: training climbs to 95 %, validation stalls at 67 % (best 69 % at epoch 4), val_loss lowest at epoch 3.
BASELINE = make_history(
    accuracy=[0.55, 0.70, 0.82, 0.90, 0.95],
    val_accuracy=[0.52, 0.62, 0.68, 0.69, 0.67],
    loss=[0.68, 0.55, 0.40, 0.25, 0.12],
    val_loss=[0.69, 0.62, 0.58, 0.75, 2.40],
)
# Generalises: the two curves move together, validation best (70 %) at the last epoch, 4.
AUGMENTED = make_history(
    accuracy=[0.52, 0.60, 0.66, 0.71],
    val_accuracy=[0.53, 0.61, 0.68, 0.70],
    loss=[0.70, 0.66, 0.61, 0.57],
    val_loss=[0.69, 0.64, 0.59, 0.56],
)


def column(history: list[dict], name: str) -> list:
    return to_frame(history)[name].tolist()


def axis_refs(fig, row: int, col: int) -> tuple[str, str]:
    """("x3", "y3")-style references of a panel, as shapes and annotations name it."""
    panel = fig.get_subplot(row, col)
    return tuple(axis.plotly_name.replace("axis", "") for axis in (panel.xaxis, panel.yaxis))


def curves(fig, row: int, col: int) -> dict:
    return {trace.name: trace for trace in fig.select_traces(row=row, col=col)}


def notes(fig, name: str, row: int, col: int) -> list:
    xref, _ = axis_refs(fig, row, col)
    return [a for a in fig.layout.annotations if a.name == name and a.xref.split(" ")[0] == xref]


def shapes(fig, name: str, row: int, col: int) -> list:
    xref, _ = axis_refs(fig, row, col)
    return [s for s in fig.layout.shapes if s.name == name and s.xref == xref]


@pytest.mark.parametrize("col, history", [(1, BASELINE), (2, AUGMENTED)])
@pytest.mark.parametrize("row, metric", [(ACCURACY, "accuracy"), (LOSS, "loss")])
def test_each_side_draws_training_and_validation_of_its_own_run(col, history, row, metric):
    drawn = curves(compare_figure(BASELINE, AUGMENTED), row, col)
    assert list(drawn["training"].y) == column(history, metric)
    assert list(drawn["validation"].y) == column(history, f"val_{metric}")
    assert list(drawn["training"].x) == column(history, "epoch")


def test_a_dataframe_draws_as_its_rows_do():
    assert compare_figure(to_frame(BASELINE), [to_frame(AUGMENTED)]) == compare_figure(BASELINE, AUGMENTED)


def test_training_is_solid_validation_dashed_in_the_same_colours_on_both_sides():
    fig = compare_figure(BASELINE, AUGMENTED)
    for kind, dash in (("training", "solid"), ("validation", "dash")):
        lines = [t.line for t in fig.data if t.name == kind]
        assert len(lines) == 4
        assert {line.dash for line in lines} == {dash}
        assert len({line.color for line in lines}) == 1
    train_colour = next(t.line.color for t in fig.data if t.name == "training")
    assert train_colour != next(t.line.color for t in fig.data if t.name == "validation")


@pytest.mark.parametrize("baseline", [BASELINE, None])
def test_legend_lists_each_entry_once(baseline):
    fig = compare_figure(baseline, AUGMENTED)
    listed = [t.name for t in fig.data if t.showlegend is not False]
    assert sorted(listed) == ["best validation accuracy", "training", "validation"]


def test_both_sides_share_identical_y_ranges_with_room_for_the_highest_loss():
    fig = compare_figure(BASELINE, AUGMENTED)
    for row in (ACCURACY, LOSS):
        left, right = (fig.get_subplot(row, col).yaxis.range for col in (1, 2))
        assert left == right
    assert fig.get_subplot(ACCURACY, 1).yaxis.range == (0, 1)
    low, high = fig.get_subplot(LOSS, 2).yaxis.range
    # The augmented side never goes above 0.70; its axis still reaches the baseline's 2.40.
    assert low == 0 and 2.40 <= high < 3.5


@pytest.mark.parametrize("col, expected", [(1, "gap 28%"), (2, "gap 1%")])
def test_gap_annotation_states_train_minus_validation_at_the_last_epoch(col, expected):
    fig = compare_figure(BASELINE, AUGMENTED)
    (note,) = notes(fig, "gap", ACCURACY, col)
    assert note.text == expected
    history = (BASELINE, AUGMENTED)[col - 1]
    last = history[-1]
    (segment,) = shapes(fig, "gap", ACCURACY, col)
    assert segment.x0 == segment.x1 == last["epoch"]
    assert {segment.y0, segment.y1} == {last["accuracy"], last["val_accuracy"]}


def test_negative_gap_is_reported_with_its_sign():
    ahead = make_history([0.50, 0.60], [0.55, 0.70], [0.7, 0.6], [0.6, 0.5])
    (note,) = notes(compare_figure(ahead, None), "gap", ACCURACY, 1)
    assert note.text == "gap -10%"


@pytest.mark.parametrize("col, best, accuracy", [(1, 4, 0.69), (2, 4, 0.70)])
def test_best_epoch_marker_sits_at_the_highest_validation_accuracy_as_the_table_counts_it(col, best, accuracy):
    fig = compare_figure(BASELINE, AUGMENTED)
    marker = curves(fig, ACCURACY, col)["best validation accuracy"]
    assert list(marker.x) == [best] and list(marker.y) == [accuracy]
    for row in (ACCURACY, LOSS):
        (line,) = shapes(fig, "best epoch", row, col)
        assert line.x0 == line.x1 == best and line.line.dash == "dot"
    assert [n.text for n in notes(fig, "best epoch", LOSS, col)] == [f"best epoch {best}"]


@pytest.mark.parametrize("col", [1, 2])
def test_the_gap_label_sits_right_of_the_last_epoch_where_no_curve_runs(col):
    fig = compare_figure(BASELINE, AUGMENTED, epochs=5)
    (note,) = notes(fig, "gap", ACCURACY, col)
    last = (BASELINE, AUGMENTED)[col - 1][-1]["epoch"]
    # Every curve ends at or before `last`: a label anchored on its left at `last`, shifted right, clears them.
    assert note.x == last and note.xanchor == "left" and note.xshift > 0
    low, high = fig.get_subplot(ACCURACY, col).xaxis.range
    assert high - 5 >= 0.15 * (high - low), "room inside the panel for the label"


@pytest.mark.parametrize("missing", [None, [], to_frame([])], ids=["none", "empty", "empty-frame"])
def test_missing_run_leaves_an_empty_panel_with_a_placeholder(missing):
    fig = compare_figure(BASELINE, missing)
    for row in (ACCURACY, LOSS):
        assert curves(fig, row, 2) == {}
        assert [n.text for n in notes(fig, "placeholder", row, 2)] == [PLACEHOLDER]
        assert notes(fig, "placeholder", row, 1) == []
        assert {"training", "validation"} <= set(curves(fig, row, 1))
        # The empty side keeps the same axes as the run beside it.
        assert fig.get_subplot(row, 1).yaxis.range == fig.get_subplot(row, 2).yaxis.range


def test_no_run_at_all_still_draws_a_figure():
    fig = compare_figure(None, [], epochs=8)
    assert len(fig.data) == 0
    assert [a.text for a in fig.layout.annotations].count(PLACEHOLDER) == 4
    assert fig.get_subplot(LOSS, 1).xaxis.range == (1, 8 + GAP_ROOM * 7)


@pytest.mark.parametrize("epochs, expected", [(20, 20), (None, 5), (3, 5)])
def test_x_axis_spans_the_planned_epochs_but_never_hides_a_finished_one(epochs, expected):
    fig = compare_figure(BASELINE, AUGMENTED, epochs=epochs)
    for row in (ACCURACY, LOSS):
        for col in (1, 2):
            axis = fig.get_subplot(row, col).xaxis
            assert axis.range == (1, expected + GAP_ROOM * (expected - 1))
            assert axis.tickvals[0] == 1 and axis.tickvals[-1] <= expected, "no tick past the last epoch"


def test_epochs_below_one_is_refused():
    with pytest.raises(ValueError, match="epochs"):
        compare_figure(BASELINE, AUGMENTED, epochs=0)


def test_titles_name_the_sides_and_hover_shows_epoch_and_value():
    fig = compare_figure(BASELINE, AUGMENTED, titles=("plain", "flipped"))
    texts = [a.text for a in fig.layout.annotations]
    assert "plain" in texts and "flipped" in texts
    for trace in fig.data:
        assert "epoch %{x}" in trace.hovertemplate and "%{y" in trace.hovertemplate
    assert "plain" in curves(fig, ACCURACY, 1)["training"].hovertemplate


def test_text_is_large_enough_to_read_projected():
    fig = compare_figure(BASELINE, None)
    assert fig.layout.font.size >= 14
    sizes = [a.font.size for a in fig.layout.annotations if a.font.size is not None]
    assert len(sizes) == len(fig.layout.annotations) and min(sizes) >= 14


# -- several seeds per side ------------------------------------------------------------------
def shifted(history: list[dict], by: float) -> list[dict]:
    """The same run with every accuracy and loss moved by `by`: another seed."""
    moved = ("accuracy", "val_accuracy", "loss", "val_loss")
    return [{key: value + by if key in moved else value for key, value in row.items()} for row in history]


def bands(fig, row: int, col: int) -> dict:
    return {t.name: t for t in fig.select_traces(row=row, col=col) if t.fill == "toself"}


def test_one_history_per_side_in_a_list_draws_exactly_the_single_run_figure():
    assert compare_figure([BASELINE], [AUGMENTED], epochs=6) == compare_figure(BASELINE, AUGMENTED, epochs=6)
    # Runs that have not finished an epoch yet add nothing.
    assert compare_figure([BASELINE, []], [AUGMENTED]) == compare_figure(BASELINE, AUGMENTED)


@pytest.mark.parametrize("row, metric", [(ACCURACY, "accuracy"), (LOSS, "loss")])
def test_several_seeds_draw_the_mean_as_the_line_and_a_band_from_lowest_to_highest(row, metric):
    runs = [shifted(BASELINE, -0.02), BASELINE, shifted(BASELINE, 0.05)]
    fig = compare_figure(runs, [AUGMENTED])
    drawn = curves(fig, row, 1)
    base = to_frame(BASELINE)
    mean = base[metric] + 0.01
    assert list(drawn["training"].y) == pytest.approx(list(mean))
    assert list(drawn["validation"].y) == pytest.approx(list(base[f"val_{metric}"] + 0.01))
    assert "mean of 3 seeds" in drawn["training"].hovertemplate
    shaded = bands(fig, row, 1)
    assert set(shaded) == {"training: lowest to highest seed", "validation: lowest to highest seed"}
    band = shaded["training: lowest to highest seed"]
    epochs = list(base["epoch"])
    assert list(band.x) == epochs + epochs[::-1]
    assert list(band.y) == pytest.approx(list(base[metric] + 0.05) + list(base[metric] - 0.02)[::-1])
    line_colour = drawn["training"].line.color
    assert band.fillcolor.startswith("rgba(") and band.fillcolor != line_colour
    assert band.fillcolor == "rgba(0,114,178,0.2)" and line_colour == "#0072B2", "the line's colour, lighter"
    assert band.legendgroup == drawn["training"].legendgroup, "hiding a curve hides its band"
    # The side with one run is drawn as before: no band.
    assert bands(fig, row, 2) == {}
    assert list(curves(fig, row, 2)["training"].y) == column(AUGMENTED, metric)


def test_bands_fit_inside_the_shared_loss_axis_and_the_marks_follow_the_mean():
    high = shifted(BASELINE, 1.0)  # val_loss up to 3.40
    fig = compare_figure([BASELINE, high], [AUGMENTED, AUGMENTED])
    assert fig.get_subplot(LOSS, 2).yaxis.range[1] >= 3.40
    (note,) = notes(fig, "gap", ACCURACY, 1)
    assert note.text == "gap 28%", "the gap of the mean curve"
    assert list(curves(fig, ACCURACY, 1)["best validation accuracy"].x) == [4]


def test_a_band_while_seeds_are_still_training_covers_the_runs_that_reached_each_epoch():
    early = BASELINE[:2]  # a second seed two epochs in
    fig = compare_figure([BASELINE, shifted(early, 0.1)], None, epochs=5)
    band = bands(fig, ACCURACY, 1)["validation: lowest to highest seed"]
    assert list(band.x) == [1, 2, 3, 4, 5, 5, 4, 3, 2, 1]
    assert list(curves(fig, ACCURACY, 1)["validation"].y) == pytest.approx([0.57, 0.67, 0.68, 0.69, 0.67])
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert sorted(legend) == sorted(
        [
            "best validation accuracy",
            "training",
            "validation",
            "training: lowest to highest seed",
            "validation: lowest to highest seed",
        ]
    )


# -- a phone, and titles from each run's own settings ---------------------------------------------
def panel_titles(fig) -> list:
    return [note for note in fig.layout.annotations if note.name is None]


def test_stacked_puts_each_side_in_full_width_rows_that_do_not_overlap():
    wide = compare_figure(BASELINE, AUGMENTED)
    fig = figures.stack(wide)
    assert wide.get_subplot(ACCURACY, 2).xaxis.domain != (0.0, 1.0), "the original is left as it was"
    spans = sorted(fig.get_subplot(row, col).yaxis.domain for row in (ACCURACY, LOSS) for col in (1, 2))
    assert all(fig.get_subplot(r, c).xaxis.domain == (0.0, 1.0) for r in (1, 2) for c in (1, 2))
    assert all(below[1] < above[0] for below, above in zip(spans, spans[1:], strict=False)), spans
    left, right = panel_titles(fig)
    assert (left.text, right.text) == ("Without augmentation", "With augmentation")
    # Each side's title sits above its own accuracy panel, the second well below the first side's loss.
    assert left.y == fig.get_subplot(ACCURACY, 1).yaxis.domain[1]
    assert right.y == fig.get_subplot(ACCURACY, 2).yaxis.domain[1] < fig.get_subplot(LOSS, 1).yaxis.domain[0]
    assert compare_figure(BASELINE, AUGMENTED, stacked=True) == fig
    assert fig.layout.height > wide.layout.height


def test_titles_come_from_each_runs_own_settings():
    base = RunConfig(epochs=5)
    rotated = base.replace(augmentation={"rotation_range": 40.0})
    flipped = base.replace(augmentation={"horizontal_flip": True})
    assert figures.side_titles(base, rotated) == ("Without augmentation", "With augmentation")
    assert figures.side_titles(rotated, base) == ("With augmentation", "Without augmentation")
    assert figures.side_titles(flipped, rotated) == (
        "With augmentation: rotation off, horizontal flip on",
        "With augmentation: rotation 40°, horizontal flip off",
    )
    longer = rotated.replace(epochs=25, learning_rate=3e-4)
    assert figures.differences(rotated, longer) == [("epochs", "5", "25"), ("learning rate", "0.0001", "0.0003")]
    assert figures.knobs_on(rotated.replace(augmentation={"zoom_range": 0.2, "vertical_flip": True})) == [
        "zoom ±20%",
        "vertical flip",
    ]


def test_retitle_renames_the_panels_and_their_hover_texts_on_a_copy():
    fig = compare_figure(BASELINE, AUGMENTED)
    renamed = figures.retitle(fig, ("With augmentation: flip", "With augmentation: rotation 40°"))
    assert [n.text for n in panel_titles(renamed)] == ["With augmentation: flip", "With augmentation: rotation 40°"]
    assert curves(renamed, ACCURACY, 1)["training"].hovertemplate.startswith("With augmentation: flip<br>")
    assert [n.text for n in panel_titles(fig)] == ["Without augmentation", "With augmentation"], "a copy"
