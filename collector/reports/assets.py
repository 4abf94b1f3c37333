"""The province's asset register (a CSV export of its spreadsheet), matched to the
monitored devices: it brings what the agents cannot see, the purchase date, asset tag,
location and role of each PC.

The file
--------
* Text encoding UTF-8, with or without BOM. In Excel: File > Save As >
  "CSV UTF-8 (Comma delimited) (*.csv)". Any other encoding is refused, with the byte
  where it stops being UTF-8.
* Columns separated by commas, semicolons (what Vietnamese Excel writes) or tabs:
  the one that makes a header of known columns is used.
* The header is the first row (of the first 20) that names a serial or host name
  column; title rows above it are skipped. Row numbers in messages are spreadsheet rows:
  the file's first row is 1.
* Column names are matched ignoring case, Vietnamese diacritics, spaces around them and
  "_" versus space ("Số serial", "SO SERIAL", "so_serial" are the same column). Any
  order; other columns (STT, Ghi chú, Nguyên giá, ...) are ignored. A file with two
  columns of the same meaning is refused.

The columns, with the other names each may have:

* `serial` (serial_number, serial no, s/n, sn, số serial, số seri): the PC's serial (its
  sticker, the BIOS), or the serial of one of its disks.
* `hostname` (host, host name, computer name, tên máy, tên máy tính): the PC's name in
  Windows or Linux; a domain is ignored (PC-01.donghai.local is pc-01).
* `site` (mã đơn vị, xã, mã xã): the commune's site id (an-phuoc), or its name written
  the same way (An Phước).
* `asset_tag` (tag, mã tài sản): the province's asset number.
* `purchase_date` (ngày mua): 2019-03-01 or 2019/03/01; day first 01/03/2019, 1/3/2019,
  1.3.2019 or 1-3-2019; or an Excel day number (43525, a date cell that lost its format).
* `location` (vị trí): where the PC stands.
* `role` (vai trò): what the PC is for, as the report should show it.

A file needs a `serial` or a `hostname` column (or both); every other column is
optional. Each row needs a serial or a host name.

Rows that are set aside
-----------------------
They are listed in the report ("unmatched assets") with their row number, the row as
written and why; the other rows are still used.

* A row with no serial and no host name (a serial that is a maker's placeholder such as
  "To be filled by O.E.M.", "Default string", "System Serial Number", "0", "None" or
  "N/A" counts as none).
* A purchase date that is not a date (day and month are read day first: 03/01/2019 is
  the 3rd of January), is before 1980 or is in the future.
* A serial already on an earlier row.
* A row that matches no monitored device, or several (give a serial or a site).
* A row that matches a device an earlier row (or a row matching by serial) already took.

Empty rows are skipped without a word.

Matching
--------
By serial first: the row's serial equals the device's system serial or one of its disks'
serials (ignoring case and spaces; placeholders never match). Then by host name
(ignoring case and a domain suffix). When the row has a site, only devices of that site
count. Matches by serial are settled before matches by host name, so a PC found by its
serial is not taken away by an older row that only shares its host name.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as dt
import functools
import io
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from collector.reports.model import UnmatchedAsset

log = logging.getLogger(__name__)

DELIMITERS = (",", ";", "\t")
HEADER_SCAN_ROWS = 20  # title rows people put above the header
MIN_YEAR = 1980  # no PC still in service was bought before

# Column aliases as people write them; compared after _fold() (no case, no diacritics).
ALIASES: dict[str, tuple[str, ...]] = {
    "serial": ("serial", "serial_number", "serial no", "s/n", "sn", "số serial", "số seri"),
    "hostname": ("hostname", "host", "host name", "computer name", "tên máy", "tên máy tính"),
    "site": ("site", "mã đơn vị", "xã", "mã xã"),
    "asset_tag": ("asset_tag", "tag", "mã tài sản"),
    "purchase_date": ("purchase_date", "ngày mua"),
    "location": ("location", "vị trí"),
    "role": ("role", "vai trò"),
}
IDENTITY_COLUMNS = ("serial", "hostname")

# What board makers leave in SMBIOS when nobody fills it in, and what people type for
# "no serial"; the same list as agent/probes/inventory_common.py plus Vietnamese "none".
# Compared without case and spaces.
PLACEHOLDER_SERIALS = frozenset((
    "to be filled by o.e.m.", "to be filled by oem", "default string", "system manufacturer",
    "system product name", "system serial number", "system version", "not specified",
    "not applicable", "not available", "none", "null", "n/a", "na", "oem", "o.e.m.",
    "unknown", "0123456789", "123456789", "1234567890", "base board serial number",
    "không", "không có", "không rõ", "chưa có", "chưa rõ",
))
_FILLERS = "0.fx*#-_"  # "0", "00000000", "FFFFFFFF", "--": fillers only, no serial

_ISO = re.compile(r"(\d{4})([/.-])(\d{1,2})\2(\d{1,2})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?")
_DMY = re.compile(r"(\d{1,2})([/.-])(\d{1,2})\2(\d{2}|\d{4})(?: \d{1,2}:\d{2}(?::\d{2})?)?")
_EXCEL = re.compile(r"(\d{5})(?:[.,]0+)?")  # Excel's day number, as a date cell with no format
_EXCEL_EPOCH = dt.date(1899, 12, 30)  # day 0 (Excel's 1900 leap-year bug is before 1980)
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")


class AssetFileError(Exception):
    """The asset file cannot be used at all (missing, not UTF-8, no usable header)."""


@dataclass(frozen=True)
class AssetRow:
    line: int  # spreadsheet row, the file's first row = 1
    serial: str | None  # as written (trimmed), placeholders included
    hostname: str | None
    site: str | None
    asset_tag: str | None
    purchase_date: dt.date | None
    location: str | None
    role: str | None
    text: str  # the row as written, for messages


@dataclass(frozen=True)
class DeviceIdentity:
    site: str
    device: str
    hostname: str | None
    serials: tuple[str, ...]  # system serial and disk serials


@dataclass(frozen=True)
class _Header:
    line: int
    delimiter: str
    columns: dict[str, int]  # field -> cell index
    ignored: tuple[str, ...]  # other named columns
    clashes: tuple[tuple[str, str, str], ...]  # (field, first name, second name)


# --- reading ---------------------------------------------------------------------------

def read_assets(path: Path, *, today: dt.date | None = None
                ) -> tuple[list[AssetRow], list[UnmatchedAsset]]:
    """The usable rows of the asset file, and the rows set aside with why.

    Columns that are not asset columns are ignored; they are logged (INFO), not returned.
    `today` bounds purchase dates (default: the computer's date)."""
    path = Path(path)
    text = _decode(path, _read_bytes(path))
    header = _find_header(path, text)
    if header.ignored:
        log.info("%s: ignoring columns %s", path, ", ".join(header.ignored))
    today = today or dt.date.today()
    rows: list[AssetRow] = []
    unmatched: list[UnmatchedAsset] = []
    first_line: dict[str, int] = {}  # serial key -> line that has it
    for line, cells, raw in _records(path, text, header.delimiter):
        if line <= header.line or not any(cell.strip() for cell in cells):
            continue
        values = {field: _cell(cells, index) for field, index in header.columns.items()}
        why = _identity_problem(values.get("serial"), values.get("hostname"))
        key = serial_key(values.get("serial"))
        if why is None and key is not None:
            first = first_line.setdefault(key, line)
            if first != line:
                why = f"serial {values['serial']} already on line {first}"
        born: dt.date | None = None
        if why is None and values.get("purchase_date"):
            try:
                born = parse_date(values["purchase_date"], today=today)
            except ValueError as exc:
                why = str(exc)
        if why is not None:
            unmatched.append(UnmatchedAsset(line, raw, why))
            continue
        rows.append(AssetRow(line=line, serial=values.get("serial"),
                             hostname=values.get("hostname"), site=values.get("site"),
                             asset_tag=values.get("asset_tag"), purchase_date=born,
                             location=values.get("location"), role=values.get("role"),
                             text=raw))
    return rows, unmatched


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise AssetFileError(f"asset file {path}: no such file") from None
    except OSError as exc:
        raise AssetFileError(f"asset file {path}: cannot read: {exc.strerror or exc}") from None


def _decode(path: Path, data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        # Excel's "Unicode Text" export: say so, it is the usual wrong choice.
        raise AssetFileError(f'asset file {path}: is UTF-16 (Excel "Unicode Text"), not '
                             'UTF-8: save it as "CSV UTF-8"')
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = skip + exc.start  # in the file, BOM included
        line = data.count(b"\n", 0, offset) + 1
        raise AssetFileError(
            f"asset file {path}: not UTF-8 at byte {offset} (line {line}, byte "
            f'0x{data[offset]:02x}): save it from Excel as "CSV UTF-8"') from None


def _records(path: Path, text: str, delimiter: str) -> Iterator[tuple[int, list[str], str]]:
    """(row number, cells, the row as written) for every row, blank ones included."""
    consumed: list[str] = []

    def lines() -> Iterator[str]:
        # csv pulls exactly the physical lines of one row (more when a quoted cell holds
        # a line break), so what it pulled is the row as written.
        for physical in io.StringIO(text, newline=""):
            consumed.append(physical)
            yield physical

    # strict: an unclosed quote is an error, not the rest of the file in one cell.
    reader = csv.reader(lines(), delimiter=delimiter, strict=True)
    number = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise AssetFileError(f"asset file {path}: row {number + 1}: {_csv_problem(exc)}"
                                 ) from None
        number += 1
        raw = "".join(consumed).rstrip("\r\n")
        consumed.clear()
        yield number, cells, raw


def _csv_problem(exc: csv.Error) -> str:
    if "end of data" in str(exc):
        return 'a cell opens a quote (") that is never closed'
    if "expected after" in str(exc):
        return 'a quoted cell goes on after its closing quote (")'
    return str(exc)


def _find_header(path: Path, text: str) -> _Header:
    """The delimiter and header row that name the most asset columns."""
    best: _Header | None = None
    for delimiter in DELIMITERS:
        header = _header_for(path, text, delimiter)
        if header is not None and (best is None or len(header.columns) > len(best.columns)):
            best = header
    if best is None:
        raise AssetFileError(f"asset file {path}: no serial or host name column "
                             f"(columns found: {_columns_found(path, text)})")
    if best.clashes:
        field, first, second = best.clashes[0]
        raise AssetFileError(f'asset file {path}: columns "{first}" and "{second}" both mean '
                             f"{field}: rename or delete one")
    return best


def _header_for(path: Path, text: str, delimiter: str) -> _Header | None:
    try:
        for line, cells, _raw in _records(path, text, delimiter):
            if line > HEADER_SCAN_ROWS:
                return None
            header = _map_header(line, delimiter, cells)
            if any(field in header.columns for field in IDENTITY_COLUMNS):
                return header
    except AssetFileError:
        return None  # quotes that only make sense with another delimiter
    return None


def _map_header(line: int, delimiter: str, cells: Sequence[str]) -> _Header:
    columns: dict[str, int] = {}
    ignored: list[str] = []
    clashes: list[tuple[str, str, str]] = []
    for index, name in enumerate(cells):
        field = _FIELD_BY_ALIAS.get(_fold(name))
        if field is None:
            if name.strip():
                ignored.append(name.strip())
        elif field in columns:
            clashes.append((field, cells[columns[field]].strip(), name.strip()))
        else:
            columns[field] = index
    return _Header(line, delimiter, columns, tuple(ignored), tuple(clashes))


def _columns_found(path: Path, text: str) -> str:
    """The first non-blank row's cells, split the way that gives the most of them."""
    found: list[str] = []
    for delimiter in DELIMITERS:
        with contextlib.suppress(AssetFileError):
            for _line, cells, _raw in _records(path, text, delimiter):
                names = [cell.strip() for cell in cells if cell.strip()]
                if names:
                    found = max(found, names, key=len)
                    break
    return ", ".join(found) if found else "none, the file is empty"


def _cell(cells: Sequence[str], index: int) -> str | None:
    if index >= len(cells):
        return None
    # NFC: a file saved on a Mac may hold decomposed Vietnamese letters.
    value = unicodedata.normalize("NFC", cells[index].strip())
    return value or None


def _identity_problem(serial: str | None, hostname: str | None) -> str | None:
    if host_key(hostname) is not None or serial_key(serial) is not None:
        return None
    if serial is None:
        return "no serial and no host name"
    return f"serial {serial} is a placeholder, not a serial, and there is no host name"


def parse_date(text: str, *, today: dt.date) -> dt.date:
    """A purchase date as people and Excel write it; ValueError with a short reason."""
    text = text.strip()
    if match := _ISO.fullmatch(text):
        year, month, day = int(match[1]), int(match[3]), int(match[4])
    elif match := _DMY.fullmatch(text):
        day, month, year = int(match[1]), int(match[3]), int(match[4])
        if len(match[4]) == 2:
            raise ValueError(f"purchase date {text}: write the year with 4 digits")
    elif match := _EXCEL.fullmatch(text):
        return _check_range(text, _EXCEL_EPOCH + dt.timedelta(days=int(match[1])), today)
    else:
        raise ValueError(f"purchase date {text} is not a date: write it as dd/mm/yyyy")
    try:
        date = dt.date(year, month, day)
    except ValueError:
        raise ValueError(f"purchase date {text} is not a date (read as day {day}, month "
                         f"{month}, year {year})") from None
    return _check_range(text, date, today)


def _check_range(text: str, date: dt.date, today: dt.date) -> dt.date:
    if date.year < MIN_YEAR:
        raise ValueError(f"purchase date {text} is before {MIN_YEAR}")
    if date > today:
        raise ValueError(f"purchase date {text} is in the future")
    return date


# --- keys ------------------------------------------------------------------------------

def _fold(text: str) -> str:
    """Lower case, no Vietnamese diacritics, '_' as space, spaces collapsed."""
    if not text.isascii():  # most serials and names are: skip the slow part
        decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
        text = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(text.casefold().replace("_", " ").split())


_FIELD_BY_ALIAS = {_fold(alias): field for field, names in ALIASES.items() for alias in names}


def _squeeze(serial: str) -> str:
    # NFC: the same letters typed on Windows and on a Mac compare equal.
    return unicodedata.normalize("NFC", "".join(serial.split()).casefold())


_PLACEHOLDER_KEYS = frozenset(_squeeze(p) for p in PLACEHOLDER_SERIALS)


def is_placeholder(serial: str) -> bool:
    """True for a maker's placeholder or a "none" typed in, which identify nothing."""
    key = _squeeze(serial)
    return key in _PLACEHOLDER_KEYS or not key.strip(_FILLERS)


def serial_key(serial: str | None) -> str | None:
    """How serials compare: no case, no spaces; None for none and placeholders."""
    if serial is None:
        return None
    key = _squeeze(serial)
    if key in _PLACEHOLDER_KEYS or not key.strip(_FILLERS):  # also the empty key
        return None
    return key


def host_key(hostname: str | None) -> str | None:
    """How host names compare: no case, no domain (PC-01.donghai.local, DONGHAI\\PC-01)."""
    if hostname is None:
        return None
    name = hostname.strip().casefold().rsplit("\\", 1)[-1]
    if not _IPV4.fullmatch(name):  # an address is not a name with a domain
        name = name.split(".", 1)[0]
    return name or None


@functools.lru_cache(maxsize=16_384)  # sites are few (Vietnam has some 3,300 communes)
def site_key(site: str | None) -> str | None:
    """How sites compare: "An Phước" and "AN-PHUOC" are site an-phuoc."""
    if site is None:
        return None
    return "-".join(_fold(site).split()) or None


# --- matching --------------------------------------------------------------------------

BY_SERIAL, BY_HOSTNAME = "serial", "host name"


class _Index:
    """Devices by serial key and by host key, for lookups in constant time.

    The dicts hold tuples of positions in `devices`: the garbage collector stops
    tracking tuples of ints, while 400,000 lists of devices would be crawled again at
    each of its passes."""

    def __init__(self, devices: Iterable[DeviceIdentity]) -> None:
        self.devices: list[DeviceIdentity] = []
        self._serial: dict[str, tuple[int, ...]] = {}
        self._host: dict[str, tuple[int, ...]] = {}
        self.sites: dict[str, str] = {}  # site key -> site id
        seen: set[tuple[str, str]] = set()
        for device in devices:
            if (device.site, device.device) in seen:
                continue
            seen.add((device.site, device.device))
            position = len(self.devices)
            self.devices.append(device)
            self.sites.setdefault(site_key(device.site) or "", device.site)
            for serial in device.serials:
                key = serial_key(serial)
                if key is not None:
                    same = self._serial.get(key, ())
                    if not same or same[-1] != position:  # a serial listed twice by one PC
                        self._serial[key] = (*same, position)
            host = host_key(device.hostname)
            if host is not None:
                self._host[host] = (*self._host.get(host, ()), position)

    def by_serial(self, key: str | None) -> list[DeviceIdentity]:
        return [self.devices[i] for i in self._serial.get(key, ())] if key else []

    def by_host(self, key: str | None) -> list[DeviceIdentity]:
        return [self.devices[i] for i in self._host.get(key, ())] if key else []


def match_assets(rows: list[AssetRow], devices: Iterable[DeviceIdentity]
                 ) -> tuple[dict[tuple[str, str], AssetRow], list[UnmatchedAsset]]:
    """{(site, device): its row} and the rows that match no device, or several, or a
    device another row took (see the module's "Matching")."""
    index = _Index(devices)
    found = [(row, _resolve(row, index)) for row in rows]
    taken: dict[tuple[str, str], tuple[AssetRow, str]] = {}
    unmatched: list[UnmatchedAsset] = []
    for how in (BY_SERIAL, BY_HOSTNAME):  # serial matches first: they are the surer ones
        for row, result in found:
            if isinstance(result, str) or result[0] != how:
                continue
            device = result[1]
            key = (device.site, device.device)
            if key in taken:
                first, first_how = taken[key]
                unmatched.append(UnmatchedAsset(
                    row.line, row.text, f"device {device.site}/{device.device} already "
                    f"matched by line {first.line} (by {first_how})"))
            else:
                taken[key] = (row, how)
    unmatched += [UnmatchedAsset(row.line, row.text, result)
                  for row, result in found if isinstance(result, str)]
    unmatched.sort(key=lambda u: u.line)
    matched = sorted(((key, row) for key, (row, _how) in taken.items()),
                     key=lambda item: item[1].line)
    return dict(matched), unmatched


def _resolve(row: AssetRow, index: _Index) -> tuple[str, DeviceIdentity] | str:
    """(how, the device) the row matches, or why it matches none."""
    site = site_key(row.site)
    serial, host = serial_key(row.serial), host_key(row.hostname)
    if serial is None and host is None:
        return _identity_problem(row.serial, None) or "no serial and no host name"
    if site is not None and site not in index.sites:
        example = min(index.sites.values(), default="an-phuoc")
        return f"no device in site {row.site} (write the site id, e.g. {example})"
    by_serial = _of_site(index.by_serial(serial), site)
    if len(by_serial) > 1 and host is not None:  # e.g. a cloned disk: the name decides
        by_serial = [d for d in by_serial if host_key(d.hostname) == host] or by_serial
    if len(by_serial) == 1:
        return BY_SERIAL, by_serial[0]
    if by_serial:
        ask = "" if host else ": give a host name" if site else ": give a host name or a site"
        return f"serial {row.serial} matches {_devices(by_serial)}{ask}"
    by_host = _of_site(index.by_host(host), site)
    if len(by_host) == 1:
        return BY_HOSTNAME, by_host[0]
    if by_host:
        ask = "give a serial" if site else "give a serial or a site"
        before = f"no device with serial {row.serial}, and " if serial else ""
        return f"{before}host name {row.hostname} matches {_devices(by_host)}: {ask}"
    return _not_found(row, serial, host, site, index)


def _of_site(devices: list[DeviceIdentity], site: str | None) -> list[DeviceIdentity]:
    if site is None or len(devices) == 1 and site_key(devices[0].site) == site:
        return devices  # the common case, without building a list
    return [d for d in devices if site_key(d.site) == site]


def _devices(devices: list[DeviceIdentity]) -> str:
    names = ", ".join(f"{d.site}/{d.device}" for d in devices[:3])
    return f"{len(devices)} devices ({names}{', ...' if len(devices) > 3 else ''})"


def _not_found(row: AssetRow, serial: str | None, host: str | None, site: str | None,
               index: _Index) -> str:
    wanted = " or ".join(part for part in (
        serial and f"serial {row.serial}", host and f"host name {row.hostname}") if part)
    if site is None:
        return f"no device with {wanted}"
    # The site may be out of date (the PC moved): say where the PC is.
    elsewhere = index.by_serial(serial) + index.by_host(host)
    sites = sorted({d.site for d in elsewhere})
    hint = f" (found in site {', '.join(sites[:3])})" if sites else ""
    return f"no device with {wanted} in site {row.site}{hint}"
