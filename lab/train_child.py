"""The training child's side of `lab.subprocess_trainer`: read jobs, train them, report.

Run as `python -m lab.train_child` by `SubprocessTrainer`. The protocol is JSON lines: the
parent writes `{"train": config}` or `{"stop": true}` to stdin; the child writes
`{"epoch": row}`, then `{"done": true}`, `{"cancelled": true}` or `{"error": text}` to
stdout, each line marked with `PREFIX`.

This module is kept apart from the parent's so that the child imports only what training
needs: no pandas (see `serve`).
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
from typing import Any

PREFIX = "@@lab "  # marks protocol lines, so a stray print in the child cannot confuse the parent


def serve() -> None:
    """Read jobs from stdin and train them one by one, reporting on stdout."""
    # A lower priority, set before TensorFlow starts its thread pools (they inherit it):
    # the page wins the cores when a visitor clicks while a model trains.
    if hasattr(os, "nice"):
        os.nice(10)
    keep_pandas_out()
    from lab.config import RunConfig
    from lab.errors import RunCancelled
    from lab.train import LastData, train_rows

    # Protocol lines only on stdout: anything else the child prints goes to stderr.
    out, sys.stdout = sys.stdout, sys.stderr
    stop = threading.Event()
    jobs: queue.Queue = queue.Queue()

    def read_commands() -> None:
        for line in sys.stdin:
            command = json.loads(line)
            if "stop" in command:
                stop.set()
            elif "train" in command:
                stop.clear()  # a new job: forget a stop meant for the previous one
                jobs.put(command["train"])
        jobs.put(None)  # the parent closed our stdin: time to go

    def say(message: dict[str, Any]) -> None:
        out.write(PREFIX + json.dumps(message) + "\n")
        out.flush()

    threading.Thread(target=read_commands, daemon=True).start()
    last_data = LastData()  # a comparison's second job trains on the first's decoded images
    while (job := jobs.get()) is not None:
        try:
            config = RunConfig.from_dict(job)
            # No local name for the data: when the next job reads other data, the last
            # reference is LastData's own, and the old images are freed before the new ones load.
            train_rows(config, lambda row: say({"epoch": row}), stop.is_set, data=last_data.get(config))
        except RunCancelled:
            say({"cancelled": True})
        except Exception as exc:  # any failure ends this run only; the child serves the next one
            say({"error": f"{type(exc).__name__}: {exc}"})
        else:
            say({"done": True})


def keep_pandas_out() -> None:
    """Make pandas unimportable in this process, before Keras is imported.

    Why: Keras imports pandas whenever it is installed, only so that `fit` accepts
    DataFrames; the child passes tf.data pipelines and reports plain rows, and pandas is
    about 60 MB of its resident memory, a twentieth of a 150 px comparison's peak
    (docs/performance.md, "Results: memory"). Keras' import is optional and falls back
    to none; anything else that asks for pandas here fails loudly (and is a bug).
    """
    if "pandas" not in sys.modules:
        sys.modules["pandas"] = None  # type: ignore[assignment]


if __name__ == "__main__":
    serve()
