"""The boundary to Redis: everything in polyvn that talks to Redis goes through this package,
and only its ``_redis`` module imports redis-py.

- :mod:`~polyvn.broker.streams`: the durable streams' entry format, the consumer-group reader
  and a producer.
- :mod:`~polyvn.broker.envelopes`: envelopes as UTF-8 JSON and back, strictly.
- :mod:`~polyvn.broker.bus`: :class:`~polyvn.broker.bus.RedisBus`, the engine's bus over Redis.
- :mod:`~polyvn.broker.journal`: the engine's local journal while Redis cannot be reached.
- :mod:`~polyvn.broker.commands`: sending commands to engines and waiting for the replies.
- :mod:`~polyvn.broker.leases`: bot leases with fencing tokens, and the engine's keeper.
- :mod:`~polyvn.broker.assign`: the registry of live engines and the bot assigner.
- :mod:`~polyvn.broker.headless`: what ``polyvn engine`` runs with a ``[redis]`` table.

``docs/operations.md`` describes the topology, the names, the guarantees and failover.
"""

from polyvn.broker.errors import (
    BrokerError,
    BrokerUnavailableError,
    EngineUnreachableError,
    InvalidEnvelopeError,
    LeaseLostError,
)
from polyvn.broker.streams import (
    ENTRY_FIELD,
    StreamConsumer,
    StreamEntry,
    StreamProducer,
    open_stream_consumer,
    open_stream_producer,
)

__all__ = [
    "ENTRY_FIELD",
    "BrokerError",
    "BrokerUnavailableError",
    "EngineUnreachableError",
    "InvalidEnvelopeError",
    "LeaseLostError",
    "StreamConsumer",
    "StreamEntry",
    "StreamProducer",
    "open_stream_consumer",
    "open_stream_producer",
]
