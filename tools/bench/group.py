"""The parent's side: variants side by side in child processes, one epoch each in turn, and how they are grouped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tools.bench.child import MARK
from tools.bench.variants import CORE, EXTRAS, Variant
from tools.paths import REPO


class _Child:
    """One variant's child process, driven one epoch at a time."""

    def __init__(self, variant: Variant, spec: dict[str, Any], log_dir: Path) -> None:
        import queue

        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env["TF_ENABLE_ONEDNN_OPTS"] = "1" if variant.onednn else "0"
        self.variant = variant
        self.log_path = log_dir / f"{variant.name}-{spec['size']}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in close()
        payload = json.dumps({**spec, "variant": asdict(variant)})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tools.bench", "--child", payload],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self.messages: queue.Queue = queue.Queue()
        self.result: dict[str, Any] | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            if line.startswith(MARK):
                self.messages.put(json.loads(line[len(MARK) :]))
        self.messages.put({"exit": self.process.wait()})

    def wait(self, timeout: float) -> dict[str, Any]:
        """The child's next message: {"ready": epoch}, {"result": ...}; an error as {"error": ...}."""
        import queue

        try:
            message = self.messages.get(timeout=timeout)
        except queue.Empty:
            self.close()
            message = {"error": f"no answer within {timeout:.0f} s"}
        if "exit" in message:
            self._log.flush()
            tail = " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-3:])
            message = {"error": f"exit code {message['exit']}: {tail}"}
        if "error" in message:
            self.result = {"variant": self.variant.name, "error": message["error"]}
        elif "result" in message:
            self.result = message["result"]
        return message

    def go(self) -> None:
        try:
            self.process.stdin.write("go\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._log.close()


def run_group(variants: list[Variant], spec: dict[str, Any], timeout: float, log, log_dir: Path) -> dict:
    """Run `variants` side by side, one epoch at a time in turn, so that a busy spell on a shared machine
    falls on every variant alike; each child reports its own time and peak memory."""
    children: dict[str, _Child] = {}
    try:
        for variant in variants:  # started one after the other: TensorFlow's import is heavy
            child = children[variant.name] = _Child(variant, spec, log_dir)
            child.wait(timeout)
        rounds = spec["warmup"] + spec["epochs"]
        names = list(children)
        for round_index in range(rounds + 1):  # the last turn times the input pipeline alone
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                child = children[name]
                if child.result is not None:
                    continue
                started = time.perf_counter()
                child.go()
                child.wait(timeout)
                if round_index < rounds:
                    what = "warm-up" if round_index < spec["warmup"] else "epoch"
                    log(
                        f"    {spec['size']} px {name:<18} {what} {round_index + 1}: {time.perf_counter() - started:.2f} s"
                    )
        return {name: child.result or {"variant": name, "error": "no result"} for name, child in children.items()}
    finally:
        for child in children.values():
            child.close()


def plan_groups(variants: list[str], extras: list[str], most: int = 6) -> list[list[str]]:
    """The core variants side by side; then each extra beside its base (measured again), at most `most`."""
    groups = [list(variants)] if variants else []
    current: list[str] = []
    for base in CORE:
        mine = [e for e in extras if EXTRAS[e].base == base]
        while mine:
            room = most - len(current) - (base not in current)
            if room < 1:
                groups.append(current)
                current = []
                continue
            if base not in current:
                current.append(base)
            current += mine[:room]
            mine = mine[room:]
    if current:
        groups.append(current)
    return groups
