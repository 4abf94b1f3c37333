"""The asset register: reading the province's CSV (delimiters, BOM, Vietnamese headers,
dates, rows set aside) and matching its rows to devices by serial or host name."""

from __future__ import annotations

import datetime as dt
import logging
import unicodedata
from pathlib import Path

import pytest

from collector.reports.assets import (
    AssetFileError,
    AssetRow,
    DeviceIdentity,
    match_assets,
    parse_date,
    read_assets,
)
from collector.reports.model import UnmatchedAsset

TODAY = dt.date(2026, 11, 27)


def write(tmp_path: Path, text: str, name: str = "tai-san.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def read(path: Path) -> tuple[list[AssetRow], list[UnmatchedAsset]]:
    return read_assets(path, today=TODAY)


def row(line: int = 2, serial: str | None = None, hostname: str | None = None,
        site: str | None = None) -> AssetRow:
    return AssetRow(line=line, serial=serial, hostname=hostname, site=site, asset_tag=None,
                    purchase_date=None, location=None, role=None,
                    text=f"{serial or ''},{hostname or ''},{site or ''}")


def dev(site: str, device: str, hostname: str | None = None, *serials: str) -> DeviceIdentity:
    return DeviceIdentity(site=site, device=device, hostname=hostname, serials=serials)


def keys(matched: dict[tuple[str, str], AssetRow]) -> dict[tuple[str, str], int]:
    return {key: asset.line for key, asset in matched.items()}


# --- reading: delimiters, encodings, headers ---------------------------------------------

def test_comma_file(tmp_path: Path) -> None:
    path = write(tmp_path, "serial,hostname,site,asset_tag,purchase_date,location,role\n"
                           "SN-1,PC-01,an-phuoc,TS-0001,2019-03-01,Bộ phận một cửa,"
                           "service-counter\n"
                           "SN-2,PC-02,an-phuoc,,,,\n")
    rows, unmatched = read(path)
    assert unmatched == []
    assert rows == [
        AssetRow(line=2, serial="SN-1", hostname="PC-01", site="an-phuoc", asset_tag="TS-0001",
                 purchase_date=dt.date(2019, 3, 1), location="Bộ phận một cửa",
                 role="service-counter",
                 text="SN-1,PC-01,an-phuoc,TS-0001,2019-03-01,Bộ phận một cửa,service-counter"),
        AssetRow(line=3, serial="SN-2", hostname="PC-02", site="an-phuoc", asset_tag=None,
                 purchase_date=None, location=None, role=None, text="SN-2,PC-02,an-phuoc,,,,"),
    ]


def test_semicolon_file_with_vietnamese_headers(tmp_path: Path) -> None:
    path = write(tmp_path, "Số serial;Tên máy;Mã tài sản;Ngày mua;Vị trí\n"
                           "PF1ABCD;MOTCUA-01;TS-0042;01/03/2019;Bộ phận một cửa\n"
                           "PF2EFGH;KETOAN-01;TS-0043;15/11/2017;Phòng kế toán, tầng 2\n")
    rows, unmatched = read(path)
    assert unmatched == []
    assert [(r.serial, r.hostname, r.asset_tag, r.purchase_date, r.location) for r in rows] == [
        ("PF1ABCD", "MOTCUA-01", "TS-0042", dt.date(2019, 3, 1), "Bộ phận một cửa"),
        ("PF2EFGH", "KETOAN-01", "TS-0043", dt.date(2017, 11, 15), "Phòng kế toán, tầng 2"),
    ]
    assert rows[0].text == "PF1ABCD;MOTCUA-01;TS-0042;01/03/2019;Bộ phận một cửa"


def test_tab_file(tmp_path: Path) -> None:
    path = write(tmp_path, "hostname\tlocation\nPC-01\tKho, tầng 1\n")
    rows, _ = read(path)
    assert [(r.hostname, r.location) for r in rows] == [("PC-01", "Kho, tầng 1")]


def test_bom_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeffSố serial;Tên máy\nSN-1;PC-01\n")
    rows, unmatched = read(path)
    assert unmatched == []
    assert [(r.line, r.serial, r.hostname) for r in rows] == [(2, "SN-1", "PC-01")]


def test_crlf_line_ends_as_excel_writes_them(tmp_path: Path) -> None:
    path = write(tmp_path, "serial;hostname\r\nSN-1;PC-01\r\nSN-2;PC-02\r\n")
    rows, _ = read(path)
    assert [(r.line, r.serial, r.text) for r in rows] == [(2, "SN-1", "SN-1;PC-01"),
                                                         (3, "SN-2", "SN-2;PC-02")]


def test_headers_ignore_case_spaces_diacritics_and_underscores(tmp_path: Path) -> None:
    decomposed = unicodedata.normalize("NFD", "Vị trí")  # as a Mac may save it
    path = write(tmp_path, f"  SO SERIAL ; ten   may;MÃ TÀI SẢN;ngay mua;{decomposed};"
                           "Purchase Date_x\n"
                           "SN-1;PC-01;TS-1;2020-01-02;Kho;junk\n")
    rows, _ = read(path)
    assert (rows[0].serial, rows[0].hostname, rows[0].asset_tag, rows[0].purchase_date,
            rows[0].location) == ("SN-1", "PC-01", "TS-1", dt.date(2020, 1, 2), "Kho")


@pytest.mark.parametrize(("header", "field"), [
    ("serial", "serial"), ("serial_number", "serial"), ("Serial Number", "serial"),
    ("số serial", "serial"), ("so serial", "serial"), ("S/N", "serial"),
    ("hostname", "hostname"), ("host", "hostname"), ("tên máy", "hostname"),
    ("ten may", "hostname"), ("Tên máy tính", "hostname"),
    ("site", "site"), ("mã đơn vị", "site"), ("xa", "site"), ("xã", "site"),
    ("asset_tag", "asset_tag"), ("tag", "asset_tag"), ("mã tài sản", "asset_tag"),
    ("ma tai san", "asset_tag"),
    ("purchase_date", "purchase_date"), ("ngày mua", "purchase_date"),
    ("ngay mua", "purchase_date"),
    ("location", "location"), ("vị trí", "location"), ("vi tri", "location"),
    ("role", "role"), ("vai trò", "role"), ("vai tro", "role"),
])
def test_header_aliases(tmp_path: Path, header: str, field: str) -> None:
    value = "2019-03-01" if field == "purchase_date" else "x-1"
    path = write(tmp_path, f"hostname;{header}\nPC-01;{value}\n" if field != "hostname"
                 else f"{header};role\nx-1;office\n")
    rows, unmatched = read(path)
    assert unmatched == []
    expected = dt.date(2019, 3, 1) if field == "purchase_date" else "x-1"
    assert getattr(rows[0], field) == expected


def test_unknown_columns_are_ignored_and_logged(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, "STT;Số serial;Nguyên giá;;Ghi chú\n1;SN-1;15.000.000;;mới\n")
    with caplog.at_level(logging.INFO, logger="collector.reports.assets"):
        rows, unmatched = read(path)
    assert [r.serial for r in rows] == ["SN-1"] and unmatched == []
    assert "ignoring columns STT, Nguyên giá, Ghi chú" in caplog.text


def test_title_rows_above_the_header_are_skipped(tmp_path: Path) -> None:
    path = write(tmp_path, "UBND TỈNH ĐỒNG NAI;;\n"
                           "DANH SÁCH MÁY TÍNH;;\n"
                           ";;\n"
                           "STT;Số serial;Tên máy\n"
                           "1;SN-1;PC-01\n")
    rows, _ = read(path)
    assert [(r.line, r.serial) for r in rows] == [(5, "SN-1")]


def test_blank_rows_are_skipped_but_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "serial;hostname\n\nSN-1;PC-01\n;;\n  ;  \nSN-2;PC-02\n\n")
    rows, unmatched = read(path)
    assert unmatched == []
    assert [(r.line, r.serial) for r in rows] == [(3, "SN-1"), (6, "SN-2")]


def test_quoted_cells_keep_delimiters_and_line_breaks(tmp_path: Path) -> None:
    path = write(tmp_path, 'serial;location;hostname\n'
                           'SN-1;"Kho; tầng 2\nphòng 3";PC-01\n'
                           'SN-2;"Phòng ""một cửa""";PC-02\n')
    rows, _ = read(path)
    assert [(r.line, r.location, r.hostname) for r in rows] == [
        (2, "Kho; tầng 2\nphòng 3", "PC-01"), (3, 'Phòng "một cửa"', "PC-02")]
    assert rows[0].text == 'SN-1;"Kho; tầng 2\nphòng 3";PC-01'


def test_short_rows_leave_the_missing_cells_empty(tmp_path: Path) -> None:
    path = write(tmp_path, "serial;hostname;asset_tag;location\nSN-1\n;PC-02;TS-2\n")
    rows, _ = read(path)
    assert [(r.serial, r.hostname, r.asset_tag, r.location) for r in rows] == [
        ("SN-1", None, None, None), (None, "PC-02", "TS-2", None)]


def test_only_a_hostname_column_is_enough(tmp_path: Path) -> None:
    rows, _ = read(write(tmp_path, "hostname\nPC-01\n"))
    assert [(r.serial, r.hostname) for r in rows] == [(None, "PC-01")]


# --- reading: dates ------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("2019-03-01", dt.date(2019, 3, 1)),
    ("2019-3-1", dt.date(2019, 3, 1)),
    ("2019-03-01 00:00:00", dt.date(2019, 3, 1)),
    ("2019/03/01", dt.date(2019, 3, 1)),
    ("01/03/2019", dt.date(2019, 3, 1)),  # day first: 1 March, not 3 January
    ("1/3/2019", dt.date(2019, 3, 1)),
    ("03/01/2019", dt.date(2019, 1, 3)),
    ("13/01/2019", dt.date(2019, 1, 13)),
    ("1.3.2019", dt.date(2019, 3, 1)),
    ("01-03-2019", dt.date(2019, 3, 1)),
    ("01/03/2019 0:00", dt.date(2019, 3, 1)),
    ("43525", dt.date(2019, 3, 1)),  # Excel's day number
    ("43525.0", dt.date(2019, 3, 1)),
    (" 36526 ", dt.date(2000, 1, 1)),
    ("2026-11-27", TODAY),
])
def test_dates(text: str, expected: dt.date) -> None:
    assert parse_date(text, today=TODAY) == expected


@pytest.mark.parametrize(("text", "why"), [
    ("31/02/2019", "purchase date 31/02/2019 is not a date (read as day 31, month 2, "
                   "year 2019)"),
    ("02/13/2019", "purchase date 02/13/2019 is not a date (read as day 2, month 13, "
                   "year 2019)"),
    ("2019-02-30", "purchase date 2019-02-30 is not a date"),
    ("2019", "purchase date 2019 is not a date: write it as dd/mm/yyyy"),
    ("tháng 3/2019", "is not a date"),
    ("1/3/19", "purchase date 1/3/19: write the year with 4 digits"),
    ("01/01/1975", "purchase date 01/01/1975 is before 1980"),
    ("12345", "purchase date 12345 is before 1980"),
    ("2026-11-28", "purchase date 2026-11-28 is in the future"),
    ("99999", "is in the future"),
])
def test_bad_dates(text: str, why: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_date(text, today=TODAY)
    assert why in str(caught.value)


def test_a_bad_date_sets_only_its_row_aside(tmp_path: Path) -> None:
    path = write(tmp_path, "Số serial;Tên máy;Ngày mua\n"
                           "SN-1;PC-01;01/03/2019\n"
                           "SN-2;PC-02;31/02/2019\n"
                           "SN-3;PC-03;43525\n"
                           "SN-4;PC-04;\n")
    rows, unmatched = read(path)
    assert [(r.serial, r.purchase_date) for r in rows] == [
        ("SN-1", dt.date(2019, 3, 1)), ("SN-3", dt.date(2019, 3, 1)), ("SN-4", None)]
    assert unmatched == [UnmatchedAsset(3, "SN-2;PC-02;31/02/2019",
                                        "purchase date 31/02/2019 is not a date (read as "
                                        "day 31, month 2, year 2019)")]


def test_dates_in_the_future_are_against_today_by_default(tmp_path: Path) -> None:
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    path = write(tmp_path, f"serial,purchase_date\nSN-1,{dt.date.today()}\nSN-2,{tomorrow}\n")
    rows, unmatched = read_assets(path)
    assert [r.serial for r in rows] == ["SN-1"]
    assert [u.line for u in unmatched] == [3]


# --- reading: rows set aside ---------------------------------------------------------------

def test_a_row_needs_a_serial_or_a_hostname(tmp_path: Path) -> None:
    path = write(tmp_path, "serial;hostname;asset_tag\n"
                           ";;TS-1\n"
                           "To be filled by O.E.M.;;TS-2\n"
                           "Default string;PC-03;TS-3\n")
    rows, unmatched = read(path)
    assert [(r.line, r.serial, r.hostname) for r in rows] == [(4, "Default string", "PC-03")]
    assert unmatched == [
        UnmatchedAsset(2, ";;TS-1", "no serial and no host name"),
        UnmatchedAsset(3, "To be filled by O.E.M.;;TS-2", "serial To be filled by O.E.M. is a "
                       "placeholder, not a serial, and there is no host name"),
    ]


def test_duplicate_serials_set_the_later_row_aside(tmp_path: Path) -> None:
    path = write(tmp_path, "serial,hostname\n"
                           "SN-1,PC-01\n"
                           "SN-2,PC-02\n"
                           " sn-1 ,PC-09\n"  # same serial: case and spaces do not count
                           "SN-1,PC-10\n")
    rows, unmatched = read(path)
    assert [r.hostname for r in rows] == ["PC-01", "PC-02"]
    assert unmatched == [UnmatchedAsset(4, " sn-1 ,PC-09", "serial sn-1 already on line 2"),
                         UnmatchedAsset(5, "SN-1,PC-10", "serial SN-1 already on line 2")]


def test_placeholder_serials_are_not_duplicates(tmp_path: Path) -> None:
    path = write(tmp_path, "serial,hostname\nDefault string,PC-01\nDefault string,PC-02\n"
                           "0,PC-03\n0,PC-04\n")
    rows, unmatched = read(path)
    assert len(rows) == 4 and unmatched == []


# --- reading: file-level errors ----------------------------------------------------------

def one_line_error(path: Path) -> str:
    with pytest.raises(AssetFileError) as caught:
        read(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    return message


def test_missing_file(tmp_path: Path) -> None:
    assert "no such file" in one_line_error(tmp_path / "khong-co.csv")


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    assert "cannot read" in one_line_error(tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "cp1252.csv"
    path.write_bytes("serial;location\nSN-1;Café\n".encode("cp1252"))
    message = one_line_error(path)
    offset = len(b"serial;location\nSN-1;Caf")
    assert f"not UTF-8 at byte {offset} (line 2, byte 0xe9)" in message
    assert '"CSV UTF-8"' in message


def test_not_utf8_after_a_bom_counts_the_bom(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_bytes(b"\xef\xbb\xbfserial\nSN-\xe9\n")
    assert "not UTF-8 at byte 13 (line 2, byte 0xe9)" in one_line_error(path)


def test_utf16_says_what_it_is(tmp_path: Path) -> None:
    path = tmp_path / "unicode.txt"
    path.write_bytes("serial\tlocation\nSN-1\tKho\n".encode("utf-16"))
    message = one_line_error(path)
    assert "UTF-16" in message and '"CSV UTF-8"' in message


def test_no_usable_header_names_the_columns_found(tmp_path: Path) -> None:
    path = write(tmp_path, "STT;Tên tài sản;Nguyên giá\n1;Máy tính;15000000\n")
    message = one_line_error(path)
    assert message.endswith("no serial or host name column "
                            "(columns found: STT, Tên tài sản, Nguyên giá)")


def test_empty_file(tmp_path: Path) -> None:
    assert "the file is empty" in one_line_error(write(tmp_path, "\ufeff\n\n"))


def test_two_columns_of_the_same_meaning(tmp_path: Path) -> None:
    message = one_line_error(write(tmp_path, "Serial;Số serial\nA;B\n"))
    assert message.endswith('columns "Serial" and "Số serial" both mean serial: '
                            "rename or delete one")


def test_an_unclosed_quote_is_not_the_rest_of_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'serial;location\nSN-1;Kho\nSN-2;"Kho\nSN-3;Kho\n')
    message = one_line_error(path)
    assert message.endswith('row 3: a cell opens a quote (") that is never closed')


# --- matching ------------------------------------------------------------------------------

def test_match_by_system_or_disk_serial_ignoring_case_and_spaces() -> None:
    devices = [dev("an-phuoc", "pc-1", "PC-01", "PF1ABCD", "WD-WX11"),
               dev("an-phuoc", "pc-2", "PC-02", "PF2EFGH", "S3Z9NB0K")]
    rows = [row(2, serial=" pf1abcd "), row(3, serial="S3Z9 NB0K")]
    matched, unmatched = match_assets(rows, devices)
    assert keys(matched) == {("an-phuoc", "pc-1"): 2, ("an-phuoc", "pc-2"): 3}
    assert unmatched == []


def test_a_serial_listed_twice_by_one_device_is_one_match() -> None:
    matched, unmatched = match_assets([row(2, serial="SN-1")],
                                      [dev("s", "a", "PC-01", "SN-1", "sn-1", "DISK-1")])
    assert keys(matched) == {("s", "a"): 2} and unmatched == []


def test_serial_wins_over_hostname() -> None:
    devices = [dev("s", "a", "PC-01", "SN-A"), dev("s", "b", "PC-02", "SN-B")]
    matched, _ = match_assets([row(2, serial="SN-B", hostname="PC-01")], devices)
    assert keys(matched) == {("s", "b"): 2}


def test_hostname_when_the_serial_matches_nothing() -> None:
    devices = [dev("s", "a", "PC-01", "SN-A")]
    matched, unmatched = match_assets([row(2, serial="SN-TYPO", hostname="pc-01")], devices)
    assert keys(matched) == {("s", "a"): 2} and unmatched == []


@pytest.mark.parametrize("placeholder", [
    "To be filled by O.E.M.", "To Be Filled By O.E.M.", "Default string",
    "System Serial Number", "0", "None", "N/A", "00000000", "Không có"])
def test_placeholder_serials_never_match(placeholder: str) -> None:
    devices = [dev("s", "a", "PC-01", placeholder), dev("s", "b", "PC-02", placeholder)]
    rows = [row(2, serial=placeholder), row(3, serial=placeholder, hostname="PC-02")]
    matched, unmatched = match_assets(rows, devices)
    assert keys(matched) == {("s", "b"): 3}  # by its host name, not the placeholder
    assert [(u.line, u.why) for u in unmatched] == [
        (2, f"serial {placeholder} is a placeholder, not a serial, and there is no host name")]


def test_a_row_with_nothing_to_match_by() -> None:
    _, unmatched = match_assets([row(2, site="s"), row(3, hostname=" . ")], [dev("s", "a")])
    assert [u.why for u in unmatched] == ["no serial and no host name"] * 2


@pytest.mark.parametrize(("in_file", "on_device"), [
    ("PC-01.donghai.local", "pc-01"), ("pc-01", "PC-01.DONGHAI.LOCAL"),
    ("PC-01.donghai.local", "pc-01.other.lan"), ("DONGHAI\\PC-01", "pc-01"),
    (" Pc-01 ", "PC-01"),
])
def test_hostnames_ignore_case_and_domain(in_file: str, on_device: str) -> None:
    matched, unmatched = match_assets([row(2, hostname=in_file)], [dev("s", "a", on_device)])
    assert keys(matched) == {("s", "a"): 2} and unmatched == []


def test_an_ip_address_is_not_a_name_with_a_domain() -> None:
    devices = [dev("s", "a", "192.168.1.10"), dev("s", "b", "192.168.1.11")]
    matched, _ = match_assets([row(2, hostname="192.168.1.11")], devices)
    assert keys(matched) == {("s", "b"): 2}


THREE_PC01 = [dev("an-phuoc", "a", "PC-01"), dev("long-thanh", "b", "pc-01"),
              dev("bien-hoa", "c", "PC-01.bienhoa.local")]


def test_ambiguous_hostname() -> None:
    matched, unmatched = match_assets([row(7, hostname="pc-01")], THREE_PC01)
    assert matched == {}
    assert unmatched == [UnmatchedAsset(7, ",pc-01,", "host name pc-01 matches 3 devices "
                                        "(an-phuoc/a, long-thanh/b, bien-hoa/c): give a serial "
                                        "or a site")]


def test_ambiguous_hostname_after_a_serial_that_matches_nothing() -> None:
    _, unmatched = match_assets([row(7, serial="SN-X", hostname="pc-01")], THREE_PC01)
    assert unmatched[0].why.startswith("no device with serial SN-X, and host name pc-01 "
                                       "matches 3 devices")


def test_site_restricts_the_match() -> None:
    rows = [row(2, hostname="pc-01", site="long-thanh"),
            row(3, hostname="pc-01", site="Biên Hòa"),  # a name written as its id
            row(4, hostname="pc-01", site=" AN-PHUOC ")]
    matched, unmatched = match_assets(rows, THREE_PC01)
    assert keys(matched) == {("long-thanh", "b"): 2, ("bien-hoa", "c"): 3,
                             ("an-phuoc", "a"): 4}
    assert unmatched == []


def test_site_also_restricts_serials() -> None:
    devices = [dev("an-phuoc", "a", "PC-01", "SN-1")]
    matched, unmatched = match_assets([row(2, serial="SN-1", site="long-thanh"),
                                       row(3, serial="SN-1", site="an-phuoc")],
                                      [*devices, dev("long-thanh", "x", "PC-09")])
    assert keys(matched) == {("an-phuoc", "a"): 3}
    assert [(u.line, u.why) for u in unmatched] == [
        (2, "no device with serial SN-1 in site long-thanh (found in site an-phuoc)")]


def test_unknown_site() -> None:
    _, unmatched = match_assets([row(2, hostname="pc-01", site="Xã An Phước")], THREE_PC01)
    assert unmatched[0].why == ("no device in site Xã An Phước (write the site id, "
                                "e.g. an-phuoc)")


def test_ambiguous_hostname_within_a_site() -> None:
    devices = [dev("s", "a", "PC-01"), dev("s", "b", "pc-01")]
    _, unmatched = match_assets([row(2, hostname="PC-01", site="s")], devices)
    assert unmatched[0].why == "host name PC-01 matches 2 devices (s/a, s/b): give a serial"


def test_a_serial_on_two_devices_is_settled_by_the_hostname() -> None:
    devices = [dev("s", "a", "PC-01", "CLONED-DISK"), dev("s", "b", "PC-02", "CLONED-DISK")]
    matched, unmatched = match_assets([row(2, serial="CLONED-DISK", hostname="PC-02"),
                                       row(3, serial="CLONED-DISK")], devices)
    assert keys(matched) == {("s", "b"): 2}
    assert [(u.line, u.why) for u in unmatched] == [
        (3, "serial CLONED-DISK matches 2 devices (s/a, s/b): give a host name or a site")]


def test_a_device_matched_twice_goes_to_the_first_row() -> None:
    devices = [dev("s", "a", "PC-01", "SN-1")]
    rows = [row(2, serial="SN-1"), row(5, hostname="pc-01"), row(9, hostname="PC-01.x.local")]
    matched, unmatched = match_assets(rows, devices)
    assert keys(matched) == {("s", "a"): 2}
    assert [(u.line, u.why) for u in unmatched] == [
        (5, "device s/a already matched by line 2 (by serial)"),
        (9, "device s/a already matched by line 2 (by serial)")]


def test_two_rows_by_hostname_first_wins() -> None:
    matched, unmatched = match_assets([row(2, hostname="pc-01"), row(3, hostname="PC-01")],
                                      [dev("s", "a", "pc-01")])
    assert keys(matched) == {("s", "a"): 2}
    assert [(u.line, u.why) for u in unmatched] == [
        (3, "device s/a already matched by line 2 (by host name)")]


def test_a_serial_match_beats_an_earlier_hostname_match() -> None:
    # Line 2 is the old PC the new one took the name of; line 3 is the new PC.
    devices = [dev("s", "a", "PC-01", "SN-NEW")]
    matched, unmatched = match_assets([row(2, serial="SN-OLD", hostname="PC-01"),
                                       row(3, serial="SN-NEW", hostname="PC-01")], devices)
    assert keys(matched) == {("s", "a"): 3}
    assert [(u.line, u.why) for u in unmatched] == [
        (2, "device s/a already matched by line 3 (by serial)")]


def test_not_found() -> None:
    devices = [dev("s", "a", "PC-01", "SN-1")]
    _, unmatched = match_assets([row(2, serial="SN-9", hostname="PC-09"), row(3, serial="SN-9"),
                                 row(4, hostname="PC-09")], devices)
    assert [u.why for u in unmatched] == ["no device with serial SN-9 or host name PC-09",
                                          "no device with serial SN-9",
                                          "no device with host name PC-09"]


def test_devices_without_hostname_or_serials_and_repeated_devices() -> None:
    devices = [dev("s", "a", None), dev("s", "b", "PC-02", "SN-2"),
               dev("s", "b", "PC-02", "SN-2")]  # listed twice: still one device
    matched, unmatched = match_assets([row(2, hostname="PC-02")], iter(devices))
    assert keys(matched) == {("s", "b"): 2} and unmatched == []


def test_read_then_match(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeffSTT;Số serial;Tên máy;Xã;Mã tài sản;Ngày mua;Vị trí\n"
                           "1;PF1ABCD;MOTCUA-01;an-phuoc;TS-0042;01/03/2019;Một cửa\n"
                           "2;To be filled by O.E.M.;KETOAN-01;an-phuoc;TS-0043;43525;"
                           "Kế toán\n"
                           "3;PF9ZZZZ;;;TS-0044;2015-06-30;Kho\n"
                           "4;PF1ABCD;MOTCUA-02;;;;\n")
    rows, unmatched = read(path)
    devices = [dev("an-phuoc", "pc-motcua-01", "MOTCUA-01.anphuoc.local", "pf1abcd"),
               dev("an-phuoc", "pc-ketoan-01", "ketoan-01", "To be filled by O.E.M.")]
    matched, not_found = match_assets(rows, devices)
    assert {key: (a.asset_tag, a.purchase_date) for key, a in matched.items()} == {
        ("an-phuoc", "pc-motcua-01"): ("TS-0042", dt.date(2019, 3, 1)),
        ("an-phuoc", "pc-ketoan-01"): ("TS-0043", dt.date(2019, 3, 1))}
    assert [(u.line, u.why) for u in unmatched + not_found] == [
        (5, "serial PF1ABCD already on line 2"), (4, "no device with serial PF9ZZZZ")]


def test_twenty_thousand_rows_and_devices() -> None:
    # Even devices are found by serial, odd ones by host name (their serial is unknown to
    # the register); every 1000th row names no device; pc-00007 is in the file twice.
    count = 20_000
    devices = [dev(f"site-{i % 97:02d}", f"pc-{i:05d}", f"PC-{i:05d}.x.local",
                   f"SN{i:07d}", f"DISK{i:07d}") for i in range(count)]
    rows = []
    for i in range(count):
        if i % 1000 == 999:
            rows.append(row(i + 2, serial=f"LOST{i}"))
        elif i % 2 == 0:
            rows.append(row(i + 2, serial=f"sn{i:07d}"))
        else:
            rows.append(row(i + 2, hostname=f"pc-{i:05d}", site=f"site-{i % 97:02d}"))
    rows.append(row(count + 2, hostname="PC-00007"))
    matched, unmatched = match_assets(rows, devices)
    assert len(matched) == count - 20
    assert all(key == (f"site-{(a.line - 2) % 97:02d}", f"pc-{a.line - 2:05d}")
               for key, a in matched.items())
    assert len(unmatched) == 21
    assert unmatched[-1].why == "device site-07/pc-00007 already matched by line 9 " \
                                "(by host name)"
