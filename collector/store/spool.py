"""The time-series writer's queue of line-protocol text: on disk (Spool, what the
collector uses) or in memory (MemoryQueue, for a writer made without a spool folder).

The spool is what lets a sample whose MQTT message was acknowledged survive a kill -9
or a restart while the database is down (as vmagent's `-remoteWrite.tmpDataPath`
does), and a power cut but for its last writes:

    spool_dir/
        0000000000000042.open        the segment being appended to (at most one)
        0000000000000041-18342.seg   a closed segment, and the lines it holds
        cursor                       "41 1200": the first 1200 records of 41 are written
        lock                         flock(): one collector per folder

A segment is one zlib stream. append() (once per store-worker batch) compresses its
records, flushes the stream (Z_SYNC_FLUSH) and hands the bytes to the OS in one
write(): once it returns, killing the process cannot lose them. No fsync: a power
cut may lose the last writes, as it may lose the state store's last transactions
(SQLite WAL with synchronous=NORMAL), the same durability class. One stream per
segment rather than per batch, so the compressor's window spans batches: line
protocol shrinks 8-20x (about 20 bytes a line) even when a batch is one sample.

The uncompressed stream is a magic line, then one record per sample (whole samples,
so the writer's batches hold whole samples, as with the memory queue):

    #cwatch-spool 1
    #<lines> <bytes> <crc32 in 8 hex digits>
    <the sample's lines joined by \\n, <bytes> long>

The writer thread reads the oldest segment from the start (or from the cursor a
previous run left), sends a batch, and only after the database answered (2xx, or a
4xx that drops the batch for good) moves the cursor; a segment is deleted once all its
lines are settled. A crash between a write and the cursor update sends that one batch
again. When the folder holds more than max_bytes the oldest segments are deleted, and
their unsent lines counted as lost (queue_full). A segment that cannot be read
(truncated, garbage, checksum) is reported in one line, its unread lines counted as
lost (spool_error), and skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import threading
import zlib
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger(__name__)

MAGIC = b"#cwatch-spool 1\n"
# About a day of a province's points while the database is down (docs/collector.md).
DEFAULT_MAX_BYTES = 6 << 30
# A closed segment is at most about this big (compressed): what one drop removes when
# the folder is full, and what the writer re-reads to skip to the cursor at a start.
SEGMENT_MAX_BYTES = 8 << 20
READ_CHUNK = 256 << 10  # compressed bytes read at a time (about 4 MB of text)
_HEADER_MAX = 40  # "#<lines> <bytes> <crc>\n" is shorter
_RECORD_MAX = 64 << 20  # one sample's lines; a header saying more is garbage
_OPEN = re.compile(r"(\d{16})\.open")
_CLOSED = re.compile(r"(\d{16})-(\d+)\.seg")
_OWN_FILES = ("lock", "cursor", "cursor.tmp")

# (reason, lines, one-line message): lines lost for good, and why.
LostCallback = Callable[[str, int, str], None]


class SpoolError(Exception):
    """The spool folder cannot be used; str() is one line."""


class Taken(NamedTuple):
    """A batch handed to the writer: done() or release() it."""

    body: bytes  # what the write API sends: one body (a list would go out line by line)
    lines: int
    records: int
    parts: tuple[tuple[_Segment, int, int], ...] = ()  # (segment, lines, records)


class _Bad(Exception):
    """Data in a segment that cannot be read; str() says where and why."""


class _Segment:
    __slots__ = ("id", "path", "size", "lines", "taken", "settled", "records_done",
                 "closed", "gone", "poisoned")

    def __init__(self, seg_id: int, path: Path, size: int = 0, lines: int = 0,
                 closed: bool = False) -> None:
        self.id = seg_id
        self.path = path
        self.size = size  # bytes on disk that hold records (a damaged tail excluded)
        self.lines = lines  # lines appended
        self.taken = 0  # lines handed to the writer, or skipped
        self.settled = 0  # of those: written, refused for good, skipped or lost
        self.records_done = 0  # records settled from the start: the cursor
        self.closed = closed
        self.gone = False  # deleted
        self.poisoned = False  # the reader found garbage in it: append elsewhere


class _Reader:
    """Reads one segment's records in order, from compressed byte 0."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDONLY)
        self.raw = 0  # compressed bytes consumed
        self._z = zlib.decompressobj()
        self._buf = b""
        self._pos = 0
        self._magic = False
        self.records = 0

    def close(self) -> None:
        os.close(self.fd)

    @property
    def leftover(self) -> int:
        """Uncompressed bytes read but not (yet) a whole record."""
        return len(self._buf) - self._pos

    def next(self, limit: int) -> tuple[int, bytes] | None:
        """The next record (lines, payload), reading compressed bytes up to `limit`;
        None when it needs bytes past `limit`. Raises _Bad."""
        while True:
            record = self._parse()
            if record is not None:
                return record
            if self.raw >= limit:
                return None
            try:
                chunk = os.pread(self.fd, min(READ_CHUNK, limit - self.raw), self.raw)
            except OSError as exc:  # EIO: a bad disk block
                raise _Bad(f"cannot read at byte {self.raw} ({exc.strerror})") from None
            if not chunk:
                raise _Bad(f"the file ends at byte {self.raw}, {limit - self.raw} bytes short")
            self.raw += len(chunk)
            try:
                data = self._z.decompress(chunk)
            except zlib.error as exc:
                raise _Bad(f"not a zlib stream after record {self.records} ({exc})") from None
            self._buf = self._buf[self._pos:] + data
            self._pos = 0

    def _parse(self) -> tuple[int, bytes] | None:
        buf, pos = self._buf, self._pos
        if not self._magic:
            head = buf[pos:pos + len(MAGIC)]
            if not MAGIC.startswith(head):
                raise _Bad("not a spool segment (no #cwatch-spool header)")
            if len(head) < len(MAGIC):
                return None
            self._pos = pos = pos + len(MAGIC)
            self._magic = True
        end = buf.find(b"\n", pos, pos + _HEADER_MAX)
        if end < 0:
            if len(buf) - pos >= _HEADER_MAX:
                raise _Bad(f"bad record header after record {self.records}")
            return None
        parts = buf[pos + 1:end].split(b" ")
        try:
            if buf[pos] != 0x23 or len(parts) != 3:  # "#"
                raise ValueError
            lines, size, crc = int(parts[0]), int(parts[1]), int(parts[2], 16)
            if lines < 1 or not 0 <= size <= _RECORD_MAX:
                raise ValueError
        except ValueError:
            raise _Bad(f"bad record header after record {self.records}") from None
        start = end + 1
        stop = start + size
        if len(buf) <= stop:
            return None
        payload = buf[start:stop]
        if buf[stop] != 0x0A or zlib.crc32(payload) != crc:
            raise _Bad(f"record {self.records + 1} is damaged (checksum)")
        self._pos = stop + 1
        self.records += 1
        return lines, payload


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class _LineCounts:
    """What the writer and /metrics read of either queue: lines waiting and in flight."""

    _lock: threading.Lock
    _waiting: int  # lines not handed to the writer yet
    _inflight: int  # lines handed to the writer, not settled

    @property
    def waiting(self) -> int:
        """Lines not handed to the writer yet."""
        return self._waiting

    @property
    def pending(self) -> int:
        """Lines not written yet: waiting and in flight."""
        with self._lock:
            return self._waiting + self._inflight


class Spool(_LineCounts):
    """A durable FIFO of samples' lines in a folder. append() is called by one thread
    (the store worker), take()/done()/release() by another (the writer)."""

    durable = True

    def __init__(self, path: Path | str, max_bytes: int, on_lost: LostCallback, *,
                 segment_bytes: int | None = None) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        self.path = Path(path)
        self.max_bytes = max_bytes
        # At most 1/16 of the bound: a full spool drops a small part of its data at once.
        self.segment_bytes = segment_bytes or max(1, min(SEGMENT_MAX_BYTES, max_bytes // 16))
        self._on_lost = on_lost
        self._lock = threading.Lock()  # the fields below, and file names
        self._segments: deque[_Segment] = deque()  # oldest first
        self._bytes = 0
        self._waiting = 0  # lines not handed to the writer yet
        self._inflight = 0  # lines handed to the writer, not settled
        self._lock_fd: int | None = None
        self._next_id = 1
        # The appender's (store worker's) own.
        self._active: _Segment | None = None
        self._wfd: int | None = None
        self._z: zlib._Compress | None = None
        # The reader's (writer thread's) own.
        self._reader: _Reader | None = None
        self._rseg: _Segment | None = None
        self._held: tuple[int, bytes] | None = None  # read, but did not fit the batch
        self._broken: str | None = None  # the reader hit bad data after a batch
        self.open()

    # --- any thread ---------------------------------------------------------------------

    @property
    def nbytes(self) -> int:
        return self._bytes

    def open(self) -> None:
        """Take the folder (its lock) and what an earlier run left in it."""
        if self._lock_fd is not None:
            return
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise SpoolError(f"cannot create {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise SpoolError(f"{self.path} is in use by another process") from None
        self._lock_fd = fd
        try:
            self._load()
        except OSError as exc:
            self.close()
            raise SpoolError(f"cannot read {self.path}: {exc}") from None

    def close(self) -> int:
        """Close the files and give up the folder; the lines left in it (sent at the
        next open)."""
        self._close_active()
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._rseg = self._held = self._broken = None
        with self._lock:
            left = self._waiting + self._inflight
            self._segments.clear()
            self._bytes = self._waiting = self._inflight = 0
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = None
        return left

    # --- the appender -------------------------------------------------------------------

    def append(self, chunks: list[tuple[int, str]]) -> bool:
        """Store samples' lines ((line count, lines joined by "\\n") each) with one
        write(). False if the spool is closed; lines it cannot write are counted lost."""
        parts: list[bytes] = []
        lines = 0
        for count, text in chunks:
            body = text.encode()
            parts += (b"#%d %d %08x\n" % (count, len(body), zlib.crc32(body)), body, b"\n")
            lines += count
        raw = b"".join(parts)
        with self._lock:
            if self._lock_fd is None:
                return False
            poisoned = self._active is not None and self._active.poisoned
        if poisoned:
            self._close_active()
        try:
            if self._active is None:
                self._new_segment()
                raw = MAGIC + raw
            assert self._z is not None and self._wfd is not None and self._active is not None
            data = self._z.compress(raw) + self._z.flush(zlib.Z_SYNC_FLUSH)
            _write_all(self._wfd, data)
        except OSError as exc:
            self._write_failed(exc, lines)
            return True
        seg = self._active
        lost = 0
        with self._lock:
            seg.size += len(data)
            seg.lines += lines
            self._bytes += len(data)
            if seg.poisoned:  # the reader gave up on this segment meanwhile
                seg.taken += lines
                seg.settled += lines
                lost = lines
            else:
                self._waiting += lines
        if lost:
            self._on_lost("spool_error", lost, f"time-series spool {seg.path}: appended "
                                               "to a damaged segment; those lines are lost")
        if seg.size >= self.segment_bytes:
            self._close_active()
        if self._bytes > self.max_bytes:
            self._enforce_bound()
        return True

    def _new_segment(self) -> None:
        with self._lock:
            seg_id = self._next_id
            self._next_id += 1
        path = self.path / f"{seg_id:016d}.open"
        self._wfd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        self._z = zlib.compressobj(1)  # level 1: ~1 us a line; 6 shrinks ~10 % more
        self._active = _Segment(seg_id, path)
        with self._lock:
            self._segments.append(self._active)

    def _write_failed(self, exc: OSError, lines: int) -> None:
        """A full disk or an I/O error: the batch is lost (counted). The segment is
        cut back to its last whole write and closed; the next append starts a new one."""
        if self._wfd is not None and self._active is not None:
            # If this fails too, the reader still stops at the known size and lines.
            with contextlib.suppress(OSError):
                os.ftruncate(self._wfd, self._active.size)
        self._close_active()
        self._on_lost("spool_error", lines, f"time-series spool {self.path}: cannot write "
                                            f"({exc.strerror or exc}); {lines} lines lost")

    def _close_active(self) -> None:
        """Close the segment being appended to; its name gets its line count."""
        seg, fd = self._active, self._wfd
        self._active = self._wfd = self._z = None
        if fd is not None:
            os.close(fd)
        if seg is None:
            return
        with self._lock:
            seg.closed = True
            if seg.gone:
                return
            if seg.lines == 0:
                self._delete(seg)
                return
            closed = seg.path.with_name(f"{seg.id:016d}-{seg.lines}.seg")
            try:
                os.rename(seg.path, closed)
                seg.path = closed
            except OSError as exc:  # kept as .open: the next start counts its lines
                log.warning("time-series spool: cannot rename %s: %s", seg.path, exc)
            if seg.settled >= seg.lines:
                self._delete(seg)

    def _enforce_bound(self) -> None:
        dropped = segments = 0
        while True:
            with self._lock:
                if self._bytes <= self.max_bytes or not self._segments:
                    break
                oldest = self._segments[0]
                if oldest is not self._active:
                    lost = oldest.lines - oldest.taken  # what is in flight stays in flight
                    self._waiting -= lost
                    oldest.taken = oldest.settled = oldest.lines
                    self._delete(oldest)
                    dropped += lost
                    segments += 1
                    continue
            self._close_active()  # one segment, bigger than the bound: it goes too
        if dropped:
            self._on_lost("queue_full", dropped,
                          f"time-series spool {self.path} full ({self.max_bytes} bytes): "
                          f"dropped the oldest {segments} segment(s), {dropped} lines")

    def _delete(self, seg: _Segment) -> None:
        """Forget a segment and remove its file (with the lock held)."""
        if seg.gone:
            return
        seg.gone = True
        self._segments.remove(seg)
        self._bytes -= seg.size
        try:
            seg.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("time-series spool: cannot remove %s: %s", seg.path, exc)

    # --- the reader ---------------------------------------------------------------------

    def take(self, max_lines: int) -> Taken | None:
        """Up to max_lines lines (whole samples, at least one), oldest first, across
        segments; None when there is nothing to send now."""
        records: list[bytes] = []
        parts: list[tuple[_Segment, int, int]] = []  # (segment, lines, records) taken
        total = 0
        while total < max_lines:
            if self._broken is not None:
                if records:
                    break  # send what was whole first
                self._give_up_segment(self._broken)
                continue
            seg = self._reading()
            if seg is None:
                break
            with self._lock:
                limit, left, closed = seg.size, seg.lines - seg.taken, seg.closed
            got: list[bytes] = []
            lines = 0
            try:
                while lines < left and total + lines < max_lines:
                    record = self._held or self._read(limit)
                    if record is None:
                        break
                    if (records or got) and total + lines + record[0] > max_lines:
                        self._held = record
                        break
                    self._held = None
                    if lines + record[0] > left:
                        raise _Bad("more lines than the segment's count")
                    got.append(record[1])
                    lines += record[0]
            except _Bad as exc:
                if not (records or got):
                    self._give_up_segment(str(exc))
                    continue
                self._broken = str(exc)
            if not got:
                if self._broken is not None:
                    break
                if closed and left <= 0:
                    self._finish_reading()
                    continue
                if closed:
                    self._give_up_segment(f"the data ends {left} lines short")
                    continue
                break  # the segment being appended to: nothing new yet
            with self._lock:
                if seg.gone:  # dropped by the bound meanwhile: its lines were counted
                    self._drop_reader()
                    continue
                seg.taken += lines
                self._waiting -= lines
                self._inflight += lines
            records += got
            parts.append((seg, lines, len(got)))
            total += lines
            if self._held is not None or not (closed and lines == left):
                break  # full, or the segment being appended to has no more yet
        if not records:
            return None
        return Taken(b"\n".join(records), total, len(records), tuple(parts))

    def done(self, taken: Taken) -> None:
        """The batch is written (or refused for good): never send it again."""
        cursor = None
        with self._lock:
            self._inflight = 0
            for seg, lines, records in taken.parts:
                if seg.gone:
                    continue
                seg.settled += lines
                seg.records_done += records
                cursor = f"{seg.id} {seg.records_done}\n"
                if seg.closed and seg.settled >= seg.lines:
                    self._delete(seg)
        if cursor is not None:
            self._write_cursor(cursor)

    def release(self, taken: Taken) -> int:
        """Stopping with the batch unwritten: it stays in the spool (0 lines lost)."""
        with self._lock:
            self._inflight = 0
        return 0

    def _read(self, limit: int) -> tuple[int, bytes] | None:
        assert self._reader is not None
        return self._reader.next(limit)

    def _reading(self) -> _Segment | None:
        """The segment to read: the current one, else the oldest with lines to send."""
        while True:
            with self._lock:
                seg = self._rseg
                if seg is not None and not (seg.gone or seg.poisoned
                                            or (seg.closed and seg.taken >= seg.lines)):
                    return seg
                self._drop_reader()
                seg = next((s for s in self._segments if not s.poisoned
                            and (not s.closed or s.taken < s.lines)), None)
                if seg is None:
                    return None
                self._rseg = seg
                try:
                    self._reader = _Reader(seg.path)
                    return seg
                except OSError as exc:
                    problem = f"cannot open it ({exc.strerror})"
            self._give_up_segment(problem)

    def _finish_reading(self) -> None:
        with self._lock:
            self._drop_reader()

    def _drop_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader = self._rseg = self._held = None

    def _give_up_segment(self, problem: str) -> None:
        """Report bad data in one line, count the segment's unsent lines lost, skip it."""
        seg = self._rseg
        self._broken = None
        if seg is None:
            return
        with self._lock:
            self._drop_reader()
            lost = 0 if seg.gone else seg.lines - seg.taken
            self._waiting -= lost
            seg.taken += lost
            seg.settled += lost
            if not seg.closed:
                seg.poisoned = True  # the appender moves on to a new segment
            elif seg.settled >= seg.lines:
                self._delete(seg)
        self._on_lost("spool_error", lost,
                      f"time-series spool {seg.path}: {problem}; skipped the rest of the "
                      f"segment ({lost} lines lost)")

    def _write_cursor(self, text: str) -> None:
        tmp = self.path / "cursor.tmp"
        try:
            tmp.write_text(text, encoding="ascii")
            os.replace(tmp, self.path / "cursor")
        except OSError as exc:  # at worst that batch is sent again after a restart
            log.warning("time-series spool: cannot save the cursor: %s", exc)

    # --- open ---------------------------------------------------------------------------

    def _load(self) -> None:
        segments: list[_Segment] = []
        for name in sorted(os.listdir(self.path)):
            path = self.path / name
            closed, opened = _CLOSED.fullmatch(name), _OPEN.fullmatch(name)
            try:
                if closed:
                    segments.append(_Segment(int(closed.group(1)), path, path.stat().st_size,
                                             int(closed.group(2)), closed=True))
                elif opened:
                    seg = self._recover(int(opened.group(1)), path)
                    if seg is not None:
                        segments.append(seg)
            except OSError as exc:
                log.warning("time-series spool: cannot use %s (%s); skipped", path, exc)
                continue
            if not (closed or opened or name in _OWN_FILES):
                log.warning("time-series spool %s: ignoring %s (not a spool segment)",
                            self.path, name)
        segments.sort(key=lambda s: s.id)
        with self._lock:
            self._segments = deque(segments)
            self._bytes = sum(s.size for s in segments)
            self._waiting = sum(s.lines for s in segments)
            self._inflight = 0
        seg_id, records = self._read_cursor()
        with self._lock:
            # Never an id again, not even the cursor's: it must not match a new segment.
            self._next_id = max([seg_id, *(s.id for s in segments)]) + 1
        if segments and segments[0].id == seg_id and records:
            self._skip_written(segments[0], records)
        if self._segments:
            log.info("time-series spool %s: %d lines in %d segment(s) from an earlier run; "
                     "sending them first", self.path, self._waiting, len(self._segments))

    def _skip_written(self, seg: _Segment, records: int) -> None:
        """Read past the records the cursor says an earlier run wrote; the reader stays
        there (or the segment goes, if that was all of it)."""
        try:
            reader = _Reader(seg.path)
        except OSError:  # reported when the reader gets there
            return
        lines = 0
        try:
            for _ in range(records):
                record = reader.next(seg.size)
                if record is None:
                    break
                lines += record[0]
        except _Bad:  # reported when the reader gets there
            reader.close()
            return
        with self._lock:
            lines = min(lines, seg.lines)
            seg.taken = seg.settled = lines
            seg.records_done = reader.records
            self._waiting -= lines
            if seg.settled >= seg.lines:
                reader.close()
                self._delete(seg)
            else:
                self._reader, self._rseg = reader, seg

    def _recover(self, seg_id: int, path: Path) -> _Segment | None:
        """A segment left open by a crash: count its whole records, close it."""
        size = path.stat().st_size
        lines = 0
        problem = None
        try:
            reader = _Reader(path)
        except OSError as exc:
            log.warning("time-series spool: cannot read %s: %s; skipped", path, exc.strerror)
            return None
        try:
            while (record := reader.next(size)) is not None:
                lines += record[0]
            if reader.leftover:
                problem = "the last write is incomplete"
        except _Bad as exc:
            problem = str(exc)
        finally:
            reader.close()
        if problem:
            # A write cut short by a kill belongs to a batch that was never acknowledged
            # (the broker sends it again); garbage is garbage: either way, skip it.
            log.warning("time-series spool %s: %s; kept the %d whole records (%d lines) "
                        "before it", path, problem, reader.records, lines)
        if lines == 0:
            path.unlink()
            return None
        closed = path.with_name(f"{seg_id:016d}-{lines}.seg")
        os.rename(path, closed)
        return _Segment(seg_id, closed, size, lines, closed=True)

    def _read_cursor(self) -> tuple[int, int]:
        try:
            text = (self.path / "cursor").read_text(encoding="ascii")
        except FileNotFoundError:
            return 0, 0
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("time-series spool %s: cannot read the cursor (%s); the oldest "
                        "segment is sent from its start", self.path, exc)
            return 0, 0
        parts = text.split()
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            log.warning("time-series spool %s: the cursor %r is not valid; the oldest "
                        "segment is sent from its start", self.path, text[:40])
            return 0, 0
        return int(parts[0]), int(parts[1])


class MemoryQueue(_LineCounts):
    """The same interface in memory, bounded in lines: what a kill loses, and what a
    stop cannot write is dropped."""

    durable = False

    def __init__(self, max_lines: int, on_lost: LostCallback) -> None:
        if max_lines < 1:
            raise ValueError("max_lines must be at least 1")
        self.max_lines = max_lines
        self._on_lost = on_lost
        self._lock = threading.Lock()
        # (line count, lines joined by "\n"), one entry per sample, oldest first.
        self._chunks: deque[tuple[int, str]] = deque()
        self._waiting = 0
        self._inflight = 0

    @property
    def nbytes(self) -> int:
        return 0

    def open(self) -> None:
        pass

    def close(self) -> int:
        with self._lock:
            left = self._waiting
            self._chunks.clear()
            self._waiting = 0
        return left

    def append(self, chunks: list[tuple[int, str]]) -> bool:
        dropped = 0
        with self._lock:
            for chunk in chunks:
                self._chunks.append(chunk)
                self._waiting += chunk[0]
            while self._waiting > self.max_lines:
                oldest, _ = self._chunks.popleft()
                self._waiting -= oldest
                dropped += oldest
        if dropped:
            self._on_lost("queue_full", dropped, f"time-series queue full ({self.max_lines} "
                                                 f"lines): dropped the oldest {dropped} lines")
        return True

    def take(self, max_lines: int) -> Taken | None:
        with self._lock:
            if not self._chunks:
                return None
            batch: list[str] = []
            lines = 0
            while self._chunks and (not batch or lines + self._chunks[0][0] <= max_lines):
                count, text = self._chunks.popleft()
                batch.append(text)
                lines += count
            self._waiting -= lines
            self._inflight = lines
        return Taken("\n".join(batch).encode(), lines, len(batch))

    def done(self, taken: Taken) -> None:
        with self._lock:
            self._inflight = 0

    def release(self, taken: Taken) -> int:
        """Stopping with the batch unwritten: it is lost (the lines, returned)."""
        with self._lock:
            self._inflight = 0
        return taken.lines
