"""A private VictoriaMetrics as a child process on a free loopback port, for the tests
and the demo; never touches a system instance.

Flags that matter for tests:

* `-retentionPeriod=100y`: with the default (1 month) VictoriaMetrics answers 204 to a
  write of older samples and silently drops them, so backfill would look lost.
* `-search.latencyOffset=0s` and `-search.disableCache`: samples just written are
  returned by the next query, not after a minute or from a stale cache.
* VictoriaMetrics still buffers fresh samples in memory for about a second before
  they can be searched; `query()` calls `/internal/force_flush` first.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from cwatch.procs import end_process, find_binary, free_port, log_tail


class VictoriaMetrics:
    """Single-node VictoriaMetrics; stop() then start() again keeps port and data."""

    def __init__(self, workdir: Path, port: Optional[int] = None,
                 extra_args: Sequence[str] = ()) -> None:
        self.workdir = workdir
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.proc = None  # type: Optional[subprocess.Popen]
        self.binary = find_binary("victoria-metrics", "victoria-metrics",
                                  ["/usr/bin", "/usr/local/bin"])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def data_path(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "victoria-metrics.log"

    def start(self, timeout_s: float = 30.0) -> VictoriaMetrics:
        self.data_path.mkdir(parents=True, exist_ok=True)
        args = [self.binary,
                f"-httpListenAddr={self.host}:{self.port}",
                f"-storageDataPath={self.data_path}",
                "-retentionPeriod=100y",
                "-search.latencyOffset=0s",
                "-search.disableCache",
                *self.extra_args]
        # A file, not a pipe: nobody reads a pipe, and a full one would stall the server.
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        self._wait_healthy(timeout_s)
        return self

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"victoria-metrics exited with status {self.proc.returncode} before it was "
                    f"healthy; see {self.log_path}:\n{self._log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1.0) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"victoria-metrics not healthy on {self.url} after {timeout_s:g} s")

    def _log_tail(self, lines: int = 20) -> str:
        return log_tail(self.log_path, lines)

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (VictoriaMetrics then writes its in-memory data to disk) or SIGKILL."""
        if self.proc is None:
            return
        end_process(self.proc, kill, grace_s=20)
        self.proc = None

    # --- HTTP helpers ------------------------------------------------------------------

    def _get(self, path: str, params: Optional[Dict[str, Any]] = None) -> Any:
        url = self.url + path
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        try:
            with urllib.request.urlopen(url, timeout=30.0) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:500]
            raise RuntimeError(f"GET {path} -> HTTP {exc.code}: {detail}") from None
        return json.loads(body) if body else None

    def force_flush(self) -> None:
        """Make every sample received so far searchable now."""
        with urllib.request.urlopen(self.url + "/internal/force_flush", timeout=30.0):
            pass

    def query(self, promql: str, time: Optional[float] = None,
              flush: bool = True) -> List[Dict[str, Any]]:
        """Instant query: the `result` list of /api/v1/query ({"metric": {...},
        "value": [ts, "text"]} per series)."""
        if flush:
            self.force_flush()
        params = {"query": promql}  # type: Dict[str, Any]
        if time is not None:
            params["time"] = f"{time:.3f}"
        return self._result(self._get("/api/v1/query", params))

    def query_range(self, promql: str, start: float, end: float, step: float,
                    flush: bool = True) -> List[Dict[str, Any]]:
        """Range query: the `result` list of /api/v1/query_range ({"metric": {...},
        "values": [[ts, "text"], ...]} per series)."""
        if flush:
            self.force_flush()
        params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}",
                  "step": f"{step:g}s"}
        return self._result(self._get("/api/v1/query_range", params))

    def export(self, match: str = '{__name__=~".+"}', start: float = 0,
               end: Optional[float] = None) -> List[Dict[str, Any]]:
        """Raw samples as stored, one {"metric": {...}, "values": [...], "timestamps":
        [ms, ...]} per series (/api/v1/export), for exact comparisons."""
        self.force_flush()
        params = {"match[]": match, "start": f"{start:.3f}"}  # type: Dict[str, Any]
        if end is not None:
            params["end"] = f"{end:.3f}"
        url = self.url + "/api/v1/export?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=30.0) as response:
            text = response.read().decode("utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def metric_names(self) -> List[str]:
        """Every metric name stored (all time)."""
        self.force_flush()
        data = self._get("/api/v1/label/__name__/values", {"start": "0"})
        return list(data["data"])

    @staticmethod
    def _result(answer: Dict[str, Any]) -> List[Dict[str, Any]]:
        if answer.get("status") != "success":
            raise RuntimeError(f"query failed: {answer}")
        return list(answer["data"]["result"])
