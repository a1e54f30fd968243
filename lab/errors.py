"""Exceptions shared by training and the background worker, kept free of TensorFlow.

`lab.training.train` and `lab.runs.trainer` raise them; `lab.runs.worker` and the command line
catch them. Defining them here lets the worker (and its tests) recognise them without
importing TensorFlow.
"""

from __future__ import annotations

from typing import Any


class RunCancelled(Exception):
    """Training stopped early because `should_stop()` returned True.

    `history` is the list of epoch rows (`lab.history`) that finished before the stop
    (empty when there are none), so a cancelled run still shows what it learned so far.
    """

    def __init__(self, history: list[dict[str, Any]] | None = None) -> None:
        super().__init__("run cancelled")
        self.history = history if history is not None else []


class TrainingFailed(RuntimeError):
    """A run could not finish: it diverged, its data could not be read, it raised an error in
    the training child, or the child died."""
