"""Overfitting Lab's core: datasets, augmentation, the course CNN, training, the worker.

Importable without Streamlit, and without TensorFlow until something trains: the
modules that need TensorFlow import it inside the functions that use it.
"""

__version__ = "0.1.0"
