"""Overfitting Lab's core, importable without Streamlit (and without TensorFlow until something trains).

Layers, each importing only those below it (tests/test_layers.py keeps them so):

- `lab.runs`: the worker that queues runs, the trainer process, the run store, hosting caps;
- `lab.training`: the tf.data pipeline, the augmentation layer, the course CNN, training;
- `lab.data`: the dataset registry, folder listing and image checks, archives, downloads, uploads;
- `lab.config` and `lab.knobs`: the one object that travels (`RunConfig`) and the table of knobs.

Beside them: `history` (epoch rows, summaries, seed statistics), `figures`, `presets`,
`recordings`, `errors`, and the command line (`cli`, `python -m lab`).
"""

__version__ = "0.1.0"
