"""The procurement report's fast paths against the straightforward ways they replace:
numpy's sums and percentiles of the daily histograms, the merging of a country's
roll-ups over several processes, the device rows of the HTML written without Jinja2,
and Lang's own grouping of whole numbers and its memo of what Babel wrote."""

from __future__ import annotations

import datetime as dt
import random
import threading
from pathlib import Path
from typing import Any

import jinja2
import orjson
import pytest
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal

from collector.reports.i18n import Lang
from collector.reports.render_html import device_row_html
from collector.store import histograms, state
from collector.store.state import PERCENT_BUCKETS, StateStore, percentile_bucket

WIDTH = PERCENT_BUCKETS


def _histogram(rng: random.Random) -> list[int]:
    """Sparse like a real day (an idle PC: a few busy buckets), dense, empty or huge."""
    kind = rng.random()
    if kind < 0.1:
        return [0] * WIDTH
    if kind < 0.2:
        return [rng.randint(0, 10**9) for _ in range(WIDTH)]
    hist = [0] * WIDTH
    for _ in range(rng.randint(1, 40)):
        hist[min(WIDTH - 1, int(abs(rng.gauss(20, 25))))] += rng.randint(1, 1440)
    return hist


def _reference(days: list[list[int]]) -> list[int]:
    """The old way: bucket by bucket sums of the parsed lists."""
    return [sum(bucket) for bucket in zip(*days)]


@pytest.mark.parametrize("seed", range(5))
def test_sums_and_percentiles_match_the_plain_python_way(seed: int) -> None:
    rng = random.Random(seed)
    devices = [[_histogram(rng) for _ in range(rng.choice([1, 2, 30, 30, 30, 31]))]
               for _ in range(rng.randint(1, 300))]
    texts = ["".join(orjson.dumps(day).decode() for day in days) for days in devices]
    sums = histograms.sum_days(texts, [len(days) for days in devices], WIDTH)
    expected = [_reference(days) for days in devices]
    assert sums.tolist() == expected
    for p in (50, 95, 99.9, 5):
        assert histograms.percentiles(sums, p) == [percentile_bucket(h, p) for h in expected]


def test_text_the_fast_reader_cannot_take_is_parsed_the_slow_way_alike() -> None:
    days = [[1, 2, 3], [4, 5, 6]]
    plain = histograms.sum_days(["[1,2,3][4,5,6]", "[0,0,1]"], [2, 1], 3).tolist()
    assert plain == [_reference(days), [0, 0, 1]]
    spaced = ["[1, 2, 3] [4, 5, 6]", "[0, 0, 1]"]  # as json.dumps writes
    assert histograms.sum_days(spaced, [2, 1], 3).tolist() == plain
    assert histograms.sum_days([], [], 3).shape == (0, 3)
    # Beyond what numpy reads as uint32 (which wraps at 2**32), or negative.
    big = histograms.sum_days(["[1,2,3][4,5,6]", "[0,0,4294967296]"], [2, 1], 3).tolist()
    assert big == [_reference(days), [0, 0, 4294967296]]
    assert histograms.sum_days(["[0,-1,9999999999]"], [1], 3).tolist() == [[0, -1, 9999999999]]
    for bad in (["[1,2,3][4,5.5,6]", "[0,0,1]"], ["[1,2,3][4,5,null]", "[0,0,1]"],
                ["[1,2,3]", "[0,0,1]"], ["[1,2,3][4,5,6]", "[0,0,1]x"]):
        with pytest.raises(ValueError):
            histograms.sum_days(bad, [2, 1], 3)


def _fill(store: StateStore, rng: random.Random, devices: int, sites: int,
          day0: dt.date) -> None:
    db, lock = store.connection()
    rows = []
    for n in range(devices):
        site, device = f"s-{n % sites:02d}", f"pc-{n:03d}"
        db.execute("INSERT INTO devices (site, device, first_seen, last_seen, last_ts, "
                   "status, status_reason, status_since) VALUES (?, ?, 0, 0, 0, 'online', "
                   "'data', 0)", (site, device))
        for day in range(rng.randint(1, 6)):
            rows.append((site, device, (day0 + dt.timedelta(days=day)).isoformat(),
                         rng.randint(0, 1440), orjson.dumps(_histogram(rng)).decode(),
                         orjson.dumps(_histogram(rng)).decode(),
                         rng.choice([None, 12.5, 97, 99.5]), rng.randint(0, 100)))
    with lock:
        db.executemany("INSERT INTO device_daily (site, device, day, samples, cpu_hist, "
                       "mem_hist, disk_used_max, swap_in_samples) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)


def test_usage_between_is_the_same_over_several_processes(tmp_path: Path,
                                                          monkeypatch) -> None:
    store = StateStore(tmp_path / "state.db")
    day0 = dt.date(2026, 11, 1)
    _fill(store, random.Random(7), devices=60, sites=7, day0=day0)
    alone = store.usage_between(day0, day0 + dt.timedelta(days=3))
    monkeypatch.setattr(state, "USAGE_PART_DEVICES", 10)  # so that 60 devices make 3 parts
    assert len(store._site_ranges(3)) == 3
    shared = store.usage_between(day0, day0 + dt.timedelta(days=3), workers=3)
    assert shared == alone and list(shared) == list(alone)  # and in the same order
    # Each device as the old way had it: every day's lists parsed and summed.
    db, _ = store.connection()
    site, device = next(iter(alone))
    days = db.execute("SELECT samples, cpu_hist, mem_hist, disk_used_max, swap_in_samples "
                      "FROM device_daily WHERE site = ? AND device = ? AND day <= ?",
                      (site, device, (day0 + dt.timedelta(days=3)).isoformat())).fetchall()
    cpu = _reference([orjson.loads(d[1]) for d in days])
    mem = _reference([orjson.loads(d[2]) for d in days])
    disks = [d[3] for d in days if d[3] is not None]
    assert alone[(site, device)] == {
        "days": len(days), "samples": sum(d[0] for d in days),
        "swap_in_samples": sum(d[4] for d in days),
        "disk_used_max": max(disks) if disks else None, "mem_high_samples": sum(mem[90:]),
        "cpu_p95": percentile_bucket(cpu, 95), "mem_p95": percentile_bucket(mem, 95)}
    store.close()


# The device rows of templates/report.html.j2 as they were before render_html.py wrote
# them itself: device_row_html must write the very same bytes.
ROW_TEMPLATE = """\
      <tbody>
      {% for d in devices %}
        <tr class="device{% if d.unfunded %} unfunded{% endif %}" data-rank="{{ d.rank }}">
          <td class="num">{{ d.rank }}</td>
          <td><b>{{ d.device }}</b>{% if d.hostname %}<br><small>{{ d.hostname }}</small>{% endif %}</td>
          <td>{{ d.role }}</td>
          <td class="num">{{ d.age }}{% if d.born %}<br><small>{{ d.born }}</small>{% endif %}</td>
          <td>{{ d.os }}{% if d.windows11 %}<br><small>{{ d.windows11 }}</small>{% endif %}</td>
          <td class="num">{{ d.score }}</td>
          <td>{{ d.action }}</td>
          <td class="num money-cell">{{ d.cost }}</td>
          {% if has_budget %}<td>{{ d.funded }}</td>{% endif %}
          <td class="why">
            {% for item in d.why %}<div>{{ item }}</div>{% endfor %}
            {% if d.evidence %}<div class="evidence">{{ d.evidence }}</div>{% endif %}
          </td>
        </tr>
      {% endfor %}
      </tbody>
"""  # noqa: E501 - as the template's lines were


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(["a", "Ổ", " ", "&", "<", ">", "'", '"', "1", "–"])
                   for _ in range(rng.randint(0, 12)))


def _row(rng: random.Random) -> dict[str, Any]:
    return {"rank": _text(rng), "device": _text(rng), "hostname": _text(rng),
            "role": _text(rng), "age": _text(rng), "born": _text(rng), "os": _text(rng),
            "windows11": _text(rng), "score": _text(rng), "action": _text(rng),
            "cost": _text(rng), "funded": _text(rng), "unfunded": rng.random() < 0.5,
            "evidence": _text(rng), "why": [_text(rng) for _ in range(rng.randint(0, 3))]}


@pytest.mark.parametrize("has_budget", [True, False])
def test_device_rows_are_what_the_template_wrote(has_budget: bool) -> None:
    # As render_html's environment (keep_trailing_newline: this snippet's last line).
    environment = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True,
                                     undefined=jinja2.StrictUndefined,
                                     keep_trailing_newline=True)
    rng = random.Random(3)
    rows = [_row(rng) for _ in range(300)]
    expected = environment.from_string(ROW_TEMPLATE).render(devices=rows,
                                                            has_budget=has_budget)
    mine = "      <tbody>\n" + "".join(device_row_html(row, has_budget) for row in rows) \
        + "      </tbody>\n"
    assert mine == expected


@pytest.mark.parametrize("code", ["vi", "en"])
def test_lang_writes_what_babel_writes(code: str) -> None:
    lang, rng = Lang(code), random.Random(11)
    numbers: list[Any] = [rng.randint(-10**12, 10**12) for _ in range(500)]
    numbers += [rng.randint(0, 200_000) for _ in range(500)]
    numbers += [round(rng.uniform(-1000, 10**6), rng.randint(0, 3)) for _ in range(500)]
    numbers += [0, 1, 1.0, 0.05, 0.15, 2.5, 3.45, 1e15, -0.0]
    for _ in range(2):  # the second time from the memo
        for value in numbers:
            for decimals in (0, 1, 2):
                pattern = "#,##0" + ("." + "#" * decimals if decimals else "")
                assert lang.number(value, decimals) == format_decimal(
                    value, format=pattern, locale=code), (value, decimals)
        for vnd in (0, 15_000_000, 1_234_567_890, 2.5):
            assert lang.money(vnd) == format_currency(vnd, "VND", locale=code)
        for day in (dt.date(2013, 6, 1), dt.date(2026, 11, 27)):
            assert lang.date(day) == format_date(
                day, format="dd/MM/yyyy" if code == "vi" else "medium", locale=code)


def test_formats_written_side_by_side_are_the_same_and_say_what_failed(
        tmp_path: Path) -> None:
    from report_samples import sample_report

    from collector.reports import cli

    report, lang = sample_report(), Lang("vi")
    formats = ["xlsx", "csv", "html"]
    alone = tmp_path / "alone"
    alone.mkdir()
    for fmt in formats:
        cli._write(fmt, report, lang, alone, 10)
    together = tmp_path / "together"
    together.mkdir()
    # In a forked process each (pytest runs this with no other thread).
    assert threading.active_count() == 1 and cli.cpus() >= 2 or cli.cpus() == 1
    written = cli._write_all(formats, report, lang, together, 10)
    assert [path.suffix for path in written] == [".xlsx", ".csv", ".html"]
    for path in written:
        if path.suffix != ".xlsx":  # the workbook's zip has the time it was written
            assert path.read_bytes() == (alone / path.name).read_bytes()
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(cli.CliError, match="cannot write") as failed:
        cli._write_all(formats, report, lang, blocked, 10)
    assert failed.value.usage is False


def test_progress_shows_a_bar_once_it_knows_how_many() -> None:
    import io

    from collector.reports.cli import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    shown = Terminal()
    progress = Progress("devices", shown, clock=lambda: 0.0)
    progress.expect(130_000)
    progress(52_000)
    assert shown.getvalue() == ("\rreading devices: 52,000 of 130,000 "
                                "[##########..............] 40 %")
    log = io.StringIO()
    progress = Progress("devices", log, clock=lambda: 0.0)
    progress.expect(25_000)
    for count in range(1000, 25_001, 1000):
        progress(count)
    assert log.getvalue().splitlines() == ["reading devices: 10,000 of 25,000 (40 %)",
                                           "reading devices: 20,000 of 25,000 (80 %)"]
