"""The training child's side of `lab.runs.trainer`: read jobs, train them, report.

Run as `python -m lab.training.child` by `SubprocessTrainer`. The protocol is JSON lines: the
parent writes `{"train": config, "outcome_dir": folder}` (the folder optional) or `{"stop": true}` to stdin; the child writes
`{"epoch": row}`, then `{"done": true}`, `{"cancelled": true}` or `{"error": text}` to
stdout, each line marked with `PREFIX`.

This module is kept apart from the parent's so that the child imports only what training
needs (see `keep_unused_packages_out`).
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
from typing import Any

PREFIX = "@@lab "  # marks protocol lines, so a stray print in the child cannot confuse the parent


def run_jobs() -> None:
    """Read jobs from stdin and train them one by one, reporting on stdout."""
    # A lower priority, set before TensorFlow starts its thread pools (they inherit it):
    # the page wins the cores when a visitor clicks while a model trains.
    if hasattr(os, "nice"):
        os.nice(10)
    keep_unused_packages_out()
    from lab.config import RunConfig
    from lab.errors import RunCancelled
    from lab.training.train import LastData, train, training_device

    # Protocol lines only on stdout: anything else the child prints goes to stderr.
    out, sys.stdout = sys.stdout, sys.stderr
    # Load TensorFlow now, before any job asks: a child started ahead of the first click
    # (`SubprocessTrainer(start_now=True)`) has it ready by then. `ready` tells the parent.
    import keras  # noqa: F401
    import tensorflow  # noqa: F401

    import lab.training.augment  # noqa: F401
    import lab.training.model  # noqa: F401
    import lab.training.pipeline  # noqa: F401

    stop = threading.Event()
    jobs: queue.Queue = queue.Queue()

    def read_commands() -> None:
        for line in sys.stdin:
            command = json.loads(line)
            if "stop" in command:
                stop.set()
            elif "train" in command:
                stop.clear()  # a new job: forget a stop meant for the previous one
                jobs.put((command["train"], command.get("outcome_dir")))
        jobs.put(None)  # the parent closed our stdin: time to go

    def say(message: dict[str, Any]) -> None:
        out.write(PREFIX + json.dumps(message) + "\n")
        out.flush()

    threading.Thread(target=read_commands, daemon=True).start()
    say({"ready": True, "device": training_device()})
    last_data = LastData()  # a comparison's second job trains on the first's decoded images
    while (job := jobs.get()) is not None:
        settings, outcome_dir = job
        try:
            config = RunConfig.from_dict(settings)
            # No local name for the data: when the next job reads other data, the last
            # reference is LastData's own, and the old images are freed before the new ones load.
            train(
                config,
                lambda row: say({"epoch": row}),
                stop.is_set,
                data=last_data.get(config),
                outcome_dir=outcome_dir,
            )
        except RunCancelled:
            say({"cancelled": True})
        except Exception as exc:  # any failure ends this run only; the child trains the next one
            say({"error": f"{type(exc).__name__}: {exc}"})
        else:
            say({"done": True})


# Packages that TensorFlow and Keras import whenever they are installed, each inside a
# `try: import ... except ImportError`, for features this process never uses: pandas for
# DataFrames given to `fit`, scipy for sparse inputs, h5py for HDF5 model files, IPython for
# notebook display, matplotlib for Keras' image galleries.
UNUSED_PACKAGES = ("pandas", "scipy", "h5py", "IPython", "matplotlib")


def keep_unused_packages_out() -> None:
    """Make `UNUSED_PACKAGES` unimportable in this process, before TensorFlow is imported.

    Why: memory. In the environment `requirements.txt` makes, pandas alone is about 60 MB of
    the child's resident memory (h5py 10 MB more); a data-science laptop with IPython,
    scipy and matplotlib installed pays for them too (docs/performance.md, "Results:
    memory"). The child passes tf.data pipelines and reports plain rows, so it needs none
    of them; anything that does ask for one here fails loudly, which is a bug to fix.
    """
    for name in UNUSED_PACKAGES:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]


def import_tensorflow_lean() -> None:
    """Import TensorFlow and Keras with `UNUSED_PACKAGES` kept out, then let those be imported again.

    For a process that trains and may still want one of them afterwards (the command line reads the
    means of several seeds with pandas). TensorFlow and Keras only bind them to None, as for a
    package that is not installed. Why: about 0.5 s less of the quick lesson's 30 s (issue 15).
    """
    blocked = [name for name in UNUSED_PACKAGES if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


if __name__ == "__main__":
    run_jobs()
