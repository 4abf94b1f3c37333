"""The device state store, fed real decoded Samples (the ingest path the collector uses)."""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from samples import DEVICE, SITE, envelope, topic

from collector.ingest import Decoder, Sample
from collector.store.state import (
    RTT_BUCKETS,
    StateStore,
    percent_bucket,
    percentile_bucket,
    rtt_bucket,
    rtt_bucket_upper_ms,
    utc_day,
)
from cwatch import protocol

DECODER = Decoder()
# Midnight UTC two days ago: sample times must be in the past for the decoder, and
# day-aligned for the roll-up tests.
DAY0 = (int(time.time()) // 86400 - 2) * 86400
T = DAY0 + 6 * 3600  # 06:00 UTC on DAY0


class Clock:
    """The collector's wall clock, moved by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def decode(channel: str, ts: float, seq: int, *, site: str = SITE, device: str = DEVICE,
           **data: Any) -> Sample:
    """One Sample through the real decoder; keyword arguments replace data fields."""
    env = envelope(channel, seq=seq, ts=ts, site=site, device=device)
    env["data"].update(data)
    decoded = DECODER.decode(topic(channel, site, device), protocol.encode(env))
    assert not decoded.rejections, decoded.rejections
    (sample,) = decoded.samples
    return sample


def decode_batch(items: list[tuple[str, float, int, dict[str, Any]]], *, site: str = SITE,
                 device: str = DEVICE) -> list[Sample]:
    """Backfill: (channel, ts, seq, data overrides) items in one batch message."""
    envs = []
    for channel, ts, seq, data in items:
        env = envelope(channel, seq=seq, ts=ts, site=site, device=device)
        env["data"].update(data)
        envs.append(env)
    batch = protocol.envelope(site, device, max(e["ts"] for e in envs) + 60, None,
                              {"items": envs})
    decoded = DECODER.decode(topic("batch", site, device), protocol.encode(batch))
    assert not decoded.rejections, decoded.rejections
    assert all(s.from_batch for s in decoded.samples)
    return decoded.samples


@pytest.fixture
def clock() -> Clock:
    return Clock(T)


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> StateStore:
    state = StateStore(tmp_path / "state.db", clock=clock)
    yield state
    state.close()


def status(ts: float, seq: int, state: str, **kw: Any) -> Sample:
    return decode("status", ts, seq, state=state, **kw)


def test_sqlite_file_is_in_wal_mode(tmp_path: Path) -> None:
    StateStore(tmp_path / "s.db").close()
    with sqlite3.connect(tmp_path / "s.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_first_sight_and_summary_fields(store: StateStore, clock: Clock) -> None:
    store.apply(status(T - 5, 1, "online"))
    clock.now = T + 1
    store.apply(decode("inventory", T - 4, 2))
    clock.now = T + 2
    store.apply(decode("metrics", T, 3))
    dev = store.device(SITE, DEVICE)
    assert dev is not None
    assert dev["status"] == "online" and dev["status_reason"] == "connected"
    assert dev["status_since"] == T - 5
    assert (dev["first_seen"], dev["last_seen"], dev["last_ts"]) == (T, T + 2, T)
    assert (dev["hostname"], dev["role"], dev["os"]) == ("KETOAN-01", "service-counter",
                                                        "Windows")
    assert dev["interval_s"] == 60
    assert dev["boot_ts"] == 1_790_000_000.0
    assert dev["cpu_percent"] == 37.5 and dev["disk_used_percent_max"] == 80.0
    assert dev["metrics"]["ts"] == T and dev["metrics"]["smart"][0]["passed"] is True
    assert dev["metrics"]["battery"]["charge_percent"] == 93.0
    assert dev["inventory"]["asset"]["tag"] == "DN-AP-0042"
    assert dev["probe"] is None and dev["reboots"] == []
    assert store.device(SITE, "nope") is None


def test_backfill_out_of_order_does_not_regress_latest(store: StateStore) -> None:
    store.apply(status(T, 1, "online"))
    store.apply(decode("inventory", T + 10, 50, hostname="NEW-NAME"))
    store.apply(decode("metrics", T + 600, 60, cpu_percent=50.0))
    # The agent's backlog: older samples, flushed after the newest one.
    backlog = decode_batch([("metrics", T + 60 * i, 40 + i, {"cpu_percent": 10.0})
                            for i in range(1, 9)]
                           + [("inventory", T - 500, 30, {"hostname": "OLD-NAME"})])
    for sample in backlog:
        store.apply(sample)
    dev = store.device(SITE, DEVICE)
    assert dev["last_ts"] == T + 600
    assert dev["metrics"]["ts"] == T + 600 and dev["cpu_percent"] == 50.0
    assert dev["hostname"] == "NEW-NAME" and dev["inventory"]["ts"] == T + 10
    assert dev["status"] == "online"
    # ...but every sample counts in the day's roll-up.
    assert store.daily(SITE, DEVICE, utc_day(T))["samples"] == 9


def test_an_old_status_cannot_override_a_newer_one(store: StateStore) -> None:
    store.apply(status(T, 1, "online"))
    store.apply(status(T + 100, 2, "offline"))  # clean stop
    store.apply(status(T + 200, 4, "online"))  # started again
    store.apply(status(T + 50, 3, "offline"))  # late: older than the status before T+200
    dev = store.device(SITE, DEVICE)
    assert (dev["status"], dev["status_reason"], dev["status_since"]) == (
        "online", "connected", T + 200)
    store.apply(status(T + 300, 5, "offline"))
    store.apply(status(T + 250, 6, "online"))  # an old online never wins either
    dev = store.device(SITE, DEVICE)
    assert (dev["status"], dev["status_reason"], dev["status_since"]) == (
        "offline", "lwt-or-clean", T + 300)


def test_last_will_older_than_its_online_still_takes_effect(store: StateStore,
                                                            clock: Clock) -> None:
    # The agent arms its Will (ts T) before it connects and says 'online' (ts T + 1):
    # when the broker publishes the Will, its ts is older than that 'online'.
    store.apply(status(T + 1, 2, "online"))
    store.apply(decode("metrics", T + 60, 3))
    clock.now = T + 400
    store.apply(status(T, 1, "offline"))
    dev = store.device(SITE, DEVICE)
    assert (dev["status"], dev["status_reason"], dev["status_since"]) == (
        "offline", "lwt-or-clean", T + 400)
    assert dev["last_seen"] == T  # a Will comes from the broker, not a sign of life
    # Reconnect: the next 'online' is newer than everything.
    store.apply(status(T + 500, 5, "online"))
    assert store.device(SITE, DEVICE)["status"] == "online"


def test_reboots_expected_after_clean_stop_unexpected_otherwise(store: StateStore) -> None:
    b1 = T - 3600
    store.apply(status(T, 1, "online"))
    store.apply(decode("metrics", T + 60, 2, boot_ts=b1))
    store.apply(decode("metrics", T + 120, 3, boot_ts=b1 + 1))  # same boot, jitter
    store.apply(status(T + 130, 4, "offline"))  # clean shutdown
    b2 = T + 200
    store.apply(status(T + 260, 5, "online"))
    store.apply(decode("metrics", T + 300, 6, boot_ts=b2))
    dev = store.device(SITE, DEVICE)
    assert (dev["reboots_total"], dev["unexpected_reboots_total"]) == (1, 0)
    assert dev["boot_ts"] == b2
    # Power cut: the Will (armed at T + 250) arrives, no clean 'offline'.
    store.apply(status(T + 250, 7, "offline"))
    b3 = T + 1000
    store.apply(status(T + 1060, 8, "online"))
    store.apply(decode("metrics", T + 1100, 9, boot_ts=b3))
    store.apply(decode("metrics", T + 1100, 10, boot_ts=b3))  # the same boot again
    dev = store.device(SITE, DEVICE)
    assert (dev["reboots_total"], dev["unexpected_reboots_total"]) == (2, 1)
    assert dev["reboots"] == [{"boot_ts": b3, "unexpected": True},
                              {"boot_ts": b2, "unexpected": False}]


def test_clock_step_is_not_a_reboot_and_old_boot_in_backfill_is_not_either(
        store: StateStore) -> None:
    b1 = T - 86400
    store.apply(decode("metrics", T, 1, boot_ts=b1))
    store.apply(decode("metrics", T + 60, 2, boot_ts=b1 + 600))  # NTP stepped 10 min
    store.apply(decode("metrics", T - 60, 3, boot_ts=b1))  # backfill, the first boot
    dev = store.device(SITE, DEVICE)
    assert dev["reboots_total"] == 0 and dev["boot_ts"] == b1 + 600


def test_reboot_inside_backfill_is_counted_late(store: StateStore) -> None:
    b1, b2, b3 = T - 7200, T + 1000, T + 5000
    store.apply(status(T - 7000, 1, "online"))
    store.apply(decode("metrics", T, 2, boot_ts=b1))
    # Offline for hours; the newest metrics come first, then the backlog.
    store.apply(status(T + 6000, 20, "online"))
    store.apply(decode("metrics", T + 6060, 21, boot_ts=b3))
    backlog = decode_batch([("metrics", T + 500, 3, {"boot_ts": b1}),
                            ("metrics", T + 2000, 4, {"boot_ts": b2}),
                            ("metrics", T + 2060, 5, {"boot_ts": b2 + 1}),
                            ("metrics", T + 5500, 6, {"boot_ts": b3})])
    for sample in backlog:
        store.apply(sample)
    dev = store.device(SITE, DEVICE)
    assert (dev["reboots_total"], dev["unexpected_reboots_total"]) == (2, 2)
    assert [r["boot_ts"] for r in dev["reboots"]] == [b3, b2]
    assert dev["boot_ts"] == b3 and dev["metrics"]["ts"] == T + 6060


def test_daily_histograms_and_percentiles(store: StateStore) -> None:
    day = utc_day(DAY0)
    for i in range(100):
        store.apply(decode(
            "metrics", DAY0 + 60 * i, i + 1, cpu_percent=float(i), mem_used_percent=81.3,
            swap_in_bytes_per_s=4096.0 if i % 4 == 0 else 0.0,
            disks=[{"mount": "C:\\", "total_bytes": 100, "used_bytes": 50,
                    "used_percent": 50.0 + i / 10}],
            temperatures=[{"sensor": "coretemp", "temp_c": 40.0 + i % 30}]))
    store.apply(decode("metrics", DAY0 + 86400 + 5, 500, cpu_percent=99.0))  # next day
    out = store.daily(SITE, DEVICE, day)
    assert out["day"] == day and out["samples"] == 100 and out["cpu_samples"] == 100
    # Nearest rank over 0..99: the 50th value is 49, the 95th is 94.
    assert (out["cpu_p50"], out["cpu_p95"], out["cpu_max"]) == (49, 94, 99)
    assert (out["mem_p50"], out["mem_p95"]) == (81, 81)
    assert len(out["cpu_hist"]) == 101 and out["cpu_hist"][42] == 1
    assert out["disk_used_max_percent"] == pytest.approx(59.9)
    assert out["swap_in_samples"] == 25 and out["temp_max_c"] == 69.0
    assert store.daily(SITE, DEVICE, utc_day(DAY0 + 86400))["cpu_p95"] == 99
    empty = store.daily(SITE, DEVICE, "2020-01-01")
    assert empty["samples"] == 0 and empty["cpu_p95"] is None
    with pytest.raises(ValueError):
        store.daily(SITE, DEVICE, "yesterday")


def test_site_link_daily_over_all_devices_of_a_site(store: StateStore) -> None:
    def target(name: str, **kw: Any) -> dict[str, Any]:
        return {"name": name, "kind": "gateway", "method": "icmp", "sent": 5, "received": 5,
                "loss_percent": 0.0, "rtt_avg_ms": 2.0, **kw}

    for device, rtts in (("pc-1", (48.2, 48.2, 48.2)), ("pc-2", (48.2, 300.0, None))):
        for i, rtt in enumerate(rtts):
            gateway = (target("gateway", received=0, loss_percent=100.0, rtt_avg_ms=None)
                       if rtt is None else target("gateway", received=4, loss_percent=20.0,
                                                  rtt_avg_ms=rtt))
            store.apply(decode("probe", DAY0 + 300 * i, i + 1, device=device,
                               targets=[gateway, target("public-dns", kind="dns")]))
    store.apply(decode("probe", DAY0 + 60, 9, site="other-site", device="pc-1",
                       targets=[target("gateway")]))
    links = store.site_link_daily(SITE, utc_day(DAY0))
    assert [link["target"] for link in links] == ["gateway", "public-dns"]
    gateway = links[0]
    assert (gateway["samples"], gateway["down"], gateway["rtt_samples"]) == (6, 1, 5)
    assert gateway["loss_percent_sum"] == pytest.approx(200.0)
    assert gateway["loss_percent_mean"] == pytest.approx(200.0 / 6)
    # 48.2 ms is in the bucket [44.7, 50.1) ms; 4 of 5 round trips are there.
    assert gateway["rtt_p50_ms"] == 50.1 and gateway["rtt_p95_ms"] == rtt_bucket_upper_ms(
        rtt_bucket(300.0))
    assert len(gateway["rtt_hist"]) == RTT_BUCKETS
    assert links[1]["kind"] == "dns" and links[1]["down"] == 0
    assert store.site_link_daily(SITE, utc_day(DAY0 + 86400)) == []
    assert store.device(SITE, "pc-2")["probe"]["targets"][0]["received"] == 0


def test_bucket_helpers() -> None:
    assert [percent_bucket(v) for v in (0, 0.49, 0.5, 37.5, 99.6, 100)] == [0, 0, 1, 38, 100,
                                                                            100]
    assert [rtt_bucket(v) for v in (0.2, 1.0, 1.1, 10.0, 600_000.0)] == [0, 1, 1, 21, 116]
    assert percentile_bucket([0, 0, 0], 95) is None
    assert percentile_bucket([1, 0, 19], 5) == 0 and percentile_bucket([1, 0, 19], 6) == 2
    for value in (3.3, 48.2, 999.0, 12345.0):
        upper = rtt_bucket_upper_ms(rtt_bucket(value))
        assert value < upper <= value * 1.13


def test_silence_marks_offline_and_data_brings_back(store: StateStore, clock: Clock) -> None:
    store.apply(decode("metrics", T, 1, device="pc-fast", interval_s=60))
    store.apply(decode("metrics", T, 1, device="pc-slow", interval_s=300))
    store.apply(status(T, 1, "offline"))  # offline devices are never 'silent'
    assert store.mark_silent(now=T + 179) == []
    clock.now = T + 181
    assert store.mark_silent() == [(SITE, "pc-fast")]  # the 180 s floor
    assert store.mark_silent(now=T + 899) == []
    assert store.mark_silent(now=T + 901) == [(SITE, "pc-slow")]  # 3 x 300 s
    fast = store.device(SITE, "pc-fast")
    assert (fast["status"], fast["status_reason"], fast["status_since"]) == (
        "offline", "silent", T)
    assert store.device(SITE, DEVICE)["status_reason"] == "lwt-or-clean"
    # The link came back without a reconnect: data alone makes it online again.
    clock.now = T + 1000
    store.apply(decode("metrics", T + 990, 2, device="pc-fast"))
    fast = store.device(SITE, "pc-fast")
    assert (fast["status"], fast["status_reason"], fast["status_since"]) == (
        "online", "data", T + 1000)
    assert store.mark_silent(now=T + 1000 + 5 * 60 - 1, intervals=5) == []
    assert store.mark_silent(now=T + 1000 + 5 * 60 + 1, intervals=5) == [(SITE, "pc-fast")]


def test_queries_filters_and_counts(store: StateStore) -> None:
    for i in range(5):
        store.apply(decode("metrics", T, 1, device=f"pc-{i}"))
    store.apply(decode("metrics", T, 1, site="binh-an", device="pc-0"))
    store.apply(status(T + 10, 2, "offline"))
    store.apply(decode("status", T + 10, 2, device="pc-3", state="offline"))
    names = [(d["site"], d["device"]) for d in store.devices()]
    assert names == sorted(names) and len(names) == 7
    assert [d["device"] for d in store.devices(site=SITE, status="offline")] == [
        "pc-3", DEVICE]
    assert [d["device"] for d in store.devices(site=SITE, limit=2, offset=1)] == [
        "pc-1", "pc-2"]
    assert store.devices(site="nowhere") == []
    with pytest.raises(ValueError):
        store.devices(status="up")
    sites = store.sites()
    assert [s["site"] for s in sites] == ["an-phuoc", "binh-an"]
    assert {k: sites[0][k] for k in ("devices_total", "online", "offline")} == {
        "devices_total": 6, "online": 4, "offline": 2}
    assert sites[0]["last_seen"] == T
    assert store.counts_by_site() == {"an-phuoc": {"online": 4, "offline": 2},
                                      "binh-an": {"online": 1}}


def test_everything_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = StateStore(path, clock=Clock(T))
    store.apply(status(T, 1, "online"))
    store.apply(decode("metrics", T + 60, 2))
    store.apply(decode("metrics", T + 120, 3, boot_ts=T + 90))
    store.save_seen_ranges({(SITE, DEVICE): [(1, 3), (7, 9)], (SITE, "pc-02"): [(5, 5)]})
    store.save_seen_ranges({(SITE, DEVICE): [(1, 3), (7, 12)]})  # replaced, not appended
    before = (store.device(SITE, DEVICE), store.daily(SITE, DEVICE, utc_day(T)))
    store.close()
    again = StateStore(path, clock=Clock(T + 3600))
    assert (again.device(SITE, DEVICE), again.daily(SITE, DEVICE, utc_day(T))) == before
    assert again.all_seen_ranges() == {(SITE, DEVICE): [(1, 3), (7, 12)],
                                       (SITE, "pc-02"): [(5, 5)]}
    assert again.device(SITE, DEVICE)["reboots_total"] == 1
    again.close()


def test_refuses_a_state_file_of_another_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(RuntimeError, match="schema version 99"):
        StateStore(path)


def test_apply_from_a_worker_while_other_threads_read(store: StateStore) -> None:
    samples = [decode("metrics", T + i, i + 1, device=f"pc-{i % 20}") for i in range(400)]
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set():
                store.devices(limit=50)
                store.sites()
                store.counts_by_site()
                store.mark_silent(now=T)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    writer = threading.Thread(target=lambda: [store.apply(s) for s in samples])
    writer.start()
    writer.join()
    done.set()
    for reader in readers:
        reader.join()
    assert errors == []
    assert store.sites()[0]["devices_total"] == 20
    assert store.daily(SITE, "pc-0", utc_day(T))["samples"] == 20


def test_apply_many_is_one_transaction_and_loses_only_a_bad_sample(store: StateStore) -> None:
    good = [decode("metrics", T + 60 * i, i, device=f"pc-{i:02d}") for i in range(1, 6)]
    broken = Sample(SITE, "pc-broken", "status", T, 99, {})  # no 'state': a bug upstream
    failures = store.apply_many([*good[:2], broken, *good[2:]])
    assert [(sample.device, type(exc)) for sample, exc in failures] == [("pc-broken", KeyError)]
    assert [d["device"] for d in store.devices()] == [f"pc-{i:02d}" for i in range(1, 6)]
    assert store.apply_many(good) == []  # applying again is harmless
    assert store.daily(SITE, "pc-03", utc_day(T))["samples"] == 2


def test_usage_between_merges_the_days_of_each_device(store: StateStore) -> None:
    """The roll-ups of the days asked, merged per device (the procurement report and,
    from a day on, the upgrade ranking's usage_since)."""
    for day in range(3):
        for i in range(10):
            ts = DAY0 + day * 86400 + 60 * i
            store.apply(decode("metrics", ts, day * 100 + i + 1, cpu_percent=10.0 * i + day,
                               mem_used_percent=95.0 if i < day * 3 else 50.0,
                               swap_in_bytes_per_s=1.0 if i == 0 else 0.0))
    store.apply(decode("metrics", DAY0, 1, device="pc-2", cpu_percent=7.0,
                       mem_used_percent=20.0))
    first, last = utc_day(DAY0), utc_day(DAY0 + 2 * 86400)
    between = store.usage_between(first, last)
    assert set(between) == {(SITE, DEVICE), (SITE, "pc-2")}
    mine = between[(SITE, DEVICE)]
    assert (mine["days"], mine["samples"], mine["mem_high_samples"]) == (3, 30, 9)
    assert mine["swap_in_samples"] == 3 and mine["cpu_p95"] == 91 and mine["mem_p95"] == 95
    assert between[(SITE, "pc-2")] == {
        "days": 1, "samples": 1, "swap_in_samples": 1, "disk_used_max": 80.0,
        "mem_high_samples": 0, "cpu_p95": 7, "mem_p95": 20}
    assert store.usage_since(first) == between
    only_two = store.usage_between(utc_day(DAY0 + 86400), last)[(SITE, DEVICE)]
    assert (only_two["days"], only_two["mem_high_samples"]) == (2, 9)
    assert store.usage_between("2020-01-01", "2020-01-31") == {}


def _tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    db = sqlite3.connect(path)
    try:
        return {table: db.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3").fetchall()
                for table in ("devices", "status_log", "reboots", "device_daily", "link_daily")}
    finally:
        db.close()


def _mixed_stream() -> list[Sample]:
    """Three devices over two days: status changes, reboots (clean and not), inventory,
    probes, and a backfilled batch arriving late and out of order; interleaved as a
    broker delivers several devices."""
    boot0, streams = T - 3600, []
    for n, device in enumerate(("pc-01", "pc-02", "pc-03")):
        seq, stream = 1000 * n, []
        stream.append(decode("status", T, seq + 1, device=device, state="online"))
        stream.append(decode("inventory", T + 5, seq + 2, device=device))
        for i in range(40):
            boot = boot0 if i < 15 else T + 900 if i < 30 else T + 2400 * (n + 1)
            stream.append(decode("metrics", T + 60 * i, seq + 10 + i, device=device,
                                 boot_ts=boot, cpu_percent=float(7 * i % 100),
                                 mem_used_percent=float(50 + i % 40)))
            if i % 10 == 3:
                stream.append(decode("probe", T + 60 * i + 1, seq + 100 + i, device=device))
            if i == 20:
                stream.append(decode("status", T + 60 * i + 2, seq + 200, device=device,
                                     state="offline", reason="shutdown" if n else "lost"))
        stream.extend(decode_batch([("metrics", DAY0 - 3600 + 60 * i, seq + 300 + i,
                                     {"boot_ts": DAY0 - 7200 - 1000 * (i > 2)})
                                    for i in range(6)][::-1], device=device))
        streams.append(stream[n:])  # not in step
    return [s for group in itertools.zip_longest(*streams) for s in group if s is not None]


def test_memory_of_rows_gives_the_same_file_as_reading_each_time(
        tmp_path: Path, clock: Clock) -> None:
    """apply_many keeps rows and roll-ups in memory between batches; after every batch,
    the file must equal the one of a store opened anew for every sample."""
    stream = _mixed_stream()
    warm = StateStore(tmp_path / "warm.db", clock=clock)
    silences = 0
    for n, at in enumerate(range(0, len(stream), 5)):
        chunk = stream[at:at + 5]
        assert warm.apply_many(chunk) == []
        for sample in chunk:
            cold = StateStore(tmp_path / "cold.db", clock=clock)
            cold.apply(sample)
            cold.close()
        assert _tables(tmp_path / "warm.db") == _tables(tmp_path / "cold.db"), n
        cold = StateStore(tmp_path / "cold.db", clock=clock)
        for device in ("pc-01", "pc-02", "pc-03"):
            assert warm.unexpected_reboots(SITE, device, T, T + 86400) == \
                cold.unexpected_reboots(SITE, device, T, T + 86400), (n, device)
        cold.close()
        if n % 4 == 0:  # a silence pass in between: an UPDATE the memory must follow
            clock.now += 400
            silences += len(warm.mark_silent())
            cold = StateStore(tmp_path / "cold.db", clock=clock)
            cold.mark_silent()
            cold.close()
    warm.close()
    rows = _tables(tmp_path / "warm.db")
    assert silences >= 3 and len(rows["reboots"]) >= 6 and len(rows["device_daily"]) == 6


def test_a_failed_batch_leaves_no_trace_in_memory(store: StateStore) -> None:
    good = [decode("metrics", T + 60 * i, i, device="pc-01") for i in range(1, 4)]
    broken = Sample(SITE, "pc-01", "status", T + 500, 99, {})  # fails after the metrics
    assert len(store.apply_many([*good, broken])) == 1
    assert store.daily(SITE, "pc-01", utc_day(T))["samples"] == 3
    assert store.apply_many([decode("metrics", T + 600, 50, device="pc-01")]) == []
    assert store.daily(SITE, "pc-01", utc_day(T))["samples"] == 4
    assert store.device(SITE, "pc-01")["metrics_ts"] == T + 600
