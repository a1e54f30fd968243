"""Every figure issue 15 asks for, each measured `--repeats` times in one sitting: medians, ratios, lessons held.

    python -m tools.bench.lessons                       # all of it, 3 times each (about 40 minutes on 2 idle cores)
    python -m tools.bench.lessons --only quick,together --repeats 5

- `quick`: the whole process `python -m lab compare quick` (TensorFlow's import included), wall seconds from
  its start to its end; target 30 s. The lesson's thresholds are checked on every run (baseline training
  >= 0.95 and validation >= 0.20 below it; augmented validation >= 0.15 above the baseline's).
- `cats`: the same for `cats_vs_dogs_quick` (target 180 s; baseline gap >= 0.15, augmented gap at most half of
  it). Needs `../shared/datasets` or a download.
- `pipeline`: `python -m tools.bench --size 64 --epochs 4 --variants lab_plain,lab_aug,floor`; the median over
  repeats of each run's ratios lab_plain / floor and lab_aug / floor (target 1.10), wall and CPU.
- `together`: `python -m tools.bench.together --preset quick`: both sides one after the other, in two threads,
  in two processes, and in one shared model; ratios to one-after-the-other from the same rounds.

The rounds of `quick` and `cats` alternate, so a busy spell on a shared machine falls on both. The load average
is printed at the start and the end: read absolute times against it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
FIGURES = ("quick", "cats", "pipeline", "together")
PRESETS = {"quick": "quick", "cats": "cats_vs_dogs_quick"}
CATS_AND_DOGS = REPO.parent / "shared" / "datasets" / "cats_and_dogs_filtered"  # as tests/test_cli.py reads it


def _python(*args: str, timeout: float) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-600:]}")
    return seconds, done.stdout


def lesson_held(figure: str, runs: dict[str, dict[str, float]]) -> bool:
    """The lesson's thresholds, as tests/test_cli.py asserts them."""
    base, aug = runs["baseline"], runs["augmented"]
    if figure == "quick":
        return (
            base["accuracy"] >= 0.95
            and base["val_accuracy"] <= base["accuracy"] - 0.20
            and aug["val_accuracy"] >= base["val_accuracy"] + 0.15
        )
    return base["gap"] >= 0.15 and abs(aug["gap"]) <= base["gap"] / 2


def compare_once(figure: str, timeout: float) -> dict[str, Any]:
    data = ["--data", str(CATS_AND_DOGS)] if figure == "cats" and CATS_AND_DOGS.is_dir() else []
    with tempfile.TemporaryDirectory(prefix="lessons-") as out:
        wall, stdout = _python(
            "-m", "lab", "compare", PRESETS[figure], *data, "--quiet", "--json", "--out", f"{out}/run", timeout=timeout
        )
    report = json.loads(stdout.strip().splitlines()[-1])
    return {"wall_seconds": wall, "seconds": report["seconds"], "held": lesson_held(figure, report["runs"])}


def pipeline_once(timeout: float) -> dict[str, Any]:
    args = ("--size", "64", "--epochs", "4", "--variants", "lab_plain,lab_aug,floor", "--extras", "none", "--json")
    _, stdout = _python("-m", "tools.bench", *args, timeout=timeout)
    report = json.loads(stdout.strip().splitlines()[-1])
    return {
        kind: {
            name: report[kind][name]
            for name in ("lab_plain_over_floor", "lab_aug_over_floor", "lab_aug_over_lab_plain")
        }
        for kind in ("ratios", "cpu_ratios")
    }


def load_average() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def run(args: argparse.Namespace) -> dict[str, Any]:
    only = [f for f in args.only.split(",") if f]
    unknown = sorted(set(only) - set(FIGURES))
    if unknown:
        raise SystemExit(f"lessons: unknown figure(s) {', '.join(unknown)}; choose from {', '.join(FIGURES)}")
    result: dict[str, Any] = {"repeats": args.repeats, "cores": os.cpu_count(), "load_before": load_average()}
    lessons = [f for f in ("quick", "cats") if f in only]
    runs: dict[str, list[dict[str, Any]]] = {f: [] for f in lessons}
    for index in range(args.repeats):
        for figure in lessons[index % 2 :] + lessons[: index % 2] if len(lessons) == 2 else lessons:
            runs[figure].append(compare_once(figure, args.timeout))
            print(f"{figure} round {index + 1}: {runs[figure][-1]['wall_seconds']:.1f} s", file=sys.stderr)
    for figure, results in runs.items():
        result[figure] = {
            "wall_seconds": statistics.median(r["wall_seconds"] for r in results),
            "wall_seconds_all": [round(r["wall_seconds"], 1) for r in results],
            "cli_seconds": statistics.median(r["seconds"] for r in results),
            "lesson_held": all(r["held"] for r in results),
        }
    if "pipeline" in only:
        reports = [pipeline_once(args.timeout) for _ in range(args.repeats)]
        result["pipeline"] = {
            kind: {name: statistics.median(r[kind][name] for r in reports) for name in reports[0][kind]}
            for kind in ("ratios", "cpu_ratios")
        }
        result["pipeline"]["rounds"] = reports  # each round's ratios, for the record
    if "together" in only:
        _, stdout = _python(
            "-m", "tools.bench.together", "--preset", "quick", "--repeats", str(args.repeats), "--json",
            timeout=args.timeout * 4 * args.repeats,
        )  # fmt: skip
        result["together"] = json.loads(stdout.strip().splitlines()[-1])
    result["load_after"] = load_average()
    return result


def print_report(result: dict[str, Any]) -> None:
    print(f"{result['repeats']} repeats, {result['cores']} cores, load average {result['load_before']} at the start")
    for figure, target in (("quick", 30), ("cats", 180)):
        if figure in result:
            f = result[figure]
            print(
                f"{PRESETS[figure]}: whole process {f['wall_seconds']:.1f} s median (target {target} s; runs "
                f"{f['wall_seconds_all']}), its own clock {f['cli_seconds']:.1f} s, lesson held: {f['lesson_held']}"
            )
    if "pipeline" in result:
        for kind in ("ratios", "cpu_ratios"):
            ratios = result["pipeline"][kind]
            said = ", ".join(f"{name} {value:.2f}" for name, value in ratios.items())
            print(f"pipeline 64 px, {'wall' if kind == 'ratios' else 'CPU'}: {said} (target over floor <= 1.10)")
    if "together" in result:
        for mode, f in result["together"]["modes"].items():
            print(
                f"both sides, {mode}: {f['wall_seconds']:.1f} s wall median, {f['cpu_seconds']:.1f} CPU s, "
                f"{f.get('wall_over_apart', float('nan')):.2f} x one after the other"
            )
    print(f"load average {result['load_after']} at the end")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.lessons", description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(FIGURES), help=f"comma list of {', '.join(FIGURES)}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=1200, help="seconds per command before it is abandoned")
    parser.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    args = parser.parse_args(argv)
    result = run(args)
    print_report(result)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
