"""Helpers for agent tests: configs that probe only loopback, and a collecting sink
that de-duplicates by (site, device, seq) the way the collector will."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

from collector.ingest import Sample


def agent_toml(path: Path, broker_url: str, data_dir: Path, *, interval_s: float = 1,
               probes: bool = False, extra: str = "") -> Path:
    """A config that never sends traffic off this machine: probes, when on, reach only the
    collector on loopback (no gateway, no public DNS, no portal)."""
    path.write_text(f"""
[agent]
site = "an-phuoc"
device = "pc-01"
interval_s = {interval_s}
probe_interval_s = 5
data_dir = "{data_dir}"
[broker]
url = "{broker_url}"
reconnect_max_s = 2
[probes]
enabled = {"true" if probes else "false"}
gateway = ""
public_dns = ""
collector_host = "127.0.0.1"
timeout_s = 3
[smart]
enabled = false
{extra}
""", encoding="utf-8")
    return path


class Received:
    """Everything a collector accepted, in arrival order, with duplicates counted."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.by_key: dict[tuple[str, str, int], Sample] = {}
        self.duplicates: dict[str, int] = {}
        self._lock = threading.Lock()
        self.arrived = queue.Queue()

    def __call__(self, sample: Sample) -> None:
        with self._lock:
            self.samples.append(sample)
            key = (sample.site, sample.device, sample.seq)
            if key in self.by_key:
                self.duplicates[sample.channel] = self.duplicates.get(sample.channel, 0) + 1
                assert self.by_key[key].ts == sample.ts, "same seq, different sample"
            self.by_key[key] = sample
        self.arrived.put(sample)

    def seqs(self, channel: str) -> set[int]:
        with self._lock:
            return {seq for (_, _, seq), s in self.by_key.items() if s.channel == channel}

    def wait_for(self, predicate, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)
