"""Benchmark: the lab's input pipeline against the course's and the compute floor, the page, and memory.

    python -m tools.bench                                  # 150 and 64 px on cats_and_dogs_filtered (or builtin)
    python -m tools.bench --size 64 --epochs 3 --extras all --json
    python -m tools.bench --size 150,64 --page --memory --extras all --json   # what docs/performance.md reports

What it measures, in one run, on the same data, model (`lab.training.model.build_model`) and machine:

- `course_plain`, `course_aug`: the course's pipeline, `ImageDataGenerator(rescale=1/255).flow_from_directory(...)`
  (class_mode="binary", batch 20), without and with the seed's augmentation (rotation 40, shifts 0.2, shear 0.2,
  zoom 0.2, horizontal flip, nearest), fed to `model.fit` as the course does.
- `lab_plain`, `lab_aug`: the lab's own pipeline, `lab.datasets.load` + `training_pipeline`, without and with the
  same augmentation (the lab's `Augment` layer), with the lab's training settings (`lab.training.train._make_deterministic`).
- `floor`: the compute floor: the same model on decoded float32 tensors already in memory
  (`Dataset.from_tensor_slices(...).batch().cache()`), no augmentation, no decoding.
- extras (`--extras`): one knob changed from a core variant, to measure a proposed optimisation (XLA, thread
  settings, parallel calls, oneDNN, uint8 to the model, ...); each is reported with its ratio to its base.

Every variant runs in its own child process (`python -m tools.bench --child SPEC`), so that its peak memory is its
own: the child reports `getrusage(RUSAGE_SELF).ru_maxrss`, the peak resident set size of the whole process
(TensorFlow's runtime included). Each child trains `--warmup` epochs (tracing, decoding into the cache) and then
`--epochs` measured epochs, without validation, timing each epoch with a Keras callback: wall seconds, and the
process's CPU seconds (user + system, all threads), which a busy shared machine disturbs much less than wall time.
Medians are reported. After training, one pass over the input pipeline alone (`input_seconds`) shows what the
pipeline costs without the model.

`--page` measures the page in headless Chromium (Playwright): first paint, whether TensorFlow is loaded in the
page's process, a cached comparison shown from the run store, and interactions (switching an augmentation until
the preview changes) while a training runs. `--memory` measures a whole comparison at `--memory-size` in the app's
training child (`lab.runs.trainer`) and the child's memory over `--growth-runs` consecutive runs.

`--json` prints one JSON object on the last line. Its top level always carries the first size's figures:
`size`, `epoch_seconds` (median), `epoch_seconds_min`, `cpu_seconds`, `images_per_second`, `peak_mb` (each keyed
`course_plain`, `course_aug`, `lab_plain`, `lab_aug`, `floor`; null for a variant not run), `ratios` (of the
medians), `min_ratios` and `cpu_ratios` (`lab_aug_over_lab_plain`, `lab_aug_over_floor`, `lab_aug_over_course_aug`,
`lab_plain_over_course_plain`, ...), `extras` (each with `over_base`, against its base measured beside it) and
`runs` (every child's own report); `results` lists the same object for every size, in the order given (one entry
for one size); `machine` describes the machine; `page` and `memory` appear when measured.

Variants of one size run side by side, one epoch each in turn (`run_group`), so that a busy spell on a shared
machine falls on all of them alike.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CORE = ("course_plain", "course_aug", "lab_plain", "lab_aug", "floor")
# The seed's (the course's) augmentation, as ImageDataGenerator keywords.
SEED_AUGMENTATION = {
    "rotation_range": 40,
    "width_shift_range": 0.2,
    "height_shift_range": 0.2,
    "shear_range": 0.2,
    "zoom_range": 0.2,
    "horizontal_flip": True,
    "fill_mode": "nearest",
}
RESCALE = 1 / 255
DEFAULT_SIZES = (150, 64)
_MARK = "@@bench "


# -- variants ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    name: str
    pipeline: str  # "course", "lab" or "floor"
    augment: bool
    what: str
    base: str = ""  # the core variant an extra changes one thing of
    deterministic: bool = True  # lab.training.train's enable_op_determinism (which also turns Keras' auto-XLA off)
    jit_compile: bool | None = None  # None: as lab.training.model.build_model compiles it
    inter_op: int = 0  # tf.config.threading; 0: TensorFlow's default (the number of cores)
    intra_op: int = 0
    parallel_calls: int = 0  # the augmentation map's num_parallel_calls; 0: AUTOTUNE, as lab.datasets does
    tfdata_threads: int = 0  # tf.data private thread pool size; 0: the shared default
    uint8_to_model: bool = False  # hand uint8 batches to the model, which rescales in its first layer
    onednn: bool = True  # TF_ENABLE_ONEDNN_OPTS
    course_workers: int = 0  # PyDataset workers for the course's iterator; 0: Keras' default (1: in-line)
    index_shuffle: bool = False  # decoded images in one uint8 array; shuffle indices, gather batches


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("course_plain", "course", False, "ImageDataGenerator(rescale=1/255).flow_from_directory"),
        Variant("course_aug", "course", True, "ImageDataGenerator with the seed's augmentation"),
        Variant("lab_plain", "lab", False, "lab.datasets.training_pipeline, no augmentation"),
        Variant("lab_aug", "lab", True, "lab.datasets.training_pipeline with the Augment layer"),
        Variant("floor", "floor", False, "decoded float32 tensors in memory, batched and cached"),
    )
}
EXTRAS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("floor_xla", "floor", False, "XLA (jit_compile=True, op determinism off)", "floor", False, True),
        Variant("lab_plain_xla", "lab", False, "XLA (jit_compile=True, op determinism off)", "lab_plain", False, True),
        Variant("lab_aug_xla", "lab", True, "XLA (jit_compile=True, op determinism off)", "lab_aug", False, True),
        Variant("lab_aug_nodet", "lab", True, "op determinism off, XLA off", "lab_aug", False, False),
        Variant("lab_aug_inter1", "lab", True, "inter-op threads 1", "lab_aug", inter_op=1),
        Variant("lab_aug_intra1", "lab", True, "intra-op threads 1", "lab_aug", intra_op=1),
        Variant("lab_aug_par1", "lab", True, "augmentation map num_parallel_calls=1", "lab_aug", parallel_calls=1),
        Variant("lab_aug_tfdata1", "lab", True, "tf.data private thread pool of 1", "lab_aug", tfdata_threads=1),
        Variant("lab_plain_u8", "lab", False, "uint8 batches, rescaled in the model", "lab_plain", uint8_to_model=True),
        Variant("floor_noonednn", "floor", False, "TF_ENABLE_ONEDNN_OPTS=0", "floor", onednn=False),
        Variant("lab_aug_noonednn", "lab", True, "TF_ENABLE_ONEDNN_OPTS=0", "lab_aug", onednn=False),
        Variant("course_aug_w2", "course", True, "PyDataset workers=2 (threads)", "course_aug", course_workers=2),
        Variant("lab_aug_index", "lab", True, "one uint8 array, shuffled indices", "lab_aug", index_shuffle=True),
    )
}


# -- data ------------------------------------------------------------------------------------------
def shared_datasets_dir() -> Path:
    """../shared/datasets beside the repository; LAB_SHARED_DATASETS when that is absent."""
    beside = REPO.parent / "shared" / "datasets"
    env = os.environ.get("LAB_SHARED_DATASETS")
    return Path(env) if env and not beside.is_dir() else beside


def default_data() -> str:
    real = shared_datasets_dir() / "cats_and_dogs_filtered"
    return str(real) if (real / "train").is_dir() else "builtin"


def write_builtin_folder(root: Path, size: int) -> Path:
    """The builtin cartoons as PNG files in train/<class>/ and validation/<class>/, for the course's reader."""
    from PIL import Image

    from lab.data import builtin

    for split, (images, labels) in builtin.generate(size).items():
        for index, (image, label) in enumerate(zip(images, labels, strict=True)):
            folder = root / split / builtin.CLASS_NAMES[int(label)]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{index:04d}.png")
    return root


def subset_folder(source: Path, root: Path, train_images: int, seed: int) -> Path:
    """A folder of links to the lab's own class-balanced subset of `train_images` training images.

    Both pipelines then read exactly the same files: the course's `flow_from_directory` reads the folder,
    the lab reads it with `train_images=0`.
    """
    from lab import datasets

    listing = datasets.list_folder(source, datasets.get_info("folder"), 0.2, seed)
    chosen = {"train": datasets._subset_files(listing.files["train"], train_images, seed)}
    chosen["validation"] = listing.files["validation"]
    for split, items in chosen.items():
        for path, label in items:
            link = root / split / listing.class_names[label] / Path(path).name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(Path(path).resolve())
    return root


def prepare_data(data: str, train_images: int, seed: int, sizes: list[int], work: Path) -> tuple[Path, Path, str]:
    """The folder the variants read, the whole dataset's folder, and a description."""
    if data == "builtin":
        source = write_builtin_folder(work / "builtin", max(sizes))
        what = f"builtin cartoons written as {max(sizes)} px PNGs"
    else:
        source = Path(data).expanduser()
        if not (source / "train").is_dir():
            raise SystemExit(f"--data {data}: expected train/<class>/ and validation/<class>/ folders")
        what = str(source)
    if train_images:
        subset = subset_folder(source, work / f"subset-{train_images}", train_images, seed)
        return subset, source, f"{what}, a class-balanced subset of {train_images} training images"
    return source, source, what


# -- the child: one variant at one size ---------------------------------------------------------
def _rss_mb() -> float:
    return _proc_status_mb(os.getpid(), "VmRSS")


def _proc_status_mb(pid: int, field: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _cpu_seconds() -> float:
    return time.process_time()  # user + system, every thread of this process


def _config(spec: dict[str, Any], augment: bool):
    from lab.config import Augmentation, RunConfig

    aug = Augmentation(rescale=RESCALE, **SEED_AUGMENTATION) if augment else Augmentation(rescale=RESCALE)
    return RunConfig(
        dataset="folder",
        data_dir=spec["data"],
        image_size=spec["size"],
        batch_size=spec["batch_size"],
        seed=spec["seed"],
        augmentation=aug,
    )


def _course_pipeline(variant: Variant, spec: dict[str, Any]):
    import tensorflow as tf

    kwargs = SEED_AUGMENTATION if variant.augment else {}
    generator = tf.keras.preprocessing.image.ImageDataGenerator(rescale=RESCALE, **kwargs)
    iterator = generator.flow_from_directory(
        str(Path(spec["data"]) / "train"),
        target_size=(spec["size"], spec["size"]),
        batch_size=spec["batch_size"],
        class_mode="binary",
        seed=spec["seed"],
    )
    if variant.course_workers:
        iterator.workers = variant.course_workers
    return iterator, len(iterator), iterator.samples


def _lab_pipeline(variant: Variant, config):
    """lab.datasets.training_pipeline itself, or a copy of it with one knob changed (extras only)."""
    import tensorflow as tf

    from lab import datasets
    from lab.training.augment import make_layer

    if variant.index_shuffle:
        return _index_pipeline(variant, config)
    data = datasets.load(config)
    steps = math.ceil(data.train_count / config.batch_size)
    if not (variant.parallel_calls or variant.tfdata_threads or variant.uint8_to_model):
        dataset, steps = datasets.training_pipeline(data, config)
        return dataset, steps, data.train_count
    aug = config.augmentation
    layer = make_layer(aug) if aug.enabled else None

    def prepare(step, batch):
        images, labels = batch
        if layer is not None:
            images = layer(images, seed=tf.stack([tf.constant(config.seed, tf.int64), step]))
        if not variant.uint8_to_model:
            images = tf.cast(images, tf.float32) * aug.rescale
        return images, tf.cast(labels, tf.float32)[:, None]

    dataset = data.train.shuffle(data.train_count, seed=config.seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(config.batch_size).repeat().enumerate()
    calls = variant.parallel_calls or tf.data.AUTOTUNE
    dataset = dataset.map(prepare, num_parallel_calls=calls, deterministic=True).prefetch(tf.data.AUTOTUNE)
    if variant.tfdata_threads:
        options = tf.data.Options()
        options.threading.private_threadpool_size = variant.tfdata_threads
        dataset = dataset.with_options(options)
    return dataset, steps, data.train_count


def _index_pipeline(variant: Variant, config):
    """The lab's pipeline with its images decoded once into one uint8 array instead of a tf.data cache.

    `shuffle(train_count)` over cached images keeps a second full copy of the training images in its buffer;
    shuffling indices and gathering each batch from the array keeps one copy (and the same augmentation).
    """
    import numpy as np
    import tensorflow as tf

    from lab import datasets
    from lab.training.augment import make_layer

    info = datasets.get_info(config.dataset)
    listing = datasets.list_folder(datasets.resolve_folder(config), info, config.validation_split, config.seed)
    files = datasets._subset_files(listing.files["train"], config.train_images, config.seed)
    images = np.empty((len(files), config.image_size, config.image_size, 3), np.uint8)
    labels = np.empty(len(files), np.float32)
    offset = 0
    for x, y in datasets._decode_files(files, config.image_size, cache=False).batch(64):
        images[offset : offset + len(y)] = x.numpy()
        labels[offset : offset + len(y)] = y.numpy()
        offset += len(y)
    table, targets = tf.constant(images), tf.constant(labels)
    del images
    aug = config.augmentation
    layer = make_layer(aug) if aug.enabled else None

    def prepare(step, index):
        batch = tf.gather(table, index)
        if layer is not None:
            batch = layer(batch, seed=tf.stack([tf.constant(config.seed, tf.int64), step]))
        return tf.cast(batch, tf.float32) * aug.rescale, tf.gather(targets, index)[:, None]

    count = len(files)
    dataset = tf.data.Dataset.range(count).shuffle(count, seed=config.seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(config.batch_size).repeat().enumerate()
    dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE), math.ceil(count / config.batch_size), count


def _floor_pipeline(config):
    import numpy as np
    import tensorflow as tf

    from lab import datasets

    data = datasets.load(config)
    images, labels = [], []
    for x, y in data.train.batch(256):
        images.append(x.numpy())
        labels.append(y.numpy())
    x = np.concatenate(images).astype(np.float32) * np.float32(config.augmentation.rescale)
    y = np.concatenate(labels).astype(np.float32)[:, None]
    count = len(y)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(config.batch_size).cache().repeat()
    del x, images
    return dataset.prefetch(tf.data.AUTOTUNE), math.ceil(count / config.batch_size), count


def _model(variant: Variant, config):
    import keras

    from lab.training.model import build_model

    model = build_model(config, 2)
    if variant.uint8_to_model:
        inputs = keras.Input((config.image_size, config.image_size, 3), dtype="uint8")
        outputs = model(keras.layers.Rescaling(config.augmentation.rescale)(inputs))
        model = keras.Model(inputs, outputs)
    if variant.uint8_to_model or variant.jit_compile is not None:
        jit = "auto" if variant.jit_compile is None else variant.jit_compile
        model.compile(
            optimizer=keras.optimizers.RMSprop(learning_rate=config.learning_rate),
            loss="binary_crossentropy",
            metrics=["accuracy"],
            jit_compile=jit,
        )
    return model


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

    rss_import = _rss_mb()
    config = _config(spec, variant.augment)
    if variant.deterministic:
        _make_deterministic(config.seed)  # exactly what lab.training.train.train does
    else:
        keras.utils.set_random_seed(config.seed)
    started = time.perf_counter()
    if variant.pipeline == "course":
        dataset, steps, count = _course_pipeline(variant, spec)
    elif variant.pipeline == "lab":
        dataset, steps, count = _lab_pipeline(variant, config)
    else:
        dataset, steps, count = _floor_pipeline(config)
    model = _model(variant, config)
    setup_seconds = time.perf_counter() - started

    wall: list[float] = []
    cpu: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            gate(epoch)
            self.wall, self.cpu = time.perf_counter(), _cpu_seconds()

        def on_epoch_end(self, epoch, logs=None):
            wall.append(time.perf_counter() - self.wall)
            cpu.append(_cpu_seconds() - self.cpu)

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
        "rss_anon_mb": _proc_status_mb(os.getpid(), "RssAnon"),
        "rss_file_mb": _proc_status_mb(os.getpid(), "RssFile"),
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


def _child_main(spec_text: str) -> None:
    """A child: report before each epoch and wait for the parent's go; then the result line."""
    spec = json.loads(spec_text)
    variant = Variant(**spec.pop("variant"))
    out = sys.stdout
    sys.stdout = sys.stderr  # protocol lines only on stdout

    def say(message: dict[str, Any]) -> None:
        out.write(_MARK + json.dumps(message) + "\n")
        out.flush()

    def gate(epoch: int) -> None:
        say({"ready": epoch})
        if not sys.stdin.readline():
            raise SystemExit(1)  # the parent is gone

    say({"result": run_variant(variant, spec, gate)})


class _Child:
    """One variant's child process, driven one epoch at a time."""

    def __init__(self, variant: Variant, spec: dict[str, Any], log_dir: Path) -> None:
        import queue

        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env["TF_ENABLE_ONEDNN_OPTS"] = "1" if variant.onednn else "0"
        self.variant = variant
        self.log_path = log_dir / f"{variant.name}-{spec['size']}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in close()
        payload = json.dumps({**spec, "variant": asdict(variant)})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tools.bench", "--child", payload],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self.messages: queue.Queue = queue.Queue()
        self.result: dict[str, Any] | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            if line.startswith(_MARK):
                self.messages.put(json.loads(line[len(_MARK) :]))
        self.messages.put({"exit": self.process.wait()})

    def wait(self, timeout: float) -> dict[str, Any]:
        """The child's next message: {"ready": epoch}, {"result": ...}; an error as {"error": ...}."""
        import queue

        try:
            message = self.messages.get(timeout=timeout)
        except queue.Empty:
            self.close()
            message = {"error": f"no answer within {timeout:.0f} s"}
        if "exit" in message:
            self._log.flush()
            tail = " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-3:])
            message = {"error": f"exit code {message['exit']}: {tail}"}
        if "error" in message:
            self.result = {"variant": self.variant.name, "error": message["error"]}
        elif "result" in message:
            self.result = message["result"]
        return message

    def go(self) -> None:
        try:
            self.process.stdin.write("go\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._log.close()


def run_group(variants: list[Variant], spec: dict[str, Any], timeout: float, log, log_dir: Path) -> dict:
    """Run `variants` side by side, one epoch at a time in turn, so that a busy spell on a shared machine
    falls on every variant alike; each child reports its own time and peak memory."""
    children: dict[str, _Child] = {}
    try:
        for variant in variants:  # started one after the other: TensorFlow's import is heavy
            child = children[variant.name] = _Child(variant, spec, log_dir)
            child.wait(timeout)
        rounds = spec["warmup"] + spec["epochs"]
        names = list(children)
        for round_index in range(rounds + 1):  # the last turn times the input pipeline alone
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                child = children[name]
                if child.result is not None:
                    continue
                started = time.perf_counter()
                child.go()
                child.wait(timeout)
                if round_index < rounds:
                    what = "warm-up" if round_index < spec["warmup"] else "epoch"
                    log(
                        f"    {spec['size']} px {name:<18} {what} {round_index + 1}: {time.perf_counter() - started:.2f} s"
                    )
        return {name: child.result or {"variant": name, "error": "no result"} for name, child in children.items()}
    finally:
        for child in children.values():
            child.close()


# -- one size -------------------------------------------------------------------------------------
def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


RATIOS = {
    "lab_aug_over_lab_plain": ("lab_aug", "lab_plain"),
    "lab_aug_over_floor": ("lab_aug", "floor"),
    "lab_aug_over_course_aug": ("lab_aug", "course_aug"),
    "lab_plain_over_course_plain": ("lab_plain", "course_plain"),
    "lab_plain_over_floor": ("lab_plain", "floor"),
    "course_aug_over_course_plain": ("course_aug", "course_plain"),
}


def plan_groups(variants: list[str], extras: list[str], most: int = 6) -> list[list[str]]:
    """The core variants side by side; then each extra beside its base (measured again), at most `most`."""
    groups = [list(variants)] if variants else []
    current: list[str] = []
    for base in CORE:
        mine = [e for e in extras if EXTRAS[e].base == base]
        while mine:
            room = most - len(current) - (base not in current)
            if room < 1:
                groups.append(current)
                current = []
                continue
            if base not in current:
                current.append(base)
            current += mine[:room]
            mine = mine[room:]
    if current:
        groups.append(current)
    return groups


def bench_size(
    size: int, variants: list[str], extras: list[str], spec: dict[str, Any], timeout: float, log, log_dir: Path
) -> dict[str, Any]:
    """Every variant at one size, each in its own child; figures keyed by variant, and the ratios."""
    spec = {**spec, "size": size}
    runs: dict[str, dict[str, Any]] = {}
    extra_bases: dict[str, dict[str, Any]] = {}
    for group in plan_groups(variants, extras):
        log(f"  {size} px: {', '.join(group)} side by side, one epoch each in turn")
        group_runs = run_group([VARIANTS.get(n) or EXTRAS[n] for n in group], spec, timeout, log, log_dir)
        for name, run in group_runs.items():
            log(f"  {name}: {_describe_run(run)}")
            if name in runs and name in CORE:
                run = {**run, "group": "extras"}
                extra_bases[name] = run  # a base measured again beside its extras
            else:
                runs[name] = run

    def pick(key: str, names) -> dict[str, float | None]:
        return {name: runs.get(name, {}).get(key) for name in names}

    result: dict[str, Any] = {"size": size}
    for key in ("epoch_seconds", "epoch_seconds_min", "cpu_seconds", "images_per_second", "peak_mb"):
        result[key] = pick(key, CORE)
    result["first_epoch_seconds"] = pick("first_epoch_seconds", CORE)
    result["input_seconds"] = pick("input_seconds", CORE)
    result["images"] = next((r["images"] for r in runs.values() if "images" in r), None)
    result["ratios"] = {
        k: _ratio(result["epoch_seconds"][a], result["epoch_seconds"][b]) for k, (a, b) in RATIOS.items()
    }
    result["cpu_ratios"] = {
        k: _ratio(result["cpu_seconds"][a], result["cpu_seconds"][b]) for k, (a, b) in RATIOS.items()
    }
    minima = result["epoch_seconds_min"]
    result["min_ratios"] = {k: _ratio(minima[a], minima[b]) for k, (a, b) in RATIOS.items()}
    result["extras"] = {}
    for name in extras:
        # Against the base measured beside it (same spell of machine load), else the core one.
        run = runs[name]
        base = extra_bases.get(EXTRAS[name].base) or runs.get(EXTRAS[name].base, {})
        result["extras"][name] = {
            "what": EXTRAS[name].what,
            "base": EXTRAS[name].base,
            "epoch_seconds": run.get("epoch_seconds"),
            "cpu_seconds": run.get("cpu_seconds"),
            "peak_mb": run.get("peak_mb"),
            "input_seconds": run.get("input_seconds"),
            "jit_compile": run.get("jit_compile"),
            "base_epoch_seconds": base.get("epoch_seconds"),
            "base_cpu_seconds": base.get("cpu_seconds"),
            "over_base": _ratio(run.get("epoch_seconds"), base.get("epoch_seconds")),
            "min_over_base": _ratio(run.get("epoch_seconds_min"), base.get("epoch_seconds_min")),
            "cpu_over_base": _ratio(run.get("cpu_seconds"), base.get("cpu_seconds")),
            "error": run.get("error"),
        }
    result["runs"] = runs
    result["extra_bases"] = extra_bases
    return result


def _describe_run(run: dict[str, Any]) -> str:
    if "error" in run:
        return f"failed: {run['error']}"
    epochs = ", ".join(f"{s:.2f}" for s in run["epoch_seconds_all"])
    return (
        f"epochs {epochs} s (warm-up first); CPU {run['cpu_seconds']:.2f} s/epoch; "
        f"input alone {run['input_seconds']:.2f} s; peak {run['peak_mb']:.0f} MB"
    )


def _fmt(value: float | None, pattern: str) -> str:
    return format("—", ">" + pattern.split(".")[0]) if value is None else format(value, pattern)


def print_size_table(result: dict[str, Any], out) -> None:
    size = result["size"]
    print(f"\n{size} px, {result['images']} training images, batch {result.get('batch_size', 20)}", file=out)
    header = f"{'variant':<18} {'s/epoch':>8} {'CPU s':>7} {'img/s':>7} {'1st ep':>7} {'input s':>8} {'peak MB':>8}"
    print(header, file=out)
    print("-" * len(header), file=out)
    runs = result["runs"]
    for name in runs:
        run = runs[name]
        if "error" in run:
            print(f"{name:<18} failed: {run['error']}", file=out)
            continue
        print(
            f"{name:<18} {run['epoch_seconds']:>8.2f} {run['cpu_seconds']:>7.2f} {run['images_per_second']:>7.0f} "
            f"{run['first_epoch_seconds']:>7.2f} {run['input_seconds']:>8.2f} {run['peak_mb']:>8.0f}",
            file=out,
        )
    print(f"{'ratio':<30} {'median':>7} {'min':>7} {'CPU':>7}", file=out)
    for key, value in result["ratios"].items():
        print(
            f"{key:<30} {_fmt(value, '7.2f')} {_fmt(result['min_ratios'][key], '7.2f')} "
            f"{_fmt(result['cpu_ratios'][key], '7.2f')}",
            file=out,
        )
    for name, extra in result["extras"].items():
        print(
            f"{name + '_over_' + extra['base']:<30} {_fmt(extra['over_base'], '7.2f')} "
            f"{_fmt(extra['min_over_base'], '7.2f')} {_fmt(extra['cpu_over_base'], '7.2f')}  {extra['what']}",
            file=out,
        )


# -- the machine ------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = _proc_meminfo_mb("MemTotal")
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "memory_mb": memory,
        "python": platform.python_version(),
        "loadavg_start": os.getloadavg(),
    }


def _proc_meminfo_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# -- memory: a whole comparison, and growth over runs ----------------------------------------------
def _sampler(pid_of, peak: dict[str, float], stop: threading.Event) -> None:
    while not stop.is_set():
        pid = pid_of()
        if pid:
            peak["rss"] = max(peak.get("rss", 0.0), _proc_status_mb(pid, "VmRSS") or 0.0)
        stop.wait(0.25)


def measure_memory(data: Path, args, log) -> dict[str, Any]:
    """Peak memory of a whole comparison in the app's training child, and RSS after each of N runs."""
    from lab.config import RunConfig
    from lab.presets import load_preset
    from lab.runs.trainer import SubprocessTrainer

    real = data.resolve().name == "cats_and_dogs_filtered"
    base = load_preset("cats_vs_dogs_course").config
    dataset = "cats_vs_dogs" if real else "folder"
    comparison = base.replace(
        dataset=dataset,
        data_dir=str(data),
        image_size=args.memory_size,
        epochs=args.memory_epochs,
        train_images=args.memory_train_images,
    )
    result: dict[str, Any] = {"comparison_config": comparison.to_dict()}
    trainer = SubprocessTrainer(jobs_per_process=1000, recycle_growth_mb=None)  # measure growth, never recycle
    peak: dict[str, float] = {}
    stop = threading.Event()
    sampler = threading.Thread(
        target=_sampler, args=(lambda: trainer._child.pid if trainer._child else None, peak, stop), daemon=True
    )
    sampler.start()
    log(f"memory: a {args.memory_size} px comparison ({dataset}, {args.memory_epochs} epochs per run) in the child")
    started = time.perf_counter()
    try:
        rss_after = []
        for side in (comparison.without_augmentation(), comparison):
            trainer(side)
            rss_after.append(_proc_status_mb(trainer._child.pid, "VmRSS"))
        pid = trainer._child.pid
        result["comparison_peak_mb"] = _proc_status_mb(pid, "VmHWM")  # the kernel's high-water mark of RSS
        result["comparison_rss_after_runs_mb"] = rss_after
        result["comparison_rss_anon_mb"] = _proc_status_mb(pid, "RssAnon")
        result["comparison_rss_file_mb"] = _proc_status_mb(pid, "RssFile")
        result["comparison_seconds"] = time.perf_counter() - started
    finally:
        stop.set()
        trainer.close()
    result["comparison_sampled_peak_mb"] = peak.get("rss")
    log(f"  peak {result['comparison_peak_mb']:.0f} MB (VmHWM), RSS after each run {rss_after}")

    small = RunConfig.from_dict(
        {
            **comparison.to_dict(),
            "image_size": args.growth_size,
            "epochs": 1,
            "train_images": args.growth_train_images,
        }
    )
    log(f"memory: {args.growth_runs} runs through one child ({args.growth_size} px, 1 epoch each)")
    trainer = SubprocessTrainer(jobs_per_process=1000, recycle_growth_mb=None)  # measure growth, never recycle
    rss = []
    try:
        for index in range(args.growth_runs):
            config = small if index % 2 else small.without_augmentation()
            trainer(config.replace(seed=index))
            rss.append(_proc_status_mb(trainer._child.pid, "VmRSS"))
            log(f"  run {index + 1}: RSS {rss[-1]:.0f} MB")
        result["growth_peak_mb"] = _proc_status_mb(trainer._child.pid, "VmHWM")
    finally:
        trainer.close()
    result["growth_config"] = small.to_dict()
    result["rss_after_run_mb"] = rss
    result["growth_mb"] = rss[-1] - rss[0] if rss else None
    result["growth_after_second_mb"] = rss[-1] - rss[1] if len(rss) > 1 else None
    result["growth_slope_mb_per_run"] = _slope(rss[1:]) if len(rss) > 2 else None
    return result


def _slope(values: list[float]) -> float:
    n = len(values)
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den


# -- the page ------------------------------------------------------------------------------------------
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
_VARIANT_SOURCES_JS = """() => Array.from(document.querySelectorAll('[data-testid="stImageContainer"]'))
    .filter(c => (c.innerText || '').trim().startsWith('variant '))
    .map(c => (c.querySelector('img') || {}).src || '')"""
_CHART_SELECTOR = ".js-plotly-plot svg.main-svg"


def _loaded_tensorflow(pid: int) -> bool:
    """Whether TensorFlow's shared libraries are mapped into process `pid` (i.e. it imported tensorflow)."""
    try:
        return "tensorflow" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _tiny_page_config():
    """The comparison the page measurements store and ask for: builtin cartoons, 48 px, 40 images, 2 epochs."""
    from lab.presets import load_preset

    return load_preset("quick").config.replace(image_size=48, epochs=2, train_images=40)


def _tiny_page_link(server_url: str) -> str:
    """The page's address with the tiny comparison's settings in it, as a shared link carries them."""
    from urllib.parse import urlencode

    from lab.presets import load_preset

    return server_url + "?" + urlencode(_tiny_page_config().to_query(load_preset("quick").config))


def _train_stored_and_wait(page) -> float:
    """Seconds from pressing "Train both runs" on a configuration the store already holds until its chart shows."""
    _wait_preview(page)
    page.wait_for_timeout(1000)  # let the page settle, as a visitor reads it before pressing the button
    before = page.locator(_CHART_SELECTOR).count()
    started = time.perf_counter()
    page.get_by_role("button", name="▶ Train both runs").click()
    page.wait_for_function(
        f"() => document.querySelectorAll('{_CHART_SELECTOR}').length > {before}", timeout=120_000, polling=20
    )
    return time.perf_counter() - started


def _populate_store(store: Path, log) -> tuple[str, str, float]:
    """Train a tiny comparison into `store` through the app's worker and child trainer; its two keys."""
    from lab.runs.store import RunStore
    from lab.runs.trainer import SubprocessTrainer
    from lab.runs.worker import Worker

    config = _tiny_page_config()
    trainer = SubprocessTrainer()
    worker = Worker(RunStore(store), train_fn=trainer)
    started = time.perf_counter()
    try:
        keys = (worker.submit(config.without_augmentation()), worker.submit(config))
        deadline = time.monotonic() + 600
        while not all(worker.status(k).state == "done" for k in keys):
            states = [worker.status(k).state for k in keys]
            if any(s in ("failed", "cancelled", "interrupted") for s in states) or time.monotonic() > deadline:
                raise RuntimeError(f"the tiny comparison did not finish: {states}")
            time.sleep(0.2)
    finally:
        worker.shutdown()
        trainer.close()
    seconds = time.perf_counter() - started
    log(f"page: a tiny comparison in the store in {seconds:.1f} s: {keys[0]}, {keys[1]}")
    return keys[0], keys[1], seconds


@dataclass
class _Visit:
    tab: Any  # what to close afterwards: the fresh context, or the tab in a shared context
    page: Any
    started: float  # perf_counter() when the page was requested
    seconds: float  # until the awaited thing showed

    def since(self) -> float:
        return time.perf_counter() - self.started


def _timed_visit(opener, url: str, until) -> _Visit:
    """Open `url` in a new tab; seconds from the request until `until(page)` returns.

    Given the browser, the tab gets a fresh context (an empty HTTP cache: a first-time visitor); given a
    context, it shares that context's cache (a returning visitor).
    """
    fresh = hasattr(opener, "new_context")
    context = opener.new_context() if fresh else opener
    page = context.new_page()
    started = time.perf_counter()
    page.goto(url, wait_until="commit")
    until(page)
    return _Visit(context if fresh else page, page, started, time.perf_counter() - started)


def _visits(opener, url: str, until, count: int, after=None) -> tuple[list[float], list[float]]:
    """`count` timed visits; also the seconds until `after(page)` returned, when given."""
    seconds, later = [], []
    for _ in range(count):
        visit = _timed_visit(opener, url, until)
        seconds.append(visit.seconds)
        if after is not None:
            after(visit.page)
            later.append(visit.since())
        visit.tab.close()
    return seconds, later


def _first_paint(page) -> None:
    page.get_by_text("1. Data", exact=True).wait_for(timeout=120_000)


def _wait_preview(page) -> None:
    page.wait_for_function(f"() => ({_VARIANT_SOURCES_JS})().length === 8", timeout=120_000)


def _chart_shown(page) -> None:
    page.locator(_CHART_SELECTOR).first.wait_for(timeout=120_000)


def _compare_header(page) -> None:
    page.get_by_text("4. Compare", exact=True).wait_for(timeout=120_000)


def _preview_sources(page) -> list[str]:
    return page.evaluate(_VARIANT_SOURCES_JS)


def _toggle_and_wait(page, label: str) -> float:
    """Seconds from switching `label` until every preview variant shows a new image."""
    before = _preview_sources(page)
    started = time.perf_counter()
    page.locator(f'label:has(input[role="switch"][aria-label="{label}"])').click()
    page.wait_for_function(
        "([js, before]) => { const now = eval(js)(); return now.length > 0 && now.length === before.length"
        " && now.every((src, i) => src !== before[i]); }",
        arg=[_VARIANT_SOURCES_JS, before],
        timeout=120_000,
        polling=20,
    )
    return time.perf_counter() - started


def _interactions(page, count: int, label: str = "Rotation") -> list[float]:
    _wait_preview(page)
    return [_toggle_and_wait(page, label) for _ in range(count)]


def _renice_children(pid: int, value: int, stop: threading.Event) -> None:
    """Keep every thread of `pid`'s children at niceness `value` (TensorFlow starts threads as it goes)."""
    while not stop.is_set():
        for child in _children(pid):
            try:
                tasks = [int(t.name) for t in Path(f"/proc/{child}/task").iterdir()]
            except OSError:
                continue
            for tid in tasks:
                try:
                    if os.getpriority(os.PRIO_PROCESS, tid) != value:
                        os.setpriority(os.PRIO_PROCESS, tid, value)
                except OSError:
                    pass
        stop.wait(0.2)


def _script_seconds(store: Path, baseline: str, augmented: str, repeats: int) -> dict[str, Any]:
    """The page's script alone, run by Streamlit's AppTest in this process: the server's share of the waits."""
    from streamlit.testing.v1 import AppTest

    app = str(REPO / "streamlit_app.py")
    saved = os.environ.get("LAB_RUN_STORE")
    os.environ["LAB_RUN_STORE"] = str(store)

    def run(query: dict[str, str] | None = None, toggle: str | None = None) -> float:
        test = AppTest.from_file(app, default_timeout=120)
        for name, value in (query or {}).items():
            test.query_params[name] = value
        started = time.perf_counter()
        test.run()
        if toggle is not None:
            switch = next(t for t in test.toggle if t.label == toggle)
            switch.set_value(not switch.value)
            started = time.perf_counter()
            test.run()
        if test.exception:
            raise RuntimeError(f"the page raised: {test.exception[0].message}")
        return time.perf_counter() - started

    try:
        first = run()
        page = [run() for _ in range(repeats)]
        comparison = [run({"runs": f"{baseline},{augmented}"}) for _ in range(repeats)]
        toggle = [run(toggle="Rotation") for _ in range(repeats)]
    finally:
        if saved is None:
            os.environ.pop("LAB_RUN_STORE", None)
        else:
            os.environ["LAB_RUN_STORE"] = saved
    return {
        "script_first_seconds": first,
        "script_page_seconds": _median(page),
        "script_cached_comparison_seconds": _median(comparison),
        "script_toggle_rerun_seconds": _median(toggle),
    }


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def measure_page(work: Path, args, log) -> dict[str, Any]:
    """First paint, TensorFlow on that path, a cached comparison, interactions idle and while training.

    Timings run from the browser's request to what the user waits for: the "1. Data" header (first paint),
    the eight preview variants, the comparison chart's SVG, or (interactions) every preview variant changed
    after a switch is flipped. "fresh" visits use a new browser context each (empty HTTP cache, as a
    first-time visitor), "warm" ones a shared context (cached scripts, as a returning visitor).
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {"error": "playwright is not installed"}
    store = work / "page-store"
    baseline, augmented, populate_seconds = _populate_store(store, log)
    repeats = max(1, args.page_repeats)
    result: dict[str, Any] = {"store_populated_seconds": populate_seconds, "loadavg_start": os.getloadavg()}
    try:
        result["script"] = _script_seconds(store, baseline, augmented, repeats)
        log(f"page: the script alone (AppTest) {json.dumps({k: round(v, 2) for k, v in result['script'].items()})}")
    except Exception as exc:  # the browser figures still stand without it
        result["script"] = {"error": f"{type(exc).__name__}: {exc}"}
    from tools.streamlit_server import StreamlitServer

    server = StreamlitServer({"LAB_RUN_STORE": str(store), "TF_CPP_MIN_LOG_LEVEL": "2"}, work / "streamlit.log")
    try:
        result["server_ready_seconds"] = server.wait_ready()
        pid = server.process.pid
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                # The first visit runs the script for the first time in this server (imports, sample images).
                cold, preview = _visits(browser, server.url, _first_paint, 1, _wait_preview)
                result["first_paint_cold_seconds"], result["preview_cold_seconds"] = cold[0], preview[0]
                result["tensorflow_in_page_process"] = _loaded_tensorflow(pid)
                result["page_process_children"] = len(_children(pid))
                paints, previews = _visits(browser, server.url, _first_paint, repeats, _wait_preview)
                result.update(first_paint_seconds=_median(paints), first_paint_all=paints)
                result.update(preview_seconds=_median(previews), preview_all=previews)
                shared = browser.new_context()
                _visits(shared, server.url, _first_paint, 1, _wait_preview)  # fill the cache
                paints, _ = _visits(shared, server.url, _first_paint, repeats)
                result.update(first_paint_warm_seconds=_median(paints), first_paint_warm_all=paints)
                log(
                    f"page: first paint {cold[0]:.2f} s on the server's first visit, then median "
                    f"{result['first_paint_seconds']:.2f} s fresh, {result['first_paint_warm_seconds']:.2f} s warm; "
                    f"TensorFlow in the page's process: {result['tensorflow_in_page_process']}"
                )

                url = f"{server.url}?runs={baseline},{augmented}"
                # The "4. Compare" header comes from the same script run, just before the chart: what
                # follows it is the chart's own share (the figure, then plotly.js loading and drawing it).
                headers, charts = _visits(browser, url, _compare_header, repeats + 1, _chart_shown)
                result["cached_comparison_first_seconds"] = charts[0]
                result.update(cached_comparison_seconds=_median(charts[1:]), cached_comparison_all=charts)
                result["cached_comparison_header_seconds"] = _median(headers[1:])
                headers, charts = _visits(shared, url, _compare_header, repeats, _chart_shown)
                result.update(cached_comparison_warm_seconds=_median(charts), cached_comparison_warm_all=charts)
                result["cached_comparison_warm_header_seconds"] = _median(headers)
                shared.close()
                # The comparison a visitor asks for with the button, when the store already has it.
                clicks = []
                for _ in range(repeats):
                    visit = _timed_visit(browser, _tiny_page_link(server.url), _first_paint)
                    clicks.append(_train_stored_and_wait(visit.page))
                    visit.tab.close()
                result.update(cached_comparison_click_seconds=_median(clicks), cached_comparison_click_all=clicks)
                result["tensorflow_in_page_process_after_comparison"] = _loaded_tensorflow(pid)
                log(
                    f"page: cached comparison from a link median {result['cached_comparison_seconds']:.2f} s fresh, "
                    f"{result['cached_comparison_warm_seconds']:.2f} s warm; from the Train button "
                    f"{result['cached_comparison_click_seconds']:.2f} s"
                )

                visit = _timed_visit(browser, server.url, _first_paint)
                page = visit.page
                idle = _interactions(page, repeats)
                result.update(interaction_idle_seconds=_median(idle), interaction_idle_all=idle)
                result["page_rss_mb"] = _proc_status_mb(pid, "VmRSS")
                result["page_peak_mb"] = _proc_status_mb(pid, "VmHWM")
                page.get_by_role("button", name="▶ Train both runs").click()
                page.get_by_text("epoch 1 of", exact=False).first.wait_for(timeout=300_000)
                busy = [_toggle_and_wait(page, "Rotation") for _ in range(repeats)]
                result.update(interaction_training_seconds=_median(busy), interaction_training_all=busy)
                # The same with the training child's threads at niceness 10 (a proposal for the trainer).
                stop = threading.Event()
                renicer = threading.Thread(target=_renice_children, args=(pid, 10, stop), daemon=True)
                renicer.start()
                time.sleep(1.0)
                try:
                    nice = [_toggle_and_wait(page, "Rotation") for _ in range(repeats)]
                finally:
                    stop.set()
                    renicer.join()
                result.update(interaction_training_nice_seconds=_median(nice), interaction_training_nice_all=nice)
                cancel = page.get_by_role("button", name="■ Cancel")
                result["still_training_after"] = cancel.count() > 0
                children = _children(pid)
                result["trainer_child_peak_mb"] = max((_proc_status_mb(c, "VmHWM") for c in children), default=None)
                result["tensorflow_in_page_process_while_training"] = _loaded_tensorflow(pid)
                log(
                    f"page: interaction median {result['interaction_idle_seconds']:.2f} s idle, "
                    f"{result['interaction_training_seconds']:.2f} s while training, "
                    f"{result['interaction_training_nice_seconds']:.2f} s with the trainer at nice 10"
                )
                if result["still_training_after"]:
                    cancel.click()
                    time.sleep(1.0)
                visit.tab.close()
            finally:
                browser.close()
        result["page_peak_mb_end"] = _proc_status_mb(pid, "VmHWM")
        result["loadavg_end"] = os.getloadavg()
    finally:
        server.stop()
    return result


# -- the command line ---------------------------------------------------------------------------------
def parse_sizes(values: list[str] | None) -> list[int]:
    sizes = []
    for value in values or []:
        for part in value.split(","):
            if part.strip():
                sizes.append(int(part))
    return sizes or list(DEFAULT_SIZES)


def parse_train_images(value: str, sizes: list[int]) -> dict[int, int]:
    """`--train-images`: "N" for every size, or "SIZE:N,SIZE:N" (sizes not named use all images)."""
    if ":" not in value:
        return dict.fromkeys(sizes, int(value))
    pairs = dict(tuple(int(x) for x in part.split(":")) for part in value.split(",") if part.strip())
    return {size: pairs.get(size, 0) for size in sizes}


def parse_extras(value: str) -> list[str]:
    if value in ("", "none"):
        return []
    if value == "all":
        return list(EXTRAS)
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in EXTRAS]
    if unknown:
        raise SystemExit(f"unknown extra(s) {', '.join(unknown)}: choose from {', '.join(EXTRAS)}, or all")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", action="append", help="image size(s): repeat or comma list (default 150,64)")
    parser.add_argument("--epochs", type=int, default=3, help="measured epochs per variant (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up epochs before measuring (default 1)")
    parser.add_argument(
        "--train-images",
        default="0",
        help="a class-balanced subset: N for every size, or SIZE:N pairs (150:1000,64:0); default 0: all",
    )
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data", default=None, help="a train/ + validation/ folder, or 'builtin' (default: shared)")
    parser.add_argument("--variants", default=",".join(CORE), help="core variants to run (default: all five)")
    parser.add_argument("--extras", default="none", help=f"none, all or a comma list of: {', '.join(EXTRAS)}")
    parser.add_argument("--extras-size", type=int, action="append", help="sizes to run extras at (default smallest)")
    parser.add_argument("--no-pipelines", action="store_true", help="skip the pipeline variants")
    parser.add_argument("--page", action="store_true", help="measure the page in headless Chromium")
    parser.add_argument("--page-repeats", type=int, default=5)
    parser.add_argument("--memory", action="store_true", help="measure a comparison's memory and growth over runs")
    parser.add_argument("--memory-size", type=int, default=150)
    parser.add_argument("--memory-epochs", type=int, default=2)
    parser.add_argument("--memory-train-images", type=int, default=0)
    parser.add_argument("--growth-runs", type=int, default=10)
    parser.add_argument("--growth-size", type=int, default=64)
    parser.add_argument("--growth-train-images", type=int, default=400)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per variant before it is abandoned")
    parser.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child:
        _child_main(args.child)
        return 0
    sizes = parse_sizes(args.size)
    extras = parse_extras(args.extras)
    variants = [v for v in args.variants.split(",") if v]
    if set(variants) - set(CORE):
        raise SystemExit(f"--variants: choose from {', '.join(CORE)}")
    extras_sizes = args.extras_size or [min(sizes)]
    data_arg = args.data or default_data()
    out = sys.stdout

    def log(message: str) -> None:
        print(message, file=sys.stderr if args.json else out, flush=True)

    report: dict[str, Any] = {"machine": machine(), "command": "python -m tools.bench " + " ".join(argv or sys.argv[1:])}
    with tempfile.TemporaryDirectory(prefix="lab-bench-") as tmp:
        work = Path(tmp)
        counts = parse_train_images(args.train_images, sizes)
        folders = {n: prepare_data(data_arg, n, args.seed, sizes, work) for n in sorted(set(counts.values()))}
        source = next(iter(folders.values()))[1]
        report["data"] = {size: folders[counts[size]][2] for size in sizes}
        for size in sizes:
            log(f"data at {size} px: {folders[counts[size]][2]}")
        spec = {
            "batch_size": args.batch_size,
            "epochs": args.epochs,
            "warmup": args.warmup,
            "seed": args.seed,
        }
        results = []
        if not args.no_pipelines:
            for size in sizes:
                chosen = extras if size in extras_sizes else []
                size_spec = {**spec, "data": str(folders[counts[size]][0])}
                result = bench_size(size, variants, chosen, size_spec, args.timeout, log, work)
                result.update(batch_size=args.batch_size, epochs=args.epochs, warmup=args.warmup)
                results.append(result)
                print_size_table(result, sys.stderr if args.json else out)
        if args.page:
            report["page"] = measure_page(work, args, log)
        if args.memory:
            report["memory"] = measure_memory(source, args, log)
    versions = next((r for res in results for r in res["runs"].values() if "tensorflow" in r), {})
    report["machine"].update(
        tensorflow=versions.get("tensorflow"), keras=versions.get("keras"), loadavg_end=os.getloadavg()
    )
    if results:
        report = {**{k: v for k, v in results[0].items() if k != "runs"}, **report, "results": results}
    if args.json:
        print(json.dumps(report, default=_jsonable))
    return 0


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, tuple):
        return list(value)
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
