"""The engine's local journal: order, bounds, restarts, torn writes and the fsync policy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from polyvn.broker import journal as journal_module
from polyvn.broker.journal import Journal, Record


def records(first: int, count: int, *, size: int = 10) -> list[Record]:
    return [
        Record(
            n,
            "polyvn:events:okx:e1",
            "polyvn:stream:orders" if n % 2 else None,
            b"%0*d" % (size, n),
        )
        for n in range(first, first + count)
    ]


def drain(journal: Journal, batch: int = 7) -> list[Record]:
    out: list[Record] = []
    while journal.pending:
        got, end = journal.read(batch)
        journal.commit(end, len(got))
        out += got
    return out


def test_records_come_back_in_order_and_delivered_segments_are_deleted(tmp_path: Path) -> None:
    journal = Journal(tmp_path, segment_bytes=500)
    assert not journal.pending
    assert journal.append(records(1, 40)) == 40
    assert journal.append(records(41, 10)) == 10
    assert len(list(tmp_path.glob("*.seg"))) > 1  # rotated at 500 bytes
    assert journal.last_seq == 50
    assert drain(journal) == records(1, 50)
    assert not journal.pending
    assert journal.size == 0
    assert list(tmp_path.glob("*.seg")) == []
    stats = journal.statistics()
    assert (stats.appended, stats.replayed, stats.corrupt) == (50, 50, 0)


def test_a_realtime_only_record_and_a_stream_only_one_keep_their_routes(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    both = [Record(1, None, "polyvn:stream:pnl", b"{}"), Record(2, "polyvn:engine:e1", None, b"[]")]
    journal.append(both)
    assert drain(journal) == both


def test_the_journal_survives_a_restart_and_resumes_at_its_cursor(tmp_path: Path) -> None:
    journal = Journal(tmp_path, segment_bytes=300)
    journal.append(records(1, 30))
    got, end = journal.read(5)
    journal.commit(end, len(got))
    journal.close()

    again = Journal(tmp_path, segment_bytes=300)
    assert again.pending
    assert again.last_seq == 30
    assert drain(again) == records(6, 25)


def test_a_batch_written_back_goes_before_newer_records(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append(records(11, 5))  # journaled while batch 1..10 was in flight
    journal.insert(records(1, 10))  # ... which then failed
    journal.append(records(16, 5))
    assert drain(journal, batch=3) == records(1, 20)


def test_a_full_journal_takes_what_fits_and_says_so(tmp_path: Path) -> None:
    one = len(b"%08x " % 0) + len(b"1 polyvn:stream:orders polyvn:events:okx:e1 ") + 10 + 1
    journal = Journal(tmp_path, max_bytes=one * 10)
    assert journal.append(records(1, 8)) == 8
    assert 0 < journal.append(records(9, 8)) < 8
    assert journal.size <= one * 10
    taken = journal.last_seq
    delivered = drain(journal)
    assert delivered == records(1, taken)  # the oldest, without a gap
    assert journal.append(records(taken + 1, 3)) == 3  # room again once delivered


def test_a_line_cut_short_or_corrupted_is_skipped_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = Journal(tmp_path)
    journal.append(records(1, 5))
    journal.close()
    [segment] = tmp_path.glob("*.seg")
    data = bytearray(segment.read_bytes())
    lines = data.split(b"\n")
    lines[1] = lines[1].replace(b"0000000002", b"0000000009")  # CRC no longer matches
    segment.write_bytes(b"\n".join(lines)[:-8])  # and the last line is cut short

    again = Journal(tmp_path)
    assert again.last_seq == 4  # the torn line is not a record
    got = drain(again)
    assert [r.seq for r in got] == [1, 3, 4]
    assert again.statistics().corrupt == 2
    assert "failing its CRC" in caplog.text
    assert "cut-short" in caplog.text
    # New records go to a new segment, never after a torn line.
    again.append(records(5, 2))
    assert [r.seq for r in drain(again)] == [5, 6]


def test_fsync_follows_the_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    now = [0.0]
    journal = Journal(tmp_path / "a", fsync_interval=1.0, clock=lambda: now[0])
    journal.append(records(1, 3))
    journal.sync_if_due()
    assert synced == []
    now[0] = 1.0
    journal.sync_if_due()
    assert len(synced) == 1
    journal.sync_if_due()  # nothing new written
    assert len(synced) == 1

    every = Journal(tmp_path / "b", fsync_interval=0)
    every.append(records(1, 1))
    every.append(records(2, 1))
    assert len(synced) == 3


def test_records_survive_the_process_without_close(tmp_path: Path) -> None:
    """Writes go straight to the file: what append returned is there for the next process,
    closed or not (an engine killed with SIGKILL does not close its journal)."""
    journal = Journal(tmp_path)
    journal.append(records(1, 3))
    assert drain(Journal(tmp_path)) == records(1, 3)


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="positive"):
        Journal(tmp_path, max_bytes=0)
    with pytest.raises(ValueError, match="newline"):
        Journal(tmp_path).append([Record(1, None, "s", b"a\nb")])


def test_reading_goes_chunk_by_chunk_through_a_large_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read takes a bounded chunk, not the rest of the segment; a line cut by the chunk's
    end is read whole next time, and a line longer than a chunk still comes back."""
    monkeypatch.setattr(journal_module, "READ_CHUNK", 300)
    journal = Journal(tmp_path)
    long = Record(21, None, "polyvn:stream:pnl", b"y" * 1000)
    journal.append([*records(1, 20), long, *records(22, 20)])
    reads: list[int] = []
    real = journal.read

    def counting(limit: int) -> tuple[list[Record], int]:
        got, end = real(limit)
        reads.append(len(got))
        return got, end

    monkeypatch.setattr(journal, "read", counting)
    assert drain(journal, batch=1000) == [*records(1, 20), long, *records(22, 20)]
    assert len(reads) > 3  # chunks of 300 bytes (and more for the long line), not one read
    assert journal.statistics().corrupt == 0
