"""The engine's local journal: events kept on disk while Redis cannot take them.

A journal is a directory of append-only segment files. Each holds records with consecutive
sequence numbers and is named after its first (``00000000000000000042.seg``); replay reads the
segments in that order, so it delivers records in sequence order even when a batch that failed
in flight is written back after newer records were journaled (it goes in a segment of its
own, which sorts first).

A record is one line: ``<crc32 hex> <seq> <stream or -> <channel or -> <JSON>\\n``. The CRC
covers the rest of the line; a line that is cut short (the process died mid-write) or fails
its CRC is skipped when read, counted and logged. The JSON never holds a raw newline (it is
made by polyvn's encoder).

Durability: records are written with ``os.write`` straight to the file (no user-space
buffer), so once :meth:`Journal.append` returns they survive the process being killed. They
reach the disk itself at the next ``fsync``: at most ``fsync_interval`` seconds later (the
writer calls :meth:`Journal.sync_if_due`), when a segment is closed, and at
:meth:`Journal.close`. ``fsync_interval=0`` syncs every append. So a power loss costs at most
the last ``fsync_interval`` seconds of journaled events; a crashed process costs none.

The bound: the segments together hold at most ``max_bytes``. Records that do not fit are not
written: :meth:`Journal.append` says how many it took; the caller counts and logs the rest.
Once full, the journal takes nothing more until some of it has been delivered: it keeps the
oldest records, and what it delivers has no gap in it.

Progress: after a replayed batch is delivered, :meth:`Journal.commit` records how far it got
in a small ``cursor`` file (replaced atomically) and deletes segments read to the end. A
restart resumes at the cursor; a crash between delivery and commit repeats at most that batch
(delivery is at-least-once; consumers are idempotent on the event id).
"""

from __future__ import annotations

import logging
import os
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final, NamedTuple

import attrs

log = logging.getLogger(__name__)

SUFFIX: Final = ".seg"
READ_CHUNK: Final = 1 << 20
"""Bytes read at a time when delivering (a batch, not the whole segment)."""
CURSOR: Final = "cursor"


class Record(NamedTuple):
    """One event to deliver: its sequence number, where it goes, and its JSON."""

    seq: int
    channel: str | None
    """Pub/Sub channel; None: stream only (too large for Pub/Sub)."""
    stream: str | None
    """Stream; None: realtime only."""
    data: bytes


@attrs.frozen(kw_only=True)
class JournalStatistics:
    segments: int
    bytes: int
    """On disk, in the segments not yet delivered."""
    appended: int
    replayed: int
    corrupt: int
    """Lines skipped because they were cut short or failed their CRC."""


class _Segment:
    __slots__ = ("first", "path", "size", "start")

    def __init__(self, path: Path, first: int, size: int) -> None:
        self.path = path
        self.first = first
        self.size = size
        self.start = 0
        """Bytes already delivered."""


class Journal:
    """A journal in *directory* (created if missing). See the module."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = 1 << 30,
        segment_bytes: int = 64 << 20,
        fsync_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_bytes < 1 or segment_bytes < 1 or fsync_interval < 0:
            raise ValueError("max_bytes and segment_bytes must be positive, fsync_interval >= 0")
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync_interval = fsync_interval
        self._clock = clock
        directory.mkdir(parents=True, exist_ok=True)
        self._segments: list[_Segment] = []
        self._active: _Segment | None = None
        self._fd: int | None = None
        self._dirty = False
        self._last_sync = clock()
        self._appended = self._replayed = self._corrupt = 0
        self._full = False
        self.last_seq = 0
        """The highest sequence number in the journal (0: never any)."""
        self._load()

    # -- opening ---------------------------------------------------------------------------

    def _load(self) -> None:
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            try:
                first = int(path.stem)
            except ValueError:
                log.warning("journal %s: ignoring %s (not a segment name)", self.directory, path)
                continue
            size = path.stat().st_size
            if size == 0:
                path.unlink()
                continue
            self._segments.append(_Segment(path, first, size))
        self._segments.sort(key=lambda s: s.first)
        # The newest segment holds the highest sequence number (a segment written back holds
        # older ones): only its tail needs reading.
        for segment in reversed(self._segments):
            last = self._last_seq_of(segment)
            if last is not None:
                self.last_seq = last
                break
        cursor = self.directory / CURSOR
        if cursor.exists():
            starts = dict(line.split(" ", 1) for line in cursor.read_text().splitlines() if line)
            for segment in self._segments:
                offset = starts.get(segment.path.name, "0")
                segment.start = int(offset) if offset.isdigit() else 0
        if self._segments:
            log.warning(
                "journal %s holds %d undelivered segment(s), %d bytes: delivering them first",
                self.directory,
                len(self._segments),
                self.size,
            )

    def _last_seq_of(self, segment: _Segment) -> int | None:
        """The sequence number of the last whole record in *segment*'s tail, if any."""
        with segment.path.open("rb") as file:
            file.seek(max(0, segment.size - READ_CHUNK))
            lines = file.read().split(b"\n")[:-1]
        for line in reversed(lines):
            record = _parse_line(line)
            if record is not None:
                return record.seq
        return None

    # -- state -----------------------------------------------------------------------------

    @property
    def pending(self) -> bool:
        """Whether records wait for delivery."""
        return bool(self._segments)

    @property
    def size(self) -> int:
        """Bytes on disk not yet delivered."""
        return sum(s.size - s.start for s in self._segments)

    def statistics(self) -> JournalStatistics:
        return JournalStatistics(
            segments=len(self._segments),
            bytes=self.size,
            appended=self._appended,
            replayed=self._replayed,
            corrupt=self._corrupt,
        )

    # -- writing ---------------------------------------------------------------------------

    def append(self, records: Sequence[Record]) -> int:
        """Append *records* (in sequence order, each after everything journaled) to the
        active segment; how many were taken (fewer when the journal is full)."""
        lines = self._fit(records)
        if not lines:
            return 0
        taken = len(lines)
        if self._active is None or self._active.size >= self.segment_bytes:
            self._rotate(records[0].seq)
        assert self._active is not None
        assert self._fd is not None
        data = b"".join(lines)
        _write_all(self._fd, data)
        self._active.size += len(data)
        self._after_write(records[taken - 1].seq, taken)
        return taken

    def insert(self, records: Sequence[Record]) -> int:
        """Write *records* as a segment of their own, placed by their sequence numbers (a
        batch that failed in flight, older than records journaled meanwhile); how many were
        taken."""
        lines = self._fit(records)
        if not lines:
            return 0
        path = self.directory / f"{records[0].seq:020d}{SUFFIX}"
        data = b"".join(lines)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._segments.append(_Segment(path, records[0].seq, len(data)))
        self._segments.sort(key=lambda s: s.first)
        self._after_write(records[len(lines) - 1].seq, len(lines))
        return len(lines)

    def _fit(self, records: Sequence[Record]) -> list[bytes]:
        if self._full:
            return []
        room = self.max_bytes - self.size
        lines = []
        for record in records:
            line = _line(record)
            room -= len(line)
            if room < 0:
                # Full: refuse everything from here until some of it is delivered, so a
                # smaller record coming later cannot leave a gap behind it.
                self._full = True
                break
            lines.append(line)
        return lines

    def _rotate(self, first: int) -> None:
        self._close_active()
        path = self.directory / f"{first:020d}{SUFFIX}"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._active = _Segment(path, first, 0)
        self._segments.append(self._active)
        self._segments.sort(key=lambda s: s.first)

    def _after_write(self, last_seq: int, count: int) -> None:
        self.last_seq = max(self.last_seq, last_seq)
        self._appended += count
        self._dirty = True
        if self.fsync_interval == 0:
            self.sync()

    def sync(self) -> None:
        """fsync the active segment now."""
        if self._fd is not None and self._dirty:
            os.fsync(self._fd)
        self._dirty = False
        self._last_sync = self._clock()

    def sync_if_due(self) -> None:
        """fsync when ``fsync_interval`` has passed since the last one."""
        if self._dirty and self._clock() - self._last_sync >= self.fsync_interval:
            self.sync()

    def _close_active(self) -> None:
        if self._fd is not None:
            self.sync()
            os.close(self._fd)
        self._fd = None
        self._active = None

    def close(self) -> None:
        """Sync and close (records stay for the next run)."""
        self._close_active()

    # -- reading ---------------------------------------------------------------------------

    def read(self, limit: int) -> tuple[list[Record], int]:
        """Up to *limit* records from the oldest undelivered one, and the offset after them
        in their segment (give it to :meth:`commit` once they are delivered). Records come
        from one segment at a time."""
        if not self._segments:
            return [], 0
        segment = self._segments[0]
        left = segment.size - segment.start
        chunk = min(left, READ_CHUNK)
        with segment.path.open("rb") as file:
            file.seek(segment.start)
            data = file.read(chunk)
            while b"\n" not in data and len(data) < left:  # a line longer than the chunk
                chunk = min(left, chunk * 2)
                file.seek(segment.start)
                data = file.read(chunk)
        whole = len(data) == left  # the chunk reaches the end of what was written
        records: list[Record] = []
        end = segment.start
        position = 0
        while len(records) < limit and position < len(data):
            newline = data.find(b"\n", position)
            if newline < 0:
                if whole:  # cut short (a crash mid-write): nothing follows in this segment
                    self._skip_corrupt(segment.path, "a cut-short line")
                    end = segment.start + len(data)
                break  # else the line goes on past this chunk: the next read has it
            record = _parse_line(data[position:newline])
            position = newline + 1
            end = segment.start + position
            if record is None:
                self._skip_corrupt(segment.path, "a line failing its CRC")
                continue
            records.append(record)
        return records, end

    def commit(self, end: int, delivered: int) -> None:
        """The records :meth:`read` returned up to *end* were delivered: move past them."""
        if not self._segments:
            return
        segment = self._segments[0]
        self._replayed += delivered
        self._full = False
        if end >= segment.size and segment is not self._active:
            self._drop_first()
        elif end >= segment.size and segment is self._active:
            self._close_active()
            self._drop_first()
        else:
            segment.start = end
        self._save_cursor()

    def _drop_first(self) -> None:
        self._segments.pop(0).path.unlink(missing_ok=True)

    def _save_cursor(self) -> None:
        """Record how far each segment was delivered (replacing the file atomically)."""
        started = [f"{s.path.name} {s.start}\n" for s in self._segments if s.start]
        cursor = self.directory / CURSOR
        if not started:
            cursor.unlink(missing_ok=True)
            return
        tmp = self.directory / f"{CURSOR}.tmp"
        tmp.write_text("".join(started))
        os.replace(tmp, cursor)

    def _skip_corrupt(self, path: Path, what: str) -> None:
        self._corrupt += 1
        log.error("journal segment %s: skipping %s", path.name, what)


def _line(record: Record) -> bytes:
    if b"\n" in record.data:
        raise ValueError("a journal record's data must not hold a newline")
    body = b"%d %s %s %s" % (
        record.seq,
        (record.stream or "-").encode(),
        (record.channel or "-").encode(),
        record.data,
    )
    return b"%08x %s\n" % (zlib.crc32(body), body)


def _parse_line(line: bytes) -> Record | None:
    crc, _, body = line.partition(b" ")
    try:
        if int(crc, 16) != zlib.crc32(body):
            return None
        seq, stream, channel, data = body.split(b" ", 3)
        return Record(
            int(seq),
            None if channel == b"-" else channel.decode(),
            None if stream == b"-" else stream.decode(),
            data,
        )
    except ValueError:
        return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


__all__ = ["Journal", "JournalStatistics", "Record"]
