"""MongoDB storage: the persistence workers and the embedded server (docs/storage.md).

- :mod:`~polyvn.storage.documents`: stream entries -> documents, keys, versions, indexes
  (pure functions);
- :mod:`~polyvn.storage.store`: pymongo bulk writes, idempotent, and the indexes;
- :mod:`~polyvn.storage.worker`: the persistence worker (streams -> MongoDB, exactly once);
- :mod:`~polyvn.storage.embedded`: the embedded MongoDB-wire server in a child process;
- :mod:`~polyvn.storage.service`: ``polyvn worker``.
"""

from polyvn.storage.documents import (
    INDEXES,
    Planned,
    Refusal,
    Refused,
    Write,
    dead_letter,
    plan_entry,
    record_from_document,
)
from polyvn.storage.embedded import (
    EmbeddedMongo,
    embedded_mongo,
    open_embedded_mongo,
    start_embedded_mongo,
)
from polyvn.storage.errors import EmbeddedServerError, StorageError
from polyvn.storage.store import (
    DEFAULT_DATABASE,
    MongoStore,
    WriteOutcome,
    WriteRetryError,
    connect,
    open_mongo_store,
)
from polyvn.storage.worker import PersistenceWorker, WorkerSettings, WorkerStatistics

__all__ = [
    "DEFAULT_DATABASE",
    "INDEXES",
    "EmbeddedMongo",
    "EmbeddedServerError",
    "MongoStore",
    "PersistenceWorker",
    "Planned",
    "Refusal",
    "Refused",
    "StorageError",
    "WorkerSettings",
    "WorkerStatistics",
    "Write",
    "WriteOutcome",
    "WriteRetryError",
    "connect",
    "dead_letter",
    "embedded_mongo",
    "open_embedded_mongo",
    "open_mongo_store",
    "plan_entry",
    "record_from_document",
    "start_embedded_mongo",
]
