"""Data: the registry of datasets, reading and checking image folders, the builtin drawings,
archives, downloads and uploads.

May import `lab.config` and each other; never `lab.training`, `lab.runs`, TensorFlow or Streamlit.
"""
