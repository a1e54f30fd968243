"""Benchmark: the lab's input pipeline against the course's and the compute floor, the page, and memory.

    python -m tools.bench                                  # 150 and 64 px on cats_and_dogs_filtered (or builtin)
    python -m tools.bench --size 64 --epochs 3 --extras all --json
    python -m tools.bench --size 150,64 --page --memory --extras all --json   # what docs/performance.md reports

What it measures, in one run, on the same data, model (`lab.training.model.build_model`) and machine:

- `course_plain`, `course_aug`: the course's pipeline, `ImageDataGenerator(rescale=1/255).flow_from_directory(...)`
  (class_mode="binary", batch 20), without and with the seed's augmentation (rotation 40, shifts 0.2, shear 0.2,
  zoom 0.2, horizontal flip, nearest), fed to `model.fit` as the course does.
- `lab_plain`, `lab_aug`: the lab's own pipeline, `lab.training.pipeline.load` + `training_pipeline`, without and with the
  same augmentation (the lab's `Augment` layer, which the lab's model applies in its training step), with the lab's
  training settings (`lab.training.train._make_deterministic`).
- `floor`: the compute floor: the same model on decoded float32 tensors already in memory
  (`Dataset.from_tensor_slices(...).batch().cache()`), no augmentation, no decoding.
- extras (`--extras`): one knob changed from a core variant, to measure a proposed optimisation (XLA, thread
  settings, parallel calls, oneDNN, uint8 to the model, ...); each is reported with its ratio to its base.

Every variant runs in its own child process (`python -m tools.bench --child SPEC`, `child.py`), so that its peak memory is its
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

The modules: `cli` (the flags, what runs, the JSON report), `variants` (what is measured), `data` (the folder the
variants read), `pipelines` (each variant's input pipeline and model), `child` (one variant trained in a child
process), `group` (children side by side, one epoch each in turn), `sizes` (one size's figures, ratios and table),
`memory` (`--memory`), `page` and `visits` (`--page`), `procfs` (memory, CPU and the machine, from /proc).
Run it from the repository root.
"""
