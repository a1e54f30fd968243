"""The data-size curve: validation accuracy against the number of training images, without and with
augmentation, on one chart. Augmentation acts like more data: the curve with it sits where the curve
without it would be with more images.

A sweep is plain runs, one comparison per size (`sweep_configs`): the page hands them to the worker,
which caches each like any run, and the command line trains them one size after another
(`run_sweep`, each size's images decoded once for both sides).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lab import history as hist
from lab.config import ConfigError, RunConfig

SIDES = ("baseline", "augmented")
MAX_SIZES = 8
# The page's sweep: this many sizes, evenly spread up to the whole training split.
DEFAULT_SIZE_COUNT = 5


def parse_sizes(text: str, available: int | None = None, minimum: int = 1) -> list[int]:
    """`"50,100,200,300"` as sorted, distinct sizes; ConfigError (one line) for anything else.

    `available` is the training split's size (a larger size would silently train on all of
    it); `minimum` the number of classes (the subset keeps at least one image of each).
    """
    sizes = []
    for part in (p.strip() for p in text.split(",")):
        if not part.isdigit() or int(part) < 1:
            raise ConfigError(f"--train-images {text}: give whole numbers of images, comma-separated, e.g. 50,100,200")
        sizes.append(int(part))
    sizes = sorted(set(sizes))
    if not 2 <= len(sizes) <= MAX_SIZES:
        raise ConfigError(f"--train-images {text}: give 2 to {MAX_SIZES} different sizes")
    if sizes[0] < minimum:
        raise ConfigError(f"--train-images {text}: use at least {minimum} images (one per class)")
    if available is not None and sizes[-1] > available:
        raise ConfigError(f"--train-images {text}: the training split has only {available} images")
    return sizes


def default_sizes(
    available: int, minimum: int = 1, cap: int | None = None, count: int = DEFAULT_SIZE_COUNT
) -> list[int]:
    """About `count` sizes evenly spread up to the training split (or `cap`, hosted mode's), at least `minimum`."""
    top = min(available, cap) if cap else available
    floor = max(minimum, 2 * minimum)  # two images per class at the smallest size
    if top <= floor:
        return [top]
    return sorted({max(floor, round(top * k / count)) for k in range(1, count + 1)})


def sweep_configs(config: RunConfig, sizes: Sequence[int]) -> list[RunConfig]:
    """Without then with augmentation at each size, smallest first: [without 50, with 50, without 100, ...]."""
    if not config.augmentation.enabled:
        raise ConfigError("no augmentation is switched on: a sweep compares without and with it")
    configs = []
    for size in sizes:
        sized = config.replace(train_images=int(size))
        configs += [sized.without_augmentation(), sized]
    return configs


@dataclass(frozen=True)
class Point:
    """One run of a sweep at its last finished epoch."""

    train_images: int
    side: str  # "baseline" or "augmented"
    val_accuracy: float
    best_val_accuracy: float
    accuracy: float
    epochs: int


def points(configs: Sequence[RunConfig], histories: Sequence[Any]) -> list[Point]:
    """The sweep's points from its runs' histories (epoch rows); a run with no finished epoch has none."""
    found = []
    for config, rows in zip(configs, histories, strict=True):
        summary = hist.summarize(rows or [])
        if not summary.get("epochs"):
            continue
        side = "augmented" if config.augmentation.enabled else "baseline"
        found.append(
            Point(
                train_images=config.train_images,
                side=side,
                val_accuracy=float(summary["val_accuracy"]),
                best_val_accuracy=float(summary["best_val_accuracy"]),
                accuracy=float(summary["accuracy"]),
                epochs=int(summary["epochs"]),
            )
        )
    return found


def table(found: Sequence[Point]) -> list[dict[str, Any]]:
    """One row per size: the last epoch's validation accuracy of each side (None where not trained yet)."""
    rows: dict[int, dict[str, Any]] = {}
    for point in found:
        row = rows.setdefault(point.train_images, {"train_images": point.train_images, **dict.fromkeys(SIDES)})
        row[point.side] = point.val_accuracy
    return [rows[size] for size in sorted(rows)]


def sweep_figure(found: Sequence[Point], sizes: Sequence[int] | None = None):
    """Validation accuracy (last epoch) against training images, one line per side, best epoch dotted."""
    import plotly.graph_objects as go

    figure = go.Figure()
    styles = {"baseline": ("Without augmentation", "#d62728"), "augmented": ("With augmentation", "#1f77b4")}
    for side, (name, colour) in styles.items():
        mine = sorted((p for p in found if p.side == side), key=lambda p: p.train_images)
        x = [p.train_images for p in mine]
        figure.add_trace(
            go.Scatter(
                x=x,
                y=[p.val_accuracy for p in mine],
                name=name,
                mode="lines+markers",
                line={"color": colour},
                hovertemplate="%{x} training images: validation %{y:.1%}<extra>" + name + "</extra>",
            )
        )
        figure.add_trace(
            go.Scatter(
                x=x,
                y=[p.best_val_accuracy for p in mine],
                name=f"{name}, best epoch",
                mode="lines",
                line={"color": colour, "dash": "dot", "width": 1},
                hovertemplate="%{x} training images: best validation %{y:.1%}<extra>" + name + "</extra>",
            )
        )
    figure.update_layout(
        xaxis_title="training images",
        yaxis_title="validation accuracy (last epoch)",
        yaxis={"tickformat": ".0%", "range": [0, 1.02]},
        legend={"orientation": "h", "y": -0.25},
        margin={"t": 30},
        height=380,
    )
    if sizes:
        figure.update_xaxes(tickvals=list(sizes))
    return figure


def run_sweep(
    config: RunConfig,
    sizes: Sequence[int],
    on_epoch: Callable[[int, str, dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[Point]:
    """Train each size without then with augmentation (same data, model and seed); the points, smallest first."""
    from lab.training.train import compare

    configs = sweep_configs(config, sizes)
    histories: list[Any] = []
    for size in sizes:
        report = (lambda side, row, size=size: on_epoch(size, side, row)) if on_epoch else None
        result = compare(config.replace(train_images=int(size)), on_epoch=report, should_stop=should_stop)
        histories += [result.baseline, result.augmented]
    return points(configs, histories)
