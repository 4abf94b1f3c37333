"""The time-series writer's disk spool (collector/store/spool.py) against a real
VictoriaMetrics: lines are on disk when submit_many() returns, survive a SIGKILL of
the process and a restart, are sent oldest first and exactly once (the cursor), the
size bound drops the oldest segments and counts them, and damaged files are reported
in one line each and skipped."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from collector import config as collector_config
from collector.ingest import Sample
from collector.store.spool import Spool
from collector.store.timeseries import DROP_REASONS, TimeSeriesWriter, to_lines
from cwatch.config import ConfigError
from cwatch.procs import free_port
from cwatch.tsdb_proc import VictoriaMetrics

REPO = Path(__file__).resolve().parents[1]
SITE = "spool-xa"
DAY = 86_400.0
T0 = round(time.time() - 2 * DAY)  # backfill: nothing collides with "now"


def status(k: int, device: str = "pc-01") -> Sample:
    """A one-line sample at its own second (T0 + k)."""
    return Sample(SITE, device, "status", T0 + k, k, {"state": "online", "interval_s": 60})


def metrics(k: int, device: str = "pc-01") -> Sample:
    """A several-line sample (host, disk, net) at T0 + k."""
    return Sample(SITE, device, "metrics", T0 + k, k, {
        "interval_s": 60, "cpu_percent": float(k % 100), "mem_total_bytes": 4 << 30,
        "disks": [{"mount": "C:\\", "fstype": "NTFS", "used_percent": 50.0}],
        "net": [{"name": "Ethernet", "rx_bytes_per_s": 1000.0 + k}]})


def lines_of(samples: list[Sample]) -> int:
    return sum(len(to_lines(s)) for s in samples)


def new_writer(url: str, spool: Path | None, **kwargs: Any) -> TimeSeriesWriter:
    kwargs.setdefault("flush_interval_s", 0.05)
    kwargs.setdefault("retry_initial_s", 0.1)
    kwargs.setdefault("retry_max_s", 0.5)
    return TimeSeriesWriter(url, "cwatch", "cwatch", "", CollectorRegistry(), spool_dir=spool,
                            **kwargs)


def value(writer: TimeSeriesWriter, name: str, **labels: str) -> float:
    return writer.registry.get_sample_value(name, labels) or 0.0


def dropped(writer: TimeSeriesWriter) -> dict[str, float]:
    return {reason: value(writer, "cwatch_tsdb_lines_dropped_total", reason=reason)
            for reason in DROP_REASONS}


def down_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def stamps(vm: VictoriaMetrics, metric: str = "cwatch_status_online") -> Counter[int]:
    """How many times each second T0 + k is stored, all devices together."""
    out: Counter[int] = Counter()
    for row in vm.export(f'{{__name__="{metric}",site="{SITE}"}}', end=time.time()):
        out.update(round(ts / 1000 - T0) for ts in row["timestamps"])
    return out


def segments(spool: Path) -> list[str]:
    return sorted(p.name for p in spool.iterdir() if p.suffix in (".seg", ".open"))


# --- on disk, written, gone -----------------------------------------------------------


def test_lines_are_on_disk_when_submit_many_returns(tmp_path: Path,
                                                    writers: list[TimeSeriesWriter]) -> None:
    spool = tmp_path / "spool"
    writer = new_writer(down_url(), spool)
    writers.append(writer)
    batch = [metrics(k) for k in range(50)]
    writer.submit_many(batch)
    assert value(writer, "cwatch_tsdb_queue_lines") == lines_of(batch)
    assert value(writer, "cwatch_tsdb_spool_bytes") == sum(
        p.stat().st_size for p in spool.glob("*.open")) > 0
    # What a kill would leave: a copy of the folder, opened by another spool.
    copy = tmp_path / "copy"
    shutil.copytree(spool, copy, ignore=shutil.ignore_patterns("lock"))
    lost: list[tuple[str, int, str]] = []
    other = Spool(copy, 1 << 30, lambda *a: lost.append(a))
    try:
        assert other.pending == lines_of(batch) and not lost
        taken = other.take(10_000)
        assert taken is not None and isinstance(taken.body, bytes)
        assert taken.body.decode().split("\n") == [x for s in batch for x in to_lines(s)]
    finally:
        other.close()


def test_spooled_lines_are_written_once_and_the_spool_empties(
        victoria_metrics: VictoriaMetrics, tmp_path: Path,
        writers: list[TimeSeriesWriter]) -> None:
    spool = tmp_path / "spool"
    writer = new_writer(victoria_metrics.url, spool, batch_size=7)
    writers.append(writer)
    writer.start()
    batches = [[status(k) for k in range(start, start + 20)] for start in range(0, 200, 20)]
    for batch in batches:
        writer.submit_many(batch)
    assert writer.flush(20)
    assert value(writer, "cwatch_tsdb_lines_written_total") == 200
    assert value(writer, "cwatch_tsdb_queue_lines") == 0
    assert stamps(victoria_metrics) == Counter(range(200))
    writer.stop()
    # Everything written: no segment is left, only the cursor and the lock file.
    assert segments(spool) == []
    assert value(writer, "cwatch_tsdb_spool_bytes") == 0
    assert sum(dropped(writer).values()) == 0


# --- a SIGKILL, then a restart --------------------------------------------------------

CHILD = textwrap.dedent("""
    import os, sys, time
    from prometheus_client import CollectorRegistry
    from collector.ingest import Sample
    from collector.store.timeseries import TimeSeriesWriter
    url, spool, first, count, t0, flush = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
    writer = TimeSeriesWriter(url, "cwatch", "cwatch", "", CollectorRegistry(),
                              spool_dir=spool, flush_interval_s=0.05, batch_size=30,
                              retry_initial_s=0.05, retry_max_s=0.2)
    writer.start()
    for start in range(first, first + count, 25):  # the store worker's batches
        writer.submit_many([Sample("spool-xa", "pc-01", "status", t0 + k, k,
                                   {"state": "online", "interval_s": 60})
                            for k in range(start, min(start + 25, first + count))])
    if flush:  # the database is up: wait until it has everything
        assert writer.flush(20)
    print("ready", writer.queued_lines, flush=True)
    time.sleep(600)  # until SIGKILL
""")


def run_and_kill(url: str, spool: Path, first: int, count: int, flush: bool) -> int:
    """A process that spools `count` samples (and writes them all, with flush), then
    SIGKILL: no stop(), no segment closed by anyone. The lines it had left."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, url, str(spool), str(first),
                             str(count), str(T0), str(int(flush))], cwd=REPO,
                            stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("ready"), line
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    return int(line.split()[1])


def test_a_killed_writer_resumes_and_writes_everything_once(
        victoria_metrics: VictoriaMetrics, tmp_path: Path,
        writers: list[TimeSeriesWriter]) -> None:
    spool = tmp_path / "spool"
    # 1. Database up: everything written before the kill; the cursor says so.
    assert run_and_kill(victoria_metrics.url, spool, 0, 300, flush=True) == 0
    assert segments(spool) == ["0000000000000001.open"]
    # 2. Database down: the next process finds segment 1 written (the cursor), and its
    #    own lines stay in the segment it had open when it was killed.
    assert run_and_kill(down_url(), spool, 300, 400, flush=False) == 400
    assert segments(spool) == ["0000000000000002.open"]

    writer = new_writer(victoria_metrics.url, spool)
    writers.append(writer)
    assert value(writer, "cwatch_tsdb_queue_lines") == 400
    writer.start()
    assert writer.flush(20)
    assert value(writer, "cwatch_tsdb_lines_written_total") == 400
    assert stamps(victoria_metrics) == Counter(range(700))  # each exactly once
    assert sum(dropped(writer).values()) == 0


def test_a_stop_with_the_database_down_keeps_the_lines_for_the_next_start(
        victoria_metrics: VictoriaMetrics, tmp_path: Path,
        writers: list[TimeSeriesWriter]) -> None:
    spool = tmp_path / "spool"
    writer = new_writer(down_url(), spool, retry_initial_s=20)
    writer.start()
    writer.submit_many([status(k) for k in range(100)])
    deadline = time.monotonic() + 10
    while not value(writer, "cwatch_tsdb_write_errors_total", reason="unreachable"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    started = time.monotonic()
    writer.stop(timeout_s=5)
    assert time.monotonic() - started < 1.0  # a spool need not wait for the database
    assert sum(dropped(writer).values()) == 0
    assert segments(spool) == ["0000000000000001-100.seg"]

    again = new_writer(victoria_metrics.url, spool)
    writers.append(again)
    again.start()
    assert again.flush(20)
    assert stamps(victoria_metrics) == Counter(range(100))


# --- the bound ------------------------------------------------------------------------


def test_a_full_spool_drops_the_oldest_segments_and_counts_them(
        victoria_metrics: VictoriaMetrics, tmp_path: Path,
        writers: list[TimeSeriesWriter]) -> None:
    bound = 16_384
    writer = new_writer(victoria_metrics.url, tmp_path / "spool", spool_max_bytes=bound)
    writers.append(writer)
    submitted = [metrics(k, device=f"pc-{k % 7:02d}") for k in range(3000)]
    for start in range(0, len(submitted), 10):  # the database is "down": not started
        writer.submit_many(submitted[start:start + 10])
        assert value(writer, "cwatch_tsdb_spool_bytes") <= bound
    lost = dropped(writer)["queue_full"]
    assert lost > 0
    assert value(writer, "cwatch_tsdb_queue_lines") == lines_of(submitted) - lost
    segments_left = len(segments(tmp_path / "spool"))
    writer.start()
    assert writer.flush(30)
    written = value(writer, "cwatch_tsdb_lines_written_total")
    assert written + lost == lines_of(submitted)
    # A batch spans segments: a backlog goes out in full batches, not one per segment.
    assert segments_left > 5
    assert value(writer, "cwatch_tsdb_write_seconds_count") == -(-written // 5000)
    # The newest samples are all there, each once; the dropped ones are the oldest.
    found = stamps(victoria_metrics, "cwatch_host_interval_s")
    assert set(found.values()) == {1}
    kept = sorted(found)
    assert kept == list(range(kept[0], 3000))
    assert lines_of(submitted[:kept[0]]) == lost


def test_rotation_and_drops_race_the_writer_without_losing_count(
        victoria_metrics: VictoriaMetrics, tmp_path: Path,
        writers: list[TimeSeriesWriter]) -> None:
    # A tiny bound: segments of ~500 bytes rotate and are dropped while the writer thread
    # reads them; whatever happens, each line is written once or counted dropped.
    writer = new_writer(victoria_metrics.url, tmp_path / "spool", spool_max_bytes=8_000,
                        batch_size=40)
    writers.append(writer)
    writer.start()
    submitted = [status(k, device=f"pc-{k % 5:02d}") for k in range(6000)]
    for start in range(0, len(submitted), 3):
        writer.submit_many(submitted[start:start + 3])
    assert writer.flush(30)
    written = value(writer, "cwatch_tsdb_lines_written_total")
    lost = dropped(writer)
    assert written + lost["queue_full"] == 6000 and lost["spool_error"] == 0
    found = stamps(victoria_metrics)
    assert sum(found.values()) == written and set(found.values()) == {1}


# --- damaged files --------------------------------------------------------------------


def make_segments(spool: Path, groups: list[list[Sample]]) -> list[Path]:
    """One closed segment per group, as a writer leaves them."""
    made = Spool(spool, 1 << 30, lambda *a: None, segment_bytes=1)
    for group in groups:
        made.append([(len(to_lines(s)), "\n".join(to_lines(s))) for s in group])
    made.close()
    return sorted(spool.glob("*.seg"))


def test_damaged_spool_files_are_reported_in_one_line_and_skipped(
        victoria_metrics: VictoriaMetrics, tmp_path: Path, writers: list[TimeSeriesWriter],
        caplog: pytest.LogCaptureFixture) -> None:
    spool = tmp_path / "spool"
    groups = [[status(k) for k in range(g * 1000, g * 1000 + 400)] for g in range(5)]
    good, truncated, garbled, short, cut = make_segments(spool, groups)
    data = cut.read_bytes()
    cut.unlink()
    cut = spool / "0000000000000005.open"  # a kill -9 in the middle of a write
    cut.write_bytes(data[:len(data) * 7 // 10])
    data = truncated.read_bytes()
    truncated.write_bytes(data[:len(data) // 2])  # a disk that lost the end
    data = bytearray(garbled.read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = os.urandom(64)  # bit rot
    garbled.write_bytes(bytes(data))
    short.rename(short.with_name(short.name.replace("-400.seg", "-500.seg")))  # lines lie
    (spool / "0000000000000007.open").write_bytes(b"\x00" * 4096)  # a power cut's zeros
    (spool / "0000000000000008-10.seg").write_bytes(b"not a segment at all")
    (spool / "cursor").write_text("what?")
    (spool / "notes.txt").write_text("someone's file")

    with caplog.at_level(logging.INFO, logger="collector.store"):
        writer = new_writer(victoria_metrics.url, spool)
        writers.append(writer)
        writer.start()
        assert writer.flush(20)
        writer.stop()
    found = stamps(victoria_metrics)
    written = value(writer, "cwatch_tsdb_lines_written_total")
    lost = dropped(writer)["spool_error"]
    assert written == sum(found.values()) and set(found.values()) == {1}
    assert set(range(0, 400)) <= set(found)  # the good segment, whole
    assert set(range(3000, 3400)) <= set(found)  # the one whose name says 500: its 400
    # Whatever was before the damage was sent; the rest is counted, not guessed.
    assert 0 < len(found & Counter(range(1000, 1400))) < 400
    assert len(found & Counter(range(2000, 2400))) < 400
    # The cut write: its whole records are kept (that batch was never acknowledged,
    # the broker sends it again), the rest is not counted lost: it was never promised.
    recovered = len(found & Counter(range(4000, 4400)))
    assert 0 < recovered < 400
    assert written + lost == 4 * 400 + 100 + 10 + recovered  # what the names promised
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("the last write is incomplete" in message for message in problems)
    for name in (truncated.name, garbled.name, cut.name, "0000000000000007.open",
                 "0000000000000008-10.seg", "notes.txt", "cursor",
                 short.name.replace("-400.seg", "-500.seg")):
        assert sum(name in message for message in problems) == 1, (name, problems)
    assert all("\n" not in message for message in problems)
    assert segments(spool) == [] and (spool / "notes.txt").exists()


# --- cost, config, one folder per collector -------------------------------------------


def test_submit_many_costs_a_few_microseconds_a_line(tmp_path: Path,
                                                     writers: list[TimeSeriesWriter]) -> None:
    writer = new_writer(down_url(), tmp_path / "spool")
    writers.append(writer)
    writer.start()
    batches = [[metrics(k + j) for j in range(20)] for k in range(0, 4000, 20)]
    converted = time.perf_counter()
    for batch in batches:
        for sample in batch:
            to_lines(sample)
    converted = time.perf_counter() - converted
    started = time.perf_counter()
    for batch in batches:
        writer.submit_many(batch)
    elapsed = time.perf_counter() - started
    lines = sum(lines_of(batch) for batch in batches)
    spool_us = (elapsed - converted) / lines * 1e6
    print(f"\nsubmit_many: {elapsed / lines * 1e6:.1f} us/line, of which the spool "
          f"{spool_us:.1f} (to_lines the rest)")
    assert spool_us < 10, f"{spool_us:.1f} us a line"  # generous: a shared 2-core CI box
    assert value(writer, "cwatch_tsdb_queue_lines") == lines


def test_spool_config_default_bound_and_errors(tmp_path: Path) -> None:
    config = collector_config.load(None, {"collector": {"state_path": "/var/lib/x/state.db"}})
    assert config.tsdb.spool_path(config.collector.state_path) == (
        "/var/lib/x/state.db.tsdb-spool")
    assert config.tsdb.spool_max_bytes == 6 << 30
    path = tmp_path / "collector.toml"
    path.write_text("[tsdb]\nspool_max_bytes = 1000\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        collector_config.load(path, {})
    assert str(caught.value) == (f"{path}: [tsdb] spool_max_bytes must be at least 1048576 "
                                 "(1 MiB), got 1000")
    # A folder that cannot be made: the collector says so in one line and exits.
    (tmp_path / "file").write_text("")
    path.write_text(f'[collector]\nstate_path = "{tmp_path / "state.db"}"\n'
                    f'[tsdb]\nspool_dir = "{tmp_path / "file" / "spool"}"\n', encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "cwatch", "collector", "--config", str(path)],
                            capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 1, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.endswith(f"cannot start: [tsdb] spool_dir: cannot create "
                         f"{tmp_path / 'file' / 'spool'}: Not a directory"), line


def test_one_spool_folder_serves_one_writer(tmp_path: Path,
                                            writers: list[TimeSeriesWriter]) -> None:
    writers.append(new_writer(down_url(), tmp_path / "spool"))
    with pytest.raises(ConfigError, match="spool_dir: .* is in use by another process"):
        new_writer(down_url(), tmp_path / "spool")
