"""Exceptions shared by training and the background worker, kept free of TensorFlow.

`lab.training.train` raises `RunCancelled`; `lab.runs.worker` catches it. Defining it here lets the
worker (and its tests) recognise a cancelled run without importing TensorFlow.
"""

from __future__ import annotations

from typing import Any


class RunCancelled(Exception):
    """Training stopped early because `should_stop()` returned True.

    `history` is the partial history DataFrame of the epochs that finished before the
    stop (or None when the trainer has none to give), so a cancelled run still shows
    what it learned so far.
    """

    def __init__(self, history: Any = None) -> None:
        super().__init__("run cancelled")
        self.history = history
