"""Handing a comparison's runs to the worker, and finding them again after a refresh."""

from __future__ import annotations

from collections.abc import Sequence

from lab.config import RunConfig
from lab.history import comparison_configs
from lab.runs.worker import QueueFull, Worker


def submit_in_order(worker: Worker, configs: Sequence[RunConfig], owner: str | None) -> list[RunConfig]:
    """Submit `configs` in order until the worker's per-visitor queue is full; returns those left.

    The worker lets one visitor have only a few runs waiting (lab.runs.worker.MAX_WAITING_PER_OWNER),
    so a comparison of many seeds is handed over a few runs at a time as earlier ones start.
    Runs already in the store are answered at once and never fill the queue.
    """

    for index, config in enumerate(configs):
        try:
            worker.submit(config, owner=owner)
        except QueueFull:
            return list(configs[index:])
    return []


def unsubmitted(worker: Worker, keys: Sequence[str]) -> list[RunConfig]:
    """The runs of a comparison (`keys` from `comparison_configs`) still to hand to the worker.

    After a refresh the page knows the keys from its link but not which runs the closed page
    had yet to submit. While the comparison still trains, those are the runs the worker has
    never heard of; their configurations follow from the first seed's stored run. A finished
    or cancelled comparison gets nothing: opening its link never starts training.
    """
    if len(keys) <= 2:
        return []
    statuses = [worker.status(key) for key in keys]
    if not any(status.active for status in statuses):
        return []
    stored = worker.store.load(keys[1])
    if stored is None:
        return []
    configs = comparison_configs(stored.config, len(keys) // 2)
    if [config.key() for config in configs] != list(keys):
        return []  # not a comparison this page asked for
    return [config for config, status in zip(configs, statuses, strict=True) if status.state == "unknown"]


