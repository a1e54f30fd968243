"""Does requirements.txt resolve to installable wheels on the platforms the lab promises, without installing them?

    python tools/check_requirements.py                  # every target below
    python tools/check_requirements.py --target macos-arm64-py3.12 --keep wheels/

For each target the requirement lines' environment markers are evaluated for that target's environment (pip would
evaluate them for this machine), then `pip download --only-binary=:all: --platform ... --python-version ...
--implementation cp` resolves them, dependencies included, into a temporary folder that is deleted afterwards.
Prints one line per target (resolved or failed, with the resolved versions of the named packages) and exits 1 if any
target failed. Needs the network (a package index) and the `packaging` library; downloads several hundred MB per target.

Limit: pip still evaluates the markers of the *dependencies* (tensorflow's own requirements) for this machine, so a
target's transitive set can differ slightly from what an install there would pick.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Target:
    platforms: tuple[str, ...]  # pip --platform tags (pip widens a macOS tag to older macOS versions itself)
    python: str  # "3.12"
    sys_platform: str
    platform_system: str
    platform_machine: str
    os_name: str

    def environment(self) -> dict[str, str]:
        return {
            "python_version": self.python,
            "python_full_version": f"{self.python}.0",
            "sys_platform": self.sys_platform,
            "platform_system": self.platform_system,
            "platform_machine": self.platform_machine,
            "os_name": self.os_name,
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
        }


LINUX = {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix"}
# glibc 2.31 (Debian 11) or newer; pip does not widen a manylinux_2_Y tag to older ones itself, so every tag is named.
MANYLINUX = tuple(f"manylinux_2_{y}_x86_64" for y in range(31, 16, -1)) + tuple(
    f"manylinux{v}_x86_64" for v in ("2014", "2010", "1")
)
TARGETS = {
    # Streamlit Community Cloud: Debian on x86-64, Python 3.12 by default (3.13 can be picked).
    "linux-x86_64-py3.12": Target(MANYLINUX, "3.12", **LINUX),
    "linux-x86_64-py3.13": Target(MANYLINUX, "3.13", **LINUX),
    "macos-arm64-py3.12": Target(("macosx_14_0_arm64",), "3.12", "darwin", "Darwin", "arm64", "posix"),
    "windows-amd64-py3.12": Target(("win_amd64",), "3.12", "win32", "Windows", "AMD64", "nt"),
}


def requirement_lines(path: Path) -> list[Requirement]:
    """The requirements in `path` (comments and blank lines left out; `-r` includes followed)."""
    found = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            found += requirement_lines(path.parent / line.split(maxsplit=1)[1])
        elif line.startswith("-"):
            raise SystemExit(f"{path}: option lines are not supported here: {line}")
        else:
            found.append(Requirement(line))
    return found


def for_target(requirements: list[Requirement], target: Target) -> list[str]:
    """The requirement lines that apply on `target`, without their markers (pip would evaluate them here)."""
    environment = target.environment()
    lines = []
    for req in requirements:
        if req.marker is None or req.marker.evaluate(environment=environment):
            extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
            lines.append(f"{req.name}{extras}{req.specifier}")
    return lines


def resolve(lines: list[str], target: Target, folder: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-cache-dir", "--progress-bar=off"]
    for platform in target.platforms:
        command += ["--platform", platform]
    command += ["--python-version", target.python, "--implementation", "cp", "-d", str(folder), *lines]
    return subprocess.run(command, capture_output=True, text=True)


def versions(folder: Path, names: list[str]) -> dict[str, str]:
    """name -> version of the wheels in `folder` for the named packages."""
    wanted = {canonicalize_name(n) for n in names}
    found = {}
    for wheel in folder.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        if canonicalize_name(name) in wanted:
            found[name] = version
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requirements", type=Path, default=REPO / "requirements.txt")
    parser.add_argument("--target", action="append", choices=sorted(TARGETS), help="repeatable; default: all")
    parser.add_argument("--keep", type=Path, help="keep the wheels in KEEP/<target>/ instead of deleting them")
    args = parser.parse_args(argv)
    requirements = requirement_lines(args.requirements)
    failed = []
    for name in args.target or list(TARGETS):
        target = TARGETS[name]
        lines = for_target(requirements, target)
        folder = args.keep / name if args.keep else Path(tempfile.mkdtemp(prefix=f"wheels-{name}-"))
        folder.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        try:
            answer = resolve(lines, target, folder)
            wheels = sorted(folder.glob("*.whl"))
            size_mb = sum(w.stat().st_size for w in wheels) / 1e6
            found = versions(folder, [re.split(r"[\[<>=!~; ]", line, maxsplit=1)[0] for line in lines])
        finally:
            if not args.keep:
                shutil.rmtree(folder, ignore_errors=True)
        seconds = time.monotonic() - start
        if answer.returncode == 0:
            pinned = ", ".join(f"{n} {v}" for n, v in sorted(found.items(), key=lambda kv: kv[0].lower()))
            print(f"{name}: resolved, {len(wheels)} wheels, {size_mb:.0f} MB, {seconds:.0f} s ({pinned})")
        else:
            failed.append(name)
            reason = [ln for ln in answer.stderr.splitlines() if ln.startswith("ERROR")] or answer.stderr.splitlines()
            print(f"{name}: FAILED for {' '.join(lines)}\n  " + "\n  ".join(reason[-5:]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
