"""One size: every variant measured, the figures keyed by variant, the ratios, the extras, and its table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tools.bench.group import plan_groups, run_group
from tools.bench.variants import CORE, EXTRAS, VARIANTS


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


RATIOS = {
    "lab_aug_over_lab_plain": ("lab_aug", "lab_plain"),
    "lab_aug_over_floor": ("lab_aug", "floor"),
    "lab_aug_over_course_aug": ("lab_aug", "course_aug"),
    "lab_plain_over_course_plain": ("lab_plain", "course_plain"),
    "lab_plain_over_floor": ("lab_plain", "floor"),
    "course_aug_over_course_plain": ("course_aug", "course_plain"),
}


def bench_size(
    size: int, variants: list[str], extras: list[str], spec: dict[str, Any], timeout: float, log, log_dir: Path
) -> dict[str, Any]:
    """Every variant at one size, each in its own child; figures keyed by variant, and the ratios."""
    spec = {**spec, "size": size}
    runs: dict[str, dict[str, Any]] = {}
    extra_bases: dict[str, dict[str, Any]] = {}
    for group in plan_groups(variants, extras):
        log(f"  {size} px: {', '.join(group)} side by side, one epoch each in turn")
        group_runs = run_group([VARIANTS.get(n) or EXTRAS[n] for n in group], spec, timeout, log, log_dir)
        for name, run in group_runs.items():
            log(f"  {name}: {_run_text(run)}")
            if name in runs and name in CORE:
                run = {**run, "group": "extras"}
                extra_bases[name] = run  # a base measured again beside its extras
            else:
                runs[name] = run

    def pick(key: str, names) -> dict[str, float | None]:
        return {name: runs.get(name, {}).get(key) for name in names}

    result: dict[str, Any] = {"size": size}
    for key in ("epoch_seconds", "epoch_seconds_min", "cpu_seconds", "images_per_second", "peak_mb"):
        result[key] = pick(key, CORE)
    result["first_epoch_seconds"] = pick("first_epoch_seconds", CORE)
    result["input_seconds"] = pick("input_seconds", CORE)
    result["images"] = next((r["images"] for r in runs.values() if "images" in r), None)
    result["ratios"] = {
        k: _ratio(result["epoch_seconds"][a], result["epoch_seconds"][b]) for k, (a, b) in RATIOS.items()
    }
    result["cpu_ratios"] = {
        k: _ratio(result["cpu_seconds"][a], result["cpu_seconds"][b]) for k, (a, b) in RATIOS.items()
    }
    minima = result["epoch_seconds_min"]
    result["min_ratios"] = {k: _ratio(minima[a], minima[b]) for k, (a, b) in RATIOS.items()}
    result["extras"] = {}
    for name in extras:
        # Against the base measured beside it (same spell of machine load), else the core one.
        run = runs[name]
        base = extra_bases.get(EXTRAS[name].base) or runs.get(EXTRAS[name].base, {})
        result["extras"][name] = {
            "what": EXTRAS[name].what,
            "base": EXTRAS[name].base,
            "epoch_seconds": run.get("epoch_seconds"),
            "cpu_seconds": run.get("cpu_seconds"),
            "peak_mb": run.get("peak_mb"),
            "input_seconds": run.get("input_seconds"),
            "jit_compile": run.get("jit_compile"),
            "base_epoch_seconds": base.get("epoch_seconds"),
            "base_cpu_seconds": base.get("cpu_seconds"),
            "over_base": _ratio(run.get("epoch_seconds"), base.get("epoch_seconds")),
            "min_over_base": _ratio(run.get("epoch_seconds_min"), base.get("epoch_seconds_min")),
            "cpu_over_base": _ratio(run.get("cpu_seconds"), base.get("cpu_seconds")),
            "error": run.get("error"),
        }
    result["runs"] = runs
    result["extra_bases"] = extra_bases
    return result


def _run_text(run: dict[str, Any]) -> str:
    if "error" in run:
        return f"failed: {run['error']}"
    epochs = ", ".join(f"{s:.2f}" for s in run["epoch_seconds_all"])
    return (
        f"epochs {epochs} s (warm-up first); CPU {run['cpu_seconds']:.2f} s/epoch; "
        f"input alone {run['input_seconds']:.2f} s; peak {run['peak_mb']:.0f} MB"
    )


def _fmt(value: float | None, pattern: str) -> str:
    return format("—", ">" + pattern.split(".")[0]) if value is None else format(value, pattern)


def print_size_table(result: dict[str, Any], out) -> None:
    size = result["size"]
    print(f"\n{size} px, {result['images']} training images, batch {result.get('batch_size', 20)}", file=out)
    header = f"{'variant':<18} {'s/epoch':>8} {'CPU s':>7} {'img/s':>7} {'1st ep':>7} {'input s':>8} {'peak MB':>8}"
    print(header, file=out)
    print("-" * len(header), file=out)
    runs = result["runs"]
    for name in runs:
        run = runs[name]
        if "error" in run:
            print(f"{name:<18} failed: {run['error']}", file=out)
            continue
        print(
            f"{name:<18} {run['epoch_seconds']:>8.2f} {run['cpu_seconds']:>7.2f} {run['images_per_second']:>7.0f} "
            f"{run['first_epoch_seconds']:>7.2f} {run['input_seconds']:>8.2f} {run['peak_mb']:>8.0f}",
            file=out,
        )
    print(f"{'ratio':<30} {'median':>7} {'min':>7} {'CPU':>7}", file=out)
    for key, value in result["ratios"].items():
        print(
            f"{key:<30} {_fmt(value, '7.2f')} {_fmt(result['min_ratios'][key], '7.2f')} "
            f"{_fmt(result['cpu_ratios'][key], '7.2f')}",
            file=out,
        )
    for name, extra in result["extras"].items():
        print(
            f"{name + '_over_' + extra['base']:<30} {_fmt(extra['over_base'], '7.2f')} "
            f"{_fmt(extra['min_over_base'], '7.2f')} {_fmt(extra['cpu_over_base'], '7.2f')}  {extra['what']}",
            file=out,
        )
