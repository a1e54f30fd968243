"""`--memory`: a whole comparison's peak memory in the app's training child, and the child's growth over runs."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from tools.bench.procfs import proc_status_mb


def _sampler(pid_of, peak: dict[str, float], stop: threading.Event) -> None:
    while not stop.is_set():
        pid = pid_of()
        if pid:
            peak["rss"] = max(peak.get("rss", 0.0), proc_status_mb(pid, "VmRSS") or 0.0)
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
            rss_after.append(proc_status_mb(trainer._child.pid, "VmRSS"))
        pid = trainer._child.pid
        result["comparison_peak_mb"] = proc_status_mb(pid, "VmHWM")  # the kernel's high-water mark of RSS
        result["comparison_rss_after_runs_mb"] = rss_after
        result["comparison_rss_anon_mb"] = proc_status_mb(pid, "RssAnon")
        result["comparison_rss_file_mb"] = proc_status_mb(pid, "RssFile")
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
            rss.append(proc_status_mb(trainer._child.pid, "VmRSS"))
            log(f"  run {index + 1}: RSS {rss[-1]:.0f} MB")
        result["growth_peak_mb"] = proc_status_mb(trainer._child.pid, "VmHWM")
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
