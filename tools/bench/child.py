"""The child process: one variant at one size, trained in this process epoch by epoch as the parent says go.

The child writes protocol lines (`MARK` + JSON) on stdout: {"ready": epoch} before each epoch, and before the
input pipeline is timed alone (-1), then {"result": ...}; it waits for a line on stdin before going on.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
from typing import Any

from tools.bench.pipelines import config_for, course_pipeline, floor_pipeline, lab_pipeline, model_for
from tools.bench.procfs import cpu_seconds, proc_status_mb, rss_mb
from tools.bench.variants import Variant

MARK = "@@bench "


def run_variant(variant: Variant, spec: dict[str, Any], gate=lambda epoch: None) -> dict[str, Any]:
    """Train `variant` for warm-up + measured epochs in this process and say how long each took.

    `gate(epoch)` is called before each epoch starts and before the input pipeline is timed alone
    (`epoch` = -1): the parent uses it to take turns between variants.
    """
    import keras
    import tensorflow as tf

    if variant.inter_op:
        tf.config.threading.set_inter_op_parallelism_threads(variant.inter_op)
    if variant.intra_op:
        tf.config.threading.set_intra_op_parallelism_threads(variant.intra_op)
    from lab.training.train import _make_deterministic

    rss_import = rss_mb()
    config = config_for(spec, variant.augment)
    if variant.deterministic:
        _make_deterministic(config.seed)  # exactly what lab.training.train.train does
    else:
        keras.utils.set_random_seed(config.seed)
    started = time.perf_counter()
    if variant.pipeline == "course":
        dataset, steps, count = course_pipeline(variant, spec)
    elif variant.pipeline == "lab":
        dataset, steps, count = lab_pipeline(variant, config)
    else:
        dataset, steps, count = floor_pipeline(config)
    model = model_for(variant, config)
    setup_seconds = time.perf_counter() - started

    wall: list[float] = []
    cpu: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            gate(epoch)
            self.wall, self.cpu = time.perf_counter(), cpu_seconds()

        def on_epoch_end(self, epoch, logs=None):
            wall.append(time.perf_counter() - self.wall)
            cpu.append(cpu_seconds() - self.cpu)

    epochs = spec["warmup"] + spec["epochs"]
    model.fit(dataset, steps_per_epoch=steps, epochs=epochs, callbacks=[Timer()], verbose=0)
    jit = bool(model.jit_compile)
    gate(-1)
    input_seconds = _time_input(dataset, steps, variant.pipeline)
    measured = wall[spec["warmup"] :] or wall
    measured_cpu = cpu[spec["warmup"] :] or cpu
    return {
        "variant": variant.name,
        "size": spec["size"],
        "images": count,
        "steps": steps,
        "epoch_seconds": statistics.median(measured),
        "epoch_seconds_min": min(measured),
        "cpu_seconds": statistics.median(measured_cpu),
        "images_per_second": count / statistics.median(measured),
        "epoch_seconds_all": wall,
        "cpu_seconds_all": cpu,
        "first_epoch_seconds": wall[0],
        "setup_seconds": setup_seconds,
        "input_seconds": input_seconds,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_after_import_mb": rss_import,
        # At the end: RSS split into anonymous memory (heap, tensors) and file pages (TensorFlow's libraries).
        "rss_anon_mb": proc_status_mb(os.getpid(), "RssAnon"),
        "rss_file_mb": proc_status_mb(os.getpid(), "RssFile"),
        "jit_compile": jit,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def _time_input(dataset, steps: int, pipeline: str) -> float:
    """Seconds for one epoch's batches from the input pipeline alone, no model."""
    started = time.perf_counter()
    if pipeline == "course":
        for index in range(steps):
            dataset[index]
    else:
        iterator = iter(dataset)
        for _ in range(steps):
            next(iterator)
    return time.perf_counter() - started


def child_main(spec_text: str) -> None:
    """A child: report before each epoch and wait for the parent's go; then the result line."""
    spec = json.loads(spec_text)
    variant = Variant(**spec.pop("variant"))
    out = sys.stdout
    sys.stdout = sys.stderr  # protocol lines only on stdout

    def say(message: dict[str, Any]) -> None:
        out.write(MARK + json.dumps(message) + "\n")
        out.flush()

    def gate(epoch: int) -> None:
        say({"ready": epoch})
        if not sys.stdin.readline():
            raise SystemExit(1)  # the parent is gone

    say({"result": run_variant(variant, spec, gate)})
