"""The command line: `python -m tools.bench [flags]`, what it runs, its tables and its JSON report."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import tools.bench
from tools.bench.child import child_main
from tools.bench.data import default_data, prepare_data
from tools.bench.memory import measure_memory
from tools.bench.page import measure_page
from tools.bench.procfs import machine
from tools.bench.sizes import bench_size, print_size_table
from tools.bench.variants import CORE, EXTRAS

DEFAULT_SIZES = (150, 64)


def parse_sizes(values: list[str] | None) -> list[int]:
    sizes = []
    for value in values or []:
        for part in value.split(","):
            if part.strip():
                sizes.append(int(part))
    return sizes or list(DEFAULT_SIZES)


def parse_train_images(value: str, sizes: list[int]) -> dict[int, int]:
    """`--train-images`: "N" for every size, or "SIZE:N,SIZE:N" (sizes not named use all images)."""
    if ":" not in value:
        return dict.fromkeys(sizes, int(value))
    pairs = dict(tuple(int(x) for x in part.split(":")) for part in value.split(",") if part.strip())
    return {size: pairs.get(size, 0) for size in sizes}


def parse_extras(value: str) -> list[str]:
    if value in ("", "none"):
        return []
    if value == "all":
        return list(EXTRAS)
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in EXTRAS]
    if unknown:
        raise SystemExit(f"unknown extra(s) {', '.join(unknown)}: choose from {', '.join(EXTRAS)}, or all")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=tools.bench.__doc__.split("\n\n")[0])
    parser.add_argument("--size", action="append", help="image size(s): repeat or comma list (default 150,64)")
    parser.add_argument("--epochs", type=int, default=3, help="measured epochs per variant (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up epochs before measuring (default 1)")
    parser.add_argument(
        "--train-images",
        default="0",
        help="a class-balanced subset: N for every size, or SIZE:N pairs (150:1000,64:0); default 0: all",
    )
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data", default=None, help="a train/ + validation/ folder, or 'builtin' (default: shared)")
    parser.add_argument("--variants", default=",".join(CORE), help="core variants to run (default: all five)")
    parser.add_argument("--extras", default="none", help=f"none, all or a comma list of: {', '.join(EXTRAS)}")
    parser.add_argument("--extras-size", type=int, action="append", help="sizes to run extras at (default smallest)")
    parser.add_argument("--no-pipelines", action="store_true", help="skip the pipeline variants")
    parser.add_argument("--page", action="store_true", help="measure the page in headless Chromium")
    parser.add_argument("--page-repeats", type=int, default=5)
    parser.add_argument("--memory", action="store_true", help="measure a comparison's memory and growth over runs")
    parser.add_argument("--memory-size", type=int, default=150)
    parser.add_argument("--memory-epochs", type=int, default=2)
    parser.add_argument("--memory-train-images", type=int, default=0)
    parser.add_argument("--growth-runs", type=int, default=10)
    parser.add_argument("--growth-size", type=int, default=64)
    parser.add_argument("--growth-train-images", type=int, default=400)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per variant before it is abandoned")
    parser.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child:
        child_main(args.child)
        return 0
    sizes = parse_sizes(args.size)
    extras = parse_extras(args.extras)
    variants = [v for v in args.variants.split(",") if v]
    if set(variants) - set(CORE):
        raise SystemExit(f"--variants: choose from {', '.join(CORE)}")
    extras_sizes = args.extras_size or [min(sizes)]
    data_arg = args.data or default_data()
    out = sys.stdout

    def log(message: str) -> None:
        print(message, file=sys.stderr if args.json else out, flush=True)

    report: dict[str, Any] = {
        "machine": machine(),
        "command": "python -m tools.bench " + " ".join(argv or sys.argv[1:]),
    }
    with tempfile.TemporaryDirectory(prefix="lab-bench-") as tmp:
        work = Path(tmp)
        counts = parse_train_images(args.train_images, sizes)
        folders = {n: prepare_data(data_arg, n, args.seed, sizes, work) for n in sorted(set(counts.values()))}
        source = next(iter(folders.values()))[1]
        report["data"] = {size: folders[counts[size]][2] for size in sizes}
        for size in sizes:
            log(f"data at {size} px: {folders[counts[size]][2]}")
        spec = {
            "batch_size": args.batch_size,
            "epochs": args.epochs,
            "warmup": args.warmup,
            "seed": args.seed,
        }
        results = []
        if not args.no_pipelines:
            for size in sizes:
                chosen = extras if size in extras_sizes else []
                size_spec = {**spec, "data": str(folders[counts[size]][0])}
                result = bench_size(size, variants, chosen, size_spec, args.timeout, log, work)
                result.update(batch_size=args.batch_size, epochs=args.epochs, warmup=args.warmup)
                results.append(result)
                print_size_table(result, sys.stderr if args.json else out)
        if args.page:
            report["page"] = measure_page(work, args, log)
        if args.memory:
            report["memory"] = measure_memory(source, args, log)
    versions = next((r for res in results for r in res["runs"].values() if "tensorflow" in r), {})
    report["machine"].update(
        tensorflow=versions.get("tensorflow"), keras=versions.get("keras"), loadavg_end=os.getloadavg()
    )
    if results:
        report = {**{k: v for k, v in results[0].items() if k != "runs"}, **report, "results": results}
    if args.json:
        print(json.dumps(report, default=_jsonable))
    return 0


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, tuple):
        return list(value)
    return str(value)
