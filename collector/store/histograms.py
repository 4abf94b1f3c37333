"""Summing many daily histograms at once, with numpy: the procurement report merges a
country's roll-ups (130,000 devices x 30 days x 2 histograms of 101 buckets), which took
minutes as Python lists.

The histograms arrive as the JSON text the collector writes ("[0,3,1437,...]"), one
device's days concatenated ("[...][...]"). numpy's text reader parses a whole batch of
devices in C; text it cannot read as that plain form (spaces, floats, another length) is
parsed with orjson instead, so the result never depends on which way was taken.
"""

from __future__ import annotations

import itertools
import re
import warnings
from collections.abc import Sequence

import numpy as np
import orjson

# "1,2][3,4]" -> "1,2,3,4": the numbers, a comma between each two.
_OPEN_TO_COMMA = bytes.maketrans(b"[", b",")
_BETWEEN_DAYS = re.compile(r"]\s*\[")
_DIGITS_AS_NINES = bytes.maketrans(b"0123456789", b"9999999999")


def sum_days(texts: Sequence[str], days: Sequence[int], width: int) -> np.ndarray:
    """Bucket by bucket sums, one row per device: texts[i] is device i's days[i]
    histograms of `width` buckets, concatenated. ValueError if one is not such a list."""
    if not texts:
        return np.zeros((0, width), dtype=np.int64)
    rows = _parse_plain(texts, sum(days), width)
    if rows is None:
        rows = np.concatenate([_parse_each(text, count, width)
                               for text, count in zip(texts, days)])
    # Devices with as many days side by side are summed as one 3-D block: most have the
    # whole period, and np.add.reduceat over rows is several times slower.
    sums = np.empty((len(days), width), dtype=np.int64)
    device = row = 0
    for count, run in itertools.groupby(days):
        devices = len(list(run))
        block = rows[row:row + devices * count].reshape(devices, count, width)
        sums[device:device + devices] = block.sum(axis=1, dtype=np.int64)
        device, row = device + devices, row + devices * count
    return sums


def percentiles(hists: np.ndarray, p: float) -> list[int | None]:
    """state.percentile_bucket (nearest rank) of each row of `hists`, vectorised."""
    cumulative = np.cumsum(hists, axis=1)
    totals = cumulative[:, -1]
    # As math.ceil(p / 100.0 * total) in float64, exactly as percentile_bucket does.
    ranks = np.maximum(1.0, np.ceil((p / 100.0) * totals.astype(np.float64)))
    index = (cumulative < ranks[:, None]).sum(axis=1)
    return [None if total == 0 else i for total, i in zip(totals.tolist(), index.tolist())]


def _parse_plain(texts: Sequence[str], rows: int, width: int) -> np.ndarray | None:
    """The lists as a (rows, width) uint32 array; None if they are not in the plain
    form that numpy's reader takes the same way as orjson."""
    if not texts[0].startswith("["):
        return None
    # Without the first "[" (which would become a leading comma): cutting it off the
    # first device's text is cheaper than off the whole batch.
    joined = "".join([texts[0][1:], *texts[1:]]).encode()
    # `rows` lists back to back, with as many commas as `width` numbers each take. (The
    # collector writes every list with PERCENT_BUCKETS numbers; one of another length
    # shows in these counts, unless longer and shorter ones make up for each other.)
    if not joined.endswith(b"]") or joined.count(b"[") != rows - 1 \
            or joined.count(b",") != rows * (width - 1):
        return None
    flat = joined.translate(_OPEN_TO_COMMA, b"]")
    # Read as uint32, twice as fast as int64, which wraps at 2**32: so no number may
    # have 10 digits (a day's bucket counts at most one sample a second, 86,400).
    if flat.translate(_DIGITS_AS_NINES).find(b"9" * 10) >= 0:
        return None
    try:
        with warnings.catch_warnings():
            # Older numpy warns, newer raises, at what is not a whole number ("1.5",
            # "null", "-1"); spaces it skips as orjson does. `count`: one allocation,
            # not a growing buffer (twice as fast).
            warnings.simplefilter("error", DeprecationWarning)
            values = np.fromstring(flat, dtype=np.uint32, sep=",", count=rows * width)
    except (ValueError, DeprecationWarning):
        return None
    return values.reshape(rows, width)


def _parse_each(text: str, days: int, width: int) -> np.ndarray:
    # "][" cannot occur inside a JSON list of numbers: it is where one day ends.
    lists = orjson.loads("[" + _BETWEEN_DAYS.sub("],[", text) + "]")
    if len(lists) != days or any(not isinstance(v, list) or len(v) != width for v in lists):
        raise ValueError(f"not {days} histograms of {width} buckets: {text[:80]!r}")
    if any(type(n) is not int for values in lists for n in values):
        raise ValueError(f"a histogram count is not a whole number: {text[:80]!r}")
    return np.array(lists, dtype=np.int64).reshape(days, width)

