"""MongoDB through pymongo: the collections' indexes and idempotent bulk writes.

pymongo is synchronous, so everything here blocks: async code calls it from a worker thread
(``trio.to_thread.run_sync`` under a :class:`trio.CapacityLimiter`, as the persistence worker
does).

:meth:`MongoStore.write` sends :class:`~polyvn.storage.documents.Write` objects as one
unordered ``bulk_write`` per collection and says what became of each:

- stored (inserted, upserted or replaced by a newer version), a duplicate (an insert whose key
  is already there: the fact was stored before), or unchanged (the stored version was newer or
  the same): all three are done;
- refused: the database (or BSON) refused that document; the others of the batch are done;
- :class:`WriteRetryError` or a pymongo error (the server is unreachable, stepping down, a
  write concern failed, the command was refused as a whole): nothing is known to be done or
  lost; write the batch again later. Writes are idempotent, so a batch written twice stores
  what it stores once.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import bson.errors
import pymongo.errors
import trio
from pymongo import MongoClient
from pymongo.database import Database

from polyvn.names import Collection
from polyvn.storage.documents import INDEXES, Write
from polyvn.storage.embedded import open_embedded_mongo
from polyvn.storage.errors import StorageError

log = logging.getLogger(__name__)

DEFAULT_DATABASE: Final = "polyvn"
DUPLICATE_KEY: Final = 11000
RETRYABLE_CODES: Final = frozenset(
    {
        6,  # HostUnreachable
        7,  # HostNotFound
        50,  # MaxTimeMSExpired
        89,  # NetworkTimeout
        91,  # ShutdownInProgress
        112,  # WriteConflict
        189,  # PrimarySteppedDown
        262,  # ExceededTimeLimit
        9001,  # SocketException
        10107,  # NotWritablePrimary
        11600,  # InterruptedAtShutdown
        11602,  # InterruptedDueToReplStateChange
        13435,  # NotPrimaryNoSecondaryOk
        13436,  # NotPrimaryOrSecondary
    }
)
"""Error codes of a single write that a later attempt may not meet."""
CONFLICT_ATTEMPTS: Final = 3
"""Attempts, within one :meth:`MongoStore.write`, at upserts that raced another writer's
insert of the same key (duplicate key on an upsert) or met a retryable error."""

_DOCUMENT_ERRORS: Final = (bson.errors.InvalidDocument, pymongo.errors.DocumentTooLarge)
"""Raised by pymongo before sending, for one document BSON cannot hold; OverflowError too
(an integer beyond 64 bits)."""


class WriteRetryError(StorageError):
    """Some writes of a batch met errors that a later attempt may not meet (a write conflict
    that persisted, a primary stepping down, a write concern error). Write the batch again."""


@attrs.frozen(kw_only=True)
class WriteOutcome:
    """What became of a batch of writes (see the module)."""

    stored: int = 0
    duplicates: int = 0
    unchanged: int = 0
    refused: Mapping[int, str] = attrs.field(factory=dict)
    """The database's reason, by index of the write in the batch."""


def connect(url: str, *, appname: str = "polyvn") -> MongoClient[dict[str, Any]]:
    """A pymongo client for *url*. It connects lazily; an unreachable server shows as a
    ``ServerSelectionTimeoutError`` after 5 s on the first operation."""
    return MongoClient(
        url,
        appname=appname,
        serverSelectionTimeoutMS=5000,
        connectTimeoutMS=5000,
        socketTimeoutMS=60_000,
    )


class MongoStore:
    """polyvn's collections in one database."""

    def __init__(self, database: Database[dict[str, Any]]) -> None:
        self.database = database

    def ensure_indexes(self) -> list[str]:
        """Create every collection's indexes (:data:`~polyvn.storage.documents.INDEXES`);
        those that exist are left alone. Returns the names, as ``collection.index``.

        Raises :class:`StorageError` when an index of the same name exists with other keys
        or options (someone changed it by hand: polyvn will not drop it)."""
        names: list[str] = []
        for collection, models in INDEXES.items():
            try:
                created = self.database[collection].create_indexes(list(models))
            except pymongo.errors.OperationFailure as exc:
                if exc.code in (85, 86):  # IndexOptionsConflict, IndexKeySpecsConflict
                    raise StorageError(
                        f"collection {collection} has an index that conflicts with polyvn's: "
                        f"{exc.details.get('errmsg') if exc.details else exc}"
                    ) from None
                raise
            names += [f"{collection}.{name}" for name in created]
        return names

    def write(self, writes: Sequence[Write]) -> WriteOutcome:
        """Apply *writes*: one unordered bulk write per collection (see the module)."""
        by_collection: dict[Collection, list[int]] = defaultdict(list)
        for index, write in enumerate(writes):
            by_collection[write.collection].append(index)
        total = _Tally()
        for collection, indices in by_collection.items():
            tally = self._write_collection(collection, [writes[i] for i in indices])
            total.stored += tally.stored
            total.duplicates += tally.duplicates
            total.unchanged += tally.unchanged
            total.refused.update({indices[i]: why for i, why in tally.refused.items()})
        return WriteOutcome(
            stored=total.stored,
            duplicates=total.duplicates,
            unchanged=total.unchanged,
            refused=total.refused,
        )

    def _write_collection(self, collection: Collection, writes: Sequence[Write]) -> _Tally:
        tally = _Tally()
        pending = list(range(len(writes)))
        for _ in range(CONFLICT_ATTEMPTS):
            pending = self._bulk(collection, writes, pending, tally)
            if not pending:
                return tally
        raise WriteRetryError(
            f"{len(pending)} write(s) to {collection} met retryable errors "
            f"{CONFLICT_ATTEMPTS} times in a row"
        )

    def _bulk(
        self, collection: Collection, writes: Sequence[Write], pending: list[int], tally: _Tally
    ) -> list[int]:
        """One bulk write of the *pending* writes; the ones to try again."""
        try:
            result = self.database[collection].bulk_write(
                [writes[i].op for i in pending], ordered=False
            )
        except pymongo.errors.BulkWriteError as exc:
            details: Mapping[str, Any] = exc.details
        except (*_DOCUMENT_ERRORS, OverflowError) as exc:
            if len(pending) == 1:
                tally.refused[pending[0]] = f"{type(exc).__name__}: {exc}"
                return []
            # One document BSON cannot hold stops the whole bulk before (some of) it is sent:
            # find it by halves; the rest is written, idempotently.
            middle = len(pending) // 2
            return self._bulk(collection, writes, pending[:middle], tally) + self._bulk(
                collection, writes, pending[middle:], tally
            )
        else:
            details = result.bulk_api_result
        if details.get("writeConcernErrors"):
            raise WriteRetryError(
                f"write concern failed on {collection}: "
                f"{details['writeConcernErrors'][0].get('errmsg', '?')}"
            )
        tally.stored += details["nInserted"] + details["nUpserted"] + details["nModified"]
        tally.unchanged += details["nMatched"] - details["nModified"]
        again: list[int] = []
        for error in details.get("writeErrors", ()):
            index, code = pending[error["index"]], error.get("code")
            if code == DUPLICATE_KEY and writes[index].is_insert:
                tally.duplicates += 1
            elif code == DUPLICATE_KEY or code in RETRYABLE_CODES:
                again.append(index)  # an upsert that raced an insert of its key, or transient
            else:
                tally.refused[index] = f"code {code}: {error.get('errmsg', '?')}"
        return again


@contextlib.asynccontextmanager
async def open_mongo_store(
    url: str | None, *, data_dir: str | os.PathLike[str], database: str = DEFAULT_DATABASE
) -> AsyncIterator[MongoStore]:
    """The store in *database* at *url*; with no URL, on an embedded server with its data in
    ``<data_dir>/mongo`` (:func:`~polyvn.storage.embedded.open_embedded_mongo`), through the
    same pymongo code. The client is closed (and the embedded server stopped) on exit."""
    async with contextlib.AsyncExitStack() as stack:
        if url is None:
            server = await stack.enter_async_context(open_embedded_mongo(Path(data_dir) / "mongo"))
            url = server.url
        client = connect(url)
        stack.push_async_callback(trio.to_thread.run_sync, client.close)
        yield MongoStore(client[database])


@attrs.define
class _Tally:
    stored: int = 0
    duplicates: int = 0
    unchanged: int = 0
    refused: dict[int, str] = attrs.field(factory=dict)


__all__ = [
    "CONFLICT_ATTEMPTS",
    "DEFAULT_DATABASE",
    "RETRYABLE_CODES",
    "MongoStore",
    "WriteOutcome",
    "WriteRetryError",
    "connect",
    "open_mongo_store",
]
