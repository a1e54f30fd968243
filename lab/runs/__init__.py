"""Runs: the worker that queues and trains them, the trainer process it trains through, the
run store on disk, hosted mode's caps and the run-time estimate.

May import `lab.training`, `lab.data`, `lab.config` and the top-level history and errors;
never Streamlit, and TensorFlow only inside the trainer's child.
"""
