"""Both sides of a comparison: one after the other, or at once (issue 15), measured in one run.

    python -m tools.bench.together --preset quick --repeats 3
    python -m tools.bench.together --preset quick --epochs 2 --train-images 40 --json   # a smoke test

Four ways to train the baseline and the augmented side of a preset, each a fresh process (or two), each timed
from its start to its end (TensorFlow's import included) and by the training itself (`train_seconds`):

- `apart`: one process, the baseline then the augmented side (`lab.training.train.compare(together=False)`);
- `threads`: one process, both sides at once, a thread each (`compare(together=True)`, what `python -m lab
  compare` does);
- `processes`: two processes at once, one side each, TensorFlow's threads split between them (intra-op and
  inter-op pools of `cores // 2` each): what N training children in the app's worker do;
- `shared`: one process, one Keras model holding both networks, trained on the same batches: each step feeds a
  batch as it is to the baseline network and augmented to the other (one optimizer; RMSprop's update is per
  variable, so each network learns as it would alone).

Rounds rotate the order of the four, so a busy spell on a shared machine falls on all of them alike. Reported:
the median and the minimum of the wall seconds, the median CPU seconds (the children's user + system), and each
mode's ratio to `apart` from the same rounds; the final accuracies of each side, so a faster mode that learned
something else shows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
MODES = ("apart", "threads", "processes", "shared")
PREFIX = "@@together "


# -- the children ---------------------------------------------------------------------------------------
def _config(args: argparse.Namespace):
    from lab.presets import load_preset

    config = load_preset(args.preset).config
    changes = {k: v for k, v in (("epochs", args.epochs), ("train_images", args.train_images)) if v is not None}
    return config.replace(**changes) if changes else config


def _finals(history: list[dict]) -> dict[str, float]:
    return {"accuracy": history[-1]["accuracy"], "val_accuracy": history[-1]["val_accuracy"]}


def child(args: argparse.Namespace) -> dict[str, Any]:
    """Train as `args.child` says, in this process; return what it learned and how long it took."""
    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from lab.training import train

    config = _config(args)
    started = time.perf_counter()
    if args.child in ("apart", "threads"):
        result = train.compare(config, together=args.child == "threads")
        finals = {"baseline": _finals(result.baseline), "augmented": _finals(result.augmented)}
    elif args.child == "shared":
        finals = _train_shared(config)
    else:  # one side: "baseline" or "augmented"
        side_config = config.without_augmentation() if args.child == "baseline" else config
        finals = {args.child: _finals(train.train(side_config))}
    return {"train_seconds": time.perf_counter() - started, "finals": finals}


def _train_shared(config) -> dict[str, dict[str, float]]:
    """Both networks in one model, one step per batch: the batch as it is to one, augmented to the other."""
    import keras
    import tensorflow as tf

    from lab.training import model as model_module
    from lab.training import pipeline
    from lab.training import train as train_module
    from lab.training.augment import StepAugmentation

    data = pipeline.load(config)
    binary = data.num_classes == 2
    networks = {}
    for side, side_config in (("baseline", config.without_augmentation()), ("augmented", config)):
        train_module._make_deterministic(config.seed)  # each network starts as it would alone
        networks[side] = model_module.build_model(side_config, data.num_classes)
        networks[side].name = f"{side}_cnn"  # one model holds both: names must differ
    shape = (config.image_size, config.image_size, 3)
    inputs = {side: keras.Input(shape, name=side) for side in networks}
    both = keras.Model(inputs, {side: networks[side](inputs[side]) for side in networks})
    loss = "binary_crossentropy" if binary else "sparse_categorical_crossentropy"
    both.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=config.learning_rate),
        loss={side: loss for side in networks},
        metrics={side: ["accuracy"] for side in networks},
    )
    augmentation = StepAugmentation(config.augmentation, config.seed)
    rescale = config.augmentation.rescale

    def prepare(step, batch):
        images, labels = batch
        labels = pipeline._shape_labels(labels, binary)
        plain = tf.cast(images, tf.float32) * rescale
        return {"baseline": plain, "augmented": augmentation(images, step)}, {
            "baseline": labels,
            "augmented": labels,
        }

    def prepare_validation(images, labels):
        plain = tf.cast(images, tf.float32) * rescale
        labels = pipeline._shape_labels(labels, binary)
        return {"baseline": plain, "augmented": plain}, {"baseline": labels, "augmented": labels}

    train_ds = data.train.shuffle(data.train_count, seed=config.seed, reshuffle_each_iteration=True)
    train_ds = train_ds.batch(config.batch_size).repeat().enumerate()
    train_ds = train_ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)
    validation = pipeline._with_known_length(data.validation).batch(config.batch_size)
    validation = validation.map(prepare_validation, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    # As the lab's own pipelines: without the autotuner, whose thread `fit`'s end would wait for.
    train_ds, validation = pipeline._without_autotune(train_ds), pipeline._without_autotune(validation)
    steps = -(-data.train_count // config.batch_size)
    history = both.fit(train_ds, steps_per_epoch=steps, epochs=config.epochs, validation_data=validation, verbose=0)
    logs = {name: values[-1] for name, values in history.history.items()}
    # Keras names a dict output's metric after its key: "baseline_accuracy", "val_baseline_accuracy".
    return {
        side: {"accuracy": logs[f"{side}_accuracy"], "val_accuracy": logs[f"val_{side}_accuracy"]} for side in networks
    }


# -- the parent -----------------------------------------------------------------------------------------
def _spawn(args: argparse.Namespace, mode: str, threads: int = 0) -> subprocess.Popen:
    command = [sys.executable, "-m", "tools.bench.together", "--child", mode, "--preset", args.preset]
    for flag, value in (("--epochs", args.epochs), ("--train-images", args.train_images)):
        if value is not None:
            command += [flag, str(value)]
    if threads:
        command += ["--threads", str(threads)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _collect(process: subprocess.Popen) -> dict[str, Any]:
    out, err = process.communicate()
    lines = [line for line in out.splitlines() if line.startswith(PREFIX)]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"a child failed (exit {process.returncode}): {err.strip()[-800:]}")
    return json.loads(lines[-1][len(PREFIX) :])


def measure(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    """One round of `mode`: wall seconds from the start of its process(es) to their end, CPU seconds, finals."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    if mode == "processes":
        split = max(1, (os.cpu_count() or 2) // 2)
        children = [_spawn(args, side, threads=split) for side in ("baseline", "augmented")]
        reports = [_collect(process) for process in children]
        report = {
            "train_seconds": max(r["train_seconds"] for r in reports),
            "finals": {k: v for r in reports for k, v in r["finals"].items()},
        }
    else:
        report = _collect(_spawn(args, mode))
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_seconds": wall, "cpu_seconds": cpu, **report}


def run(args: argparse.Namespace) -> dict[str, Any]:
    modes = [m for m in args.modes.split(",") if m]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise SystemExit(f"together: unknown mode(s) {', '.join(unknown)}; choose from {', '.join(MODES)}")
    rounds: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    for index in range(args.repeats):
        order = modes[index % len(modes) :] + modes[: index % len(modes)]
        for mode in order:
            rounds[mode].append(measure(args, mode))
            print(f"round {index + 1} {mode}: {rounds[mode][-1]['wall_seconds']:.1f} s", file=sys.stderr, flush=True)
    summary: dict[str, Any] = {"preset": args.preset, "repeats": args.repeats, "cores": os.cpu_count(), "modes": {}}
    for mode, results in rounds.items():
        summary["modes"][mode] = {
            "wall_seconds": statistics.median(r["wall_seconds"] for r in results),
            "wall_seconds_min": min(r["wall_seconds"] for r in results),
            "train_seconds": statistics.median(r["train_seconds"] for r in results),
            "cpu_seconds": statistics.median(r["cpu_seconds"] for r in results),
            "finals": results[-1]["finals"],
        }
    if "apart" in rounds:
        base = summary["modes"]["apart"]
        for mode, figures in summary["modes"].items():
            # Per round, then the median: each ratio compares runs of the same round.
            figures["wall_over_apart"] = statistics.median(
                r["wall_seconds"] / a["wall_seconds"] for r, a in zip(rounds[mode], rounds["apart"], strict=True)
            )
            figures["train_over_apart"] = figures["train_seconds"] / base["train_seconds"]
    return summary


def print_table(summary: dict[str, Any]) -> None:
    print(f"{summary['preset']}: {summary['repeats']} rounds, {summary['cores']} cores")
    print(f"{'mode':<10} {'wall s':>8} {'min':>8} {'train s':>8} {'CPU s':>8} {'wall/apart':>10}  finals (acc/val)")
    for mode, f in summary["modes"].items():
        finals = "  ".join(
            f"{side} {v['accuracy']:.2f}/{v['val_accuracy']:.2f}" for side, v in sorted(f["finals"].items())
        )
        ratio = f"{f['wall_over_apart']:.2f}" if "wall_over_apart" in f else "-"
        print(
            f"{mode:<10} {f['wall_seconds']:8.1f} {f['wall_seconds_min']:8.1f} {f['train_seconds']:8.1f} "
            f"{f['cpu_seconds']:8.1f} {ratio:>10}  {finals}"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.together", description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    parser.add_argument("--train-images", type=int, default=None, help="override the preset's training images")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma list of {', '.join(MODES)}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child:
        print(PREFIX + json.dumps(child(args)), flush=True)
        return 0
    summary = run(args)
    print_table(summary)
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
