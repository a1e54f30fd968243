"""Plotly figures of training histories: the picture the lesson is told with.

`compare_figure` puts a run without augmentation beside one with it, on identical axes,
so that the gap between training and validation reads at a glance; given several runs
(seeds) per side it draws their mean with a band from the lowest to the highest seed. It
accepts a live, partly filled history and redraws cheaply. Histories come as rows (see
`lab.history`) or DataFrames; the figures read them as DataFrames.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lab.config import RunConfig
from lab.history import aggregate, mean_history, summarize, to_frame
from lab.knobs import KNOBS

# Okabe-Ito blue and vermilion: distinguishable with the common colour blindnesses and
# on a washed-out projector.
TRAIN_COLOUR = "#0072B2"
VAL_COLOUR = "#D55E00"
MARK_COLOUR = "#444444"
FONT_SIZE = 16
# True whether a side is still waiting for its first epoch or was never started.
PLACEHOLDER = "no epoch finished yet"

# The x axis runs this share of its epochs past the last one: room for the gap's label.
GAP_ROOM = 0.2

# How much of the line's colour a band keeps: light enough for the mean line to read on top.
BAND_OPACITY = 0.2

# (row, column in the history, axis title, hover number format)
METRICS = ((1, "accuracy", "accuracy", ".1%"), (2, "loss", "loss", ".3f"))


# A side: one history (rows or a DataFrame), several (seeds), or None.
Runs = Any


def compare_figure(
    baseline: Runs,
    augmented: Runs,
    *,
    epochs: int | None = None,
    titles: Sequence[str] = ("Without augmentation", "With augmentation"),
    stacked: bool = False,
) -> go.Figure:
    """Two runs side by side: accuracy on top, loss below, identical axes on both sides.

    Each side is one history (rows or a DataFrame), or a list of histories of the same
    configuration with other seeds: with two or more that have finished an epoch, the side shows their per-epoch mean
    as the line and a lighter band from the lowest to the highest seed; the gap and the best
    epoch are those of the mean. `epochs` fixes the x axis to the planned length so a live
    run fills it in without the axis rescaling every epoch; a longer history still shows in full.
    `stacked` puts the sides one above the other (`stack`), for a phone.
    """
    sides = [_started(baseline), _started(augmented)]
    histories = [_one_or_mean(runs) for runs in sides]
    fig = make_subplots(
        rows=2,
        cols=2,
        shared_xaxes="all",
        shared_yaxes="rows",
        column_titles=list(titles),
        horizontal_spacing=0.05,
        vertical_spacing=0.08,
    )
    legend_shown = False
    for col, (runs, history, side) in enumerate(zip(sides, histories, titles, strict=True), start=1):
        if len(runs) > 1:
            draw_bands(fig, aggregate(runs), col=col, side=side, legend=not legend_shown)
            side = f"{side}, mean of {len(runs)} seeds"
        draw_run(fig, history, col=col, side=side, legend=not legend_shown)
        legend_shown = legend_shown or not history.empty
    # Every seed's own numbers set the ranges, so no band is cut off at the top.
    set_axes(fig, [*sides[0], *sides[1]], epochs=epochs)
    fig = style(fig, height=680)
    return stack(fig) if stacked else fig


def retitle(fig: go.Figure, titles: Sequence[str]) -> go.Figure:
    """A copy of a `compare_figure` whose panels (titles and hover texts) are called `titles`."""
    fig = go.Figure(fig)
    notes = [note for note in fig.layout.annotations if note.name is None]
    for col, (note, title) in enumerate(zip(notes, titles, strict=True), start=1):
        old, note.text = note.text, title
        for trace in fig.select_traces(col=col):
            if trace.hovertemplate and trace.hovertemplate.startswith(old):
                trace.hovertemplate = title + trace.hovertemplate[len(old) :]
    return fig


# Where each panel of the 2 x 2 grid goes when stacked: (row, col) -> (top, bottom) as fractions of the height.
STACKED = {(1, 1): (0.8, 1.0), (2, 1): (0.56, 0.76), (1, 2): (0.24, 0.44), (2, 2): (0.0, 0.2)}


def stack(fig: go.Figure) -> go.Figure:
    """A copy of a `compare_figure` with its sides one above the other, each panel the full width.

    A phone is too narrow for two panels side by side: their titles overlap and each curve gets a
    third of the screen. The axes, ranges and marks stay as they are; only where each panel sits
    moves, with each side's title above its accuracy panel.
    """
    fig = go.Figure(fig)
    titles = [note for note in fig.layout.annotations if note.name is None]
    for (row, col), (bottom, top) in STACKED.items():
        panel = fig.get_subplot(row, col)
        panel.xaxis.domain, panel.yaxis.domain = (0.0, 1.0), (bottom, top)
        panel.xaxis.showticklabels = panel.yaxis.showticklabels = True  # each panel read on its own
        panel.yaxis.title.text = "accuracy" if row == 1 else "loss"
    for note, col in zip(titles, (1, 2), strict=True):
        note.update(x=0.5, y=STACKED[(1, col)][1], yanchor="bottom", yshift=8)
    fig.update_layout(height=1200, legend={"y": -0.11}, margin={"t": 60, "b": 150, "l": 70, "r": 60})
    return fig


def draw_run(fig: go.Figure, history: pd.DataFrame, *, col: int, side: str, legend: bool) -> None:
    """Curves, gap and best epoch of one run into column `col` (or a placeholder)."""
    if history.empty:
        for row in (1, 2):
            fig.add_annotation(
                text=PLACEHOLDER,
                name="placeholder",
                xref="x domain",
                yref="y domain",
                x=0.5,
                y=0.5,
                showarrow=False,
                font={"size": FONT_SIZE + 2, "color": "#888888"},
                row=row,
                col=col,
            )
        return
    for row, metric, label, number in METRICS:
        for kind, colour, dash, prefix in (
            ("training", TRAIN_COLOUR, "solid", ""),
            ("validation", VAL_COLOUR, "dash", "val_"),
        ):
            fig.add_trace(
                curve(history, prefix + metric, kind, colour, dash, f"{side}<br>{kind} {label}", number),
                row=row,
                col=col,
            )
            # Accuracy traces carry the legend entry; the legend group toggles loss too.
            fig.data[-1].showlegend = legend and row == 1
    summary = summarize(history)
    mark_gap(fig, summary, col=col)
    mark_best_epoch(fig, history, summary["best_epoch"], col=col, legend=legend)


def draw_bands(fig: go.Figure, table: pd.DataFrame, *, col: int, side: str, legend: bool) -> None:
    """Shaded areas from the lowest to the highest seed, per epoch, under the mean curves."""
    for row, metric, label, number in METRICS:
        for kind, colour, prefix in (("training", TRAIN_COLOUR, ""), ("validation", VAL_COLOUR, "val_")):
            fig.add_trace(
                band(table, prefix + metric, kind, colour, f"{side}<br>{kind} {label}", number), row=row, col=col
            )
            fig.data[-1].showlegend = legend and row == 1


def band(table: pd.DataFrame, column: str, kind: str, colour: str, hover: str, number: str) -> go.Scatter:
    """One closed outline: along the highest seed, then back along the lowest."""
    epochs = table["epoch"].tolist()
    return go.Scatter(
        x=epochs + epochs[::-1],
        y=table[f"{column}_max"].tolist() + table[f"{column}_min"].tolist()[::-1],
        text=["highest seed"] * len(epochs) + ["lowest seed"] * len(epochs),
        name=f"{kind}: lowest to highest seed",
        legendgroup=kind,  # the band hides and shows with its curve
        mode="lines",
        fill="toself",
        fillcolor=translucent(colour, BAND_OPACITY),
        line={"width": 0, "color": translucent(colour, BAND_OPACITY)},
        hoveron="points",
        hovertemplate=f"{hover}, %{{text}}<br>epoch %{{x}}: %{{y:{number}}}<extra></extra>",
    )


def translucent(colour: str, opacity: float) -> str:
    """`#RRGGBB` as an rgba() colour with `opacity`."""
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{opacity})"


def curve(history: pd.DataFrame, column: str, kind: str, colour: str, dash: str, hover: str, number: str) -> go.Scatter:
    return go.Scatter(
        x=history["epoch"],
        y=history[column],
        name=kind,
        legendgroup=kind,
        mode="lines+markers",
        line={"color": colour, "dash": dash, "width": 3},
        marker={"size": 6},
        hovertemplate=f"{hover}<br>epoch %{{x}}: %{{y:{number}}}<extra></extra>",
    )


def mark_gap(fig: go.Figure, summary: dict, *, col: int) -> None:
    """Vertical segment between the two accuracies at the last finished epoch."""
    last, train, val = summary["epochs"], summary["accuracy"], summary["val_accuracy"]
    fig.add_shape(
        type="line",
        name="gap",
        x0=last,
        x1=last,
        y0=val,
        y1=train,
        line={"color": MARK_COLOUR, "width": 4},
        row=1,
        col=col,
    )
    # Right of the last epoch, where no curve runs: `set_axes` leaves room there.
    fig.add_annotation(
        text=f"gap {summary['gap']:.0%}",
        name="gap",
        x=last,
        y=(train + val) / 2,
        xanchor="left",
        xshift=6,
        showarrow=False,
        bgcolor="rgba(255,255,255,0.85)",
        font={"size": FONT_SIZE, "color": MARK_COLOUR},
        row=1,
        col=col,
    )


def mark_best_epoch(fig: go.Figure, history: pd.DataFrame, best: int, *, col: int, legend: bool) -> None:
    """The best epoch, as the page's table counts it: the highest validation accuracy (`summarize`)."""
    best_accuracy = float(history.loc[history["epoch"] == best, "val_accuracy"].iloc[0])
    for row in (1, 2):
        fig.add_shape(
            type="line",
            name="best epoch",
            x0=best,
            x1=best,
            xref="x",
            y0=0,
            y1=1,
            yref="y domain",
            line={"color": MARK_COLOUR, "width": 2, "dash": "dot"},
            row=row,
            col=col,
        )
    fig.add_trace(
        go.Scatter(
            x=[best],
            y=[best_accuracy],
            name="best validation accuracy",
            legendgroup="best",
            showlegend=legend,
            mode="markers",
            marker={
                "symbol": "star",
                "size": 16,
                "color": VAL_COLOUR,
                "line": {"color": "white", "width": 1},
            },
            cliponaxis=False,
            hovertemplate="best validation accuracy<br>epoch %{x}: %{y:.1%}<extra></extra>",
        ),
        row=1,
        col=col,
    )
    # Late in the run, write the label to the left of the line so the panel's edge does not cut it.
    late = best > history["epoch"].max() / 2
    fig.add_annotation(
        text=f"best epoch {best}",
        name="best epoch",
        x=best,
        y=1,
        yref="y domain",
        xanchor="right" if late else "left",
        yanchor="top",
        xshift=-4 if late else 4,
        showarrow=False,
        bgcolor="rgba(255,255,255,0.85)",
        font={"size": FONT_SIZE - 2, "color": MARK_COLOUR},
        row=2,
        col=col,
    )


def set_axes(fig: go.Figure, histories: list[pd.DataFrame], *, epochs: int | None) -> None:
    """The same ranges on every side, so two panels compare without reading the ticks."""
    last = epoch_span(histories, epochs)
    ticks = list(range(1, last + 1, max(1, round(last / 10))))
    # Room right of the last epoch for the gap's label, so it never sits on a curve.
    fig.update_xaxes(range=[1, last + GAP_ROOM * (last - 1)], tickvals=ticks, showgrid=True)
    fig.update_xaxes(title_text="epoch", row=2)
    fig.update_yaxes(range=[0, 1], tickformat=".0%", row=1)
    fig.update_yaxes(range=[0, loss_ceiling(histories)], row=2)
    fig.update_yaxes(title_text="accuracy", row=1, col=1)
    fig.update_yaxes(title_text="loss", row=2, col=1)


def epoch_span(histories: list[pd.DataFrame], epochs: int | None) -> int:
    """Last epoch on the x axis: the planned length, stretched to any longer history."""
    if epochs is not None and epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    finished = [int(h["epoch"].max()) for h in histories if not h.empty]
    # A range of 1..1 has no width; plotly would pick its own.
    return max([epochs or 0, *finished, 2])


def loss_ceiling(histories: list[pd.DataFrame]) -> float:
    highs = [h[["loss", "val_loss"]].max().max() for h in histories if not h.empty]
    highs = [float(h) for h in highs if pd.notna(h) and h > 0]
    # Headroom keeps the top of the curve and the "best epoch" label apart.
    return max(highs) * 1.15 if highs else 1.0


def style(fig: go.Figure, *, height: int) -> go.Figure:
    """Sizes that stay legible on a projector."""
    fig.update_layout(
        height=height,
        font={"size": FONT_SIZE},
        template="plotly_white",
        hovermode="closest",
        legend={"orientation": "h", "yanchor": "bottom", "y": -0.18, "xanchor": "center", "x": 0.5},
        margin={"t": 80, "b": 110, "l": 80, "r": 30},
    )
    # make_subplots writes panel titles as unnamed annotations with a small font of their own.
    for note in fig.layout.annotations:
        if note.name is None:
            note.font.size = FONT_SIZE + 4
    return fig


def _started(runs: Runs) -> list[pd.DataFrame]:
    """The histories of a side that have at least one finished epoch, as DataFrames."""
    if runs is None:
        return []
    if isinstance(runs, pd.DataFrame) or (len(runs) and isinstance(runs[0], Mapping)):
        runs = [runs]  # one history: a DataFrame, or rows
    frames = [to_frame(history) for history in runs]
    return [frame for frame in frames if not frame.empty]


def _one_or_mean(runs: list[pd.DataFrame]) -> pd.DataFrame:
    """The history a side's lines show: its one run as it is, or the mean of several."""
    if len(runs) > 1:
        return mean_history(aggregate(runs))
    return runs[0] if runs else to_frame([])


# -- labels: what a run's own settings say about it ----------------------------------------------
def knob_text(knob_name: str, value: float | bool) -> str:
    """A knob's value in words: `40°`, `±20%`, `on`; `off` when it changes nothing."""
    knob = next(k for k in KNOBS if k.name == knob_name)
    if not value:
        return "off"
    if knob.is_flip:
        return "on"
    return f"{value:g}°" if knob.unit == "degrees" else f"±{value:.0%}"


def knobs_on(config: RunConfig) -> list[str]:
    """The switched-on augmentations of a run in words: `rotation 40°`, `horizontal flip`."""
    aug = config.augmentation
    words = []
    for knob in KNOBS:
        value = getattr(aug, knob.name)
        if value:
            words.append(knob.label.lower() if knob.is_flip else f"{knob.label.lower()} {knob_text(knob.name, value)}")
    return words


def side_title(config: RunConfig) -> str:
    """What a panel of a run is called, from its own settings: with or without augmentation."""
    return "With augmentation" if config.augmentation.enabled else "Without augmentation"


# Settings compared between two runs: (name, words, how a value reads). Paths are never shown.
SETTINGS = (
    ("dataset", "dataset", str),
    ("data_dir", "folder", lambda v: "another folder" if v else "the default"),
    ("image_size", "image size", lambda v: f"{v} px"),
    ("train_images", "training images", lambda v: f"{v}" if v else "all"),
    ("epochs", "epochs", str),
    ("batch_size", "batch size", str),
    ("learning_rate", "learning rate", lambda v: f"{v:g}"),
    ("dropout", "dropout", lambda v: f"{v:g}"),
    ("seed", "seed", str),
)


def differences(first: RunConfig, second: RunConfig, knobs: bool = True) -> list[tuple[str, str, str]]:
    """Each setting two runs differ in: (what, first's value, second's value), in words; `knobs=False`
    leaves the augmentations out."""
    found = []
    for name, words, text in SETTINGS:
        a, b = getattr(first, name), getattr(second, name)
        if a != b:
            found.append((words, text(a) if name != "data_dir" else "one folder", text(b)))
    for knob in KNOBS if knobs else ():
        a, b = getattr(first.augmentation, knob.name), getattr(second.augmentation, knob.name)
        if a != b:
            found.append((knob.label.lower(), knob_text(knob.name, a), knob_text(knob.name, b)))
    if knobs and first.augmentation.enabled and second.augmentation.enabled:
        if first.augmentation.fill_mode != second.augmentation.fill_mode:
            found.append(("fill mode", first.augmentation.fill_mode, second.augmentation.fill_mode))
    return found


def side_titles(first: RunConfig, second: RunConfig) -> tuple[str, str]:
    """Both panels' titles from each run's own settings; two runs alike in that say what sets them apart."""
    titles = [side_title(first), side_title(second)]
    apart = differences(first, second)[:2]
    if titles[0] == titles[1] and apart:
        for index in (0, 1):
            titles[index] += ": " + ", ".join(f"{what} {values[index]}" for what, *values in apart)
    return titles[0], titles[1]
