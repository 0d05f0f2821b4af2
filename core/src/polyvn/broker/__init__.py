"""The boundary to Redis: everything in polyvn that talks to Redis goes through this package,
and only its ``_redis`` module imports redis-py.

- :mod:`~polyvn.broker.streams`: the durable streams' entry format, the consumer-group reader
  and a producer.
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
