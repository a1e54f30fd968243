"""What a command's run folder keeps of each run's outcome, and what `--json` says of it.

Each side trains into its own subfolder of the run folder (`baseline/`, `augmented/`, or `run/`):
its final weights and validation predictions (`lab.training.outcome`). The summary of each run
gains the confusion matrix of its final model and the class names that order it, and the run
folder gains `misclassified.csv`: every validation image that at least one model got wrong. With
several seeds, each seed's runs keep theirs in `seed<N>/<side>/`, and each seed's summary gains its matrix.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from lab.cli.folder import RunFolder
from lab.training.outcome import Predictions, load_predictions

MISCLASSIFIED_FILE = "misclassified.csv"


def outcome_folder(out: RunFolder, side: str) -> Path:
    """Where `side` keeps its outcome; a failed run takes the subfolder back with the rest."""
    return out.adopt(side)


def add_outcomes(out: RunFolder, summaries: dict[str, dict[str, Any]]) -> None:
    """Give each summary its `confusion_matrix` and `classes`, and write `misclassified.csv`."""
    predictions = {side: load_predictions(out.path / side) for side in summaries}
    found = {side: p for side, p in predictions.items() if p is not None}
    for side, p in found.items():
        summaries[side]["confusion_matrix"] = p.confusion_matrix()
        summaries[side]["classes"] = list(p.classes)
    if found:
        out.write(MISCLASSIFIED_FILE, misclassified_csv(found))


def add_seed_outcomes(out: RunFolder, per_seed: dict[str, list[dict[str, Any]]]) -> None:
    """With several seeds: each seed's summary of each side gains its `confusion_matrix` and `classes`
    (its outcome is in `seed<N>/<side>/`)."""
    for side, summaries in per_seed.items():
        for summary in summaries:
            predictions = load_predictions(out.path / f"seed{summary['seed']}" / side)
            if predictions is not None:
                summary["confusion_matrix"] = predictions.confusion_matrix()
                summary["classes"] = list(predictions.classes)


def misclassified_csv(predictions: dict[str, Predictions]) -> str:
    """One row per validation image that at least one side got wrong: the file, its true class, and each
    side's prediction and confidence (the probability it gave its predicted class)."""
    sides = list(predictions)
    first = predictions[sides[0]]
    wrong = ~first.correct
    for p in predictions.values():
        if p.files != first.files:
            raise ValueError("the runs were validated on different images")
        wrong |= ~p.correct
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    header = ["file", "true_class"]
    for side in sides:
        header += [f"{side}_prediction", f"{side}_confidence"]
    writer.writerow(header)
    for index in wrong.nonzero()[0]:
        row = [first.files[index], first.classes[first.labels[index]]]
        for p in predictions.values():
            row += [p.classes[p.predicted[index]], f"{p.confidence[index]:.4f}"]
        writer.writerow(row)
    return text.getvalue()
