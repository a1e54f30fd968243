"""`--page`: the page measured in headless Chromium against a `streamlit run` of it, and its script alone."""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from tools.bench.procfs import children_of, loaded_tensorflow, proc_status_mb
from tools.bench.visits import (
    chart_shown,
    compare_header,
    first_paint,
    interactions,
    timed_visit,
    toggle_and_wait,
    train_stored_and_wait,
    visits,
    wait_preview,
)
from tools.browser import launch
from tools.paths import REPO


def _tiny_page_config():
    """The comparison the page measurements store and ask for: builtin cartoons, 48 px, 40 images, 2 epochs."""
    from lab.presets import load_preset

    return load_preset("quick").config.replace(image_size=48, epochs=2, train_images=40)


def _tiny_page_link(server_url: str) -> str:
    """The page's address with the tiny comparison's settings in it, as a shared link carries them."""
    from urllib.parse import urlencode

    from lab.presets import load_preset

    return server_url + "?" + urlencode(_tiny_page_config().to_query(load_preset("quick").config))


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


def _renice_children(pid: int, value: int, stop: threading.Event) -> None:
    """Keep every thread of `pid`'s children at niceness `value` (TensorFlow starts threads as it goes)."""
    while not stop.is_set():
        for child in children_of(pid):
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
        "script_page_seconds": median(page),
        "script_cached_comparison_seconds": median(comparison),
        "script_toggle_rerun_seconds": median(toggle),
    }


def median(values: list[float]) -> float | None:
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
            browser = launch(playwright.chromium)
            try:
                # The first visit runs the script for the first time in this server (imports, sample images).
                cold, preview = visits(browser, server.url, first_paint, 1, wait_preview)
                result["first_paint_cold_seconds"], result["preview_cold_seconds"] = cold[0], preview[0]
                result["tensorflow_in_page_process"] = loaded_tensorflow(pid)
                result["page_process_children"] = len(children_of(pid))
                paints, previews = visits(browser, server.url, first_paint, repeats, wait_preview)
                result.update(first_paint_seconds=median(paints), first_paint_all=paints)
                result.update(preview_seconds=median(previews), preview_all=previews)
                shared = browser.new_context()
                visits(shared, server.url, first_paint, 1, wait_preview)  # fill the cache
                paints, _ = visits(shared, server.url, first_paint, repeats)
                result.update(first_paint_warm_seconds=median(paints), first_paint_warm_all=paints)
                log(
                    f"page: first paint {cold[0]:.2f} s on the server's first visit, then median "
                    f"{result['first_paint_seconds']:.2f} s fresh, {result['first_paint_warm_seconds']:.2f} s warm; "
                    f"TensorFlow in the page's process: {result['tensorflow_in_page_process']}"
                )

                url = f"{server.url}?runs={baseline},{augmented}"
                # The "4. Compare" header comes from the same script run, just before the chart: what
                # follows it is the chart's own share (the figure, then plotly.js loading and drawing it).
                headers, charts = visits(browser, url, compare_header, repeats + 1, chart_shown)
                result["cached_comparison_first_seconds"] = charts[0]
                result.update(cached_comparison_seconds=median(charts[1:]), cached_comparison_all=charts)
                result["cached_comparison_header_seconds"] = median(headers[1:])
                headers, charts = visits(shared, url, compare_header, repeats, chart_shown)
                result.update(cached_comparison_warm_seconds=median(charts), cached_comparison_warm_all=charts)
                result["cached_comparison_warm_header_seconds"] = median(headers)
                shared.close()
                # The comparison a visitor asks for with the button, when the store already has it.
                clicks = []
                for _ in range(repeats):
                    visit = timed_visit(browser, _tiny_page_link(server.url), first_paint)
                    clicks.append(train_stored_and_wait(visit.page))
                    visit.tab.close()
                result.update(cached_comparison_click_seconds=median(clicks), cached_comparison_click_all=clicks)
                result["tensorflow_in_page_process_after_comparison"] = loaded_tensorflow(pid)
                log(
                    f"page: cached comparison from a link median {result['cached_comparison_seconds']:.2f} s fresh, "
                    f"{result['cached_comparison_warm_seconds']:.2f} s warm; from the Train button "
                    f"{result['cached_comparison_click_seconds']:.2f} s"
                )

                visit = timed_visit(browser, server.url, first_paint)
                page = visit.page
                idle = interactions(page, repeats)
                result.update(interaction_idle_seconds=median(idle), interaction_idle_all=idle)
                result["page_rss_mb"] = proc_status_mb(pid, "VmRSS")
                result["page_peak_mb"] = proc_status_mb(pid, "VmHWM")
                page.get_by_role("button", name="▶ Train both runs").click()
                page.get_by_text("epoch 1 of", exact=False).first.wait_for(timeout=300_000)
                busy = [toggle_and_wait(page, "Rotation") for _ in range(repeats)]
                result.update(interaction_training_seconds=median(busy), interaction_training_all=busy)
                # The same with the training child's threads at niceness 10 (a proposal for the trainer).
                stop = threading.Event()
                renicer = threading.Thread(target=_renice_children, args=(pid, 10, stop), daemon=True)
                renicer.start()
                time.sleep(1.0)
                try:
                    nice = [toggle_and_wait(page, "Rotation") for _ in range(repeats)]
                finally:
                    stop.set()
                    renicer.join()
                result.update(interaction_training_nice_seconds=median(nice), interaction_training_nice_all=nice)
                cancel = page.get_by_role("button", name="■ Cancel")
                result["still_training_after"] = cancel.count() > 0
                children = children_of(pid)
                result["trainer_child_peak_mb"] = max((proc_status_mb(c, "VmHWM") for c in children), default=None)
                result["tensorflow_in_page_process_while_training"] = loaded_tensorflow(pid)
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
        result["page_peak_mb_end"] = proc_status_mb(pid, "VmHWM")
        result["loadavg_end"] = os.getloadavg()
    finally:
        server.stop()
    return result
