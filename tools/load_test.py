"""A classroom on one server: N browser sessions open the page and ask for the same comparison.

Starts `streamlit run streamlit_app.py` on 127.0.0.1 (hosted mode, a fresh run store),
opens N pages at once in Debian's Chromium through Playwright, and has every page press
"Train both runs" for the same small configuration while the first one trains. Reports:
time until each page first shows, time until each page shows the finished comparison,
how many jobs the server actually trained (identical requests must train once), and the
peak memory of the server with its training child. Traffic stays on 127.0.0.1.

The browsers stand for the visitors' own machines, yet here they share the server's cores: they run at the
lowest CPU priority (`--browser-nice`, 19 by default) so that they take only what the server and its training
child leave, as on a real host where they take nothing. `--browser-nice 0` puts them on an equal footing.

    python tools/load_test.py --sessions 20 [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script (`python tools/load_test.py`): the repository root on the path

from lab.config import RunConfig  # noqa: E402
from lab.presets import load_preset  # noqa: E402
from lab.runs.store import RunStore  # noqa: E402
from tools.browser import launch  # noqa: E402
from tools.streamlit_server import StreamlitServer  # noqa: E402

# The load test adds one flag to tools.browser's: twenty pages at once outgrow /dev/shm.
EXTRA_BROWSER_ARGS = ("--disable-dev-shm-usage",)


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        stack += children.get(current, [])
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class MemorySampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.peak, self.stopped = pid, every, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.peak = max(self.peak, tree_rss_mb(self.pid))
            time.sleep(self.every)


async def one_session(browser, url: str, index: int, results: list, timeout: float) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 2400})
    page = await context.new_page()
    record = {"session": index}
    try:
        started = time.monotonic()
        await page.goto(url)
        await page.get_by_text("1. Data").first.wait_for(timeout=timeout * 1000)
        record["first_paint_s"] = time.monotonic() - started
        button = page.get_by_role("button", name="Train both runs")
        await button.wait_for(timeout=timeout * 1000)
        clicked = time.monotonic()
        if await button.is_enabled():
            await button.click()
        # Done when no Cancel button is left and both sides have their reading sentence.
        readings = page.locator("p").filter(has_text="augmentation:").filter(has_text="Training accuracy")
        deadline = clicked + timeout
        while not (await readings.count() == 2 and await page.get_by_role("button", name="Cancel").count() == 0):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no finished comparison after {timeout:.0f} s")
            await asyncio.sleep(0.5)
        record["comparison_s"] = time.monotonic() - clicked
        record["ok"] = True
    except Exception as exc:  # a session that fails is counted, not fatal
        record["ok"] = False
        record["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    finally:
        results.append(record)
        await context.close()


class BrowserRenicer(threading.Thread):
    """Keeps every thread of every Chromium process at niceness `nice`.

    Chromium sets its own threads' priorities (some at -8 here, as root), so a `nice` at launch does not hold:
    this thread lowers them again every half second.
    """

    def __init__(self, nice: int) -> None:
        super().__init__(daemon=True)
        self.nice, self.stopped = nice, threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            for proc in Path("/proc").iterdir():
                try:
                    if not proc.name.isdigit() or "chrom" not in (proc / "comm").read_text():
                        continue
                    for task in (proc / "task").iterdir():
                        if os.getpriority(os.PRIO_PROCESS, int(task.name)) != self.nice:
                            os.setpriority(os.PRIO_PROCESS, int(task.name), self.nice)
                except (OSError, ValueError):
                    continue


async def drive(url: str, sessions: int, timeout: float) -> list[dict]:
    from playwright.async_api import async_playwright

    results: list[dict] = []
    async with async_playwright() as playwright:
        browser = await launch(playwright.chromium, *EXTRA_BROWSER_ARGS)
        try:
            await asyncio.gather(*(one_session(browser, url, i, results, timeout) for i in range(sessions)))
        finally:
            await browser.close()
    return results


def summarise(values: list[float]) -> dict:
    if not values:
        return {}
    return {"median": round(statistics.median(values), 2), "max": round(max(values), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600, help="seconds one session may wait")
    parser.add_argument("--browser-nice", type=int, default=19, help="CPU niceness of the browsers (0: none)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON on the last line")
    args = parser.parse_args()

    config: RunConfig = load_preset("quick").config.with_overrides(
        {"epochs": args.epochs, "image_size": 48, "train_images": 100}
    )
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "runs"
        server = StreamlitServer({"LAB_RUN_STORE": str(store), "LAB_HOSTED": "1"}, Path(folder) / "streamlit.log")
        server.wait_ready()
        query = urllib.parse.urlencode({"preset": "quick", "dataset": config.dataset, **config.to_query()})
        url = f"{server.url}?{query}"
        sampler = MemorySampler(server.process.pid)
        sampler.start()
        started = time.monotonic()
        renicer = BrowserRenicer(args.browser_nice)
        try:
            if args.browser_nice > 0:
                renicer.start()
            results = asyncio.run(drive(url, args.sessions, args.timeout))
        finally:
            renicer.stopped.set()
            wall = time.monotonic() - started
            sampler.stopped.set()
            sampler.join()
            server.stop()
        runs = RunStore(store).list_runs()
    report = {
        "sessions": args.sessions,
        "ok": sum(r["ok"] for r in results),
        "errors": sorted({r["error"] for r in results if not r["ok"]}),
        "first_paint_s": summarise([r["first_paint_s"] for r in results if "first_paint_s" in r]),
        "comparison_s": summarise([r["comparison_s"] for r in results if "comparison_s" in r]),
        "jobs_trained": len(runs),
        "jobs_done": sum(run.status.state == "done" for run in runs),
        "peak_server_mb": round(sampler.peak),
        "wall_s": round(wall, 1),
    }
    print(f"{report['ok']}/{args.sessions} sessions saw the finished comparison; errors: {report['errors'] or 'none'}")
    print(f"first paint: {report['first_paint_s']} s; comparison shown after the click: {report['comparison_s']} s")
    print(f"jobs trained by the server: {report['jobs_trained']} (done: {report['jobs_done']}); expected 2")
    print(f"peak memory of the server and its training child: {report['peak_server_mb']} MB; wall {report['wall_s']} s")
    if args.json:
        print(json.dumps(report))
    return 0 if report["ok"] == args.sessions and report["jobs_trained"] == 2 else 1


if __name__ == "__main__":
    sys.exit(main())
