"""`cwatch demo` runs the whole chain on this machine and leaves nothing behind."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import psutil


def test_demo_runs_and_cleans_up(tmp_path: Path) -> None:
    before = {p.pid for p in psutil.process_iter()}
    result = subprocess.run(
        [sys.executable, "-m", "cwatch", "demo", "--duration", "8", "--output",
         str(tmp_path / "demo")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    counts = re.findall(r"accepted\s+(\d+)\s+rejected\s+(\d+)\s+devices seen\s+(\d+)",
                        result.stdout)
    accepted, rejected, devices = map(int, counts[-1])
    assert accepted >= 3  # status, inventory and at least one metrics message
    assert rejected == 0
    assert devices == 1
    assert "nothing left running" in result.stdout
    leftovers = [p for p in psutil.process_iter(["pid", "cmdline"]) if p.pid not in before
                 and "cwatch-demo-broker" in " ".join(p.info["cmdline"] or [])]
    assert leftovers == []
