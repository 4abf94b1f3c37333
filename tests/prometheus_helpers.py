"""A private Prometheus (the Debian `prometheus` package) on a free loopback port,
scraping given targets every second; never touches a system instance."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from cwatch.procs import end_process, find_binary, free_port


class Prometheus:
    def __init__(self, workdir: Path, targets: list[str], job: str = "cwatch-collector") -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.targets = targets
        self.job = job
        self.binary = find_binary("prometheus", "prometheus", ["/usr/bin", "/usr/local/bin"])
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 30.0) -> Prometheus:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": self.job, "static_configs": [
                {"targets": self.targets}]}]}), encoding="utf-8")
        with open(self.workdir / "prometheus.log", "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, f"--config.file={config}",
                 f"--storage.tsdb.path={self.workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}; see "
                                   f"{self.workdir / 'prometheus.log'}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"prometheus not ready on {self.url} after {timeout_s:g} s")

    def stop(self) -> None:
        if self.proc is not None:
            end_process(self.proc, False, grace_s=10)
            self.proc = None

    def scrapes(self) -> int:
        """Successful scrapes of the job so far (0 while none)."""
        result = api_get(self.url, "/api/v1/query",
                         {"query": f'count_over_time(up{{job="{self.job}"}}[10m])'})
        return int(float(result[0]["value"][1])) if result else 0


def api_get(base_url: str, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The `data.result` of a Prometheus-API call (Prometheus and VictoriaMetrics alike);
    an error names the server's message."""
    url = f"{base_url}{path}?{urllib.parse.urlencode(params, doseq=True)}"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:300]
        raise AssertionError(f"HTTP {exc.code}: {detail}") from None
    assert body["status"] == "success", body
    return body["data"] if path.startswith("/api/v1/label/") else body["data"]["result"]
