"""A class at once: N students arrive over about a minute and each asks one server's worker for a comparison.

Each student asks for a comparison (the baseline and one augmented run) of a lesson preset: most pick one of
the lesson's usual runs (a knob alone at its lesson value, or the course's combination: what the lesson atlas
holds), a share (`--own`) picks a setting of their own (a rotation angle of their choosing). Students arrive
at random over `--arrival` seconds. The worker is the server's own (`lab.runs.parallel.make_trainer`: child
processes, or Ray with `LAB_RAY_ADDRESS=local`), over a fresh run store, seeded with the atlas or not.

Reports the median and 95th percentile of the time until a student sees both readings, how many jobs were
trained and how many of the students' runs were answered from the store (the atlas, or a run another student
asked for first), and the peak memory of this process with its children (the training children, or Ray's
processes when this process started them).

    python tools/classroom.py --students 30 [--atlas off] [--json]
    LAB_RAY_ADDRESS=local python tools/classroom.py --students 30
    python tools/classroom.py --throughput --runs 4          # the same runs, one at a time and N at once
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script: the repository root on the path

from lab.cli.atlas import atlas_entries  # noqa: E402
from lab.config import RunConfig  # noqa: E402
from lab.presets import load_preset  # noqa: E402
from lab.runs import parallel  # noqa: E402
from lab.runs.seeding import ATLAS_DIR  # noqa: E402
from lab.runs.store import RunStore  # noqa: E402
from lab.runs.worker import Worker  # noqa: E402
from tools.load_test import tree_rss_mb  # noqa: E402

ENDED = ("done", "failed", "cancelled", "interrupted")


class PeakMemory:
    """Samples the resident memory of this process and its descendants every half second."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            self.peak = max(self.peak, tree_rss_mb(os.getpid()))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


class Counting:
    """Wraps a trainer to count the jobs it trains; keeps its `slots` and `close`."""

    def __init__(self, trainer) -> None:
        self.trainer, self.slots, self.calls = trainer, getattr(trainer, "slots", 1), 0

    def __call__(self, config, on_epoch=None, should_stop=None):
        self.calls += 1
        return self.trainer(config, on_epoch=on_epoch, should_stop=should_stop)

    def close(self) -> None:
        getattr(self.trainer, "close", lambda: None)()


def student_requests(preset: str, students: int, own: float, seed: int) -> list[tuple[str, list[RunConfig]]]:
    """Each student's choice and comparison (baseline, augmented), in arrival order."""
    rng = random.Random(seed)
    config = load_preset(preset).config
    usual = {name: entry for name, entry in atlas_entries(config).items() if name != "baseline"}
    requests = []
    for _ in range(students):
        if rng.random() < own:
            angle = rng.randrange(5, 91)
            chosen = config.without_augmentation().with_overrides({"rotation_range": angle})
            requests.append((f"rotation {angle}", [chosen.without_augmentation(), chosen]))
        else:
            name = rng.choice(sorted(usual))
            requests.append((name, [usual[name].without_augmentation(), usual[name]]))
    return requests


def classroom(args: argparse.Namespace) -> dict:
    trainer = Counting(parallel.make_trainer())
    store = RunStore(tempfile.mkdtemp(prefix="lab-classroom-"))
    memory = PeakMemory()
    worker = Worker(store, train_fn=trainer, atlas=ATLAS_DIR / args.preset if args.atlas == "on" else None)
    rng = random.Random(args.seed)
    arrivals = sorted(rng.uniform(0, args.arrival) for _ in range(args.students))
    requests = student_requests(args.preset, args.students, args.own, args.seed)
    done_at: dict[str, float] = {}  # when each asked run was first seen ended
    asked: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.2):
            for key in list(asked):
                if key not in done_at and worker.status(key).state in ENDED:
                    done_at[key] = time.monotonic()

    threading.Thread(target=watch, daemon=True).start()
    started = time.monotonic()
    answered = 0
    students: list[tuple[float, list[str]]] = []
    for arrival, (_, configs) in zip(arrivals, requests, strict=True):
        time.sleep(max(0.0, started + arrival - time.monotonic()))
        now = time.monotonic()
        keys = [worker.submit(config, owner=f"student{len(students)}") for config in configs]
        for key in keys:
            if worker.status(key).done:
                answered += 1  # answered at once: the atlas, or a run another student asked for before
                done_at.setdefault(key, now)
        asked.extend(keys)
        students.append((now, keys))
    while not all(key in done_at for key in asked):
        time.sleep(0.2)
    stop.set()
    finished = {key: worker.status(key) for key in asked}
    # A run answered at once may have been done since an earlier student asked: no wait, never a negative one.
    waits = [max(0.0, max(done_at[key] for key in keys) - when) for when, keys in students]
    worker.shutdown(timeout=30)
    trainer.close()
    ordered = sorted(waits)
    return {
        "backend": "ray" if os.environ.get("LAB_RAY_ADDRESS") else "child processes",
        "runs_at_once": trainer.slots,
        "atlas": args.atlas,
        "students": args.students,
        "median_s": round(statistics.median(ordered), 1),
        "p95_s": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
        "max_s": round(ordered[-1], 1),
        "jobs_trained": trainer.calls,
        "runs_asked": 2 * args.students,
        "answered_at_once": answered,
        "failed": sum(1 for status in finished.values() if status.state != "done"),
        "peak_mb": round(memory.stop()),
        "seconds": round(time.monotonic() - started, 1),
    }


def throughput(args: argparse.Namespace) -> list[dict]:
    """The same `--runs` runs (seeds differ, so none is a cache hit), one at a time and then N at once."""
    config = load_preset(args.preset).config.replace(epochs=args.epochs)
    results = []
    for runs in (1, parallel.parallel_runs() if args.parallel is None else args.parallel):
        cpu_before = _children_cpu_seconds()
        trainer = parallel.ChildPool(runs)
        worker = Worker(RunStore(tempfile.mkdtemp(prefix="lab-throughput-")), train_fn=trainer)
        started = time.monotonic()
        keys = [worker.submit(config.replace(seed=100 + n)) for n in range(args.runs)]
        while not all(worker.status(key).state in ("done", "failed") for key in keys):
            time.sleep(0.2)
        seconds = time.monotonic() - started
        worker.shutdown(timeout=30)
        trainer.close()  # the children end and are waited for: their CPU time is counted now
        cpu = _children_cpu_seconds() - cpu_before
        results.append(
            {
                "cpu_seconds_per_run": round(cpu / args.runs, 1),
                "load_average": os.getloadavg()[0],
                "runs_at_once": runs,
                "runs": args.runs,
                "seconds": round(seconds, 1),
                "runs_per_minute": round(60 * args.runs / seconds, 2),
            }
        )
    return results


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--arrival", type=float, default=60.0, help="seconds over which the students arrive")
    parser.add_argument("--own", type=float, default=0.3, help="share of students choosing a setting of their own")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--atlas", choices=("on", "off"), default="on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--throughput", action="store_true", help="measure runs per minute, 1 vs N at once")
    parser.add_argument("--runs", type=int, default=4, help="--throughput: how many runs")
    parser.add_argument("--epochs", type=int, default=5, help="--throughput: epochs per run")
    parser.add_argument("--parallel", type=int, help="--throughput: N (default: LAB_PARALLEL_RUNS or the cores)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = throughput(args) if args.throughput else classroom(args)
    print(json.dumps(result, indent=None if args.json else 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
