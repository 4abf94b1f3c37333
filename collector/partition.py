"""Sites split across several collectors by a stable hash, so each device always lands
on the same collector (its de-duplication, state and rule timers stay in one place).

Mosquitto hands out a plain MQTT 5 shared subscription per message, which would
scatter one device's messages over all collectors; partitioning by site instead
needs no broker feature: collector k of n subscribes to `cwatch/v1/<site>/+/+` for
each site whose hash falls in its partition. The list of sites comes from a file
(the province's communes), one id per line or a CSV with a `site` column.
"""

from __future__ import annotations

import csv
import zlib
from pathlib import Path

from cwatch import protocol


def parse(text: str) -> tuple[int, int]:
    """"2/3" -> (2, 3); raises ValueError."""
    index, sep, count = text.partition("/")
    if not sep or not index.isdigit() or not count.isdigit() or not 1 <= int(index) <= int(
            count):
        raise ValueError(f"partition {text!r} must be K/N with 1 <= K <= N, e.g. 1/2")
    return int(index), int(count)


def owner(site: str, count: int) -> int:
    """Which of `count` collectors (1-based) takes this site."""
    return zlib.crc32(site.encode("utf-8")) % count + 1


def read_sites(path: Path) -> list[str]:
    """Site ids from a text file (one per line, # comments) or a CSV with a site column."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ValueError(f"sites_file {str(path)!r}: cannot read: {exc.strerror or exc}") \
            from None
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    if lines and "," in lines[0]:
        rows = list(csv.DictReader(lines))
        if not rows or "site" not in rows[0]:
            raise ValueError(f"sites_file {str(path)!r}: a CSV needs a 'site' column")
        sites = [row["site"].strip() for row in rows]
    else:
        sites = lines
    for number, site in enumerate(sites, start=2 if lines and "," in lines[0] else 1):
        if not protocol.is_valid_id(site):
            raise ValueError(f"sites_file {str(path)!r} line {number}: {site!r} is not a "
                             "site id (lower-case letters, digits, '.', '_', '-')")
    if not sites:
        raise ValueError(f"sites_file {str(path)!r} lists no sites")
    return sites


def site_names(path: Path) -> dict[str, str]:
    """{site id: display name} from a sites CSV with a `name` column (as in the shared
    Dong Nai sample); empty for a plain list of ids."""
    read_sites(path)  # the same checks, the same one-line errors
    text = path.read_text(encoding="utf-8-sig")
    lines = [line for line in text.splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines or "," not in lines[0]:
        return {}
    return {row["site"].strip(): (row.get("name") or "").strip() or row["site"].strip()
            for row in csv.DictReader(lines)}


def own_sites(partition: str, sites_file: str) -> set[str]:
    index, count = parse(partition)
    return {site for site in read_sites(Path(sites_file)) if owner(site, count) == index}


def topics(partition: str, sites_file: str) -> list[str]:
    """The topic filters of this collector's share of the sites, plus every device's
    status: a few messages per device and day, and the only way to notice a site that
    is in nobody's share (its data would go to no subscriber, silently)."""
    channels = [channel for channel in protocol.CHANNELS if channel != protocol.STATUS]
    return [f"{protocol.TOPIC_PREFIX}/{site}/+/{channel}"
            for site in sorted(own_sites(partition, sites_file)) for channel in channels] + [
        f"{protocol.TOPIC_PREFIX}/+/+/{protocol.STATUS}"]
